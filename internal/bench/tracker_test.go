package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// trackerStream feeds a tracker of three 2-step flows what a processor
// writes for them: flow 0 delivered on step 0; flow 1 fell back on a
// failure, its SMS sent twice (an at-least-once replay of the same
// attempt) and delivered; flow 2 fell back on its deadline and expired.
// With full events, the FLOW_STARTED, ATTEMPT_SENT, DLR_RECEIVED and
// FALLBACK_TRIGGERED records come too; lean writes only the sends and
// FLOW_CLOSED.
func trackerStream(mode flow.Events) *tracker {
	const prefix = "run-m"
	t := newTracker(prefix, 3, 2, mode)
	now := time.UnixMilli(1_700_000_000_000)
	id := func(i int) string { return prefix + strconv.Itoa(i) }
	send := func(i, k int, reason string, f simulator.Fate) {
		t.sawSend(schemas.ChannelSend{RequestID: id(i), Step: int32(k), AttemptID: flow.AttemptID(id(i), k), Reason: reason,
			Deadline: now.Add(5 * time.Second), SentAt: now}, f, now)
	}
	n := 0
	event := func(i int, typ, reason, outcome string) {
		n++
		if !mode.Writes(typ) {
			return
		}
		t.sawEvent(eventInfo{eventID: []byte("e" + strconv.Itoa(n)), requestID: []byte(id(i)), typ: []byte(typ),
			reason: []byte(reason), outcome: []byte(outcome), occurredAt: now.UnixMilli()}, now)
	}

	event(0, flow.EventFlowStarted, "", "")
	send(0, 0, "initial", simulator.FateDelivered)
	event(0, flow.EventAttemptSent, "initial", "")
	event(0, flow.EventDLRReceived, "", "")
	event(0, flow.EventFlowClosed, "", "DELIVERED")

	event(1, flow.EventFlowStarted, "", "")
	send(1, 0, "initial", simulator.FateFailed)
	event(1, flow.EventAttemptSent, "initial", "")
	event(1, flow.EventDLRReceived, "", "")
	event(1, flow.EventFallbackTriggered, "failure", "")
	send(1, 1, "failure", simulator.FateDelivered)
	event(1, flow.EventAttemptSent, "failure", "")
	send(1, 1, "failure", simulator.FateDelivered) // the replay: the same attempt again
	event(1, flow.EventDLRReceived, "", "")
	event(1, flow.EventFlowClosed, "", "DELIVERED")

	event(2, flow.EventFlowStarted, "", "")
	send(2, 0, "initial", simulator.FateSilent)
	event(2, flow.EventAttemptSent, "initial", "")
	event(2, flow.EventFallbackTriggered, "timeout", "")
	send(2, 1, "timeout", simulator.FateSilent)
	event(2, flow.EventAttemptSent, "timeout", "")
	event(2, flow.EventFlowClosed, "", "EXPIRED")
	return t
}

// Lean events write no FALLBACK_TRIGGERED: the fallbacks are counted from
// the sends of step 1, once per flow however often its send is seen.
func TestTrackerLeanCountsFallbacksFromSends(t *testing.T) {
	for _, mode := range []flow.Events{flow.EventsFull, flow.EventsLean} {
		t.Run(string(mode), func(t *testing.T) {
			tr := trackerStream(mode)
			if f, to := tr.fallbackFailure.Load(), tr.fallbackTimeout.Load(); f != 1 || to != 1 {
				t.Errorf("fallbacks: %d by failure, %d by timeout; want 1 and 1", f, to)
			}
			if c, e := tr.closed.Load(), tr.expired.Load(); c != 3 || e != 1 {
				t.Errorf("%d closed, %d expired; want 3 and 1", c, e)
			}
			// Sends are counted as records: the replay is one more.
			if first, later := tr.firstSends.Load(), tr.laterSends.Load(); first != 3 || later != 3 {
				t.Errorf("%d first sends, %d later sends; want 3 and 3", first, later)
			}
			if _, off := tr.drawn(); off != 0 {
				t.Errorf("%d flows closed otherwise than their fates call for", off)
			}
		})
	}
}

// eventRecords counts what the observer read of the run's flows. Full: 3
// FLOW_STARTED, 5 ATTEMPT_SENT, 3 DLR_RECEIVED, 2 FALLBACK_TRIGGERED and 3
// FLOW_CLOSED, which is the formula the bench used before it counted:
// flows + sends + DLRs + fallback sends + closes, with the sends and the
// fallback sends as attempts (the replayed send is one attempt, and wrote
// no second ATTEMPT_SENT here). Lean: the 3 FLOW_CLOSED alone.
func TestTrackerCountsEventRecords(t *testing.T) {
	for mode, want := range map[flow.Events]int64{flow.EventsFull: 3 + 5 + 3 + 2 + 3, flow.EventsLean: 3} {
		tr := trackerStream(mode)
		if got := tr.eventRecords.Load(); got != want {
			t.Errorf("%s: %d event records counted, want %d", mode, got, want)
		}
		// Another run's event is not this run's record.
		tr.sawEvent(eventInfo{requestID: []byte("other-m0"), typ: []byte(flow.EventFlowClosed)}, time.Now())
		if got := tr.eventRecords.Load(); got != want {
			t.Errorf("%s: another run's event counted", mode)
		}
	}
}

