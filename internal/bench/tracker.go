package bench

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// tracker records, per measured flow, what the bench saw of it: the sends
// (through the simulated providers) and the events (through the observer).
// Flows are numbered: a request id is the run's prefix and a decimal index,
// so per-flow facts live in flat slices instead of maps. Each slice has one
// writer goroutine; the counters are atomic so progress can be read live.
type tracker struct {
	prefix string
	n      int
	steps  int
	// fallbacksFromSends: the processor runs with --events lean, which
	// writes no FALLBACK_TRIGGERED, so the fallbacks are counted from the
	// sends of the later steps instead (and any FALLBACK_TRIGGERED is
	// ignored, so that nothing counts twice).
	fallbacksFromSends bool

	// Written by the providers' goroutine.
	deadline [][]int64 // [step][flow] the send's deadline, clock ms
	sentAt   [][]int64 // [step][flow] the send's sent_at, clock ms
	sentWall [][]int64 // [step][flow] the send record's Kafka timestamp, wall ms
	reason   [][]uint8 // [step][flow]
	fate     [][]uint8 // [step][flow] the fate the providers drew for the send, plus one (0: no send seen)

	// Written by the observer's goroutine.
	closedAt   []int64 // FLOW_CLOSED occurred_at, clock ms
	closedWall []int64 // its Kafka timestamp, wall ms
	outcome    []uint8
	closeID    []uint64 // hash of the event id of each flow's first FLOW_CLOSED, 0 before it
	fallbackID []uint64 // per flow, steps-1 slots: hashes of the FALLBACK_TRIGGERED event ids seen
	closeTimes []int64  // Kafka timestamps of the closes, wall ms, in arrival order

	firstSends, laterSends           atomic.Int64
	catalogSends                     atomic.Int64 // sends with the catalog's template language
	dlrEvents                        atomic.Int64
	eventRecords                     atomic.Int64 // event records of the run's flows, replays included
	closed, doubleClosed, rejected   atomic.Int64
	repeatedCloses                   atomic.Int64 // a close seen again under its own event id
	fallbackFailure, fallbackTimeout atomic.Int64
	expired, foreign, scanErrors     atomic.Int64
	lastFirstSend, lastDLREvent      atomic.Int64 // wall ms
	lastDeadlineFire, lastClose      atomic.Int64 // wall ms
	outcomeCount                     [outcomeKinds]atomic.Int64
}

const (
	reasonNone uint8 = iota
	reasonInitial
	reasonFailure
	reasonTimeout
)

const (
	outcomeNone uint8 = iota
	outcomeDelivered
	outcomeRead
	outcomeFailed
	outcomeExpired
	outcomeCancelled
	outcomeOther
	outcomeKinds
)

var outcomeNames = [outcomeKinds]string{"", "DELIVERED", "READ", "FAILED", "EXPIRED", "CANCELLED", "OTHER"}

// newTracker tracks n flows of the given steps, whose request ids are
// prefix and an index, measured against a processor writing events as
// mode says.
func newTracker(prefix string, n, steps int, mode flow.Events) *tracker {
	t := &tracker{prefix: prefix, n: n, steps: steps, fallbacksFromSends: mode == flow.EventsLean,
		closedAt: make([]int64, n), closedWall: make([]int64, n), outcome: make([]uint8, n), closeID: make([]uint64, n),
		fallbackID: make([]uint64, n*max(steps-1, 0)), closeTimes: make([]int64, 0, n)}
	for range steps {
		t.deadline = append(t.deadline, make([]int64, n))
		t.sentAt = append(t.sentAt, make([]int64, n))
		t.sentWall = append(t.sentWall, make([]int64, n))
		t.reason = append(t.reason, make([]uint8, n))
		t.fate = append(t.fate, make([]uint8, n))
	}
	return t
}

