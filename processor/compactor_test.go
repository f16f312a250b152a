package processor

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// TestACompactedFlowRefusesItsDuplicateAndReportsALateDeliveryOnce: the
// compactor's round cuts a closed flow down to its compact entry; a
// duplicate request then finds it (REQUEST_DUPLICATE, nothing sent), a
// late delivery of the other channel is reported once at the version
// after the record's (event ids never repeat), and its repeat is not.
func TestACompactedFlowRefusesItsDuplicateAndReportsALateDeliveryOnce(t *testing.T) {
	mr, store := miniredisStore(t, statestore.Config{Prefix: "t", TombstoneTTL: time.Hour, ClosedDetailTTL: time.Minute})
	mr.SetTime(time.Now())
	c, _ := testConsumer(t, store)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	ctx := context.Background()
	// Every input partition read to the end: deciding inputs apply at once.
	end := t0().Add(time.Hour)
	c.watermarks = &Watermarks{
		partitions: []statestore.PartitionRef{{Topic: c.topics.Requests}, {Topic: c.topics.DLR}},
		known:      map[statestore.PartitionRef]time.Time{{Topic: c.topics.Requests}: end, {Topic: c.topics.DLR}: end},
	}

	startFlow(t, c, store, "d1")
	clk.Advance(30 * time.Second)
	fireDue(t, c, store, clk.Now(), clk.Now()) // WhatsApp timed out: SMS sent
	clk.Advance(time.Second)
	if events := applyForEvents(t, c, store, dlrRecord(t, c, 0, 1, clk.Now(), schemas.DeliveryReport{AttemptID: "d1/1", Channel: "sms", Status: "DELIVRD"})); len(events) == 0 {
		t.Fatal("the SMS delivery did not close the flow")
	}
	whole, err := store.Load(ctx, []string{"d1"})
	if err != nil || !whole[0].Exists {
		t.Fatalf("load: %+v %v", whole, err)
	}

	mr.SetTime(time.Now().Add(2 * time.Minute))
	comp := newCompactor(store, 100, c.log, c.metrics)
	if n, err := comp.round(ctx); err != nil || n != 1 {
		t.Fatalf("compacted %d flows (%v), want 1", n, err)
	}
	if snaps, _ := store.Load(ctx, []string{"d1"}); !snaps[0].Compacted || snaps[0].Version != whole[0].Version {
		t.Fatalf("after the round: %+v, want the compact entry at version %d", snaps[0], whole[0].Version)
	}

	v, err := c.codecs.SendRequest.Encode(limitRequest("d1"))
	if err != nil {
		t.Fatal(err)
	}
	dup := applyForEvents(t, c, store, &kgo.Record{Topic: c.topics.Requests, Offset: 9, Key: []byte("d1"), Value: v, Timestamp: clk.Now()})
	if len(dup) != 1 || dup[0].Type != flow.EventRequestDuplicate || dup[0].Reason != flow.DiscardFlowClosed {
		t.Fatalf("the duplicate of a compacted flow: %+v", dup)
	}

	late := applyForEvents(t, c, store, dlrRecord(t, c, 0, 2, clk.Now(), schemas.DeliveryReport{AttemptID: "d1/0", Channel: "whatsapp", Status: "delivered"}))
	var multi []schemas.FlowEvent
	for _, ev := range late {
		if ev.Type == flow.EventMultiChannelDelivery {
			multi = append(multi, ev)
		}
	}
	want := "d1/v" + strconv.FormatInt(whole[0].Version+1, 10) + "/"
	if len(multi) != 1 || multi[0].Channel != "whatsapp" || len(multi[0].EventID) <= len(want) || multi[0].EventID[:len(want)] != want {
		t.Fatalf("the late WhatsApp delivery of a compacted flow: %+v, want one MULTI_CHANNEL_DELIVERY with an id from %s", late, want)
	}
	again := applyForEvents(t, c, store, dlrRecord(t, c, 0, 3, clk.Now(), schemas.DeliveryReport{AttemptID: "d1/0", Channel: "whatsapp", Status: "delivered"}))
	for _, ev := range again {
		if ev.Type == flow.EventMultiChannelDelivery {
			t.Fatalf("the repeat was reported again: %+v", again)
		}
	}
}

