package outcomes

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func closed(flowID, outcome string, at time.Time, took time.Duration, delivered int32, reasons ...string) schemas.FlowEvent {
	s := &schemas.FlowSummary{Outcome: outcome, TimeToOutcomeMs: took.Milliseconds()}
	if delivered >= 0 {
		s.DeliveredStep = &delivered
	}
	for i, r := range append([]string{flow.ReasonInitial}, reasons...) {
		s.Steps = append(s.Steps, schemas.StepSummary{Step: int32(i), Reason: r})
	}
	return schemas.FlowEvent{Type: flow.EventFlowClosed, FlowID: flowID, Outcome: outcome, OccurredAt: at, Summary: s}
}

func TestAggregatorCounts(t *testing.T) {
	a := NewAggregator(func() time.Time { return now })
	for _, ev := range []schemas.FlowEvent{
		{Type: flow.EventFlowStarted, FlowID: "otp", OccurredAt: now.Add(-time.Minute)},
		{Type: flow.EventFlowStarted, FlowID: "otp", OccurredAt: now.Add(-2 * time.Hour)},
		closed("otp", flow.OutcomeDelivered, now.Add(-time.Minute), 4*time.Second, 0),
		closed("otp", flow.OutcomeRead, now.Add(-time.Minute), 40*time.Second, 1, flow.ReasonTimeout),
		closed("otp", flow.OutcomeFailed, now.Add(-3*time.Hour), 5*time.Second, -1, flow.ReasonFailure),
		closed("otp", flow.OutcomeExpired, now.Add(-30*time.Minute), 20*time.Minute, -1, flow.ReasonTimeout),
		closed("", flow.OutcomeCancelled, now.Add(-time.Minute), time.Second, -1), // inline steps
		{Type: flow.EventMultiChannelDelivery, FlowID: "otp", OccurredAt: now.Add(-time.Minute)},
		{Type: flow.EventAttemptSent, FlowID: "otp", OccurredAt: now},                      // not counted
		{Type: flow.EventFlowStarted, FlowID: "otp", OccurredAt: now.Add(-25 * time.Hour)}, // past retention
	} {
		a.Add(ev)
	}
	hour := a.Summary("otp", time.Hour)
	want := Counts{Started: 1, Closed: 3, DeliveredFirst: 1, DeliveredAfterFallback: 1, Expired: 1,
		FallbacksOnTimeout: 2, PaidDuplicates: 1}
	want.TimeToOutcome[0], want.TimeToOutcome[3], want.TimeToOutcome[7] = 1, 1, 1 // 4 s, 40 s, 20 min
	if hour != want {
		t.Fatalf("last hour\n got %+v\nwant %+v", hour, want)
	}
	day := a.Summary("otp", 24*time.Hour)
	if day.Started != 2 || day.Closed != 4 || day.Failed != 1 || day.FallbacksOnFailure != 1 || day.TimeToOutcome[1] != 1 {
		t.Fatalf("last day %+v (5 s is in the 5-15 s bucket)", day)
	}
	if inline := a.Summary("", time.Hour); inline.Cancelled != 1 || inline.Closed != 1 {
		t.Fatalf("inline %+v", inline)
	}
	if total := a.Total(time.Hour); total.Closed != 4 || total.Started != 1 {
		t.Fatalf("total %+v", total)
	}
	a.Add(schemas.FlowEvent{Type: flow.EventRequestRejected, RequestID: "r9", Reason: "flow_not_published: flow_id: ...", OccurredAt: now})
	if r, ok := a.Rejected("r9"); !ok || !strings.HasPrefix(r.Reason, "flow_not_published") {
		t.Fatalf("rejection of r9: %+v %v", r, ok)
	}
	if _, ok := a.Rejected("r1"); ok {
		t.Fatal("a rejection for a request never rejected")
	}
}

// TestAggregatorForgetsOldMinutes: memory holds Retention of minutes, not
// everything ever counted.
func TestAggregatorForgetsOldMinutes(t *testing.T) {
	clock := now
	a := NewAggregator(func() time.Time { return clock })
	a.Add(schemas.FlowEvent{Type: flow.EventFlowStarted, FlowID: "otp", OccurredAt: clock})
	clock = clock.Add(Retention + 2*time.Minute)
	a.Add(schemas.FlowEvent{Type: flow.EventFlowStarted, FlowID: "otp", OccurredAt: clock})
	if n := len(a.minutes); n != 1 {
		t.Fatalf("%d minutes kept, want 1", n)
	}
	if got := a.Summary("otp", Retention).Started; got != 1 {
		t.Fatalf("started %d, want 1", got)
	}
}

func TestChartsSayTheirFigures(t *testing.T) {
	c := Counts{DeliveredFirst: 7, Failed: 2}
	svg := string(HorizontalBars("Outcomes, last hour", OutcomeBars(c)))
	for _, want := range []string{`role="img"`, `<title id="chart-outcomes-last-hour-t">Outcomes, last hour</title>`,
		"delivered on the first channel: 7", "failed: 2", ">7</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	hist := string(ColumnChart("Time to outcome", TimeBars(Counts{TimeToOutcome: [8]int{0, 3}})))
	if !strings.Contains(hist, "under 15s: 3") || !strings.Contains(hist, "over 15m: 0") {
		t.Errorf("histogram:\n%s", hist)
	}
}

// BenchmarkAdd is the ingest rate of the console's figures: a mix of
// FLOW_STARTED and FLOW_CLOSED over 1,000 flows and a day of minutes.
//
//	go test -run XXX -bench Add -benchmem ./internal/outcomes/
func BenchmarkAdd(b *testing.B) {
	a := NewAggregator(func() time.Time { return now })
	evs := make([]schemas.FlowEvent, 10_000)
	for i := range evs {
		at := now.Add(-time.Duration(i%1440) * time.Minute)
		id := fmt.Sprintf("flow-%d", i%1000)
		if i%2 == 0 {
			evs[i] = schemas.FlowEvent{Type: flow.EventFlowStarted, FlowID: id, OccurredAt: at}
		} else {
			evs[i] = closed(id, flow.OutcomeDelivered, at, 7*time.Second, 1, flow.ReasonTimeout)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Add(evs[i%len(evs)])
		i++
	}
}
