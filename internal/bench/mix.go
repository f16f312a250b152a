package bench

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// Mix is how a simulated provider answers one step: the shares of attempts
// that end delivered, failed (a failure DLR, so the flow falls back at once)
// and silent (no final DLR: the step's delay runs out and the deadline
// fires). The shares add up to 1.
type Mix struct {
	Delivered, Failed, Silent float64
}

// ParseMix reads "delivered=0.6,failed=0.2,silent=0.2". Names left out are
// 0, except that a mix adding up to less than 1 gives the rest to delivered.
func ParseMix(s string) (Mix, error) {
	var m Mix
	given := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: %q is not name=share", s, part)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
			return Mix{}, fmt.Errorf("mix %q: share %q is not a number in 0..1", s, val)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if given[name] {
			return Mix{}, fmt.Errorf("mix %q: %s given twice", s, name)
		}
		given[name] = true
		switch name {
		case "delivered":
			m.Delivered = f
		case "failed":
			m.Failed = f
		case "silent":
			m.Silent = f
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown outcome %q (delivered, failed, silent)", s, name)
		}
	}
	sum := m.Delivered + m.Failed + m.Silent
	switch {
	case sum > 1+1e-9:
		return Mix{}, fmt.Errorf("mix %q: shares add up to %g, more than 1", s, sum)
	case sum < 1-1e-9 && given["delivered"]:
		return Mix{}, fmt.Errorf("mix %q: shares add up to %g, not 1", s, sum)
	case sum < 1-1e-9:
		m.Delivered = 1 - m.Failed - m.Silent
	}
	return m, nil
}

func (m Mix) String() string {
	return fmt.Sprintf("delivered=%g,failed=%g,silent=%g", m.Delivered, m.Failed, m.Silent)
}

// FallbackShare is the share of attempts on this step that lead to the next.
func (m Mix) FallbackShare() float64 { return m.Failed + m.Silent }

type fate uint8

const (
	fateDelivered fate = iota
	fateFailed
	fateSilent
)

// fateOf decides an attempt's fate from its id alone, so the same attempt
// always gets the same answer.
func (m Mix) fateOf(attemptID []byte) fate {
	u := unit(attemptID)
	switch {
	case u < m.Failed:
		return fateFailed
	case u < m.Failed+m.Silent:
		return fateSilent
	}
	return fateDelivered
}

// unit maps bytes to [0,1) evenly and repeatably (FNV-1a through the
// splitmix64 finaliser, as the simulator does).
func unit(b []byte) float64 {
	h := fnv.New64a()
	h.Write(b)
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}

// Shares are the fractions of flows that close each way.
type Shares struct {
	Delivered, Failed, Expired float64
}

// ExpectedShares is how the flows of a run should close when the processor
// does exactly what the simulated providers' answers call for. It follows
// the providers (providers.answer): an attempt on step k ends by
// mixes[min(k, len(mixes)-1)] (so with the bench's two mixes, --mix on
// step 0 and --then-mix on every later step), drawn independently per
// attempt. A delivered attempt closes the flow DELIVERED (the bench's steps
// succeed on delivered; the providers never report a read). A failed or
// silent attempt falls back to the next step, or, on the last step, closes
// the flow FAILED (failure DLR) or EXPIRED (the last deadline fires).
// Nothing else ends a bench flow: no cancels, no rejections.
func ExpectedShares(mixes []Mix, steps int) Shares {
	var s Shares
	if len(mixes) == 0 || steps < 1 {
		return s
	}
	reach := 1.0 // share of flows that get an attempt on step k
	for k := range steps {
		m := mixes[min(k, len(mixes)-1)]
		s.Delivered += reach * m.Delivered
		if k == steps-1 {
			s.Failed += reach * m.Failed
			s.Expired += reach * m.Silent
			break
		}
		reach *= m.FallbackShare()
	}
	return s
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
		switch fate(f - 1) {
		case fateDelivered:
			return outcomeDelivered
		case fateFailed:
			if last {
				return outcomeFailed
			}
		case fateSilent:
			if last {
				return outcomeExpired
			}
		}
	}
	return outcomeNone
}
