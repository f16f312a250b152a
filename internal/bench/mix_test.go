package bench

import (
	"math"
	"strconv"
	"testing"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

func mustMix(t *testing.T, s string) simulator.Mix {
	t.Helper()
	m, err := simulator.ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The expected shares must be what the simulated providers actually do:
// draw each attempt's fate the way they do (Providers.Fate on the
// processor's attempt ids, the mix by step), derive each flow's outcome
// from its fates, and compare the shares with ExpectedShares.
func TestExpectedSharesMatchProviders(t *testing.T) {
	const flows = 200_000
	for _, c := range []struct{ mix, then string }{
		{"failed=0.5,silent=0.5", "delivered=0.97,failed=0.02,silent=0.01"},
		{"delivered=0.6,failed=0.2,silent=0.2", "delivered=0.97,failed=0.02,silent=0.01"},
		{"delivered=0.3,failed=0.3,silent=0.4", "delivered=0.5,failed=0.25,silent=0.25"},
	} {
		p := &simulator.Providers{StepMixes: []simulator.Mix{mustMix(t, c.mix), mustMix(t, c.then)}}
		const steps = 2
		var counts [outcomeKinds]int
		fates := make([]uint8, steps)
		for i := range flows {
			id := "run-m" + strconv.Itoa(i)
			clear(fates)
			for k := range steps {
				f := p.Fate(schemas.ChannelSend{AttemptID: flow.AttemptID(id, k), Step: int32(k)})
				fates[k] = uint8(f) + 1
				if f == simulator.FateDelivered {
					break // the flow closed: no later step is sent
				}
			}
			counts[outcomeOfFates(fates)]++
		}
		if counts[outcomeNone] != 0 {
			t.Fatalf("%d flows without an outcome", counts[outcomeNone])
		}
		want := simulator.ExpectedShares(p.StepMixes, steps)
		for _, o := range []struct {
			name string
			got  int
			want float64
		}{{"DELIVERED", counts[outcomeDelivered], want.Delivered}, {"FAILED", counts[outcomeFailed], want.Failed}, {"EXPIRED", counts[outcomeExpired], want.Expired}} {
			// 5 standard deviations of a binomial share at 200,000 flows is
			// at most 0.56 percentage points.
			if got := float64(o.got) / flows; math.Abs(got-o.want) > 5*math.Sqrt(o.want*(1-o.want)/flows)+1e-9 {
				t.Errorf("%s then %s: %s drawn %.4f, expected %.4f", c.mix, c.then, o.name, got, o.want)
			}
		}
	}
}

func TestOutcomeOfFates(t *testing.T) {
	d, f, s := uint8(simulator.FateDelivered)+1, uint8(simulator.FateFailed)+1, uint8(simulator.FateSilent)+1
	for _, c := range []struct {
		fates []uint8
		want  uint8
	}{
		{[]uint8{d, 0}, outcomeDelivered},
		{[]uint8{f, d}, outcomeDelivered},
		{[]uint8{s, d}, outcomeDelivered},
		{[]uint8{s, f}, outcomeFailed},
		{[]uint8{f, s}, outcomeExpired},
		{[]uint8{d, s}, outcomeDelivered}, // step 0 delivered: the flow closed, a later send is the processor's mistake
		{[]uint8{f, 0}, outcomeNone},      // the fallback was never sent
		{[]uint8{0, 0}, outcomeNone},
	} {
		if got := outcomeOfFates(c.fates); got != c.want {
			t.Errorf("outcomeOfFates(%v) = %s, want %s", c.fates, outcomeNames[got], outcomeNames[c.want])
		}
	}
}
