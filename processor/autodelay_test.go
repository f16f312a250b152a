package processor

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestAutoDelayLearnsAndSurvivesARestart: the consumer learns each
// WhatsApp delivery's latency (from its send to the DLR's reported_at),
// once per attempt however often Kafka delivers the DLR, and a request
// with an auto step gets its delay from them; the choice is stored with
// the flow. A restarted processor (a new estimator, the same Redis) knows
// nothing: a new flow falls back to delay_seconds, the replayed request of
// the old one chooses nothing again.
func TestAutoDelayLearnsAndSurvivesARestart(t *testing.T) {
	c, names, store := redisConsumer(t)
	c.engine.delays = autodelay.New(time.Hour, 3)
	ctx := context.Background()
	offset := int64(0)
	request := func(c *Consumer, req schemas.SendRequest, off int64) *kgo.Record {
		v, err := c.codecs.SendRequest.Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: names.Requests, Key: []byte(req.RequestID), Value: v, Offset: off, Timestamp: t0()}
	}
	dlr := func(attempt string, latency time.Duration) *kgo.Record {
		offset++
		v, err := c.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: attempt, Channel: "whatsapp",
			Status: "delivered", ReportedAt: t0().Add(latency)})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: names.DLR, Key: []byte(attempt), Value: v, Offset: offset, Timestamp: t0()}
	}
	for i, id := range []string{"l1", "l2", "l3"} {
		applyForEvents(t, c, store, request(c, limitRequest(id), int64(i)))
		rec := dlr(id+"/0", time.Duration(10+i)*time.Second) // 10, 11, 12 s
		applyForEvents(t, c, store, rec)
		applyForEvents(t, c, store, rec) // redelivered: applied already, not learnt twice
	}
	choice := c.engine.delays.Choose("whatsapp", "+49", flow.AutoDelay{Percentile: 95, MinSeconds: 5, MaxSeconds: 900}, 30, t0())
	if choice.Samples != 3 || choice.Seconds != 12 {
		t.Fatalf("learnt %+v, want 3 samples and a p95 of 12 s", choice)
	}

	auto := limitRequest("a1")
	auto.Steps[0].DelayAuto = &schemas.DelayAuto{Percentile: 95, MarginSeconds: 3}
	autoReq := request(c, auto, 10)
	evs := applyForEvents(t, c, store, autoReq)
	sent := findEvent(t, evs, flow.EventAttemptSent)
	if sent.DelaySeconds != 15 || !strings.HasPrefix(sent.DelayBasis, "p95 12s of 3 samples (whatsapp +49") {
		t.Fatalf("ATTEMPT_SENT delay %d %q, want 15 s from p95 12 s + 3 s", sent.DelaySeconds, sent.DelayBasis)
	}
	snaps, err := store.Load(ctx, []string{"a1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeSnapshot(snaps[0])
	if err != nil || st.Steps[0].DelaySeconds != 15 || st.Country != "+49" || !st.DeadlineTime().Equal(t0().Add(15*time.Second)) {
		t.Fatalf("stored %+v, %v", st, err)
	}

	// A flow whose SMS step is auto too: its delay is chosen when the SMS
	// goes out, from what was observed by then (nothing of SMS when the
	// flow started).
	both := limitRequest("a3")
	both.Steps[0].DelayAuto, both.Steps[1].DelayAuto = &schemas.DelayAuto{}, &schemas.DelayAuto{}
	applyForEvents(t, c, store, request(c, both, 12))
	for i := range 3 {
		c.engine.delays.Observe("sms", "+49", t0(), t0().Add(time.Duration(20+i)*time.Second)) // 20 to 22 s
	}
	offset++
	failed, err := c.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: "a3/0", Channel: "whatsapp", Status: "failed", ReportedAt: t0().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	sent = findEvent(t, applyForEvents(t, c, store, &kgo.Record{Topic: names.DLR, Key: []byte("a3/0"), Value: failed, Offset: offset, Timestamp: t0()}),
		flow.EventAttemptSent)
	if *sent.Step != 1 || sent.DelaySeconds != 22 || !strings.HasPrefix(sent.DelayBasis, "p95 22s of 3 samples (sms +49") {
		t.Fatalf("SMS ATTEMPT_SENT step %d delay %d %q, want 22 s chosen at its send", *sent.Step, sent.DelaySeconds, sent.DelayBasis)
	}

	// The restart.
	restarted, _ := testConsumer(t, store)
	restarted.engine.delays = autodelay.New(time.Hour, 3)
	evs = applyForEvents(t, restarted, store, autoReq)
	if len(evs) != 0 {
		// Already applied (its offset is in the flow): no event at all.
		t.Fatalf("replayed request: %v", evs)
	}
	again, _ := store.Load(ctx, []string{"a1"})
	if again[0].Version != snaps[0].Version {
		t.Fatal("the replayed request changed the flow")
	}
	cold := limitRequest("a2")
	cold.Steps[0].DelayAuto = &schemas.DelayAuto{}
	sent = findEvent(t, applyForEvents(t, restarted, store, request(restarted, cold, 11)), flow.EventAttemptSent)
	if sent.DelaySeconds != 30 || !strings.HasPrefix(sent.DelayBasis, "fallback: too few samples (0 < 3") {
		t.Fatalf("cold ATTEMPT_SENT %d %q, want the fallback 30 s", sent.DelaySeconds, sent.DelayBasis)
	}
}

func findEvent(t *testing.T, evs []schemas.FlowEvent, typ string) schemas.FlowEvent {
	t.Helper()
	for _, ev := range evs {
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("no %s in %d events", typ, len(evs))
	return schemas.FlowEvent{}
}

// TestAutoDelayMetric: fallback.auto_delays counts the ATTEMPT_SENT of
// auto steps by channel and basis; a fixed step's counts nothing.
func TestAutoDelayMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	ctx := context.Background()
	for _, ev := range []schemas.FlowEvent{
		{Type: flow.EventAttemptSent, Channel: "whatsapp", DelaySeconds: 34, DelayBasis: "p95 32s of 412 samples (whatsapp +44, 1h0m0s) + 2s margin"},
		{Type: flow.EventAttemptSent, Channel: "whatsapp", DelaySeconds: 30, DelayBasis: "fallback: too few samples (3 < 50, whatsapp +44, 1h0m0s)"},
		{Type: flow.EventAttemptSent, Channel: "whatsapp", DelaySeconds: 30, DelayBasis: flow.BasisNotChosen},
		{Type: flow.EventAttemptSent, Channel: "sms"},
	} {
		m.observeEvent(ctx, ev)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name != "fallback.auto_delays" {
				continue
			}
			for _, dp := range md.Data.(metricdata.Sum[int64]).DataPoints {
				ch, _ := dp.Attributes.Value(attribute.Key("channel"))
				b, _ := dp.Attributes.Value(attribute.Key("basis"))
				got[ch.AsString()+"/"+b.AsString()] += dp.Value
			}
		}
	}
	if want := map[string]int64{"whatsapp/estimate": 1, "whatsapp/fallback": 2}; !maps.Equal(got, want) {
		t.Fatalf("fallback.auto_delays %v, want %v", got, want)
	}
}
