package flow

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// TestHeldDeadlineCountsTheNextDelayFromTheActualSend (SPEC §7): a
// deadline held by unread input fires late; the next step's delay counts
// from when it is really sent, never from the held deadline.
func TestHeldDeadlineCountsTheNextDelayFromTheActualSend(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	firedAt := due.Add(4 * time.Minute) // held for 4 minutes by a lagging partition
	st, out := Apply(active, DeadlineElapsed{Step: 0}, firedAt)
	send := expectSend(t, out, 1, "sms", ReasonTimeout)
	if want := firedAt.Add(60 * time.Second); !st.DeadlineTime().Equal(want) || !send.Deadline.Equal(want) || !send.SentAt.Equal(firedAt) {
		t.Fatalf("SMS sent at %v with deadline %v (state %v), want sent at %v, due %v",
			send.SentAt, send.Deadline, st.DeadlineTime(), firedAt, want)
	}
	if got := st.Attempts[1].SentAt; got != firedAt.UnixMilli() {
		t.Fatalf("attempt 1 sent at %d, want %d", got, firedAt.UnixMilli())
	}
}

// TestInputPublishedAfterTheDeadlineFindsItFired: a DLR or cancel
// published after the step's deadline, but read while the deadline was
// still held (the processor lagged), leads to the outcome its publication
// order gives: the fallback by timeout first, then the input. It waits in
// the flow until the deadline fires (the sweeper knows when every input
// published before the deadline was applied), then applies.
func TestInputPublishedAfterTheDeadlineFindsItFired(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	readAt := due.Add(time.Minute) // read a minute late
	fire := func(t *testing.T, held *State) (*State, Output) {
		t.Helper()
		return Apply(held, DeadlineElapsed{Step: 0}, readAt.Add(time.Second))
	}

	failure := dlr(0, "failed", Failed)
	failure.PublishedAt = due.Add(2 * time.Second)
	held := expectHeld(t, active, failure, readAt)
	st, out := fire(t, held)
	expectEvents(t, out, EventFallbackTriggered, EventAttemptSent, EventDLRReceived)
	if s := expectSend(t, out, 1, "sms", ReasonTimeout); !s.SentAt.Equal(readAt.Add(time.Second)) {
		t.Fatalf("SMS sent at %v, want %v", s.SentAt, readAt.Add(time.Second))
	}
	if st.Attempts[0].LastStatus != "failed" || st.Current != 1 || len(st.Held) != 0 {
		t.Fatalf("after the late failure: step %d, step 0 status %q, %d held", st.Current, st.Attempts[0].LastStatus, len(st.Held))
	}

	success := dlr(0, "delivered", Delivered)
	success.PublishedAt = due.Add(time.Second)
	st, out = fire(t, expectHeld(t, active, success, readAt))
	expectSend(t, out, 1, "sms", ReasonTimeout)
	expectClosed(t, st, OutcomeDelivered)
	if !st.Late || st.DeliveredStep != 0 {
		t.Fatalf("late success of step 0: late %v, delivered step %d", st.Late, st.DeliveredStep)
	}

	cancelled := Cancel{Pos: Position{SourceRequests, 0, 99}, RequestID: "r1", PublishedAt: due.Add(time.Second)}
	st, out = fire(t, expectHeld(t, active, cancelled, readAt))
	expectSend(t, out, 1, "sms", ReasonTimeout)
	expectClosed(t, st, OutcomeCancelled)

	// Published before the deadline (or unknown): applied as it comes.
	inTime := dlr(0, "failed", Failed)
	inTime.PublishedAt = due.Add(-time.Second)
	inTime.ReadPast = readAt
	_, out = Apply(active, inTime, readAt)
	expectSend(t, out, 1, "sms", ReasonFailure)
	_, out = Apply(active, dlr(0, "failed", Failed), readAt)
	expectSend(t, out, 1, "sms", ReasonFailure)
}

