package observe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestOneTraceFromRequestToClose runs a flow whose WhatsApp step stays
// silent, so the sweeper fires the fallback by timeout, and whose SMS step
// delivers, through a processor recording spans in memory. Every span of
// the flow is in the trace of the request's traceparent, from the request
// span to the close, and the SMS send the sweeper produced carries it.
func TestOneTraceFromRequestToClose(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a flow through a processor on the embedded Kafka (a few seconds)")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// The processor's TracerProvider defaults to the global one.
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	r := newRig(t)
	r.run()
	r.waitReady()
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	req := r.request(otp("t1"))
	req.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + parentID + "-01")},
		{Key: "tracestate", Value: []byte("vendor=abc")}}
	r.produce(req)

	// Step 0 stays silent: 30 s, 1.5 s on the rig's clock, then the SMS.
	waitSpan := func(what string, ok func(sdktrace.ReadOnlySpan) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			for _, s := range exp.GetSpans().Snapshots() {
				if ok(s) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; spans: %v", what, names(exp.GetSpans()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitSpan("the SMS send", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "fallback.send" && attr(s, "fallback.channel") == "sms"
	})
	r.produce(r.dlr("t1/1", "sms", "DELIVRD"))
	waitSpan("the close", func(s sdktrace.ReadOnlySpan) bool { return s.Name() == "fallback.close" })

	count := map[string]int{}
	var requestSpan trace.SpanContext
	for _, s := range exp.GetSpans().Snapshots() {
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name(), got, traceID)
		}
		count[s.Name()]++
		switch s.Name() {
		case "fallback.request":
			requestSpan = s.SpanContext()
			if s.Parent().SpanID().String() != parentID {
				t.Errorf("request span's parent %s, want the request's %s", s.Parent().SpanID(), parentID)
			}
		case "fallback.fallback":
			if got := attr(s, "fallback.reason"); got != "timeout" {
				t.Errorf("fallback reason %q, want timeout", got)
			}
		case "fallback.close":
			if got := attr(s, "fallback.outcome"); got != "DELIVERED" {
				t.Errorf("close outcome %q, want DELIVERED", got)
			}
		}
	}
	for name, want := range map[string]int{"fallback.request": 1, "fallback.send": 2, "fallback.fallback": 1,
		"fallback.dlr": 1, "fallback.close": 1} {
		if count[name] != want {
			t.Errorf("%d %s spans, want %d (all: %v)", count[name], name, want, count)
		}
	}
	// The flow's spans are children of the request span: one tree.
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() != "fallback.request" && s.Parent().SpanID() != requestSpan.SpanID() {
			t.Errorf("span %s's parent %s, want the request span %s", s.Name(), s.Parent().SpanID(), requestSpan.SpanID())
		}
	}

	// The SMS send record, fired by the sweeper, carries the trace.
	c, err := kgo.NewClient(kgo.SeedBrokers(r.client.OptValue(kgo.SeedBrokers).([]string)...), kgo.ConsumeTopics(r.names.Sends("sms")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no SMS send record for t1/1")
		}
		var found *kgo.Record
		fs.EachRecord(func(rec *kgo.Record) {
			if string(rec.Key) == "t1/1" {
				found = rec
			}
		})
		if found == nil {
			continue
		}
		var tp, ts string
		for _, h := range found.Headers {
			switch h.Key {
			case "traceparent":
				tp = string(h.Value)
			case "tracestate":
				ts = string(h.Value)
			}
		}
		if !strings.HasPrefix(tp, "00-"+traceID+"-"+requestSpan.SpanID().String()+"-") {
			t.Errorf("SMS send traceparent %q, want trace %s under the request span %s", tp, traceID, requestSpan.SpanID())
		}
		if ts != "vendor=abc" {
			t.Errorf("SMS send tracestate %q, want vendor=abc", ts)
		}
		return
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name + "/" + s.SpanContext.TraceID().String()
	}
	return out
}