// index returns the flow number of a request id of this run.
func (t *tracker) index(requestID string) (int, bool) {
	rest, ok := strings.CutPrefix(requestID, t.prefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= t.n {
		return 0, false
	}
	return i, true
}

func reasonCode[T string | []byte](b T) uint8 {
	switch string(b) {
	case "initial":
		return reasonInitial
	case "failure":
		return reasonFailure
	case "timeout":
		return reasonTimeout
	}
	return reasonNone
}

func outcomeCode(b []byte) uint8 {
	switch string(b) {
	case "DELIVERED":
		return outcomeDelivered
	case "READ":
		return outcomeRead
	case "FAILED":
		return outcomeFailed
	case "EXPIRED":
		return outcomeExpired
	case "CANCELLED":
		return outcomeCancelled
	}
	return outcomeOther
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// sawSend records a send the providers consumed and the fate they drew
// for it. A send can come again (an at-least-once replay of owed outputs);
// the providers pass every copy on.
func (t *tracker) sawSend(s schemas.ChannelSend, f simulator.Fate, wall time.Time) {
	i, ok := t.index(s.RequestID)
	if !ok || s.Step < 0 || int(s.Step) >= t.steps {
		t.foreign.Add(1)
		return
	}
	k := int(s.Step)
	firstOfStep := t.fate[k][i] == 0 // fate is set on the step's first send
	t.deadline[k][i], t.sentAt[k][i], t.sentWall[k][i] = s.Deadline.UnixMilli(), s.SentAt.UnixMilli(), wall.UnixMilli()
	t.fate[k][i] = uint8(f) + 1
	r := reasonCode(s.Reason)
	t.reason[k][i] = r
	if s.TemplateLanguage != "" {
		t.catalogSends.Add(1)
	}
	if k == 0 {
		t.firstSends.Add(1)
		storeMax(&t.lastFirstSend, wall.UnixMilli())
		return
	}
	t.laterSends.Add(1)
	if r == reasonTimeout {
		storeMax(&t.lastDeadlineFire, wall.UnixMilli())
	}
	if t.fallbacksFromSends && firstOfStep {
		// A send of step k>0 is the fallback from step k-1, and says why;
		// a replayed copy of it is the same fallback.
		switch r {
		case reasonFailure:
			t.fallbackFailure.Add(1)
		case reasonTimeout:
			t.fallbackTimeout.Add(1)
		}
	}
}

// outcomeOfFates is the outcome a flow must close with, given the fates
// the providers drew for its attempts (fates[k] is step k's fate plus one;
// 0: no send of step k was seen). It returns outcomeNone when a step the
// flow needed was never sent.
func outcomeOfFates(fates []uint8) uint8 {
	for k, f := range fates {
		if f == 0 {
			return outcomeNone
		}
		last := k == len(fates)-1
		switch simulator.Fate(f - 1) {
		case simulator.FateDelivered, simulator.FateRead:
			return outcomeDelivered
		case simulator.FateFailed:
			if last {
				return outcomeFailed
			}
		case simulator.FateSilent, simulator.FateLate:
			if last {
				return outcomeExpired
			}
		}
	}
	return outcomeNone
}

// drawn returns, per outcome, how many flows the providers' answers say
// must close that way, and how many flows closed otherwise (or were never
// sent a step they needed).
func (t *tracker) drawn() (counts [outcomeKinds]int, off int) {
	fates := make([]uint8, t.steps)
	for i := range t.n {
		for k := range t.steps {
			fates[k] = t.fate[k][i]
		}
		o := outcomeOfFates(fates)
		counts[o]++
		if o == outcomeNone || o != t.outcome[i] {
			off++
		}
	}
	return counts, off
}

// sawEvent records an event the observer consumed.
func (t *tracker) sawEvent(e eventInfo, wall time.Time) {
	i, ok := t.index(string(e.requestID))
	if !ok {
		t.foreign.Add(1)
		return
	}
	t.eventRecords.Add(1)
	ms := wall.UnixMilli()
	switch string(e.typ) {
	case "DLR_RECEIVED", "DLR_DISCARDED":
		t.dlrEvents.Add(1)
		storeMax(&t.lastDLREvent, ms)
	case "FALLBACK_TRIGGERED":
		if t.fallbacksFromSends || t.repeatedFallback(i, eventIDHash(e.eventID)) {
			return
		}
		switch reasonCode(e.reason) {
		case reasonFailure:
			t.fallbackFailure.Add(1)
		case reasonTimeout:
			t.fallbackTimeout.Add(1)
		}
	case "REQUEST_REJECTED":
		t.rejected.Add(1)
	case "FLOW_CLOSED":
		// At-least-once: the same close can arrive twice with the same event
		// id (a replay of owed outputs), which a consumer drops. Only a close
		// under another event id is a second close.
		id := eventIDHash(e.eventID)
		switch t.closeID[i] {
		case 0:
			t.closeID[i] = id
		case id:
			t.repeatedCloses.Add(1)
			return
		default:
			t.doubleClosed.Add(1)
			return
		}
		o := outcomeCode(e.outcome)
		t.outcome[i], t.closedAt[i], t.closedWall[i] = o, e.occurredAt, ms
		t.outcomeCount[o].Add(1)
		t.closeTimes = append(t.closeTimes, ms)
		if o == outcomeExpired {
			t.expired.Add(1)
			storeMax(&t.lastDeadlineFire, ms)
		}
		storeMax(&t.lastClose, ms)
		t.closed.Add(1)
	}
}

// observer follows the events topic from the run's start offsets.
type observer struct {
	cl *kgo.Client
	t  *tracker
}

func (o *observer) run(ctx context.Context) {
	for {
		fetches := o.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			e, err := scanEvent(r.Value)
			if err != nil {
				o.t.scanErrors.Add(1)
				return
			}
			o.t.sawEvent(e, r.Timestamp)
		})
	}
}

