package observe

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Traces go out over OTLP when the standard OTEL_* variables ask for it.
// The OTel trace SDK (go.opentelemetry.io/otel/sdk/trace) and its OTLP
// exporters (otlptracegrpc, otlptracehttp) are dependencies for this: the
// processor only speaks the OTel trace API, and something must batch its
// spans and send them to a collector. They are pinned at v1.47.0, the
// version of go.opentelemetry.io/otel in go.mod: the OTel Go modules are
// released together, and mixing versions of the API and the SDK is not
// supported.

// tracesEnabled reports whether the environment asks for OTLP traces:
// OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) without OTEL_TRACES_EXPORTER=none.
// OTEL_SDK_DISABLED=true turns it off.
func tracesEnabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(strings.ToLower(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exp)
	}
}

// tracesProtocol is the OTLP protocol: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL, grpc (the default: the compose collector's
// 4317) or http/protobuf.
func tracesProtocol(getenv func(string) string) (string, error) {
	p := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", "grpc":
		return "grpc", nil
	case "http/protobuf":
		return p, nil
	}
	return "", fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only grpc and http/protobuf are supported", p)
}

// NewTracerProvider is the processor's TracerProvider: an SDK provider
// exporting over OTLP when the OTEL_* variables ask for it (the exporter
// and the SDK read the endpoint, headers, timeout, sampler and resource
// variables themselves), else the no-op provider, which records and
// exports nothing. shutdown flushes the spans still batched.
func NewTracerProvider(ctx context.Context) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	on, err := tracesEnabled(os.Getenv)
	if err != nil || !on {
		return noop.NewTracerProvider(), none, err
	}
	proto, err := tracesProtocol(os.Getenv)
	if err != nil {
		return noop.NewTracerProvider(), none, err
	}
	var exp sdktrace.SpanExporter
	if proto == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop.NewTracerProvider(), none, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// service.name defaults to fallback; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override it (later detectors win).
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "fallback")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return noop.NewTracerProvider(), none, fmt.Errorf("trace resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return sdk, sdk.Shutdown, nil
}

// traceFlushTimeout bounds the flush of the spans still batched at exit, so
// an unreachable collector cannot hold the process.
const traceFlushTimeout = 5 * time.Second

// FlushTraces runs the shutdown NewTracerProvider returned, within
// traceFlushTimeout.
func FlushTraces(shutdown func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	_ = shutdown(ctx)
}