// TestAProviderIDAloneFindsItsCompactedFlow: past the detail window the
// flow's provider ids move with it (the compactor's round packs them and
// drops their string keys). A DLR naming only the provider's id is then
// attributed like one naming the attempt: a late delivery of the other
// channel is reported once, its repeat is not, and a late DLR of the
// delivered step is discarded as flow_closed. The flow's request id is
// not kept: those events name no request and no attempt.
func TestAProviderIDAloneFindsItsCompactedFlow(t *testing.T) {
	mr, store := miniredisStore(t, statestore.Config{Prefix: "t", TombstoneTTL: time.Hour, ClosedDetailTTL: time.Minute})
	mr.SetTime(time.Now())
	c, _ := testConsumer(t, store)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	c.indexTTL = time.Hour
	ctx := context.Background()
	end := t0().Add(time.Hour)
	c.watermarks = &Watermarks{
		partitions: []statestore.PartitionRef{{Topic: c.topics.Requests}, {Topic: c.topics.DLR}},
		known:      map[statestore.PartitionRef]time.Time{{Topic: c.topics.Requests}: end, {Topic: c.topics.DLR}: end},
	}

	startFlow(t, c, store, "p1")
	clk.Advance(time.Second)
	applyForEvents(t, c, store, dlrRecord(t, c, 0, 1, clk.Now(), schemas.DeliveryReport{AttemptID: "p1/0", ProviderMessageID: "wamid.p1", Channel: "whatsapp", Status: "sent"}))
	clk.Advance(30 * time.Second)
	fireDue(t, c, store, clk.Now(), clk.Now()) // WhatsApp timed out: SMS sent
	clk.Advance(time.Second)
	if events := applyForEvents(t, c, store, dlrRecord(t, c, 0, 2, clk.Now(), schemas.DeliveryReport{AttemptID: "p1/1", ProviderMessageID: "sms.p1", Channel: "sms", Status: "DELIVRD"})); len(events) == 0 {
		t.Fatal("the SMS delivery did not close the flow")
	}
	whole, err := store.Load(ctx, []string{"p1"})
	if err != nil || !whole[0].Exists {
		t.Fatalf("load: %+v %v", whole, err)
	}

	mr.SetTime(time.Now().Add(2 * time.Minute))
	if n, err := newCompactor(store, 100, c.log, c.metrics).round(ctx); err != nil || n != 1 {
		t.Fatalf("compacted %d flows (%v), want 1", n, err)
	}
	resolved, err := store.ResolveProviderIDs(ctx, []string{"wamid.p1", "sms.p1"})
	if err != nil || len(resolved) != 2 {
		t.Fatalf("resolved %v (%v), want both provider ids", resolved, err)
	}
	for pid, attempt := range resolved {
		if id, _, _ := flow.ParseAttemptID(attempt); !statestore.IsCompactRef(id) {
			t.Fatalf("%s resolves to %q after the round, want its packed entry", pid, attempt)
		}
	}

	byProvider := func(offset int64, pid, channel, status string) []schemas.FlowEvent {
		return applyForEvents(t, c, store, dlrRecord(t, c, 0, offset, clk.Now(), schemas.DeliveryReport{ProviderMessageID: pid, Channel: channel, Status: status}))
	}
	late := byProvider(3, "wamid.p1", "whatsapp", "delivered")
	var multi []schemas.FlowEvent
	for _, ev := range late {
		if ev.Type == flow.EventMultiChannelDelivery {
			multi = append(multi, ev)
		}
	}
	if len(multi) != 1 || multi[0].Channel != "whatsapp" || multi[0].Step == nil || *multi[0].Step != 0 || multi[0].RequestID != "" || multi[0].AttemptID != "" {
		t.Fatalf("the late WhatsApp delivery by provider id: %+v, want one MULTI_CHANNEL_DELIVERY of step 0 naming no request", late)
	}
	want := "compact:" + strconv.Itoa(store.Shard("p1")) + ":"
	if len(multi[0].EventID) <= len(want) || multi[0].EventID[:len(want)] != want {
		t.Fatalf("event id %q, want one of the compact flow (%s...)", multi[0].EventID, want)
	}
	if snaps, _ := store.Load(ctx, []string{"p1"}); !snaps[0].Compacted || snaps[0].Version != whole[0].Version+1 {
		t.Fatalf("by request id after the change: %+v, want the compact entry at version %d", snaps[0], whole[0].Version+1)
	}
	for i, rep := range []struct{ pid, channel, status string }{{"wamid.p1", "whatsapp", "delivered"}, {"sms.p1", "sms", "DELIVRD"}} {
		events := byProvider(int64(4+i), rep.pid, rep.channel, rep.status)
		if len(events) != 1 || events[0].Type != flow.EventDLRDiscarded || events[0].Reason != flow.DiscardFlowClosed || events[0].RequestID != "" {
			t.Fatalf("a repeat by provider id %s: %+v, want one DLR_DISCARDED flow_closed naming no request", rep.pid, events)
		}
	}
	// By attempt id, the same flow: the WhatsApp delivery is known.
	again := applyForEvents(t, c, store, dlrRecord(t, c, 0, 6, clk.Now(), schemas.DeliveryReport{AttemptID: "p1/0", Channel: "whatsapp", Status: "delivered"}))
	if len(again) != 1 || again[0].Type != flow.EventDLRDiscarded || again[0].RequestID != "p1" {
		t.Fatalf("the repeat by attempt id: %+v, want it discarded", again)
	}
}
