package bench

import (
	"math"
	"strconv"
	"testing"

	"github.com/fallbackd/fallback/processor/flow"
)

func mustMix(t *testing.T, s string) Mix {
	t.Helper()
	m, err := ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExpectedShares(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, c := range []struct {
		mix, then string
		steps     int
		want      Shares
	}{
		// Issue 8's burst: step 0 never delivers, so every flow reaches the
		// SMS step, which ends by --then-mix.
		{"failed=0.5,silent=0.5", "delivered=0.97,failed=0.02,silent=0.01", 2, Shares{0.97, 0.02, 0.01}},
		// The default mix: 60% close on step 0, 40% reach step 1.
		{"delivered=0.6,failed=0.2,silent=0.2", "delivered=0.97,failed=0.02,silent=0.01", 2,
			Shares{Delivered: 0.6 + 0.4*0.97, Failed: 0.4 * 0.02, Expired: 0.4 * 0.01}},
		// Timers only: every flow expires.
		{"silent=1", "silent=1", 2, Shares{0, 0, 1}},
		// Step 0's failed and silent shares both fall back; only the last
		// step's split between them decides FAILED against EXPIRED.
		{"delivered=0.5,failed=0.5", "delivered=0.5,silent=0.5", 2, Shares{0.75, 0, 0.25}},
		{"delivered=0.5,failed=0.5", "delivered=0.5,failed=0.5", 2, Shares{0.75, 0.25, 0}},
		// Three steps: the later mix applies to steps 1 and 2.
		{"failed=1", "delivered=0.5,failed=0.3,silent=0.2", 3,
			Shares{Delivered: 0.5 + 0.5*0.5, Failed: 0.5 * 0.3, Expired: 0.5 * 0.2}},
		// One step: step 0's failures and silences close the flow.
		{"delivered=0.6,failed=0.3,silent=0.1", "delivered=1", 1, Shares{0.6, 0.3, 0.1}},
	} {
		got := ExpectedShares([]Mix{mustMix(t, c.mix), mustMix(t, c.then)}, c.steps)
		if !near(got.Delivered, c.want.Delivered) || !near(got.Failed, c.want.Failed) || !near(got.Expired, c.want.Expired) {
			t.Errorf("ExpectedShares(%s then %s, %d steps) = %+v, want %+v", c.mix, c.then, c.steps, got, c.want)
		}
		if sum := got.Delivered + got.Failed + got.Expired; !near(sum, 1) {
			t.Errorf("ExpectedShares(%s then %s) adds up to %g", c.mix, c.then, sum)
		}
	}
}

// The expected shares must be what the simulated providers actually do:
// draw each attempt's fate the way providers.answer does (fateOf on the
// processor's attempt ids, the mix by step), derive each flow's outcome
// from its fates, and compare the shares with ExpectedShares.
func TestExpectedSharesMatchProviders(t *testing.T) {
	const flows = 200_000
	for _, c := range []struct{ mix, then string }{
		{"failed=0.5,silent=0.5", "delivered=0.97,failed=0.02,silent=0.01"},
		{"delivered=0.6,failed=0.2,silent=0.2", "delivered=0.97,failed=0.02,silent=0.01"},
		{"delivered=0.3,failed=0.3,silent=0.4", "delivered=0.5,failed=0.25,silent=0.25"},
	} {
		p := &providers{mixes: []Mix{mustMix(t, c.mix), mustMix(t, c.then)}}
		const steps = 2
		var counts [outcomeKinds]int
		fates := make([]uint8, steps)
		for i := range flows {
			id := "run-m" + strconv.Itoa(i)
			clear(fates)
			for k := range steps {
				f := p.mixFor(int64(k)).fateOf([]byte(flow.AttemptID(id, k)))
				fates[k] = uint8(f) + 1
				if f == fateDelivered {
					break // the flow closed: no later step is sent
				}
			}
			counts[outcomeOfFates(fates)]++
		}
		if counts[outcomeNone] != 0 {
			t.Fatalf("%d flows without an outcome", counts[outcomeNone])
		}
		want := ExpectedShares(p.mixes, steps)
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
	d, f, s := uint8(fateDelivered)+1, uint8(fateFailed)+1, uint8(fateSilent)+1
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
