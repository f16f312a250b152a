package simulator

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Mix is how a simulated provider answers, as the shares of attempts that
// end each way; they add up to at most 1 and the rest is Delivered. Each
// attempt's fate is drawn from its attempt id alone (FateOf), so a repeat
// gets the same answer.
type Mix struct {
	Read   float64 // delivered, then read (WhatsApp)
	Failed float64 // a failure DLR: the flow falls back at once
	Silent float64 // no final DLR at all: the step's delay runs out
	Late   float64 // delivered, but only after the step's delay ran out
}

// DefaultMixes is a plausible day: WhatsApp misses more people (no app, no
// data) but reports reads; RCS misses more still (a phone, or a carrier,
// without RCS fails at once) and reports reads too; SMS mostly arrives.
// Every channel of flow.DefaultChannels has a mix.
func DefaultMixes() map[string]Mix {
	return map[string]Mix{
		"whatsapp": {Read: 0.25, Failed: 0.15, Silent: 0.10, Late: 0.05},
		"rcs":      {Read: 0.20, Failed: 0.25, Silent: 0.08, Late: 0.03},
		"sms":      {Failed: 0.08, Silent: 0.05, Late: 0.03},
	}
}

// Delivered is the share left to a plain delivery (no read).
func (m Mix) Delivered() float64 {
	// Rounded so that a parsed "delivered=0.6" reads back as 0.6, not as
	// 1-0.2-0.2 = 0.6000000000000001.
	return math.Round((1-m.Read-m.Failed-m.Silent-m.Late)*1e12) / 1e12
}

// FallbackShare is the share of attempts on a step that lead to the next.
func (m Mix) FallbackShare() float64 { return m.Failed + m.Silent }

// Fate is how a provider answers one attempt.
type Fate uint8

const (
	FateDelivered Fate = iota // a delivery DLR at 25% of the step's delay
	FateFailed                // a failure DLR at 30% of the delay
	FateSilent                // no final DLR
	FateRead                  // delivered at 20%, read at 50%
	FateLate                  // delivered at 150% of the delay
)

// FateOf draws an attempt's fate from its id alone: a repeat of the
// attempt gets the same answer, and so does every run with the same ids.
func (m Mix) FateOf(attemptID string) Fate {
	switch u := unit(attemptID); {
	case u < m.Failed:
		return FateFailed
	case u < m.Failed+m.Silent:
		return FateSilent
	case u < m.Failed+m.Silent+m.Read:
		return FateRead
	case u < m.Failed+m.Silent+m.Read+m.Late:
		return FateLate
	}
	return FateDelivered
}

// ParseMix reads "delivered=0.6,failed=0.2,silent=0.2". Names left out are
// 0, except that a mix adding up to less than 1 gives the rest to delivered.
func ParseMix(s string) (Mix, error) {
	var m Mix
	delivered := 0.0
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
			delivered = f
		case "failed":
			m.Failed = f
		case "silent":
			m.Silent = f
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown outcome %q (delivered, failed, silent)", s, name)
		}
	}
	switch sum := delivered + m.Failed + m.Silent; {
	case sum > 1+1e-9:
		return Mix{}, fmt.Errorf("mix %q: shares add up to %g, more than 1", s, sum)
	case sum < 1-1e-9 && given["delivered"]:
		return Mix{}, fmt.Errorf("mix %q: shares add up to %g, not 1", s, sum)
	}
	return m, nil
}

// String is the mix as ParseMix reads it, with read and late added when
// they are not 0.
func (m Mix) String() string {
	s := fmt.Sprintf("delivered=%g,failed=%g,silent=%g", m.Delivered(), m.Failed, m.Silent)
	if m.Read != 0 {
		s += fmt.Sprintf(",read=%g", m.Read)
	}
	if m.Late != 0 {
		s += fmt.Sprintf(",late=%g", m.Late)
	}
	return s
}

// stepMix is the mix of a step when mixes are given by step: the last
// applies to any later step.
func stepMix(mixes []Mix, step int) Mix {
	return mixes[min(max(step, 0), len(mixes)-1)]
}

// Shares are the fractions of flows that close each way.
type Shares struct {
	Delivered, Failed, Expired float64
}

// ExpectedShares is how the flows should close when the processor does
// exactly what providers answering by step (Providers.StepMixes) call for,
// for flows whose steps succeed on delivered: an attempt on step k ends by
// mixes[min(k, len(mixes)-1)], drawn independently per attempt. A delivered
// (or read) attempt closes the flow DELIVERED. A failed or silent attempt
// falls back to the next step, or, on the last step, closes the flow FAILED
// (failure DLR) or EXPIRED (the last deadline fires). Nothing else ends such
// a flow: no cancels, no rejections. Late deliveries, which ParseMix never
// gives, are not modelled.
func ExpectedShares(mixes []Mix, steps int) Shares {
	var s Shares
	if len(mixes) == 0 || steps < 1 {
		return s
	}
	reach := 1.0 // share of flows that get an attempt on step k
	for k := range steps {
		m := stepMix(mixes, k)
		s.Delivered += reach * (m.Delivered() + m.Read)
		if k == steps-1 {
			s.Failed += reach * m.Failed
			s.Expired += reach * m.Silent
			break
		}
		reach *= m.FallbackShare()
	}
	return s
}

// unit maps a string to [0,1) evenly and repeatably. FNV alone leaves the
// high bits of short, similar strings ("r1/0", "r2/0") correlated, so the
// hash goes through the splitmix64 finaliser.
func unit(s string) float64 { return spread(fnv64a(fnvOffset, s)) }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv64a continues an FNV-1a hash h over s (h = fnvOffset to start one).
// It is hash/fnv's New64a without the allocation of a []byte.
func fnv64a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// spread maps a hash to [0,1) through the splitmix64 finaliser.
func spread(x uint64) float64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}