// TestHeldInputYieldsToAnInTimeInputReadLater is the wrong outcome the
// Kafka restart loop found (issue 19): a flow on its last step, a late
// delivery of its first step published before that step's deadline on one
// DLR partition, and the last step's own delivery published after the
// deadline on another. The processor read the second first, and fired the
// deadline on it: EXPIRED, where the publication order says DELIVERED. Held
// instead, it waits; the in-time delivery read next closes the flow, and
// the held one then applies to the closed flow: a delivery on a second
// channel.
func TestHeldInputYieldsToAnInTimeInputReadLater(t *testing.T) {
	active := started(t, twoSteps())
	fired, _ := Apply(active, DeadlineElapsed{Step: 0}, active.DeadlineTime())
	due := fired.DeadlineTime() // the SMS step's, the last
	readAt := due.Add(30 * time.Second)

	lastStep := dlr(1, "DELIVRD", Delivered)
	lastStep.Pos = Position{SourceDLR, 3, 49}
	lastStep.PublishedAt = due.Add(5 * time.Second)
	held := expectHeld(t, fired, lastStep, readAt)

	// In time, on a partition read later. Two steps are out, so it decides
	// only once every partition is read past it: it waits too.
	firstStep := dlr(0, "delivered", Delivered)
	firstStep.Pos = Position{SourceDLR, 1, 40}
	firstStep.PublishedAt = due.Add(-20 * time.Second)
	held = expectHeld(t, held, firstStep, readAt.Add(time.Second))
	if got := held.DueTime(); !got.Equal(firstStep.PublishedAt) {
		t.Fatalf("due at %s, want the earliest held input's %s", got, firstStep.PublishedAt)
	}
	// Every partition read past both: they apply in publication order.
	st, out := Apply(held, DeadlineElapsed{Step: 1, ReadPast: readAt}, readAt.Add(time.Second))
	expectClosed(t, st, OutcomeDelivered)
	if st.DeliveredStep != 0 || !st.Late || len(st.Held) != 0 {
		t.Fatalf("delivered step %d, late %v, %d still held", st.DeliveredStep, st.Late, len(st.Held))
	}
	expectEvents(t, out, EventDLRReceived, EventFlowClosed, EventDLRDiscarded, EventMultiChannelDelivery)
	// In publication order the SMS delivery came after the close: the
	// summary describes the flow when it closed (one channel delivered), and
	// the second delivery is its own late event.
	if closed, multi := out.Events[1], out.Events[3]; closed.Summary.MultiChannelDelivery || !multi.Late {
		t.Fatalf("summary multi=%v, late multi event %v", closed.Summary.MultiChannelDelivery, multi.Late)
	}
	if len(out.Sends) != 0 {
		t.Fatalf("%d sends after the flow closed", len(out.Sends))
	}
	if got := st.Applied["d3"]; got != 49 {
		t.Fatalf("applied offset of DLR partition 3 = %d, want the held record's 49", got)
	}
	// The sweeper's claim, stale now, changes nothing.
	if _, out := Apply(st, DeadlineElapsed{Step: 1}, readAt.Add(2*time.Second)); out.Changed || len(out.Events) > 0 {
		t.Fatalf("a stale deadline after the close: %+v", out)
	}
	// Kafka delivers the held record again: recognised, nothing happens.
	if _, out := Apply(held, lastStep, readAt.Add(3*time.Second)); out.Changed || len(out.Events) > 0 {
		t.Fatalf("the held record redelivered: %+v", out)
	}
}

