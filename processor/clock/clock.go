// Package clock is the processor's time source: the wall clock, or one that
// runs faster (the demo and the fault tests), so 5..900 s delays can play
// out in seconds, or one that is off by a fixed offset (the clock-skew
// tests). Test-only clocks live in internal/clocktest.
package clock

import (
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

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                  { return time.Now() }
func (Real) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// FromWall is the identity: the wall clock reads the wall time.
func (Real) FromWall(t time.Time) time.Time { return t }

// Scaled runs Speed times faster than the wall clock from its epoch:
// at wall time Start it reads Start, and then moves Speed times faster.
// Processes built with the same epoch and speed read the same time, so
// several instances (and their restarts) can share one Redis.
type Scaled struct {
	Start time.Time
	Speed float64
}

// NewScaled starts a clock at the current wall time running speed times faster.
func NewScaled(speed float64) *Scaled { return NewScaledAt(time.Now(), speed) }

// NewScaledAt returns a clock anchored at epoch running speed times faster.
func NewScaledAt(epoch time.Time, speed float64) *Scaled {
	return &Scaled{Start: epoch, Speed: speed}
}

func (c *Scaled) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.Start)) * c.Speed))
}

// FromWall is what the clock read at wall time t, so that a Kafka record's
// timestamp compares with deadlines set on this clock.
func (c *Scaled) FromWall(t time.Time) time.Time {
	return c.Start.Add(time.Duration(float64(t.Sub(c.Start)) * c.Speed))
}

func (c *Scaled) At(t time.Time) <-chan time.Time {
	return time.After(time.Duration(float64(t.Sub(c.Now())) / c.Speed))
}

// Wall is a clock that can tell a wall time (a broker's record timestamp)
// on its own scale: Real and Scaled.
type Wall interface {
	Clock
	FromWall(t time.Time) time.Time
}

// Skewed reads Base's time plus Offset: the clock of a host that is off by
// Offset (positive: ahead), for the clock-skew tests (--clock-offset). The
// offset is on Base's scale, flow time: with Base sped up ten times, an
// Offset of 2 s is what a host 200 ms off would read.
//
// FromWall is Base's, not shifted: it maps a record's timestamp, which
// comes from a broker's clock, and a host cannot correct for a skew it does
// not know of. So a skewed instance compares the brokers' true times with
// deadlines and watermarks set on its own wrong clock, as a real one would.
type Skewed struct {
	Base   Wall
	Offset time.Duration
}

// NewSkewed returns base off by offset.
func NewSkewed(base Wall, offset time.Duration) *Skewed { return &Skewed{Base: base, Offset: offset} }

func (c *Skewed) Now() time.Time { return c.Base.Now().Add(c.Offset) }

// At fires when this clock reads t: when Base reads t less the offset.
func (c *Skewed) At(t time.Time) <-chan time.Time { return c.Base.At(t.Add(-c.Offset)) }

// FromWall is Base's mapping, without the offset (see Skewed).
func (c *Skewed) FromWall(t time.Time) time.Time { return c.Base.FromWall(t) }
