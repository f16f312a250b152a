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
)

// TestProviderIDReportAppliesInOffsetOrder: a DLR that names only the
// provider's message id, read in the same batch as a later DLR of the same
// partition, is applied before it. It used to be deferred to the end of the
// batch, applied after the later offset, and so taken for a redelivery and
// dropped.
func TestProviderIDReportAppliesInOffsetOrder(t *testing.T) {
	c, names, store := redisConsumer(t)
	c.indexTTL = time.Hour
	run := func(records ...*kgo.Record) []schemas.FlowEvent { return applyForEvents(t, c, store, records...) }
	dlr := func(offset int64, rep schemas.DeliveryReport) *kgo.Record {
		v, err := c.codecs.DeliveryReport.Encode(rep)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: names.DLR, Partition: 0, Offset: offset, Value: v, Timestamp: t0()}
	}

	req := limitRequest("o1")
	v, err := c.codecs.SendRequest.Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	run(&kgo.Record{Topic: names.Requests, Key: []byte("o1"), Value: v, Timestamp: t0()})
	// The provider's first report pairs its message id with our attempt id.
	run(dlr(10, schemas.DeliveryReport{AttemptID: "o1/0", ProviderMessageID: "wamid.1", Channel: "whatsapp", Status: "sent"}))

	// Then, in one batch: a failure naming only the provider's id, and a
	// later record of the same partition for the same flow.
	events := run(
		dlr(11, schemas.DeliveryReport{ProviderMessageID: "wamid.1", Channel: "whatsapp", Status: "failed"}),
		dlr(12, schemas.DeliveryReport{AttemptID: "o1/1", Channel: "sms", Status: "ACCEPTED"}),
	)
	var fellBack, acceptedSMS bool
	for _, ev := range events {
		switch {
		case ev.Type == flow.EventFallbackTriggered && ev.Reason == flow.ReasonFailure:
			fellBack = true
		case ev.Type == flow.EventDLRReceived && ev.AttemptID == "o1/1":
			acceptedSMS = true
		}
	}
	if !fellBack || !acceptedSMS {
		t.Fatalf("fallback on failure %v, SMS report applied %v; events %+v", fellBack, acceptedSMS, events)
	}
}

// TestOutputsKeepTheFlowsOrder: when a flow changes again while the
// outputs of its previous change are still owed (the writer that made them
// has not produced them yet, or died), the new change produces the owed
// ones first. Without this a FLOW_CLOSED could reach the events topic before
// the FALLBACK_TRIGGERED that preceded it.
func TestOutputsKeepTheFlowsOrder(t *testing.T) {
	c, names, store := redisConsumer(t)
	ctx := context.Background()

	req := limitRequest("q1")
	v, err := c.codecs.SendRequest.Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.apply(ctx, []*kgo.Record{{Topic: names.Requests, Key: []byte("q1"), Value: v, Timestamp: t0()}})
	if err != nil {
		t.Fatal(err)
	}
	// first's outputs are never produced nor acked: the next change of the
	// flow must carry them, ahead of its own.
	rep, err := c.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: "q1/0", Channel: "whatsapp", Status: "failed"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.apply(ctx, []*kgo.Record{{Topic: names.DLR, Offset: 3, Value: rep, Timestamp: t0()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.records) <= len(first.records) {
		t.Fatalf("second change produces %d records, want the %d owed ones and its own", len(second.records), len(first.records))
	}
	for i, r := range first.records {
		got := second.records[i]
		if got.Topic != r.Topic || string(got.Key) != string(r.Key) || string(got.Value) != string(r.Value) {
			t.Fatalf("record %d of the second change is %s/%s, want the owed %s/%s first", i, got.Topic, got.Key, r.Topic, r.Key)
		}
	}
	if len(second.acks) != 1 || !slices.Equal(second.acks[0].Versions, []int64{1, 2}) {
		t.Fatalf("acks %+v, want versions 1 and 2 of q1", second.acks)
	}
	if err := store.AckOutbox(ctx, second.acks); err != nil {
		t.Fatal(err)
	}
	if n, err := store.PendingOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("outbox still owes %d flows (err %v)", n, err)
	}
}

// TestAFlowsInputsApplyInPublicationOrderAcrossPartitions: a poll returns
// each partition's records together. A flow's SMS delivery on partition 0,
// read in the same batch as its WhatsApp read published a second earlier on
// partition 1, used to apply first and close the flow DELIVERED on SMS; in
// the order they happened, the WhatsApp read closes it (late) and the SMS
// delivery is a second, multi-channel one. (On the manual clock inputs have
// no publication time and never wait for the sweeper, so the batch's own
// order is what is seen; across batches, TestDecidingDLRsOfTwoBatchesApplyInPublicationOrder.)
func TestAFlowsInputsApplyInPublicationOrderAcrossPartitions(t *testing.T) {
	c, _, store := redisConsumer(t)
	clk := clocktest.NewManual(t0())
	c.clock = clk
	startFlow(t, c, store, "p1")
	clk.Advance(30 * time.Second) // the WhatsApp step's deadline: the SMS goes out
	fireDue(t, c, store, clk.Now(), clk.Now())

	clk.Advance(10 * time.Second)
	events := applyForEvents(t, c, store,
		dlrRecord(t, c, 0, 3, t0().Add(36*time.Second), schemas.DeliveryReport{AttemptID: "p1/1", Channel: "sms", Status: "DELIVRD"}),
		dlrRecord(t, c, 1, 8, t0().Add(35*time.Second), schemas.DeliveryReport{AttemptID: "p1/0", Channel: "whatsapp", Status: "read"}),
	)
	var closed, multi *schemas.FlowEvent
	for i := range events {
		switch events[i].Type {
		case flow.EventFlowClosed:
			closed = &events[i]
		case flow.EventMultiChannelDelivery:
			multi = &events[i]
		}
	}
	if closed == nil || closed.Outcome != flow.OutcomeRead || closed.Channel != "whatsapp" || !closed.Late {
		t.Fatalf("FLOW_CLOSED %+v, want READ on whatsapp, late", closed)
	}
	if multi == nil || multi.Channel != "sms" {
		t.Fatalf("MULTI_CHANNEL_DELIVERY %+v, want the SMS delivery", multi)
	}
}
