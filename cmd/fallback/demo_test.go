package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/simulator"
)

// TestDemoSummaryAddsUp runs the demo end to end on the embedded Kafka and
// Redis and checks its JSON line: every flow closed exactly once, with one
// outcome, and the invalid requests were rejected.
func TestDemoSummaryAddsUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about 10 s); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := demo(ctx, []string{"--flows", "150", "--speed", "20", "--rate", "200", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	var s simulator.Summary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%q", err, stdout.String())
	}
	total := 0
	for _, n := range s.Outcomes {
		total += n
	}
	if s.Flows != 150 || total != 150 || s.DoubleClosed != 0 {
		t.Fatalf("summary does not add up: %+v", s)
	}
	if s.Rejected != 3 { // 2 invalid requests per 100 valid ones
		t.Fatalf("rejected = %d, want 3", s.Rejected)
	}
	if s.Fallbacks["timeout"]+s.Fallbacks["failure"] == 0 || s.Outcomes["CANCELLED"] == 0 {
		t.Fatalf("the demo's mix exercised no fallback or no cancel: %+v", s)
	}
}
