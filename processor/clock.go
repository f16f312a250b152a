package processor

import (
	"sync"
	"time"
)

// Clock is the processor's only source of time, so tests and the demo can
// run 5..900 s delays in milliseconds of wall time.
type Clock interface {
	Now() time.Time
	// At fires once the clock reads t or later. It takes an absolute time so
	// that a clock moving between a caller's Now and its wait (a test's
	// manual clock) cannot leave the waiter asleep past t.
	At(t time.Time) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time                  { return time.Now() }
func (RealClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// FromWall is the identity: the wall clock reads the wall time.
func (RealClock) FromWall(t time.Time) time.Time { return t }

// ScaledClock runs Speed times faster than the wall clock from its epoch:
// at wall time Start it reads Start, and then moves Speed times faster.
// Processes built with the same epoch and speed read the same time, so
// several instances (and their restarts) can share one Redis.
type ScaledClock struct {
	Start time.Time
	Speed float64
}

// NewScaledClock starts a clock at the current wall time running speed times faster.
func NewScaledClock(speed float64) *ScaledClock { return NewScaledClockAt(time.Now(), speed) }

// NewScaledClockAt returns a clock anchored at epoch running speed times faster.
func NewScaledClockAt(epoch time.Time, speed float64) *ScaledClock {
	return &ScaledClock{Start: epoch, Speed: speed}
}

func (c *ScaledClock) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.Start)) * c.Speed))
}

// FromWall is what the clock read at wall time t, so that a Kafka record's
// timestamp compares with deadlines set on this clock.
func (c *ScaledClock) FromWall(t time.Time) time.Time {
	return c.Start.Add(time.Duration(float64(t.Sub(c.Start)) * c.Speed))
}

func (c *ScaledClock) At(t time.Time) <-chan time.Time {
	return time.After(time.Duration(float64(t.Sub(c.Now())) / c.Speed))
}

// ManualClock moves only when the test calls Advance.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewManualClock returns a clock stopped at start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *ManualClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, manualWaiter{at: t, ch: ch})
	return ch
}

// Advance moves the clock forward and fires the waiters that became due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}
