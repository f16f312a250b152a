package simulator

import (
	"strconv"
	"testing"
	"time"
)

// TestMarketDraws: an attempt's answer depends on its id alone, and the
// shares and medians come out as the market says.
func TestMarketDraws(t *testing.T) {
	m := DefaultMarkets()[0].Latency["whatsapp"]
	if m.Draw("r1/0") != m.Draw("r1/0") {
		t.Fatal("the same attempt drew twice differently")
	}
	const n = 20_000
	failed, silent, slow := 0, 0, 0
	var fast []time.Duration
	for i := range n {
		o := m.Draw("r" + strconv.Itoa(i) + "/0")
		switch {
		case o.Failed:
			failed++
		case o.Silent:
			silent++
		case o.After > 20*time.Second:
			slow++
		default:
			fast = append(fast, o.After)
		}
	}
	share := func(k int) float64 { return float64(k) / n }
	if f := share(failed); f < 0.09 || f > 0.11 {
		t.Errorf("failed share %.3f, want about 0.10", f)
	}
	if s := share(silent); s < 0.11 || s > 0.13 {
		t.Errorf("silent share %.3f, want about 0.12", s)
	}
	// 30% of the deliveries (78% of attempts) are slow, median 60 s; a few
	// fast ones pass 20 s and a few slow ones stay under.
	if s := share(slow); s < 0.19 || s > 0.26 {
		t.Errorf("slow share %.3f, want about 0.23", s)
	}
	// Markets split the flows by share.
	counts := map[string]int{}
	for i := range n {
		counts[MarketOf(DefaultMarkets(), i).Name]++
	}
	if c := share(counts["between"]); c < 0.18 || c > 0.22 {
		t.Errorf("between's share %.3f, want about 0.2", c)
	}
	if r := DefaultMarkets()[1].Recipient(42); r != "+55700000042" {
		t.Errorf("recipient %q", r)
	}
}
