// Package outcomes turns the analytics stream (fallback.events) into the
// rolling figures the console draws: per stored flow and over the last hour
// or day, how many flows started, how they ended, how often they fell back
// and why, how many paid duplicates, and how long they took.
//
// Figures are counted by the time the event says it happened (occurred_at),
// in one-minute buckets kept for Retention, so a console that restarts and
// reads the topic again from Retention ago draws the same pictures.
package outcomes

import (
	"slices"
	"sync"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// Retention is how far back the figures go: the longest window asked for.
const Retention = 24 * time.Hour

// TimeToOutcomeBounds are the upper bounds of the time-to-outcome
// histogram's buckets; a last bucket holds the rest. They follow the
// delays a flow may have (5 to 900 s a step).
var TimeToOutcomeBounds = []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute}

// Counts are the figures of some flows over some time.
type Counts struct {
	Started int
	Closed  int
	// DeliveredFirst: delivered (or read) on the first step; AfterFallback:
	// on a later one.
	DeliveredFirst, DeliveredAfterFallback int
	Failed, Expired, Cancelled             int
	// Fallbacks by reason: the previous step failed, or its delay ran out.
	FallbacksOnFailure, FallbacksOnTimeout int
	// PaidDuplicates are MULTI_CHANNEL_DELIVERY events: a second channel
	// delivered what another had already delivered.
	PaidDuplicates int
	// TimeToOutcome counts closed flows by time from request to outcome,
	// one entry per TimeToOutcomeBounds and one for the rest.
	TimeToOutcome [8]int
}

func (c *Counts) add(o *Counts) {
	c.Started += o.Started
	c.Closed += o.Closed
	c.DeliveredFirst += o.DeliveredFirst
	c.DeliveredAfterFallback += o.DeliveredAfterFallback
	c.Failed += o.Failed
	c.Expired += o.Expired
	c.Cancelled += o.Cancelled
	c.FallbacksOnFailure += o.FallbacksOnFailure
	c.FallbacksOnTimeout += o.FallbacksOnTimeout
	c.PaidDuplicates += o.PaidDuplicates
	for i := range c.TimeToOutcome {
		c.TimeToOutcome[i] += o.TimeToOutcome[i]
	}
}

// Aggregator counts events into one-minute buckets per flow id. Inline
// flows (no stored flow) count under the flow id "". Safe for concurrent
// use: the follower adds while pages read.
type Aggregator struct {
	now func() time.Time

	mu sync.RWMutex
	// minutes holds, per minute (unix minutes), the counts of each flow id
	// with an event in that minute. Memory follows the (flow, minute) pairs
	// that had events, not the number of flows.
	minutes map[int64]map[string]*Counts
	oldest  int64 // the oldest minute kept
	events  int64
	// rejected remembers the latest rejections by request id, so a lookup
	// of a request that started no flow can say why: two generations of
	// at most rejectionsKept/2 each, the older dropped when the newer fills.
	rejected, rejectedOld map[string]Rejection
}

// rejectionsKept bounds the rejections remembered (about 200 bytes each).
const rejectionsKept = 100_000

// Rejection is a REQUEST_REJECTED event: why a request started no flow.
type Rejection struct {
	Reason string // code: field: detail
	At     time.Time
}

// NewAggregator counts events; now is the clock the windows end at (nil:
// time.Now).
func NewAggregator(now func() time.Time) *Aggregator {
	if now == nil {
		now = time.Now
	}
	return &Aggregator{now: now, minutes: map[int64]map[string]*Counts{},
		rejected: map[string]Rejection{}, rejectedOld: map[string]Rejection{}}
}

