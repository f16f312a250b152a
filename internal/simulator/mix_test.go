package simulator

import (
	"math"
	"strconv"
	"testing"
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

func TestParseMix(t *testing.T) {
	m, err := ParseMix("delivered=0.6,failed=0.2,silent=0.2")
	if err != nil || m != (Mix{Failed: 0.2, Silent: 0.2}) || m.Delivered() != 0.6 {
		t.Fatalf("%+v %v", m, err)
	}
	if m.String() != "delivered=0.6,failed=0.2,silent=0.2" {
		t.Fatalf("String: %s", m)
	}
	if m, err := ParseMix("silent=1"); err != nil || m != (Mix{Silent: 1}) || m.Delivered() != 0 {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := ParseMix("failed=0.25"); err != nil || m != (Mix{Failed: 0.25}) || m.Delivered() != 0.75 {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"delivered=0.5", "failed=0.7,silent=0.5", "read=1", "failed", "failed=x", "failed=0.1,failed=0.1"} {
		if _, err := ParseMix(bad); err == nil {
			t.Fatalf("ParseMix(%q) accepted", bad)
		}
	}
}

// A mix's fates come out in its shares, and the same attempt id always
// draws the same fate.
func TestFateOfShares(t *testing.T) {
	m := DefaultMixes()["whatsapp"]
	const n = 100_000
	var counts [5]int
	for i := range n {
		id := "r" + strconv.Itoa(i) + "/0"
		f := m.FateOf(id)
		if m.FateOf(id) != f {
			t.Fatalf("%s drew two fates", id)
		}
		counts[f]++
	}
	for f, want := range map[Fate]float64{FateDelivered: m.Delivered(), FateRead: m.Read, FateFailed: m.Failed, FateSilent: m.Silent, FateLate: m.Late} {
		if got := float64(counts[f]) / n; math.Abs(got-want) > 5*math.Sqrt(want*(1-want)/n) {
			t.Errorf("fate %d: share %.4f, want %.4f", f, got, want)
		}
	}
}