// lateness returns, for every deadline that fired during the run (a
// fallback by timeout or an EXPIRED close), how late it was in wall
// milliseconds: decided is sent_at (or occurred_at) minus the deadline, both
// on the processor's clock and divided by the clock speed; emitted is the
// output record's Kafka timestamp (wall clock, taken when the processor
// produced it) minus the deadline's wall time.
func (t *tracker) lateness(clock clockMap) (decided, emitted []float64) {
	for i := range t.n {
		for k := 1; k < t.steps; k++ {
			if t.reason[k][i] == reasonTimeout && t.deadline[k-1][i] != 0 {
				dl := t.deadline[k-1][i]
				decided = append(decided, clock.wallMS(t.sentAt[k][i]-dl))
				emitted = append(emitted, float64(t.sentWall[k][i])-clock.wallOf(dl))
			}
		}
		if t.outcome[i] == outcomeExpired {
			if dl := t.deadline[t.steps-1][i]; dl != 0 {
				decided = append(decided, clock.wallMS(t.closedAt[i]-dl))
				emitted = append(emitted, float64(t.closedWall[i])-clock.wallOf(dl))
			}
		}
	}
	return decided, emitted
}

// steadyCloseRate is the close rate between the 10th and the 90th
// percentile close: the run without its ramp-up and its tail.
func (t *tracker) steadyCloseRate() float64 {
	ts := slices.Clone(t.closeTimes)
	if len(ts) < 20 {
		return 0
	}
	slices.Sort(ts)
	lo, hi := len(ts)/10, len(ts)*9/10
	span := float64(ts[hi]-ts[lo]) / 1000
	if span <= 0 {
		return 0
	}
	return float64(hi-lo) / span
}

// clockMap converts processor-clock milliseconds to wall milliseconds.
type clockMap struct {
	epochMS int64
	speed   float64
}

func (c clockMap) wallMS(clockMS int64) float64 { return float64(clockMS) / c.speed }

func (c clockMap) wallOf(clockMS int64) float64 {
	return float64(c.epochMS) + float64(clockMS-c.epochMS)/c.speed
}

// Stats are percentiles of a sample.
type Stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func statsOf(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := int(p*float64(len(s)) + 0.5)
		return s[min(max(i-1, 0), len(s)-1)]
	}
	return Stats{N: len(s), P50: round2(at(0.50)), P99: round2(at(0.99)), Max: round2(s[len(s)-1])}
}

func round2(f float64) float64 {
	return float64(int64(f*100+0.5*sign(f))) / 100
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

// eventIDHash is a non-zero FNV-1a hash of an event id.
func eventIDHash(id []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range id {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h | 1
}

// repeatedFallback tells whether flow i's FALLBACK_TRIGGERED with event id
// hash id was seen before (an at-least-once replay, which consumers drop),
// and remembers it otherwise. A flow falls back at most steps-1 times.
func (t *tracker) repeatedFallback(i int, id uint64) bool {
	slots := t.fallbackID[i*(t.steps-1) : (i+1)*(t.steps-1)]
	for j, seen := range slots {
		switch seen {
		case id:
			return true
		case 0:
			slots[j] = id
			return false
		}
	}
	return false
}