// A full run counts fallbacks from FALLBACK_TRIGGERED, as before: a send of
// step 1 alone (the event not seen yet) is no fallback, and a replayed
// FALLBACK_TRIGGERED (the same event id) counts once.
func TestTrackerFullCountsFallbacksFromEvents(t *testing.T) {
	tr := newTracker("run-m", 1, 2, flow.EventsFull)
	now := time.Now()
	tr.sawSend(schemas.ChannelSend{RequestID: "run-m0", Step: 1, Reason: "failure"}, simulator.FateDelivered, now)
	if n := tr.fallbackFailure.Load(); n != 0 {
		t.Fatalf("full: %d fallbacks counted from a send", n)
	}
	ev := eventInfo{eventID: []byte("e1"), requestID: []byte("run-m0"), typ: []byte(flow.EventFallbackTriggered), reason: []byte("failure")}
	tr.sawEvent(ev, now)
	tr.sawEvent(ev, now)
	if n := tr.fallbackFailure.Load(); n != 1 {
		t.Fatalf("full: %d fallbacks by failure, want 1", n)
	}
	// In lean, a FALLBACK_TRIGGERED (a processor that writes it after all)
	// does not count on top of the send.
	lean := newTracker("run-m", 1, 2, flow.EventsLean)
	lean.sawSend(schemas.ChannelSend{RequestID: "run-m0", Step: 1, Reason: "failure"}, simulator.FateDelivered, now)
	lean.sawEvent(ev, now)
	if n := lean.fallbackFailure.Load(); n != 1 {
		t.Fatalf("lean: %d fallbacks by failure, want 1", n)
	}
}

// With lean events the run is done once every flow closed, no DLR is
// pending and the processor's group committed past the DLRs; the DLR
// events full writes do not come.
func TestDoneLean(t *testing.T) {
	tr := trackerStream(flow.EventsLean)
	dlrs := simulator.ProviderCounts{Published: 3}
	if doneCounting(tr, dlrs, 3) {
		t.Fatal("the full rule is met without DLR events")
	}
	if doneLean(tr, dlrs, 3, false) {
		t.Fatal("done before the group read the DLRs")
	}
	if doneLean(tr, simulator.ProviderCounts{Published: 3, Pending: 1}, 3, true) {
		t.Fatal("done with a DLR pending")
	}
	if doneLean(tr, dlrs, 4, true) {
		t.Fatal("done with a flow open")
	}
	if !doneLean(tr, dlrs, 3, true) {
		t.Fatal("not done: every flow closed and every DLR read")
	}
}

// groupReadDLRs compares the group's commits with the ends of the DLR
// topic's partitions that grew since the run started, on the embedded
// Kafka.
func TestGroupReadDLRs(t *testing.T) {
	kafka, err := embedded.StartKafka(3)
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers()...), kgo.DefaultProduceTopic("dlr"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "dlr"); err != nil {
		t.Fatal(err)
	}
	produce := func(p int32, n int) {
		t.Helper()
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(p int32, at int64) {
		t.Helper()
		var o kadm.Offsets
		o.Add(kadm.Offset{Topic: "dlr", Partition: p, At: at, LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, "proc", o); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 2 holds records from before the run that the group never
	// read: not the run's, so they do not hold it up.
	produce(2, 2)
	before, err := partitionEnds(ctx, adm, "dlr")
	if err != nil {
		t.Fatal(err)
	}
	check := func(want bool, why string) {
		t.Helper()
		got, err := groupReadDLRs(ctx, adm, "proc", "dlr", before)
		if err != nil && (want || got) {
			t.Fatalf("%s: %v", why, err)
		}
		if got != want {
			t.Fatalf("%s: read %t, want %t", why, got, want)
		}
	}
	check(true, "no DLR in the run yet")
	produce(0, 3)
	produce(1, 2)
	check(false, "no commit (the group is not known yet)")
	commit(0, 3)
	check(false, "partition 1 not committed")
	commit(1, 1)
	check(false, "partition 1 committed short of its end")
	commit(1, 2)
	check(true, "every partition that grew committed to its end")
	produce(1, 1)
	check(false, "a DLR after the commit")
}
