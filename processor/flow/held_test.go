package flow

import (
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
// order gives: the fallback by timeout first, then the input.
func TestInputPublishedAfterTheDeadlineFindsItFired(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	readAt := due.Add(time.Minute) // read a minute late

	failure := dlr(0, "failed", Failed)
	failure.PublishedAt = due.Add(2 * time.Second)
	st, out := Apply(active, failure, readAt)
	expectEvents(t, out, EventFallbackTriggered, EventAttemptSent, EventDLRReceived)
	if s := expectSend(t, out, 1, "sms", ReasonTimeout); !s.SentAt.Equal(readAt) {
		t.Fatalf("SMS sent at %v, want %v", s.SentAt, readAt)
	}
	if st.Attempts[0].LastStatus != "failed" || st.Current != 1 {
		t.Fatalf("after the late failure: step %d, step 0 status %q", st.Current, st.Attempts[0].LastStatus)
	}

	success := dlr(0, "delivered", Delivered)
	success.PublishedAt = due.Add(time.Second)
	st, out = Apply(active, success, readAt)
	expectSend(t, out, 1, "sms", ReasonTimeout)
	expectClosed(t, st, OutcomeDelivered)
	if !st.Late || st.DeliveredStep != 0 {
		t.Fatalf("late success of step 0: late %v, delivered step %d", st.Late, st.DeliveredStep)
	}

	cancelled := Cancel{Pos: Position{SourceRequests, 0, 99}, RequestID: "r1", PublishedAt: due.Add(time.Second)}
	st, out = Apply(active, cancelled, readAt)
	expectSend(t, out, 1, "sms", ReasonTimeout)
	expectClosed(t, st, OutcomeCancelled)

	// Published before the deadline (or unknown): applied as it comes.
	inTime := dlr(0, "failed", Failed)
	inTime.PublishedAt = due.Add(-time.Second)
	_, out = Apply(active, inTime, readAt)
	expectSend(t, out, 1, "sms", ReasonFailure)
	_, out = Apply(active, dlr(0, "failed", Failed), readAt)
	expectSend(t, out, 1, "sms", ReasonFailure)
}
