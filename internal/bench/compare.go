package bench

import (
	"container/heap"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/flow"
)

// DelayPolicy is the first step's delay in a comparison: fixed seconds, or
// Auto (delay_auto with CompareAuto's settings).
type DelayPolicy struct {
	Seconds int32
	Auto    bool
}

func (p DelayPolicy) String() string {
	if p.Auto {
		return "auto"
	}
	return strconv.Itoa(int(p.Seconds)) + "s"
}

// ParseDelayPolicies reads "5,15,30,60,120,auto".
func ParseDelayPolicies(s string) ([]DelayPolicy, error) {
	var out []DelayPolicy
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.EqualFold(part, "auto") {
			out = append(out, DelayPolicy{Auto: true})
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(part, "s"))
		if err != nil || n < 5 || n > 900 {
			return nil, fmt.Errorf("--compare-delays: %q is neither auto nor whole seconds in 5..900", part)
		}
		out = append(out, DelayPolicy{Seconds: int32(n)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--compare-delays: no policy in %q", s)
	}
	return out, nil
}

// CompareConfig is a delay comparison: the same flows against each policy.
type CompareConfig struct {
	Markets  []simulator.Market
	Flows    int
	Interval time.Duration // between two flows' starts (provider time)
	// Warmup is how many first flows are not counted (every policy alike):
	// an auto delay starts cold, on its fallback delay.
	Warmup int
	// Auto is the auto policy's delay_auto; Fallback its delay_seconds.
	Auto     flow.AutoDelay
	Fallback int32
	// LastDelay is the SMS step's delay (the flow's end after it).
	LastDelay  int32
	Window     time.Duration // the estimator's
	MinSamples int
}

// DefaultCompare is the evaluation of BENCHMARKS.md.
func DefaultCompare(markets []simulator.Market) CompareConfig {
	return CompareConfig{Markets: markets, Flows: 60_000, Interval: 250 * time.Millisecond, Warmup: 15_000,
		Auto: flow.AutoDelay{Percentile: 95, MarginSeconds: 2, MinSeconds: 5, MaxSeconds: 300}, Fallback: 30,
		LastDelay: 300, Window: time.Hour, MinSamples: autodelay.DefaultMinSamples}
}

// PolicyResult is one policy's figures over the counted flows.
type PolicyResult struct {
	Policy string `json:"policy"`
	Flows  int    `json:"flows"`
	// PaidDuplicatesPer1000: SMS sent although the WhatsApp message was,
	// in the end, delivered (wasted steps), per 1,000 flows.
	PaidDuplicatesPer1000 float64 `json:"paid_duplicates_per_1000"`
	// WastedMicros and CostMicros are the flows' wasted and total cost
	// (USD micros), from the events: FLOW_CLOSED's summary plus the
	// DLR_DISCARDED of deliveries after the close.
	WastedMicros    int64   `json:"wasted_micros"`
	CostMicros      int64   `json:"cost_micros"`
	WastedPerFlowUS float64 `json:"wasted_usd_per_1000_flows"`
	// DeliveredShare is the flows that reached the person on some channel;
	// TTD (time to delivery) is from the request to the first delivery of
	// any step, over them.
	DeliveredShare float64 `json:"delivered_share"`
	TTDp50Ms       int64   `json:"ttd_p50_ms"`
	TTDp95Ms       int64   `json:"ttd_p95_ms"`
	FallbackShare  float64 `json:"fallback_share"`
	// MeanDelayS is the first step's mean delay, by market for auto.
	MeanDelayS map[string]float64 `json:"mean_delay_s"`
	Fallbacks  int                `json:"auto_fallback_choices,omitempty"`
}

// Compare runs cfg's flows against each policy. It runs the processor's
// state machine (processor/flow) and, for auto, its estimator
// (processor/autodelay) on a virtual clock: the providers answer by
// simulator.Market, every DLR is applied at its provider time and every
// deadline at its time, exactly, with no Kafka, no Redis and no
// lateness. So a policy's figures are its own, not the run's, and the
// same seed gives the same table on any machine.
func Compare(cfg CompareConfig, policies []DelayPolicy) []PolicyResult {
	out := make([]PolicyResult, 0, len(policies))
	for _, p := range policies {
		out = append(out, compareOne(cfg, p))
	}
	return out
}

type simEvent struct {
	at    int64 // unix ms
	seq   int64
	flow  int
	input flow.Input
}

type eventQueue []simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type simFlow struct {
	market    simulator.Market
	state     *flow.State
	start     int64
	delivered int64 // first delivery of any step, unix ms; 0: none
	wasted    int64
	cost      int64
	sends     int
	delay0    int32
	fallback  bool
}

var compareEpoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func compareOne(cfg CompareConfig, p DelayPolicy) PolicyResult {
	est := autodelay.New(cfg.Window, cfg.MinSamples)
	flows := make([]simFlow, cfg.Flows)
	q := &eventQueue{}
	var seq int64
	push := func(at int64, i int, in flow.Input) {
		seq++
		heap.Push(q, simEvent{at: at, seq: seq, flow: i, input: in})
	}
	for i := range flows {
		push(compareEpoch.Add(time.Duration(i)*cfg.Interval).UnixMilli(), i, nil) // nil: the start
	}
	// outputs schedules what a transition sent (the providers' answers)
	// and its deadline, and keeps what the events say the flow cost.
	outputs := func(i int, out flow.Output) {
		f := &flows[i]
		for _, s := range out.Sends {
			f.sends++
			o := f.market.Latency[s.Channel].Draw(s.AttemptID)
			sent := s.SentAt.UnixMilli()
			if o.Delivered && (f.delivered == 0 || sent+o.After.Milliseconds() < f.delivered) {
				f.delivered = sent + o.After.Milliseconds()
			}
			var rep flow.Report
			switch {
			case o.Silent:
				continue
			case o.Failed:
				rep = flow.Report{Status: "failed", Kind: flow.Failed}
			default:
				rep = flow.Report{Status: "delivered", Kind: flow.Delivered}
			}
			at := time.UnixMilli(sent).Add(o.After)
			rep.RequestID, rep.AttemptID, rep.Channel, rep.Step, rep.ReportedAt = s.RequestID, s.AttemptID, s.Channel, int(s.Step), at
			push(at.UnixMilli(), i, rep)
		}
		for _, ev := range out.Events {
			if ev.Type == flow.EventFallbackTriggered {
				f.fallback = true
			}
			f.wasted += ev.WastedMicros["USD"]
			if ev.Summary != nil {
				f.wasted += ev.Summary.WastedMicros["USD"]
				f.cost += ev.Summary.CostMicros["USD"]
			}
		}
		if st := f.state; st != nil && !st.Closed && len(out.Sends) > 0 {
			push(st.DeadlineTime().UnixMilli(), i, flow.DeadlineElapsed{Step: st.Current})
		}
	}
	for q.Len() > 0 {
		ev := heap.Pop(q).(simEvent)
		f := &flows[ev.flow]
		now := time.UnixMilli(ev.at)
		if ev.input == nil {
			f.market = simulator.MarketOf(cfg.Markets, ev.flow)
			recipient := f.market.Recipient(ev.flow)
			steps := compareSteps(cfg, p, f.market)
			country := autodelay.CountryOf(recipient, steps)
			var out flow.Output
			// As the engine does (engine.autoDelays): the choices for the
			// steps not sent yet come with each input.
			f.state, out = flow.ApplyWith(nil, flow.Start{RequestID: "c" + strconv.Itoa(ev.flow), Recipient: recipient,
				Steps: steps, Country: country}, now, est.Delays(steps, 0, country, now))
			f.start, f.delay0 = ev.at, f.state.Steps[0].DelaySeconds
			outputs(ev.flow, out)
			continue
		}
		before := f.state
		var delays flow.Delays
		if !before.Closed {
			delays = est.Delays(before.Steps, len(before.Attempts), before.Country, now)
		}
		next, out := flow.ApplyWith(before, ev.input, now, delays)
		// What the processor's engine learns: each attempt's first
		// delivery, from its send (engine.go, deliveries).
		if rep, ok := ev.input.(flow.Report); ok && rep.Kind.IsSuccess() && out.Changed &&
			!before.Attempts[rep.Step].Reached() {
			est.Observe(rep.Channel, f.market.Country, time.UnixMilli(before.Attempts[rep.Step].SentAt), rep.ReportedAt)
		}
		f.state = next
		outputs(ev.flow, out)
	}
	return summarise(cfg, p, flows[min(cfg.Warmup, len(flows)):])
}

// compareSteps are the compared flow: WhatsApp by the policy, then SMS.
func compareSteps(cfg CompareConfig, p DelayPolicy, m simulator.Market) []flow.StepDef {
	price := func(channel string) flow.Price {
		return flow.Price{Micros: m.Prices[channel], Currency: "USD"}
	}
	wa := flow.StepDef{Channel: "whatsapp", From: "+15550000000", Template: "otp", DelaySeconds: p.Seconds, Price: price("whatsapp")}
	if p.Auto {
		a := cfg.Auto
		wa.Auto, wa.DelaySeconds = &a, cfg.Fallback
	}
	return []flow.StepDef{wa,
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: cfg.LastDelay, Price: price("sms")}}
}