// TestHeldInputsSurviveTheCodec: a state with held inputs is written as
// format 0x03 and reads back the same; without them it stays 0x02.
func TestHeldInputsSurviveTheCodec(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	failure := dlr(0, "failed", Failed)
	failure.ErrorCode, failure.ReportedAt = "131026", due.Add(time.Second)
	failure.PublishedAt = due.Add(2 * time.Second)
	cancelled := Cancel{Pos: Position{SourceRequests, 2, 7}, RequestID: "r1", PublishedAt: due.Add(3 * time.Second)}
	held := expectHeld(t, active, failure, due.Add(time.Minute))
	held = expectHeld(t, held, cancelled, due.Add(time.Minute))
	blob, err := held.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if blob[0] != binaryFormatHeld {
		t.Fatalf("format %#x, want %#x", blob[0], binaryFormatHeld)
	}
	back, err := Decode("r1", blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Held, held.Held) {
		t.Fatalf("held inputs changed in the codec:\n got %+v\nwant %+v", back.Held, held.Held)
	}
	again, _ := back.Encode()
	if !bytes.Equal(again, blob) {
		t.Fatal("a decoded 0x03 blob encodes to other bytes")
	}
	plain, _ := active.Encode()
	if plain[0] != binaryFormat {
		t.Fatalf("without held inputs: format %#x, want %#x", plain[0], binaryFormat)
	}
	// A 0x03 blob must hold at least one input.
	empty := append([]byte{binaryFormatHeld}, plain[1:]...)
	if _, err := Decode("r1", append(empty, 0)); err == nil {
		t.Fatal("a 0x03 blob with no held input decoded")
	}
}

// expectHeld applies a late input and checks it was held: no output but
// the state write, the deadline and step unchanged, the input kept.
func expectHeld(t *testing.T, st *State, in Input, now time.Time) *State {
	t.Helper()
	ns, out := Apply(st, in, now)
	if !out.Changed || len(out.Sends) > 0 || len(out.Events) > 0 {
		t.Fatalf("a late input was not simply held: %+v", out)
	}
	if ns.Current != st.Current || ns.Deadline != st.Deadline || len(ns.Held) != len(st.Held)+1 {
		t.Fatalf("held: step %d deadline %d with %d held, from step %d deadline %d with %d", ns.Current, ns.Deadline,
			len(ns.Held), st.Current, st.Deadline, len(st.Held))
	}
	return ns
}

// TestInputPublishedAfterTheDeadlineOnAClockBehind: an instance whose clock
// runs behind the brokers' by more than the grace reads a DLR or cancel
// published after the deadline while its own clock still reads before it.
// The input's publication time decides, not that clock: it is held, and
// when the deadline fires the fallback by timeout comes first, as on any
// other instance.
func TestInputPublishedAfterTheDeadlineOnAClockBehind(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	readAt := due.Add(-time.Second) // the reader's clock is 2 s behind: the DLR came 1 s past due

	success := dlr(0, "delivered", Delivered)
	success.PublishedAt = due.Add(time.Second)
	held := expectHeld(t, active, success, readAt)
	// The sweeper's own deadline still waits for the clock.
	if st, out := Apply(held, DeadlineElapsed{Step: 0}, readAt); out.Changed || st.Current != 0 {
		t.Fatalf("a deadline elapsed before it was due: changed %v, step %d", out.Changed, st.Current)
	}
	// The deadline fires first; the delivery waits until every partition
	// is read past it, then closes the flow.
	st, out := Apply(held, DeadlineElapsed{Step: 0, ReadPast: due}, due)
	expectSend(t, out, 1, "sms", ReasonTimeout)
	if st.Closed || len(st.Held) != 1 || !st.DueTime().Equal(success.PublishedAt) {
		t.Fatalf("after the deadline: closed %v, %d held, due %s", st.Closed, len(st.Held), st.DueTime())
	}
	st, out = Apply(st, DeadlineElapsed{Step: 1, ReadPast: success.PublishedAt}, due.Add(2*time.Second))
	if len(out.Sends) != 0 {
		t.Fatalf("the released delivery sent %+v", out.Sends)
	}
	expectClosed(t, st, OutcomeDelivered)
	if !st.Late || st.DeliveredStep != 0 {
		t.Fatalf("late success of step 0: late %v, delivered step %d", st.Late, st.DeliveredStep)
	}

	cancelled := Cancel{Pos: Position{SourceRequests, 0, 99}, RequestID: "r1", PublishedAt: due.Add(time.Second)}
	st, out = Apply(expectHeld(t, active, cancelled, readAt), DeadlineElapsed{Step: 0, ReadPast: cancelled.PublishedAt}, due.Add(2*time.Second))
	expectSend(t, out, 1, "sms", ReasonTimeout)
	expectClosed(t, st, OutcomeCancelled)
}

