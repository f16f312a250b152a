package simulator

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// Summary is what happened to the flows, as the events stream tells it. It
// is the demo's --json line.
type Summary struct {
	Flows int `json:"flows"`
	Closes
	DLRsDiscarded map[string]int `json:"dlrs_discarded"`
	// Attempts counts the attempts sent (ATTEMPT_SENT), by channel.
	Attempts map[string]int `json:"attempts"`
	// MultiChannel counts flows that delivered on more than one channel.
	MultiChannel int `json:"multi_channel_deliveries"`
	// RepeatedEvents counts events seen again with the same id (a replay
	// after a crash); consumers drop them.
	RepeatedEvents int `json:"repeated_events"`
	Events         int `json:"events"`
}

// Closes are how flows closed, as the demo's tally and the bench count
// them from the events stream.
type Closes struct {
	Outcomes  map[string]int `json:"outcomes"`  // first FLOW_CLOSED per flow, by outcome
	Fallbacks map[string]int `json:"fallbacks"` // FALLBACK_TRIGGERED, by reason
	Rejected  int            `json:"rejected"`  // REQUEST_REJECTED
	// DoubleClosed counts flows with more than one FLOW_CLOSED (different
	// event ids): the processor guarantees 0.
	DoubleClosed int `json:"double_closed"`
}

// Tally reads the events stream the way an analytics consumer would:
// dropping repeated event ids, counting facts.
type Tally struct {
	mu     sync.Mutex
	seen   map[uint64]struct{}
	closed map[string]int
	s      Summary

	// Set by NewDetailedTally: the first FLOW_CLOSED of each flow and the
	// FALLBACK_TRIGGERED events (distinct ids) per flow step.
	detailed  bool
	summaries map[string]schemas.FlowEvent
	fallbacks map[string]int // "<request_id>/<step>" -> distinct FALLBACK_TRIGGERED
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{seen: map[uint64]struct{}{}, closed: map[string]int{}, s: Summary{
		Closes: Closes{
			Outcomes:  map[string]int{flow.OutcomeDelivered: 0, flow.OutcomeRead: 0, flow.OutcomeFailed: 0, flow.OutcomeExpired: 0, flow.OutcomeCancelled: 0},
			Fallbacks: map[string]int{flow.ReasonFailure: 0, flow.ReasonTimeout: 0},
		},
		DLRsDiscarded: map[string]int{},
		Attempts:      attemptsByChannel(),
	}}
}

// attemptsByChannel is a zero count for every channel, so a channel no
// attempt went to shows as 0, not as missing.
func attemptsByChannel() map[string]int {
	m := map[string]int{}
	for _, c := range flow.DefaultChannels().Names() {
		m[c] = 0
	}
	return m
}

// NewDetailedTally is a tally that also keeps, per flow, its closing event
// and how often each step fell back, for the checks of the fault tests
// (Unclosed, ClosedEvent, RepeatedFallbacks). It costs memory per flow.
func NewDetailedTally() *Tally {
	t := NewTally()
	t.detailed, t.summaries, t.fallbacks = true, map[string]schemas.FlowEvent{}, map[string]int{}
	return t
}

// Add counts one event.
func (t *Tally) Add(ev schemas.FlowEvent) {
	id := fnv64a(fnvOffset, ev.EventID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.seen[id]; dup {
		t.s.RepeatedEvents++
		return
	}
	t.seen[id] = struct{}{}
	t.s.Events++
	switch ev.Type {
	case flow.EventFlowClosed:
		t.closed[ev.RequestID]++
		if t.closed[ev.RequestID] == 1 {
			t.s.Flows++
			t.s.Outcomes[ev.Outcome]++
			if t.detailed {
				t.summaries[ev.RequestID] = ev
			}
		} else {
			t.s.DoubleClosed++
		}
	case flow.EventFallbackTriggered:
		t.s.Fallbacks[ev.Reason]++
		if t.detailed && ev.Step != nil {
			t.fallbacks[flow.AttemptID(ev.RequestID, int(*ev.Step))]++
		}
	case flow.EventAttemptSent:
		t.s.Attempts[ev.Channel]++
	case flow.EventDLRDiscarded:
		t.s.DLRsDiscarded[ev.Reason]++
	case flow.EventRequestRejected:
		t.s.Rejected++
	case flow.EventMultiChannelDelivery:
		t.s.MultiChannel++
	}
}

// Closed is the number of distinct flows closed so far.
func (t *Tally) Closed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s.Flows
}

// ClosedCount is how many FLOW_CLOSED events (distinct ids) a request got.
func (t *Tally) ClosedCount(requestID string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed[requestID]
}

// Unclosed returns the ids among requestIDs that have no FLOW_CLOSED yet.
func (t *Tally) Unclosed(requestIDs []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, id := range requestIDs {
		if t.closed[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// ClosedEvent returns a flow's first FLOW_CLOSED (detailed tallies only).
func (t *Tally) ClosedEvent(requestID string) (schemas.FlowEvent, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev, ok := t.summaries[requestID]
	return ev, ok
}

// FallbackSteps returns how many flow steps fell back, and the steps
// ("<request_id>/<step>") that fell back more than once under different
// event ids: two transitions out of one step, which the processor's version
// check rules out (detailed tallies only).
func (t *Tally) FallbackSteps() (steps int, repeated []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.fallbacks {
		if n > 1 {
			repeated = append(repeated, k)
		}
	}
	return len(t.fallbacks), repeated
}

// Summary returns a copy of the counts.
func (t *Tally) Summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	s.Outcomes, s.Fallbacks, s.DLRsDiscarded = copyMap(t.s.Outcomes), copyMap(t.s.Fallbacks), copyMap(t.s.DLRsDiscarded)
	s.Attempts = copyMap(t.s.Attempts)
	return s
}

func copyMap(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Follow reads the events topic from its start into the tally until ctx ends.
func (t *Tally) Follow(ctx context.Context, brokers []string, opts []kgo.Opt, topic string) error {
	return Follow(ctx, "tally", brokers, opts, []string{topic}, func(c *schemas.Codecs, r *kgo.Record) error {
		ev, err := c.FlowEvent.Decode(avroBody(r.Value))
		if err == nil {
			t.Add(ev)
		}
		return err
	})
}

// Follow reads topics from their start until ctx ends, handing each record
// to add; a record add cannot take ends it, since these readers check what
// the processor wrote. who names the reader in errors.
func Follow(ctx context.Context, who string, brokers []string, opts []kgo.Opt, topics []string, add func(*schemas.Codecs, *kgo.Record) error) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		return fmt.Errorf("%s: kafka client: %w", who, err)
	}
	defer cl.Close()
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var addErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if err := add(codecs, r); err != nil && addErr == nil {
				addErr = fmt.Errorf("%s: %s offset %d: %w", who, r.Topic, r.Offset, err)
			}
		})
		if addErr != nil {
			return addErr
		}
	}
}
