package processor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fallbackd/fallback/processor/flow"
)

// Tracing. A flow keeps the W3C trace context of the request that started
// it in its state (flow.State.TraceParent/TraceState): the request span's
// when tracing is on, else the request's own. Every send and event the flow
// produces carries it in its headers, including the sends a DLR or the
// sweeper fires long after the request, and the spans of its sends, DLRs,
// fallbacks and close are children of it: one trace from request to close.
// With the no-op tracer (the default) no span is recorded, and the stored
// context is the request's, as the sends carried before.

const tracerName = "github.com/fallbackd/fallback/processor"

var (
	traceContext = propagation.TraceContext{}
	noopTracer   = noop.NewTracerProvider().Tracer(tracerName)
)

// newTracer is the processor's tracer from tp, the global provider when nil.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// headerCarrier adapts record headers to the propagation API.
type headerCarrier struct{ h *[]kgo.RecordHeader }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.h {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	*c.h = append(*c.h, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}

// startRequestSpan starts the span of an accepted request, a child of the
// context in its (bounded) trace headers, and returns it with the trace
// context the flow keeps: the span's, or the request's when the span does
// not record.
func startRequestSpan(tracer trace.Tracer, r *kgo.Record, requestID string) (trace.Span, string, string) {
	if tracer == nil {
		tracer = noopTracer
	}
	in := traceHeaders(r)
	ctx := traceContext.Extract(context.Background(), headerCarrier{&in})
	ctx, span := tracer.Start(ctx, "fallback.request", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("fallback.request_id", requestID),
			attribute.String("messaging.destination.name", r.Topic),
			attribute.Int("messaging.kafka.destination.partition", int(r.Partition)),
			attribute.Int64("messaging.kafka.message.offset", r.Offset)))
	if !span.IsRecording() {
		// The request's own headers, as copied before tracing existed.
		var tp, ts string
		for _, h := range in {
			switch h.Key {
			case "traceparent":
				tp = string(h.Value)
			case "tracestate":
				ts = string(h.Value)
			}
		}
		return span, tp, ts
	}
	var out []kgo.RecordHeader
	traceContext.Inject(ctx, headerCarrier{&out})
	c := headerCarrier{&out}
	ts := c.Get("tracestate")
	if len(ts) > maxTraceHeaderBytes {
		ts = ""
	}
	return span, c.Get("traceparent"), ts
}

// endRequestSpans ends the request spans of a batch, failed when it did.
func endRequestSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, "batch failed")
		}
		s.End()
	}
}

// stateTrace is the trace headers of a flow's outputs: its stored context,
// none when it has none (or is a tombstone).
func stateTrace(st *flow.State) []kgo.RecordHeader {
	if st == nil || st.TraceParent == "" {
		return nil
	}
	h := []kgo.RecordHeader{{Key: "traceparent", Value: []byte(st.TraceParent)}}
	if st.TraceState != "" {
		h = append(h, kgo.RecordHeader{Key: "tracestate", Value: []byte(st.TraceState)})
	}
	return h
}

// traceOutputs records the spans of an applied change: each send, each
// DLR applied, each fallback and the close, children of the flow's trace
// context. Called once per applied change, so a recomputed or replayed
// change records nothing twice. Nothing is done for the no-op tracer.
func (e *engine) traceOutputs(ctx context.Context, out computed) {
	if e.tracer == nil {
		return
	}
	parent := func(h []kgo.RecordHeader) context.Context {
		if len(h) == 0 {
			return ctx
		}
		return traceContext.Extract(ctx, headerCarrier{&h})
	}
	for _, s := range out.sends {
		_, span := e.tracer.Start(parent(s.trace), "fallback.send", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("fallback.request_id", s.send.RequestID),
				attribute.String("fallback.attempt_id", s.send.AttemptID),
				attribute.String("fallback.channel", s.send.Channel),
				attribute.String("fallback.reason", s.send.Reason)))
		span.End()
	}
	for _, ev := range out.events {
		var name string
		var attrs []attribute.KeyValue
		switch ev.ev.Type {
		case flow.EventDLRReceived:
			name = "fallback.dlr"
			attrs = []attribute.KeyValue{attribute.String("fallback.attempt_id", ev.ev.AttemptID),
				attribute.String("fallback.channel", ev.ev.Channel), attribute.String("fallback.status", ev.ev.Status),
				attribute.String("fallback.status_kind", ev.ev.StatusKind)}
		case flow.EventFallbackTriggered:
			name = "fallback.fallback"
			attrs = []attribute.KeyValue{attribute.String("fallback.reason", ev.ev.Reason),
				attribute.String("fallback.from_channel", ev.ev.Channel)}
		case flow.EventFlowClosed:
			name = "fallback.close"
			attrs = []attribute.KeyValue{attribute.String("fallback.outcome", ev.ev.Outcome)}
		default:
			continue
		}
		attrs = append(attrs, attribute.String("fallback.request_id", ev.ev.RequestID))
		_, span := e.tracer.Start(parent(ev.trace), name, trace.WithAttributes(attrs...))
		span.End()
	}
}