// TestHeldInputsAreHeldOnce: the same late status again, or a second late
// cancel, is not held twice: a provider repeating itself cannot grow the
// flow's state while its deadline is held.
func TestHeldInputsAreHeldOnce(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	readAt := due.Add(time.Minute)
	failure := dlr(0, "failed", Failed)
	failure.PublishedAt = due.Add(2 * time.Second)
	held := expectHeld(t, active, failure, readAt)

	again := failure
	again.Pos.Offset++
	st, out := Apply(held, again, readAt)
	if len(st.Held) != 1 || out.Changed || len(out.Events) != 1 || out.Events[0].Type != EventDLRDiscarded || out.Events[0].Reason != DiscardDuplicate {
		t.Fatalf("a repeated late status: %d held, changed %v, events %+v", len(st.Held), out.Changed, out.Events)
	}
	cancel := Cancel{Pos: Position{SourceRequests, 0, 99}, RequestID: "r1", PublishedAt: due.Add(3 * time.Second)}
	held = expectHeld(t, held, cancel, readAt)
	cancel.Pos.Offset++
	if st, out := Apply(held, cancel, readAt); len(st.Held) != 2 || out.Changed {
		t.Fatalf("a second late cancel: %d held, changed %v", len(st.Held), out.Changed)
	}
}

// threeSteps is WhatsApp, then RCS, then SMS.
func threeSteps() []StepDef {
	steps := twoSteps()
	return []StepDef{steps[0], {Channel: "rcs", From: "acme-agent", Template: "otp_rcs", DelaySeconds: 30}, steps[1]}
}

// TestADecidingDLRWaitsForEveryPartitionOnceTwoStepsAreOut: a flow on its
// RCS step reads the RCS failure, then, from a partition read later, the
// WhatsApp delivery published minutes before it. Applied as read, the
// failure paid for the SMS step before the delivery closed the flow. Both
// decide a flow with two steps out, so both wait; once every partition is
// read past them they apply in publication order: the delivery closes the
// flow, the failure finds it closed, nothing more is sent.
func TestADecidingDLRWaitsForEveryPartitionOnceTwoStepsAreOut(t *testing.T) {
	st, sentAt := atStep(t, threeSteps(), 1)
	failure := dlr(1, "failed", Failed)
	failure.Pos = Position{SourceDLR, 0, 12}
	failure.PublishedAt = sentAt.Add(10 * time.Second)
	delivery := dlr(0, "delivered", Delivered)
	delivery.Pos = Position{SourceDLR, 4, 80}
	delivery.PublishedAt = sentAt.Add(-4 * time.Minute) // late for its step, in time for the flow

	readAt := sentAt.Add(15 * time.Second)
	held := expectHeld(t, st, failure, readAt)
	held = expectHeld(t, held, delivery, readAt.Add(time.Second))
	if !held.DueTime().Equal(delivery.PublishedAt) {
		t.Fatalf("due at %s, want the earliest held input's %s", held.DueTime(), delivery.PublishedAt)
	}
	// Read past the delivery only: it applies alone.
	mid, out := Apply(held, DeadlineElapsed{Step: 1, ReadPast: delivery.PublishedAt}, readAt.Add(2*time.Second))
	expectClosed(t, mid, OutcomeDelivered)
	if len(out.Sends) != 0 || mid.DeliveredStep != 0 {
		t.Fatalf("delivered step %d, sends %+v", mid.DeliveredStep, out.Sends)
	}
	// The flow closed: what it still held applied at once, as a report of a
	// closed flow.
	if len(mid.Held) != 0 || countType(out, EventDLRDiscarded) != 1 {
		t.Fatalf("%d still held; events %v", len(mid.Held), eventTypes(out))
	}

	// Applied as read (no publication times, as from a source without
	// them), the failure pays for the SMS step: the order the wait fixes.
	asRead, out := Apply(st, Report{Pos: failure.Pos, RequestID: "r1", AttemptID: failure.AttemptID, Step: 1,
		Status: "failed", Kind: Failed}, readAt)
	if asRead.Current != 2 || len(out.Sends) != 1 {
		t.Fatalf("without publication times the failure should fall back at once: step %d, %d sends", asRead.Current, len(out.Sends))
	}
}

