package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/topics"
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
	err := demo(ctx, []string{"--flows", "150", "--speed", "20", "--rate", "200", "--json", "--console", "127.0.0.1:0"}, &stdout, &stderr)
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
	if s.Rejected != 3 { // 2 invalid requests per 100 valid ones: the first three kinds, none of them the catalog's
		t.Fatalf("rejected = %d, want 3", s.Rejected)
	}
	if s.Fallbacks["timeout"]+s.Fallbacks["failure"] == 0 || s.Outcomes["CANCELLED"] == 0 {
		t.Fatalf("the demo's mix exercised no fallback or no cancel: %+v", s)
	}
	for _, ch := range flow.DefaultChannels().Names() {
		if s.Attempts[ch] == 0 {
			t.Fatalf("no attempt was sent on %s: %+v", ch, s.Attempts)
		}
	}
	// The progress (on stderr with --json) says what the catalog and the
	// stored flow hold before the load starts.
	for _, want := range []string{"catalog: 7 senders (1 disabled), 6 templates (1 pending) on fallback.senders / fallback.templates",
		"flow otp-wa-then-sms version 1 published on fallback.flows", "console on http://127.0.0.1:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("the progress does not say %q:\n%s", want, stderr.String())
		}
	}
}

// The demo waits for every topic its simulated parts read or write: the
// catalog's and every channel's sends among them.
func TestDemoTopics(t *testing.T) {
	got := demoTopics(topics.DefaultNames())
	for _, want := range []string{"fallback.requests", "fallback.dlr", "fallback.events", "fallback.flows", "fallback.senders",
		"fallback.templates", "fallback.sends.rcs", "fallback.sends.sms", "fallback.sends.whatsapp"} {
		if !slices.Contains(got, want) {
			t.Errorf("demo topics %v lack %s", got, want)
		}
	}
}