func summarise(cfg CompareConfig, p DelayPolicy, flows []simFlow) PolicyResult {
	r := PolicyResult{Policy: p.String(), Flows: len(flows), MeanDelayS: map[string]float64{}}
	var ttd []int64
	dup, fellBack := 0, 0
	delaySum, delayN := map[string]float64{}, map[string]int{}
	for _, f := range flows {
		if f.delivered != 0 {
			ttd = append(ttd, f.delivered-f.start)
		}
		// A wasted step: sent after one that, in the end, delivered.
		if f.wasted > 0 || (f.sends > 1 && f.state.Attempts[0].Reached()) {
			dup++
		}
		if f.fallback {
			fellBack++
		}
		if strings.HasPrefix(f.state.Steps[0].DelayBasis, "fallback:") {
			r.Fallbacks++
		}
		r.WastedMicros += f.wasted
		r.CostMicros += f.cost
		delaySum[f.market.Name] += float64(f.delay0)
		delayN[f.market.Name]++
	}
	for k, v := range delaySum {
		r.MeanDelayS[k] = math.Round(v/float64(delayN[k])*10) / 10
	}
	n := float64(len(flows))
	r.PaidDuplicatesPer1000 = math.Round(float64(dup)/n*1000*10) / 10
	r.WastedPerFlowUS = math.Round(float64(r.WastedMicros)/n/1000*1000) / 1000 // USD per 1,000 flows
	r.DeliveredShare = math.Round(float64(len(ttd))/n*10000) / 10000
	r.FallbackShare = math.Round(float64(fellBack)/n*10000) / 10000
	slices.Sort(ttd)
	r.TTDp50Ms, r.TTDp95Ms = pct(ttd, 50), pct(ttd, 95)
	return r
}