// TestAFlowWithOneStepOutWaitsOnlyForItsRequestsPartition: every DLR of a
// flow with one step out sits on one partition, read in order, so a DLR
// that decides it waits for nothing but the flow's requests partition,
// where an earlier cancel can sit. The soak saw the story without the
// wait: requests paused behind a DLR backlog, a delivery read before the
// cancel published ahead of it closed the flow DELIVERED; publication
// order says CANCELLED.
func TestAFlowWithOneStepOutWaitsOnlyForItsRequestsPartition(t *testing.T) {
	active := started(t, twoSteps()) // its request on requests partition 0
	due := active.DeadlineTime()

	// Its requests partition read past the delivery, another one far
	// behind (and so every partition, ReadPast): it applies at once.
	delivery := dlr(0, "read", Read)
	delivery.PublishedAt = due.Add(-20 * time.Second)
	delivery.RequestsReadPast = map[int32]time.Time{0: delivery.PublishedAt, 1: due.Add(-time.Hour)}
	delivery.ReadPast = due.Add(-time.Hour)
	st, out := Apply(active, delivery, due.Add(-19*time.Second))
	expectClosed(t, st, OutcomeRead)
	if len(st.Held) != 0 || countType(out, EventFlowClosed) != 1 {
		t.Fatalf("held %d, events %v", len(st.Held), eventTypes(out))
	}

	// Its requests partition behind: the delivery waits, and the cancel
	// published before it, read next, closes the flow first.
	delivery.RequestsReadPast = map[int32]time.Time{0: due.Add(-time.Minute), 1: due}
	delivery.ReadPast = due.Add(-time.Minute)
	held := expectHeld(t, active, delivery, due.Add(-19*time.Second))
	cancelled := Cancel{Pos: Position{SourceRequests, 0, 30}, RequestID: "r1", PublishedAt: due.Add(-30 * time.Second),
		ReadPast: due.Add(-30 * time.Second)}
	st, out = Apply(held, cancelled, due.Add(-18*time.Second))
	expectClosed(t, st, OutcomeCancelled)
	if len(st.Held) != 0 || countType(out, EventDLRDiscarded) != 1 || st.DeliveredStep >= 0 {
		t.Fatalf("held %d, delivered step %d, events %v", len(st.Held), st.DeliveredStep, eventTypes(out))
	}

	// A flow not started from Kafka has no known requests partition:
	// every partition stands in.
	unknown := active.clone()
	unknown.Applied = nil
	delivery.RequestsReadPast = map[int32]time.Time{0: due}
	expectHeld(t, unknown, delivery, due.Add(-19*time.Second))

	// A cancel waits while a partition lags; a delivery published before
	// it, read after it, with the requests partition read past it, closes
	// the flow first.
	cancelled = Cancel{Pos: Position{SourceRequests, 0, 30}, RequestID: "r1", PublishedAt: due.Add(-10 * time.Second)}
	held = expectHeld(t, active, cancelled, due.Add(-9*time.Second))
	delivered := dlr(0, "delivered", Delivered)
	delivered.PublishedAt = due.Add(-12 * time.Second) // before the cancel, read after it
	delivered.RequestsReadPast = map[int32]time.Time{0: delivered.PublishedAt}
	st, out = Apply(held, delivered, due.Add(-8*time.Second))
	expectClosed(t, st, OutcomeDelivered)
	expectEvents(t, out, EventDLRReceived, EventFlowClosed, EventCancelIgnored)
}

