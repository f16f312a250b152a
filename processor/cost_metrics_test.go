package processor

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestCostMetrics: fallback.cost and fallback.wasted_cost add up the
// summary's known step costs by channel and currency, in the currency's
// unit, and the waste a delivery after the close reveals under
// after_close; unknown costs add nothing.
func TestCostMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	ctx := context.Background()
	micros := func(v int64) *int64 { return &v }
	closed := schemas.FlowEvent{Type: flow.EventFlowClosed, Summary: &schemas.FlowSummary{Outcome: flow.OutcomeDelivered,
		Steps: []schemas.StepSummary{
			{Channel: "whatsapp", CostMicros: micros(50_000), CostCurrency: "USD"},
			{Channel: "sms", CostMicros: micros(78_500), CostCurrency: "EUR", Wasted: true},
			{Channel: "rcs"}, // cost unknown
		}}}
	m.observeEvent(ctx, closed)
	m.observeEvent(ctx, closed)
	m.observeEvent(ctx, schemas.FlowEvent{Type: flow.EventDLRDiscarded, Reason: flow.DiscardFlowClosed,
		WastedMicros: map[string]int64{"EUR": 10_000}})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[[2]string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			sum, ok := md.Data.(metricdata.Sum[float64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				ch, _ := dp.Attributes.Value(attribute.Key("channel"))
				cur, _ := dp.Attributes.Value(attribute.Key("currency"))
				if got[md.Name] == nil {
					got[md.Name] = map[[2]string]float64{}
				}
				got[md.Name][[2]string{ch.AsString(), cur.AsString()}] += dp.Value
			}
		}
	}
	want := map[string]map[[2]string]float64{
		"fallback.cost":        {{"whatsapp", "USD"}: 0.1, {"sms", "EUR"}: 0.157},
		"fallback.wasted_cost": {{"sms", "EUR"}: 0.157, {WastedAfterClose, "EUR"}: 0.01},
	}
	for name, series := range want {
		if len(got[name]) != len(series) {
			t.Errorf("%s: %v, want %v", name, got[name], series)
		}
		for k, v := range series {
			if d := got[name][k] - v; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s %v = %v, want %v", name, k, got[name][k], v)
			}
		}
	}
}
