package observe

import "testing"

func TestTracesEnabledByEnvironment(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
		err  bool
	}{
		{env: nil, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, want: false},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, want: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: true},
	} {
		got, err := tracesEnabled(func(k string) string { return c.env[k] })
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%v: enabled %v, err %v; want %v, err %v", c.env, got, err, c.want, c.err)
		}
	}
	for env, want := range map[string]string{"": "grpc", "grpc": "grpc", "http/protobuf": "http/protobuf", "http/json": ""} {
		got, err := tracesProtocol(func(k string) string {
			if k == "OTEL_EXPORTER_OTLP_PROTOCOL" {
				return env
			}
			return ""
		})
		if got != want || (err != nil) != (want == "") {
			t.Errorf("protocol %q: %q, %v", env, got, err)
		}
	}
}

// With no OTEL_* variable set, the provider is the no-op one: nothing is
// recorded or exported.
func TestNoTracesWithoutEnvironment(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	tp, shutdown, err := NewTracerProvider(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	_, span := tp.Tracer("t").Start(t.Context(), "x")
	if span.IsRecording() {
		t.Fatal("a span records without OTEL_* variables")
	}
}
