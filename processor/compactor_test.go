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
