// Package autodelay chooses auto delays (Step.delay_auto): it keeps the
// send-to-delivery latency the processor observed per channel and
// recipient country, over a sliding window, and answers a percentile of it
// plus a margin (docs/auto-delay.md).
//
// It is in memory, per processor instance: a restart starts cold, and a
// cold key chooses the step's fallback delay (delay_seconds) until it has
// MinSamples observations in the window. Instances of a group each learn
// from the flows they apply, a sample of the same traffic.
package autodelay

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
)

// Defaults.
const (
	DefaultWindow     = time.Hour
	DefaultMinSamples = 50
	// DefaultMaxKeys bounds the (channel, country) pairs kept: three
	// channels to every country code is under 800.
	DefaultMaxKeys = 2048
)

// slots is how many parts the window is cut into: an observation leaves
// the window within a slot's length (a sixth of the window) of its age
// reaching the window.
const slots = 6

// Buckets: one second wide up to fineLimit, then coarseWidth seconds up to
// maxLatency, then one overflow bucket. A percentile is read as its
// bucket's upper edge: at most one second (five past two minutes) above
// the exact value, never below it.
const (
	fineLimit   = 120
	coarseWidth = 5
	maxLatency  = 900
	numBuckets  = fineLimit + (maxLatency-fineLimit)/coarseWidth + 1
)

// bucketOf is the bucket of a latency in whole seconds, rounded up.
func bucketOf(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	switch {
	case s <= 0:
		return 0
	case s <= fineLimit:
		return s - 1
	case s <= maxLatency:
		return fineLimit + (s-fineLimit-1)/coarseWidth
	}
	return numBuckets - 1
}

// upperEdge is the largest latency (seconds) of bucket b; the overflow
// bucket's is maxLatency+1.
func upperEdge(b int) int {
	if b < fineLimit {
		return b + 1
	}
	if b == numBuckets-1 {
		return maxLatency + 1
	}
	return fineLimit + (b-fineLimit+1)*coarseWidth
}

type key struct{ channel, country string }

// slot counts the observations of one part of the window, by bucket.
type slot struct {
	index  int64 // the window part it counts (time / slot length); 0: unused
	n      int
	counts [numBuckets]uint32
}

type series struct{ slots [slots]slot }

// Estimator is safe for concurrent use. The zero value is not usable: New.
type Estimator struct {
	window     time.Duration
	minSamples int
	maxKeys    int

	mu      sync.Mutex
	series  map[key]*series
	dropped uint64 // observations of keys beyond maxKeys
}

// New returns an estimator over window, choosing only once a key has
// minSamples observations in it; zero values take the defaults.
func New(window time.Duration, minSamples int) *Estimator {
	if window <= 0 {
		window = DefaultWindow
	}
	if minSamples <= 0 {
		minSamples = DefaultMinSamples
	}
	return &Estimator{window: window, minSamples: minSamples, maxKeys: DefaultMaxKeys, series: map[key]*series{}}
}

// Window is the window observations count in.
func (e *Estimator) Window() time.Duration { return e.window }

func (e *Estimator) slotIndex(t time.Time) int64 {
	return t.UnixMilli()/(e.window.Milliseconds()/slots) + 1 // +1: index 0 marks an unused slot
}

// Observe records that an attempt of channel to country, sent at sentAt,
// reported a delivery at deliveredAt (both provider time).
func (e *Estimator) Observe(channel, country string, sentAt, deliveredAt time.Time) {
	idx := e.slotIndex(deliveredAt)
	b := bucketOf(deliveredAt.Sub(sentAt))
	e.mu.Lock()
	defer e.mu.Unlock()
	k := key{channel, country}
	s := e.series[k]
	if s == nil {
		if len(e.series) >= e.maxKeys {
			e.dropped++
			return
		}
		s = &series{}
		e.series[k] = s
	}
	sl := &s.slots[idx%slots]
	switch {
	case sl.index == idx:
	case sl.index < idx:
		*sl = slot{index: idx}
	default:
		return // older than what the slot now counts: out of the window already
	}
	sl.n++
	sl.counts[b]++
}