func pct(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*float64(p)/100)) - 1
	return sorted[max(i, 0)]
}

// ParetoCheck says, for the auto policy, whether it meets the bar:
// fewer paid duplicates than every fixed delay whose p95 time to delivery
// is no worse, and a better p95 than every fixed delay with no more paid
// duplicates. "" when it does, else why not.
func ParetoCheck(rs []PolicyResult) string {
	var auto *PolicyResult
	for i := range rs {
		if rs[i].Policy == "auto" {
			auto = &rs[i]
		}
	}
	if auto == nil {
		return "no auto policy"
	}
	var why []string
	for _, r := range rs {
		if r.Policy == "auto" {
			continue
		}
		if r.TTDp95Ms <= auto.TTDp95Ms && r.PaidDuplicatesPer1000 <= auto.PaidDuplicatesPer1000 {
			why = append(why, fmt.Sprintf("%s has p95 %d ms <= %d and duplicates %.1f <= %.1f", r.Policy,
				r.TTDp95Ms, auto.TTDp95Ms, r.PaidDuplicatesPer1000, auto.PaidDuplicatesPer1000))
		}
	}
	return strings.Join(why, "; ")
}

// WriteCompare prints the table.
func WriteCompare(w io.Writer, title string, rs []PolicyResult) {
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "| policy | paid duplicates / 1,000 flows | wasted USD / 1,000 flows | cost USD / 1,000 flows | p50 time to delivery | p95 time to delivery | delivered | fell back | mean WhatsApp delay by market |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		var names []string
		for k := range r.MeanDelayS {
			names = append(names, k)
		}
		sort.Strings(names)
		var delays []string
		for _, k := range names {
			delays = append(delays, fmt.Sprintf("%s %.1fs", k, r.MeanDelayS[k]))
		}
		n := float64(r.Flows)
		fmt.Fprintf(w, "| %s | %.1f | %.3f | %.3f | %.1f s | %.1f s | %.2f%% | %.2f%% | %s |\n", r.Policy, r.PaidDuplicatesPer1000,
			float64(r.WastedMicros)/n/1000, float64(r.CostMicros)/n/1000, float64(r.TTDp50Ms)/1000, float64(r.TTDp95Ms)/1000,
			r.DeliveredShare*100, r.FallbackShare*100, strings.Join(delays, ", "))
	}
}