// TestAnInputNeverOvertakesOneTheFlowHolds: a cancel waits for every
// partition; a delivery of the flow's only step, published after the
// cancel, must not close the flow before it (the crash loop saw DELIVERED
// where the cancel came first). It waits behind the cancel, and the
// sweeper applies both in publication order: CANCELLED.
func TestAnInputNeverOvertakesOneTheFlowHolds(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	cancelled := Cancel{Pos: Position{SourceRequests, 0, 31}, RequestID: "r1", PublishedAt: due.Add(-10 * time.Second)}
	held := expectHeld(t, active, cancelled, due.Add(-9*time.Second))
	delivered := dlr(0, "delivered", Delivered)
	delivered.PublishedAt = due.Add(-9 * time.Second) // after the cancel
	held = expectHeld(t, held, delivered, due.Add(-8*time.Second))
	st, out := Apply(held, DeadlineElapsed{Step: 0, ReadPast: delivered.PublishedAt}, due.Add(-7*time.Second))
	expectClosed(t, st, OutcomeCancelled)
	if len(out.Sends) != 0 || countType(out, EventDLRDiscarded) != 1 {
		t.Fatalf("sends %+v, events %v", out.Sends, eventTypes(out))
	}
}

// TestADecidingInputAppliesAtOnceWhenEveryPartitionIsReadToWithinTheWindow:
// the wait costs two more state writes, so it is paid only while some
// partition lags: read to within OrderWindow of the input's publication,
// the RCS failure falls back at once, and a cancel closes at once; a
// partition lagging further makes them wait.
func TestADecidingInputAppliesAtOnceWhenEveryPartitionIsReadToWithinTheWindow(t *testing.T) {
	st, sentAt := atStep(t, threeSteps(), 1)
	failure := dlr(1, "failed", Failed)
	failure.PublishedAt = sentAt.Add(10 * time.Second)
	readAt := failure.PublishedAt.Add(50 * time.Millisecond)

	failure.ReadPast = failure.PublishedAt.Add(-OrderWindow)
	next, out := Apply(st, failure, readAt)
	if next.Current != 2 || len(out.Sends) != 1 || len(next.Held) != 0 {
		t.Fatalf("read to within the window: step %d, %d sends, %d held", next.Current, len(out.Sends), len(next.Held))
	}
	failure.ReadPast = failure.PublishedAt.Add(-OrderWindow - time.Millisecond)
	expectHeld(t, st, failure, readAt)

	cancelled := Cancel{Pos: Position{SourceRequests, 0, 40}, RequestID: "r1", PublishedAt: sentAt.Add(11 * time.Second)}
	cancelled.ReadPast = cancelled.PublishedAt.Add(-time.Millisecond)
	next, _ = Apply(st, cancelled, readAt)
	expectClosed(t, next, OutcomeCancelled)
	cancelled.ReadPast = time.Time{} // unknown: waits
	expectHeld(t, st, cancelled, readAt)
}

// TestAForcedReleaseSaysSo: held past the longest hold, the sweeper
// applies what a flow holds before every partition was read past it;
// every event of that transition says deadline_forced, the released
// input's too, so the judge and analytics know the order was not proven.
func TestAForcedReleaseSaysSo(t *testing.T) {
	st, sentAt := atStep(t, threeSteps(), 1)
	failure := dlr(1, "failed", Failed)
	failure.PublishedAt = sentAt.Add(10 * time.Second)
	held := expectHeld(t, st, failure, sentAt.Add(11*time.Second))
	next, out := Apply(held, DeadlineElapsed{Step: 1, ReadPast: failure.PublishedAt, Forced: true}, sentAt.Add(12*time.Second))
	if next.Current != 2 || len(out.Events) == 0 {
		t.Fatalf("step %d, events %v", next.Current, eventTypes(out))
	}
	for _, ev := range out.Events {
		if !ev.DeadlineForced {
			t.Fatalf("%s not marked deadline_forced", ev.Type)
		}
	}
}
