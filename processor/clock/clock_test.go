package clock

import (
	"testing"
	"time"
)

// fakeWall is a Wall stopped at now that records what At was asked for.
type fakeWall struct {
	now time.Time
	at  []time.Time
}

func (f *fakeWall) Now() time.Time { return f.now }

func (f *fakeWall) At(t time.Time) <-chan time.Time {
	f.at = append(f.at, t)
	return make(chan time.Time)
}

// FromWall doubles the distance from the epoch, like a clock sped up twice.
func (f *fakeWall) FromWall(t time.Time) time.Time { return t.Add(t.Sub(time.Unix(0, 0))) }

// TestSkewedReadsBasePlusOffset: a skewed clock reads its base's time plus
// the offset, either way, and waits for a time of its own by waiting for
// the base to read that time less the offset.
func TestSkewedReadsBasePlusOffset(t *testing.T) {
	base := &fakeWall{now: time.UnixMilli(1_700_000_000_000)}
	for _, off := range []time.Duration{2 * time.Second, -200 * time.Millisecond} {
		c := NewSkewed(base, off)
		if got, want := c.Now(), base.now.Add(off); !got.Equal(want) {
			t.Errorf("offset %s: Now %s, want %s", off, got, want)
		}
		due := base.now.Add(time.Minute)
		c.At(due)
		if got, want := base.at[len(base.at)-1], due.Add(-off); !got.Equal(want) {
			t.Errorf("offset %s: At(%s) waits for the base to read %s, want %s", off, due, got, want)
		}
	}
}

// TestSkewedFromWallIsNotShifted: a record's timestamp comes from a
// broker's clock, so a skewed host maps it as its base does; it cannot
// correct for a skew it does not know of.
func TestSkewedFromWallIsNotShifted(t *testing.T) {
	stamp := time.UnixMilli(1_700_000_123_456)
	base := &fakeWall{now: stamp}
	c := NewSkewed(base, 2*time.Second)
	if got, want := c.FromWall(stamp), base.FromWall(stamp); !got.Equal(want) {
		t.Errorf("FromWall %s, want the base's %s (not shifted by the offset)", got, want)
	}

	// The same over the sped-up clock of the fault tests.
	scaled := NewScaledAt(time.UnixMilli(1_700_000_000_000), 10)
	sc := NewSkewed(scaled, -2*time.Second)
	if got, want := sc.FromWall(stamp), scaled.FromWall(stamp); !got.Equal(want) {
		t.Errorf("over Scaled: FromWall %s, want %s", got, want)
	}
	// Now is the scaled time plus the offset: between two readings of the
	// base, shifted.
	before := scaled.Now()
	now := sc.Now()
	after := scaled.Now()
	if now.Before(before.Add(sc.Offset)) || now.After(after.Add(sc.Offset)) {
		t.Errorf("over Scaled: Now %s, want within [%s, %s]", now, before.Add(sc.Offset), after.Add(sc.Offset))
	}
}

// TestSkewedAtFiresOnItsOwnTime: over the wall clock, a clock an hour
// ahead that waits for the time it reads now fires at once, not in an hour.
func TestSkewedAtFiresOnItsOwnTime(t *testing.T) {
	c := NewSkewed(Real{}, time.Hour)
	select {
	case <-c.At(c.Now()):
	case <-time.After(time.Minute): // the broken clock would wait an hour
		t.Fatal("At(Now()) of a clock an hour ahead did not fire")
	}
}
