package bench

import (
	"reflect"
	"testing"

	"github.com/fallbackd/fallback/internal/simulator"
)

// TestCompareDelays: the comparison is repeatable (the same traffic gives
// the same figures), a longer fixed delay pays for fewer duplicates with a
// slower p95, and auto learns each market's WhatsApp: a shorter delay
// where it is fast than where it is slow. Small, so it runs in a blink;
// BENCHMARKS.md has the full run.
func TestCompareDelays(t *testing.T) {
	cfg := DefaultCompare(simulator.DefaultMarkets())
	cfg.Flows, cfg.Warmup, cfg.MinSamples = 3000, 1000, 20
	policies, err := ParseDelayPolicies("5,120,auto")
	if err != nil {
		t.Fatal(err)
	}
	rs := Compare(cfg, policies)
	if again := Compare(cfg, policies); !reflect.DeepEqual(rs, again) {
		t.Fatalf("two runs differ:\n%+v\n%+v", rs, again)
	}
	short, long, auto := rs[0], rs[1], rs[2]
	if short.PaidDuplicatesPer1000 <= long.PaidDuplicatesPer1000 || short.TTDp95Ms >= long.TTDp95Ms {
		t.Fatalf("5 s %+v vs 120 s %+v: want more duplicates and a faster p95", short, long)
	}
	if short.WastedMicros <= long.WastedMicros || short.DeliveredShare != long.DeliveredShare {
		t.Fatalf("wasted %d vs %d, delivered %v vs %v", short.WastedMicros, long.WastedMicros, short.DeliveredShare, long.DeliveredShare)
	}
	fast, slow := auto.MeanDelayS["fast-whatsapp"], auto.MeanDelayS["slow-whatsapp"]
	if !(fast < 20 && slow > 60) || auto.Fallbacks != 0 {
		t.Fatalf("auto's delays: fast market %.1f s, slow %.1f s, %d fallback choices", fast, slow, auto.Fallbacks)
	}
	for _, bad := range []string{"", "4", "901", "auto,x", "1.5"} {
		if _, err := ParseDelayPolicies(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
