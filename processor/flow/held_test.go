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