// Choice is a chosen delay and how it was chosen.
type Choice struct {
	Seconds  int32
	Basis    string
	Samples  int
	Fallback bool
}

// Choose is the delay of a step to channel and country with policy a at
// now: the percentile of the observations in the window plus the margin,
// clamped to a's bounds; with fewer than MinSamples, fallback (the step's
// delay_seconds) clamped the same way.
func (e *Estimator) Choose(channel, country string, a flow.AutoDelay, fallback int32, now time.Time) Choice {
	var counts [numBuckets]uint32
	n := 0
	low := e.slotIndex(now.Add(-e.window)) // slots after it are in the window
	e.mu.Lock()
	if s := e.series[key{channel, country}]; s != nil {
		for i := range s.slots {
			sl := &s.slots[i]
			if sl.index <= low || sl.n == 0 {
				continue
			}
			n += sl.n
			for b, c := range sl.counts {
				counts[b] += c
			}
		}
	}
	e.mu.Unlock()
	where := channel + " " + orUnknown(country)
	if n < e.minSamples {
		return Choice{Seconds: clamp(fallback, a), Samples: n, Fallback: true,
			Basis: fmt.Sprintf("fallback: too few samples (%d < %d, %s, %s)", n, e.minSamples, where, e.window)}
	}
	// The smallest bucket whose cumulative count reaches the percentile.
	rank := int(math.Ceil(float64(n) * float64(a.Percentile) / 100))
	cum, edge := 0, upperEdge(numBuckets-1)
	for b, c := range counts {
		cum += int(c)
		if cum >= rank {
			edge = upperEdge(b)
			break
		}
	}
	secs := clamp(int32(edge)+a.MarginSeconds, a)
	basis := "p" + strconv.Itoa(int(a.Percentile)) + " " + strconv.Itoa(edge) + "s of " + strconv.Itoa(n) +
		" samples (" + where + ", " + e.window.String() + ")"
	if a.MarginSeconds > 0 {
		basis += " + " + strconv.Itoa(int(a.MarginSeconds)) + "s margin"
	}
	return Choice{Seconds: secs, Samples: n, Basis: basis}
}

func clamp(s int32, a flow.AutoDelay) int32 { return min(max(s, a.MinSeconds), a.MaxSeconds) }

func orUnknown(country string) string {
	if country == "" {
		return "unknown country"
	}
	return country
}

// Keys is how many (channel, country) pairs are kept; Dropped how many
// observations were not, the keys being full.
func (e *Estimator) Keys() (keys int, dropped uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.series), e.dropped
}

// CountryOf is the country code a flow keeps (flow.Start.Country): the
// recipient's, when some step is auto (its deliveries after the close are
// still observations); "" otherwise, and the flow keeps nothing.
func CountryOf(recipient string, steps []flow.StepDef) string {
	for _, s := range steps {
		if s.Auto != nil {
			return CountryCode(recipient)
		}
	}
	return ""
}

// Delays are the choices for the auto steps of steps from index from on
// (the steps not sent yet) for a flow to country at now: what the
// processor passes to flow.ApplyWith with an input, which uses the choice
// of a step it sends. nil when none is auto, or for a nil estimator (the
// steps then run on their delay_seconds: flow.BasisNotChosen).
func (e *Estimator) Delays(steps []flow.StepDef, from int, country string, now time.Time) flow.Delays {
	if e == nil {
		return nil
	}
	var d flow.Delays
	for k := max(from, 0); k < len(steps); k++ {
		s := steps[k]
		if s.Auto == nil {
			continue
		}
		if d == nil {
			d = flow.Delays{}
		}
		c := e.Choose(s.Channel, country, *s.Auto, s.DelaySeconds, now)
		d[k] = flow.Choice{Seconds: c.Seconds, Basis: c.Basis}
	}
	return d
}
