package processor

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// wallManual is the manual test clock that maps record timestamps one to
// one, as the processor's real clock does: inputs get a publication time.
type wallManual struct{ *clocktest.Manual }

func (wallManual) FromWall(t time.Time) time.Time { return t }

// TestLateDLRWaitsInRedisForItsDeadline: a DLR published after its step's
// deadline and read before the deadline fired sends nothing and closes
// nothing: it is held in the flow's state in Redis (format 0x03), and the
// deadline's firing applies it after the fallback it owes (SPEC §7).
func TestLateDLRWaitsInRedisForItsDeadline(t *testing.T) {
	c, names, store := redisConsumer(t)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	ctx := context.Background()

	startFlow(t, c, store, "h1")
	due := t0().Add(30 * time.Second) // the WhatsApp step's delay

	rep, err := c.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: "h1/0", Channel: "whatsapp", Status: "delivered"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Second) // the processor lags: 20 s past the deadline
	events := applyForEvents(t, c, store, &kgo.Record{Topic: names.DLR, Partition: 2, Offset: 7, Key: []byte("h1/0"),
		Value: rep, Timestamp: due.Add(5 * time.Second)})
	if len(events) != 0 {
		t.Fatalf("a late DLR read before its deadline fired produced %+v", events)
	}
	snaps, err := store.Load(ctx, []string{"h1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeSnapshot(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Closed || st.Current != 0 || len(st.Held) != 1 || st.Held[0].Pos.Offset != 7 || snaps[0].State[0] != 0x03 {
		t.Fatalf("stored state: closed %v, step %d, held %+v, format %#x", st.Closed, st.Current, st.Held, snaps[0].State[0])
	}

	// The sweeper fires the deadline: the SMS goes out by timeout, then the
	// held delivery closes the flow DELIVERED, late, on WhatsApp.
	res, err := c.engine.run(ctx, []*flowWork{{requestID: "h1", snap: snaps[0], state: st, sweep: true,
		inputs: []input{{in: flow.DeadlineElapsed{Step: 0}}}}}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var smsSent bool
	for _, r := range res.records {
		switch r.Topic {
		case names.Events:
			ev, err := c.codecs.FlowEvent.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			if ev.Type == flow.EventFlowClosed && (ev.Outcome != flow.OutcomeDelivered || !ev.Late) {
				t.Fatalf("FLOW_CLOSED %s late=%v, want DELIVERED late", ev.Outcome, ev.Late)
			}
		case names.Sends("sms"):
			smsSent = true
		}
	}
	want := []string{flow.EventFallbackTriggered, flow.EventAttemptSent, flow.EventDLRReceived, flow.EventFlowClosed}
	if !smsSent || len(types) != len(want) {
		t.Fatalf("SMS sent %v, events %v, want %v", smsSent, types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
}

// TestDecidingDLRsOfTwoBatchesApplyInPublicationOrder: a flow that fell back
// to SMS reads its SMS delivery in one batch and, in the next, its WhatsApp
// read published a second before it on a partition read later (a restart
// leaves one instance's partitions behind the other's). Applied as read,
// the SMS delivery closed the flow DELIVERED on SMS. Both decide a flow with
// two steps out, so both wait in Redis, due from the earlier one's time;
// the sweeper claims the flow once every partition is read past it and
// applies them in publication order: READ on WhatsApp, late, then the SMS
// delivery as a second, multi-channel one.
func TestDecidingDLRsOfTwoBatchesApplyInPublicationOrder(t *testing.T) {
	c, _, store := redisConsumer(t)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	startFlow(t, c, store, "w1")
	clk.Advance(30 * time.Second) // the WhatsApp step's deadline
	if events := fireDue(t, c, store, clk.Now(), clk.Now()); len(events) == 0 || events[0].Type != flow.EventFallbackTriggered {
		t.Fatalf("the WhatsApp deadline: %+v", events)
	}

	clk.Advance(10 * time.Second)
	smsAt, readAt := t0().Add(36*time.Second), t0().Add(35*time.Second)
	if events := applyForEvents(t, c, store, dlrRecord(t, c, 0, 3, smsAt, schemas.DeliveryReport{AttemptID: "w1/1", Channel: "sms", Status: "DELIVRD"})); len(events) != 0 {
		t.Fatalf("the SMS delivery of a flow with two steps out decided at once: %+v", events)
	}
	if events := applyForEvents(t, c, store, dlrRecord(t, c, 1, 8, readAt, schemas.DeliveryReport{AttemptID: "w1/0", Channel: "whatsapp", Status: "read"})); len(events) != 0 {
		t.Fatalf("the WhatsApp read decided at once: %+v", events)
	}
	// Not every partition is read past the WhatsApp read yet: nothing due.
	if events := fireDue(t, c, store, readAt.Add(-time.Millisecond), clk.Now()); len(events) != 0 {
		t.Fatalf("fired before the watermarks passed the held inputs: %+v", events)
	}
	events := fireDue(t, c, store, smsAt, clk.Now())
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	want := []string{flow.EventDLRReceived, flow.EventFlowClosed, flow.EventDLRDiscarded, flow.EventMultiChannelDelivery}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if closed := events[1]; closed.Outcome != flow.OutcomeRead || closed.Channel != "whatsapp" || !closed.Late {
		t.Fatalf("FLOW_CLOSED %s on %s late=%v, want READ on whatsapp, late", closed.Outcome, closed.Channel, closed.Late)
	}
	if multi := events[3]; multi.Channel != "sms" || !multi.Late {
		t.Fatalf("MULTI_CHANNEL_DELIVERY on %s late=%v, want the SMS delivery, late", multi.Channel, multi.Late)
	}
}

// startFlow runs limitRequest(id) through c, appended at t0.
func startFlow(t *testing.T, c *Consumer, store *statestore.Store, id string) {
	t.Helper()
	v, err := c.codecs.SendRequest.Encode(limitRequest(id))
	if err != nil {
		t.Fatal(err)
	}
	applyForEvents(t, c, store, &kgo.Record{Topic: c.topics.Requests, Key: []byte(id), Value: v, Timestamp: t0()})
}

// dlrRecord is rep on the DLR topic's partition at offset, appended at at.
func dlrRecord(t *testing.T, c *Consumer, partition int32, offset int64, at time.Time, rep schemas.DeliveryReport) *kgo.Record {
	t.Helper()
	v, err := c.codecs.DeliveryReport.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: c.topics.DLR, Partition: partition, Offset: offset, Key: []byte(rep.AttemptID), Value: v, Timestamp: at}
}

// fireDue does the sweeper's part at now: it claims the flows due by
// readPast (its cutoff), applies their DeadlineElapsed, acks the outputs
// as if produced and returns the events among them.
func fireDue(t *testing.T, c *Consumer, store *statestore.Store, readPast, now time.Time) []schemas.FlowEvent {
	t.Helper()
	ctx := context.Background()
	claimed, err := c.engine.claimDue(ctx, nil, readPast, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	var works []*flowWork
	for _, snap := range claimed {
		st, err := decodeSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		works = append(works, &flowWork{requestID: snap.RequestID, snap: snap, state: st, sweep: true,
			inputs: []input{{in: flow.DeadlineElapsed{Step: st.Current, ReadPast: readPast}}}})
	}
	res, err := c.engine.run(ctx, works, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AckOutbox(ctx, res.acks); err != nil {
		t.Fatal(err)
	}
	var events []schemas.FlowEvent
	for _, r := range res.records {
		if r.Topic == c.topics.Events {
			ev, err := c.codecs.FlowEvent.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
	}
	return events
}

// TestADeliveryWaitsForTheCancelPublishedBeforeIt is the soak's story
// (issue 19): a flow with one step out, its requests partition read behind
// the DLRs' (requests pause while a DLR backlog waits). Its delivery, read
// first, must not close it DELIVERED ahead of the cancel published before
// it on the requests partition: the delivery waits in Redis, and the
// cancel, read next, closes the flow CANCELLED.
func TestADeliveryWaitsForTheCancelPublishedBeforeIt(t *testing.T) {
	c, _, store := redisConsumer(t)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	startFlow(t, c, store, "c1") // on requests partition 0, appended at t0

	cancelAt, deliveryAt := t0().Add(5*time.Second), t0().Add(6*time.Second)
	clk.Advance(10 * time.Second)
	c.watermarks = &Watermarks{
		partitions: []statestore.PartitionRef{{Topic: c.topics.Requests, Partition: 0}, {Topic: c.topics.DLR, Partition: 0}},
		known: map[statestore.PartitionRef]time.Time{
			{Topic: c.topics.Requests, Partition: 0}: t0(),      // read only up to the flow's start
			{Topic: c.topics.DLR, Partition: 0}:      clk.Now(), // read to now
		},
	}
	if events := applyForEvents(t, c, store, dlrRecord(t, c, 0, 4, deliveryAt,
		schemas.DeliveryReport{AttemptID: "c1/0", Channel: "whatsapp", Status: "delivered"})); len(events) != 0 {
		t.Fatalf("the delivery closed the flow ahead of an unread part of its requests partition: %+v", events)
	}

	cancel, err := c.codecs.SendRequest.Encode(schemas.SendRequest{Kind: schemas.KindCancel, RequestID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	c.watermarks.known[statestore.PartitionRef{Topic: c.topics.Requests, Partition: 0}] = cancelAt
	events := applyForEvents(t, c, store, &kgo.Record{Topic: c.topics.Requests, Partition: 0, Offset: 1, Key: []byte("c1"),
		Value: cancel, Timestamp: cancelAt})
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	if want := []string{flow.EventFlowClosed, flow.EventDLRDiscarded}; !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if events[0].Outcome != flow.OutcomeCancelled {
		t.Fatalf("closed %s, want CANCELLED", events[0].Outcome)
	}
}
