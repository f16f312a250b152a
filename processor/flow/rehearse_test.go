package flow

import (
	"strings"
	"testing"
	"time"
)

// TestRehearse: a test run goes through the machine: a failure falls back
// at once, a silent step at its delay, a DLR later than the delay comes too
// late, and nothing is left open.
func TestRehearse(t *testing.T) {
	steps := catalogSteps() // whatsapp 30 s, then sms 60 s
	steps[0].FailureCodes = []string{"131026"}
	in := startInput(steps)
	cases := []struct {
		name    string
		stories []StepStory
		sends   string // channel@offset reason, in order
		outcome string
		took    time.Duration
	}{
		{"delivered first", []StepStory{{Outcome: StoryDelivered, After: 2 * time.Second}},
			"whatsapp@0s initial", OutcomeDelivered, 2 * time.Second},
		{"read on whatsapp", []StepStory{{Outcome: StoryRead, After: 9 * time.Second}},
			"whatsapp@0s initial", OutcomeRead, 9 * time.Second},
		{"failed then delivered", []StepStory{{Outcome: StoryFailed, After: 3 * time.Second, ErrorCode: "131026"}, {Outcome: StoryDelivered, After: 4 * time.Second}},
			"whatsapp@0s initial, sms@3s failure", OutcomeDelivered, 7 * time.Second},
		{"silent then silent", nil,
			"whatsapp@0s initial, sms@30s timeout", OutcomeExpired, 90 * time.Second},
		{"delivered too late", []StepStory{{Outcome: StoryDelivered, After: 30 * time.Second}, {Outcome: StoryFailed, After: time.Second}},
			"whatsapp@0s initial, sms@30s timeout", OutcomeFailed, 31 * time.Second},
		{"a failure the step does not fall back on", []StepStory{{Outcome: StoryFailed, After: time.Second, ErrorCode: "131009"}},
			"whatsapp@0s initial", OutcomeFailed, time.Second},
	}
	for _, c := range cases {
		r, err := Rehearse(DefaultChannels(), in, c.stories)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var sends []string
		for _, s := range r.Sends {
			sends = append(sends, s.Channel+"@"+s.SentAt.Sub(RehearsalEpoch()).String()+" "+s.Reason)
		}
		if got := strings.Join(sends, ", "); got != c.sends || r.Outcome != c.outcome || r.TimeToOutcome != c.took {
			t.Errorf("%s: sends %q, outcome %s after %s; want %q, %s after %s", c.name, got, r.Outcome, r.TimeToOutcome, c.sends, c.outcome, c.took)
		}
		if last := r.Events[len(r.Events)-1]; last.Type != EventFlowClosed {
			t.Errorf("%s: last event %s", c.name, last.Type)
		}
	}
	// An SMS step asked to be read is delivered: SMS has no read receipts.
	kind, raw, ok := storyStatus(DefaultChannels(), "sms", StoryRead)
	if !ok || kind != Delivered || raw != "DELIVERED" {
		t.Fatalf("sms read story: %v %q %v", kind, raw, ok)
	}
}
