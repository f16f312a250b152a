package flow

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// A rehearsal runs a flow through the state machine against a made-up
// provider story, sending nothing: the console's test run before a flow is
// published. It is the machine itself, not a model of it, so what it shows
// is what the processor would do.

// Provider stories of one step (StepStory.Outcome).
const (
	StoryDelivered = "delivered"
	StoryRead      = "read"
	StoryFailed    = "failed"
	StorySilent    = "silent"
)

// StepStory is what the simulated provider does with one step's send.
type StepStory struct {
	Outcome string // StoryDelivered, StoryRead, StoryFailed or StorySilent ("" is silent)
	// After is when the DLR comes, counted from the send. A DLR at or past
	// the step's delay comes too late: the deadline fires first.
	After     time.Duration
	ErrorCode string // on a failure
}

// Rehearsal is what a flow would do.
type Rehearsal struct {
	Sends   []schemas.ChannelSend // in the order they would go out
	Events  []schemas.FlowEvent   // every event, in order
	Outcome string
	// TimeToOutcome is from the request (the start) to the close.
	TimeToOutcome time.Duration
}

// rehearsalEpoch is the made-up time a rehearsal starts at: times in its
// output are this plus an offset.
var rehearsalEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// RehearsalEpoch is the time a rehearsal starts at (its sends and events
// are dated from it).
func RehearsalEpoch() time.Time { return rehearsalEpoch }

// Rehearse runs start (a validated request; its RequestID and Recipient
// may be made up) with stories[k] as step k's provider story; a step
// without a story is silent. It ends when the flow closes.
func Rehearse(channels Channels, start Start, stories []StepStory) (Rehearsal, error) {
	start.RequestedAt = rehearsalEpoch
	st, out := Apply(nil, start, rehearsalEpoch)
	if st == nil || !out.Changed {
		return Rehearsal{}, fmt.Errorf("flow: rehearse: the request did not start a flow")
	}
	var r Rehearsal
	r.add(out)
	var offset int64
	for steps := 0; !st.Closed; steps++ {
		if steps > len(st.Steps) {
			return Rehearsal{}, fmt.Errorf("flow: rehearse: the flow did not close after %d steps", steps)
		}
		k := st.Current
		var story StepStory
		if k < len(stories) {
			story = stories[k]
		}
		sentAt := time.UnixMilli(st.Attempts[k].SentAt)
		var in Input
		now := st.DeadlineTime()
		if kind, raw, ok := storyStatus(channels, st.Steps[k].Channel, story.Outcome); ok && sentAt.Add(story.After).Before(now) {
			now = sentAt.Add(story.After)
			offset++
			in = Report{Pos: Position{SourceDLR, 0, offset}, RequestID: st.RequestID, AttemptID: AttemptID(st.RequestID, k),
				Channel: st.Steps[k].Channel, Step: k, Status: raw, Kind: kind, ErrorCode: story.ErrorCode, ReportedAt: now}
		} else {
			in = DeadlineElapsed{Step: k}
		}
		st, out = Apply(st, in, now)
		r.add(out)
	}
	r.Outcome = st.Outcome
	r.TimeToOutcome = time.Duration(st.ClosedAt-st.RequestedAt) * time.Millisecond
	return r, nil
}

func (r *Rehearsal) add(out Output) {
	r.Sends = append(r.Sends, out.Sends...)
	r.Events = append(r.Events, out.Events...)
}

// storyStatus is the raw status a provider of the channel reports for a
// story, and its kind; false for a silent step. A read on a channel
// without read receipts is reported as a delivery.
func storyStatus(channels Channels, channel, outcome string) (StatusKind, string, bool) {
	want := map[string]StatusKind{StoryDelivered: Delivered, StoryRead: Read, StoryFailed: Failed}[outcome]
	if outcome == StoryRead && !channels[channel].HasReadReceipts {
		want = Delivered
	}
	if want == Intermediate {
		return Intermediate, "", false
	}
	// The plain name of the kind where the channel knows it, else the
	// first of the channel's own in sorted order (map order is random).
	if raw := strings.ToUpper(outcome); channels[channel].Statuses[raw] == want {
		return want, raw, true
	}
	if want == Delivered && channels[channel].Statuses["DELIVERED"] == Delivered {
		return want, "DELIVERED", true
	}
	var names []string
	for raw, kind := range channels[channel].Statuses {
		if kind == want {
			names = append(names, raw)
		}
	}
	if len(names) == 0 {
		return Intermediate, "", false
	}
	slices.Sort(names)
	return want, names[0], true
}