// Add counts one event. Events older than Retention are ignored. Repeated
// events must be dropped before (client.EventConsumer does).
func (a *Aggregator) Add(ev schemas.FlowEvent) {
	var c Counts
	switch ev.Type {
	case flow.EventFlowStarted:
		c.Started = 1
	case flow.EventMultiChannelDelivery:
		c.PaidDuplicates = 1
	case flow.EventFlowClosed:
		closedCounts(&c, ev)
	case flow.EventRequestRejected:
		a.rememberRejection(ev)
		return
	default:
		return // the other events are summed up by FLOW_CLOSED's summary
	}
	minute := ev.OccurredAt.Unix() / 60
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events++
	horizon := a.now().Add(-Retention).Unix() / 60
	if minute < horizon {
		return
	}
	a.prune(horizon)
	flows := a.minutes[minute]
	if flows == nil {
		flows = map[string]*Counts{}
		a.minutes[minute] = flows
	}
	cur := flows[ev.FlowID]
	if cur == nil {
		cur = &Counts{}
		flows[ev.FlowID] = cur
	}
	cur.add(&c)
}

// closedCounts is what one FLOW_CLOSED says.
func closedCounts(c *Counts, ev schemas.FlowEvent) {
	c.Closed = 1
	s := ev.Summary
	switch ev.Outcome {
	case flow.OutcomeDelivered, flow.OutcomeRead:
		if s != nil && s.DeliveredStep != nil && *s.DeliveredStep > 0 {
			c.DeliveredAfterFallback = 1
		} else {
			c.DeliveredFirst = 1
		}
	case flow.OutcomeFailed:
		c.Failed = 1
	case flow.OutcomeExpired:
		c.Expired = 1
	case flow.OutcomeCancelled:
		c.Cancelled = 1
	}
	if s == nil {
		return
	}
	for _, st := range s.Steps {
		switch st.Reason {
		case flow.ReasonFailure:
			c.FallbacksOnFailure++
		case flow.ReasonTimeout:
			c.FallbacksOnTimeout++
		}
	}
	took := time.Duration(s.TimeToOutcomeMs) * time.Millisecond
	i, _ := slices.BinarySearch(TimeToOutcomeBounds, took)
	if i < len(TimeToOutcomeBounds) && took == TimeToOutcomeBounds[i] {
		i++ // a bound is the upper end of the bucket below it, exclusive
	}
	c.TimeToOutcome[i] = 1
}

// prune drops the minutes before horizon; a.mu must be held. It runs when
// the oldest minute kept falls behind, so at most once a minute does work.
func (a *Aggregator) prune(horizon int64) {
	if a.oldest >= horizon {
		return
	}
	for m := range a.minutes {
		if m < horizon {
			delete(a.minutes, m)
		}
	}
	a.oldest = horizon
}

// Summary returns the counts of one flow id ("" for inline flows) over the
// window that ends now.
func (a *Aggregator) Summary(flowID string, window time.Duration) Counts {
	return a.sum(window, func(id string) bool { return id == flowID })
}

// Total returns the counts of every flow over the window that ends now.
func (a *Aggregator) Total(window time.Duration) Counts {
	return a.sum(window, func(string) bool { return true })
}

func (a *Aggregator) sum(window time.Duration, match func(string) bool) Counts {
	var out Counts
	end := a.now()
	from := end.Add(-min(window, Retention)).Unix() / 60
	to := end.Unix() / 60
	a.mu.RLock()
	defer a.mu.RUnlock()
	for m, flows := range a.minutes {
		if m < from || m > to {
			continue
		}
		for id, c := range flows {
			if match(id) {
				out.add(c)
			}
		}
	}
	return out
}

// Events is the number of events counted since the start.
func (a *Aggregator) Events() int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.events
}

func (a *Aggregator) rememberRejection(ev schemas.FlowEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events++
	if len(a.rejected) >= rejectionsKept/2 {
		a.rejectedOld, a.rejected = a.rejected, make(map[string]Rejection, rejectionsKept/2)
	}
	a.rejected[ev.RequestID] = Rejection{Reason: ev.Reason, At: ev.OccurredAt}
}

// Rejected returns the latest rejection of a request id, if it is among
// the ones remembered.
func (a *Aggregator) Rejected(requestID string) (Rejection, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if r, ok := a.rejected[requestID]; ok {
		return r, true
	}
	r, ok := a.rejectedOld[requestID]
	return r, ok
}
