package autodelay

import (
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

var p95 = flow.AutoDelay{Percentile: 95, MarginSeconds: 0, MinSeconds: 5, MaxSeconds: 900}

// feed observes n latencies of channel to country, delivered at at: the
// i-th is lat(i).
func feed(e *Estimator, channel, country string, at time.Time, n int, lat func(i int) time.Duration) {
	for i := range n {
		d := lat(i)
		e.Observe(channel, country, at.Add(-d), at)
	}
}

// spread is latencies base+0s .. base+99s in turn: the p95 of 100 of them
// is base+95s (the 95th smallest, rounded up to its second).
func spread(base time.Duration) func(int) time.Duration {
	return func(i int) time.Duration { return base + time.Duration(i%100)*time.Second + 300*time.Millisecond }
}

func TestChoosePercentileAndMargin(t *testing.T) {
	e := New(time.Hour, 50)
	feed(e, "whatsapp", "+44", t0, 100, spread(0))
	c := e.Choose("whatsapp", "+44", p95, 30, t0)
	// 0.3 .. 99.3 s; the 95th is 94.3 s, in the bucket up to 95 s.
	if c.Fallback || c.Seconds != 95 || c.Samples != 100 {
		t.Fatalf("choice %+v, want 95 s from 100 samples", c)
	}
	if !strings.HasPrefix(c.Basis, "p95 95s of 100 samples (whatsapp +44, 1h0m0s)") {
		t.Fatalf("basis %q", c.Basis)
	}
	withMargin := p95
	withMargin.MarginSeconds = 7
	if c := e.Choose("whatsapp", "+44", withMargin, 30, t0); c.Seconds != 102 || !strings.HasSuffix(c.Basis, "+ 7s margin") {
		t.Fatalf("with a margin: %+v", c)
	}
	p50 := p95
	p50.Percentile = 50
	if c := e.Choose("whatsapp", "+44", p50, 30, t0); c.Seconds != 50 {
		t.Fatalf("p50: %+v, want 50 s", c)
	}
	// Another country and another channel know nothing of it.
	for _, k := range [][2]string{{"whatsapp", "+49"}, {"sms", "+44"}} {
		if c := e.Choose(k[0], k[1], p95, 30, t0); !c.Fallback || c.Seconds != 30 {
			t.Fatalf("%v: %+v, want the fallback", k, c)
		}
	}
}

// TestTooFewSamplesFallBack: under MinSamples observations in the window,
// the step's delay_seconds, clamped to its bounds, and the basis says so.
func TestTooFewSamplesFallBack(t *testing.T) {
	e := New(time.Hour, 50)
	feed(e, "whatsapp", "+44", t0, 49, spread(0))
	c := e.Choose("whatsapp", "+44", p95, 30, t0)
	if !c.Fallback || c.Seconds != 30 || c.Samples != 49 {
		t.Fatalf("choice %+v, want the fallback 30 s with 49 samples", c)
	}
	if want := "fallback: too few samples (49 < 50, whatsapp +44, 1h0m0s)"; c.Basis != want {
		t.Fatalf("basis %q, want %q", c.Basis, want)
	}
	bounded := flow.AutoDelay{Percentile: 95, MinSeconds: 40, MaxSeconds: 60}
	if c := e.Choose("whatsapp", "+44", bounded, 30, t0); c.Seconds != 40 {
		t.Fatalf("fallback below min: %+v, want 40", c)
	}
	feed(e, "whatsapp", "+44", t0, 1, spread(0))
	if c := e.Choose("whatsapp", "+44", p95, 30, t0); c.Fallback {
		t.Fatalf("with 50 samples: %+v, want an estimate", c)
	}
}

// TestMinMaxRespected: the estimate is clamped to the step's bounds.
func TestMinMaxRespected(t *testing.T) {
	e := New(time.Hour, 10)
	feed(e, "sms", "+1", t0, 100, spread(0)) // p95 95 s
	if c := e.Choose("sms", "+1", flow.AutoDelay{Percentile: 95, MinSeconds: 5, MaxSeconds: 60}, 30, t0); c.Seconds != 60 {
		t.Fatalf("max 60: %+v", c)
	}
	fast := New(time.Hour, 10)
	feed(fast, "sms", "+1", t0, 100, func(int) time.Duration { return 800 * time.Millisecond })
	if c := fast.Choose("sms", "+1", flow.AutoDelay{Percentile: 95, MinSeconds: 20, MaxSeconds: 60}, 30, t0); c.Seconds != 20 {
		t.Fatalf("min 20: %+v", c)
	}
	// Beyond every bucket: the overflow's edge, then the step's max.
	slow := New(time.Hour, 10)
	feed(slow, "sms", "+1", t0, 100, func(int) time.Duration { return time.Hour })
	if c := slow.Choose("sms", "+1", p95, 30, t0); c.Seconds != 900 {
		t.Fatalf("all beyond 900 s: %+v, want 900", c)
	}
}

// TestShiftedDistributionWithinTheWindow: the choice follows the latency
// as it moves. A slow hour, then fast observations: while the slow ones are
// in the window the percentile is theirs, once they leave it only the fast
// ones count.
func TestShiftedDistributionWithinTheWindow(t *testing.T) {
	e := New(time.Hour, 50)
	feed(e, "whatsapp", "+44", t0, 200, spread(60*time.Second)) // 60..159 s: p95 155 s
	if c := e.Choose("whatsapp", "+44", p95, 30, t0); c.Seconds != 155 {
		t.Fatalf("slow: %+v, want 155", c)
	}
	// Half an hour later, as many fast observations (0..99 s): the
	// window holds both; p95 of the mix is in the slow part still.
	later := t0.Add(30 * time.Minute)
	feed(e, "whatsapp", "+44", later, 200, spread(0))
	mixed := e.Choose("whatsapp", "+44", p95, 30, later)
	if mixed.Samples != 400 || mixed.Seconds <= 99 || mixed.Seconds >= 155 {
		t.Fatalf("mixed: %+v, want 400 samples and a delay between the two", mixed)
	}
	// An hour and a slot after the slow ones: only the fast remain.
	gone := t0.Add(time.Hour + 11*time.Minute)
	c := e.Choose("whatsapp", "+44", p95, 30, gone)
	if c.Samples != 200 || c.Seconds != 95 {
		t.Fatalf("after the window: %+v, want 95 s from the 200 fast samples", c)
	}
	// And later still, nothing: back to the fallback.
	if c := e.Choose("whatsapp", "+44", p95, 30, later.Add(2*time.Hour)); !c.Fallback || c.Samples != 0 {
		t.Fatalf("all expired: %+v", c)
	}
}

// TestColdStartFallsBack: a new estimator (a restarted processor) knows
// nothing and chooses the fallback for each auto step not sent yet; fixed
// steps and sent ones get no choice.
func TestColdStartFallsBack(t *testing.T) {
	auto := p95
	steps := []flow.StepDef{{Channel: "whatsapp", DelaySeconds: 30, Auto: &auto}, {Channel: "sms", DelaySeconds: 60},
		{Channel: "rcs", DelaySeconds: 45, Auto: &auto}}
	country := CountryOf("+447700900123", steps)
	d := New(0, 0).Delays(steps, 0, country, t0)
	if country != "+44" || len(d) != 2 || d[0].Seconds != 30 || !strings.HasPrefix(d[0].Basis, "fallback: too few samples (0 < 50, whatsapp +44") ||
		d[2].Seconds != 45 {
		t.Fatalf("cold: %q %+v", country, d)
	}
	if d := New(0, 0).Delays(steps, 1, country, t0); len(d) != 1 || d[2].Seconds != 45 {
		t.Fatalf("from step 1: %+v", d)
	}
	// No auto step: no choice, and no country kept.
	fixed := []flow.StepDef{{Channel: "sms", DelaySeconds: 60}}
	if d, c := New(0, 0).Delays(fixed, 0, "+44", t0), CountryOf("+447700900123", fixed); d != nil || c != "" {
		t.Fatalf("fixed flow: %v %q", d, c)
	}
	// A nil estimator chooses nothing: the machine's BasisNotChosen.
	if d := (*Estimator)(nil).Delays(steps, 0, country, t0); d != nil {
		t.Fatalf("nil estimator: %+v", d)
	}
}

func TestKeysBounded(t *testing.T) {
	e := New(time.Hour, 1)
	e.maxKeys = 2
	for _, c := range []string{"+1", "+44", "+49", "+49"} {
		e.Observe("sms", c, t0.Add(-time.Second), t0)
	}
	if keys, dropped := e.Keys(); keys != 2 || dropped != 2 {
		t.Fatalf("keys %d dropped %d, want 2 and 2", keys, dropped)
	}
}

func TestCountryCode(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550100": "+1", "+18765550100": "+1", "+79161234567": "+7", "+447700900123": "+44",
		"+4915112345678": "+49", "+33612345678": "+33", "+5511987654321": "+55", "+2348031234567": "+234",
		"+35312345678": "+353", "+97150123456": "+971", "+85212345678": "+852", "+27821234567": "+27",
		"": "", "+": "", "4915112345678": "", "+x1": "", "+3": "", "+35": "",
	} {
		if got := CountryCode(in); got != want {
			t.Errorf("CountryCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuckets(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		edge int
	}{{0, 1}, {-time.Second, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2},
		{120 * time.Second, 120}, {121 * time.Second, 125}, {125 * time.Second, 125}, {126 * time.Second, 130},
		{900 * time.Second, 900}, {901 * time.Second, 901}, {time.Hour, 901}} {
		if got := upperEdge(bucketOf(tc.d)); got != tc.edge {
			t.Errorf("%v: edge %d, want %d", tc.d, got, tc.edge)
		}
	}
}

// BenchmarkObserveAndChoose: what auto delays add to a flow: one Choose
// per input of a flow with an auto step still to send, one Observe per delivery (go test -bench . ./processor/autodelay/).
func BenchmarkObserveAndChoose(b *testing.B) {
	e := New(time.Hour, 50)
	countries := []string{"+1", "+44", "+49", "+55", "+91"}
	for i := range 10_000 {
		e.Observe("whatsapp", countries[i%len(countries)], t0.Add(-time.Duration(i%60)*time.Second), t0)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := countries[i%len(countries)]
		e.Observe("whatsapp", c, t0.Add(-7*time.Second), t0)
		_ = e.Choose("whatsapp", c, p95, 30, t0)
	}
}
