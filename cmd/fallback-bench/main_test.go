package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchJSONAddsUp runs fallback-bench on the embedded Kafka and Redis
// with a handful of flows and checks its JSON line: every field is there and
// the counts add up. It checks correctness only; speed is the benchmark's
// business, not the test suite's.
func TestBenchJSONAddsUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench end to end (about 10 s); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const flows = 200
	var stdout, stderr bytes.Buffer
	err := benchMain(ctx, []string{"--flows", "200", "--speed", "10", "--limit-flows", "200", "--json",
		"--mix", "delivered=0.5,failed=0.25,silent=0.25"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &raw); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%q", err, stdout.String())
	}
	for _, field := range []string{"flows", "pending", "backend", "processor", "clock_speed", "delays_s", "mix", "then_mix",
		"wall_s", "requests_per_sec", "dlrs_per_sec", "deadline_fires_per_sec", "flows_closed_per_sec",
		"flows_closed_per_sec_steady", "deadline_lateness_ms", "deadline_lateness_emitted_ms",
		"deadline_grace_ms", "deadline_lateness_past_grace_ms", "deadline_lateness_past_grace_emitted_ms", "outcome_shares",
		"redis_bytes_per_inflight_flow", "redis_bytes_per_closed_flow", "redis_tombstone_bytes_per_flow", "redis_compact_bytes_per_flow", "redis_provider_index_bytes_per_flow",
		"redis_provider_index_keys_per_flow", "redis_commands_per_flow", "cpu_us_per_flow", "cpu_scope", "counts", "limit", "peer",
		"redis_wait_replicas", "events"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("JSON has no %q:\n%s", field, stdout.String())
		}
	}
	var r struct {
		Flows                int             `json:"flows"`
		Backend              string          `json:"backend"`
		Events               string          `json:"events"`
		DLRsPerSec           float64         `json:"dlrs_per_sec"`
		WaitReplicas         int             `json:"redis_wait_replicas"`
		Notes                []string        `json:"notes"`
		BytesPerClosedFlow   *float64        `json:"redis_bytes_per_closed_flow"`
		TombstoneBytes       *float64        `json:"redis_tombstone_bytes_per_flow"`
		IndexBytesPerFlow    *float64        `json:"redis_provider_index_bytes_per_flow"`
		IndexKeysPerFlow     *float64        `json:"redis_provider_index_keys_per_flow"`
		RequestsPerSec       float64         `json:"requests_per_sec"`
		FlowsClosedPerSec    float64         `json:"flows_closed_per_sec"`
		RedisCommandsPerFlow float64         `json:"redis_commands_per_flow"`
		CPUUsPerFlow         float64         `json:"cpu_us_per_flow"`
		DeadlineLatenessMS   struct{ N int } `json:"deadline_lateness_ms"`
		PastGrace            struct{ N int } `json:"deadline_lateness_past_grace_ms"`
		GraceMS              float64         `json:"deadline_grace_ms"`
		Shares               struct {
			Expected  map[string]float64 `json:"expected_pct"`
			Measured  map[string]float64 `json:"measured_pct"`
			MaxDiffPP *float64           `json:"max_diff_pp"`
		} `json:"outcome_shares"`
		Counts benchCounts `json:"counts"`
		Limit  *struct {
			RedisFlowsPerSec          float64  `json:"redis_flows_per_sec"`
			KafkaFlowsPerSec          float64  `json:"kafka_flows_per_sec"`
			RedisPlainFlowsPerSec     float64  `json:"redis_plain_flows_per_sec"`
			RedisPlainCommandsPerFlow float64  `json:"redis_plain_commands_per_flow"`
			RatioToPlain              *float64 `json:"ratio_to_plain"`
		} `json:"limit"`
		Peer *struct {
			Skipped string `json:"skipped"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	c := r.Counts
	outcomes := 0
	for _, n := range c.Outcomes {
		outcomes += n
	}
	if r.WaitReplicas != 0 {
		t.Errorf("redis_wait_replicas %d on the embedded Redis, which has no replica: want auto to choose 0", r.WaitReplicas)
	}
	switch {
	case r.Flows != flows || c.Requests != flows || c.FirstSends != flows || c.FlowsClosed != flows || outcomes != flows:
		t.Errorf("flows do not add up: %+v", c)
	case c.DoubleClosed != 0 || c.Rejected != 0:
		t.Errorf("closed twice or rejected: %+v", c)
	case c.CatalogSends != 0:
		t.Errorf("%d sends carry a catalog's template language without --catalog enforce", c.CatalogSends)
	case c.DLRsPublished != c.DLRsProcessed || c.DLRsPublished < flows:
		t.Errorf("DLRs do not add up: %+v", c)
	case c.FallbackSends != c.Fallbacks["failure"]+c.Fallbacks["timeout"] || c.FallbackSends == 0:
		t.Errorf("fallbacks do not add up: %+v", c)
	case c.DeadlineFires != c.Fallbacks["timeout"]+c.Outcomes["EXPIRED"] || c.DeadlineFires != r.DeadlineLatenessMS.N:
		t.Errorf("deadline fires do not add up: %+v, %d lateness samples", c, r.DeadlineLatenessMS.N)
	case r.RequestsPerSec <= 0 || r.FlowsClosedPerSec <= 0 || r.RedisCommandsPerFlow <= 0 || r.CPUUsPerFlow <= 0:
		t.Errorf("a rate is missing: %s", stdout.String())
	case r.Limit == nil || r.Limit.RedisFlowsPerSec <= 0 || r.Limit.KafkaFlowsPerSec <= 0:
		t.Errorf("no ceilings: %s", stdout.String())
	case r.Limit.RedisPlainFlowsPerSec <= 0 || r.Limit.RatioToPlain == nil || *r.Limit.RatioToPlain < 0:
		t.Errorf("no plain Redis ceiling: %s", stdout.String())
	case r.Limit.RedisPlainCommandsPerFlow < 11 || r.Limit.RedisPlainCommandsPerFlow > 12:
		// 11 per flow and one ZRANGEBYSCORE per pipeline of 16 flows
		t.Errorf("plain Redis ceiling: %g commands per flow, want 11 to 12", r.Limit.RedisPlainCommandsPerFlow)
	case r.PastGrace.N != r.DeadlineLatenessMS.N || r.GraceMS != 25:
		t.Errorf("lateness past deadline+grace: %d samples of %d, grace %g wall ms (want the default 250 ms at clock x10: 25)", r.PastGrace.N, r.DeadlineLatenessMS.N, r.GraceMS)
	case r.Peer == nil || r.Peer.Skipped == "":
		t.Errorf("the asynq peer should be skipped, with a reason, on the embedded Redis: %s", stdout.String())
	case r.Events != "full" || r.DLRsPerSec <= 0:
		t.Errorf("events %q, dlrs_per_sec %g: want full, measured", r.Events, r.DLRsPerSec)
	}
	// outputs_per_flow counts the records read; with full events, no
	// replay and no late delivery (this mix has none) that is what every
	// transition writes: the sends, and FLOW_STARTED, ATTEMPT_SENT per
	// send, an event per DLR, FALLBACK_TRIGGERED per fallback, FLOW_CLOSED.
	sends := c.FirstSends + c.FallbackSends
	if want := float64(sends+flows+sends+c.DLRsProcessed+c.FallbackSends+c.FlowsClosed) / flows; math.Abs(c.OutputsPerFlow-want) > 0.006 {
		t.Errorf("outputs_per_flow %g, want %g from the counts %+v", c.OutputsPerFlow, want, c)
	}
	// Memory of closed flows: numbers, and on the embedded Redis (which
	// reports no memory) 0 with a note that says so.
	switch {
	case r.BytesPerClosedFlow == nil || r.TombstoneBytes == nil || r.IndexBytesPerFlow == nil || r.IndexKeysPerFlow == nil:
		t.Errorf("closed-flow memory is not a number: %s", stdout.String())
	case !strings.HasPrefix(r.Backend, "embedded"):
		t.Errorf("backend %q, want the embedded one", r.Backend)
	case *r.BytesPerClosedFlow != 0 || *r.TombstoneBytes != 0 || *r.IndexBytesPerFlow != 0 || *r.IndexKeysPerFlow != 0:
		t.Errorf("closed-flow memory measured on the embedded Redis: %s", stdout.String())
	case !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "redis_bytes_per_closed_flow") }):
		t.Errorf("no note on the closed-flow memory: %q", r.Notes)
	}
	// Shares: the expected ones follow from the mixes (0.5 + 0.5*0.97
	// delivered, with the default --then-mix); the measured ones from the
	// counts. How far apart they are is the bench's finding, not checked.
	sh := r.Shares
	for name, want := range map[string]float64{"DELIVERED": 98.5, "FAILED": 1, "EXPIRED": 0.5} {
		if sh.Expected[name] != want {
			t.Errorf("expected share of %s = %g, want %g", name, sh.Expected[name], want)
		}
	}
	for name, n := range c.Outcomes {
		if got, want := sh.Measured[name], float64(n)*100/flows; got != want {
			t.Errorf("measured share of %s = %g, want %g (%d of %d)", name, got, want, n, flows)
		}
	}
	if sh.MaxDiffPP == nil {
		t.Errorf("no max_diff_pp: %s", stdout.String())
	}
}

// TestBenchCatalogEnforce runs the bench with --catalog enforce: the
// catalog is stored before the run, the processor checks every step
// against it, and every request passes (none rejected, every flow closed).
func TestBenchCatalogEnforce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench end to end (about 5 s); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := benchMain(ctx, []string{"--flows", "100", "--speed", "10", "--limit=false", "--json", "--catalog", "enforce"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var r struct {
		Catalog string `json:"catalog"`
		Counts  struct {
			FlowsClosed   int `json:"flows_closed"`
			Rejected      int `json:"rejected"`
			FirstSends    int `json:"first_sends"`
			FallbackSends int `json:"fallback_sends"`
			CatalogSends  int `json:"sends_from_catalog"`
		} `json:"counts"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	c := r.Counts
	if r.Catalog != "enforce" || c.FlowsClosed != 100 || c.Rejected != 0 {
		t.Fatalf("catalog %q, %d flows closed, %d rejected; want enforce, 100, 0", r.Catalog, c.FlowsClosed, c.Rejected)
	}
	if c.CatalogSends != c.FirstSends+c.FallbackSends {
		t.Fatalf("%d of %d sends carry the catalog's template language", c.CatalogSends, c.FirstSends+c.FallbackSends)
	}
	if !strings.Contains(stderr.String(), "catalog: 7 senders") {
		t.Fatalf("the progress does not say the catalog was stored:\n%s", stderr.String())
	}
	if err := benchMain(ctx, []string{"--catalog", "warn"}, &stdout, &stderr); err == nil {
		t.Fatal("--catalog warn accepted")
	}
}

// TestBenchLeanEvents runs the bench against a processor with --events
// lean, which writes no FLOW_STARTED, ATTEMPT_SENT, DLR_RECEIVED or
// FALLBACK_TRIGGERED: the run must still end (every DLR read, by the
// group's commits), count the fallbacks from the sends, and say it was
// lean.
func TestBenchLeanEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench end to end (about 5 s); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const flows = 200
	var stdout, stderr bytes.Buffer
	err := benchMain(ctx, []string{"--flows", "200", "--speed", "10", "--limit=false", "--json", "--events", "lean",
		"--mix", "delivered=0.5,failed=0.25,silent=0.25", "--timeout", "2m"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var r struct {
		Events     string          `json:"events"`
		DLRsPerSec float64         `json:"dlrs_per_sec"`
		Notes      []string        `json:"notes"`
		Fires      float64         `json:"deadline_fires_per_sec"`
		Lateness   struct{ N int } `json:"deadline_lateness_ms"`
		Counts     benchCounts     `json:"counts"`
		Shares     struct {
			FlowsOffDrawn int `json:"flows_off_drawn"`
		} `json:"outcome_shares"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%q", err, stdout.String())
	}
	c := r.Counts
	outcomes := 0
	for _, n := range c.Outcomes {
		outcomes += n
	}
	sends := c.FirstSends + c.FallbackSends
	switch {
	case r.Events != "lean":
		t.Errorf("events %q, want lean", r.Events)
	case c.FirstSends != flows || c.FlowsClosed != flows || outcomes != flows || c.DoubleClosed != 0 || c.Rejected != 0:
		t.Errorf("flows do not add up: %+v", c)
	case r.Shares.FlowsOffDrawn != 0:
		t.Errorf("%d flows closed otherwise than their providers' answers say", r.Shares.FlowsOffDrawn)
	case c.FallbackSends == 0 || c.Fallbacks["failure"] == 0 || c.Fallbacks["timeout"] == 0 ||
		c.FallbackSends != c.Fallbacks["failure"]+c.Fallbacks["timeout"]:
		t.Errorf("fallbacks, counted from the sends, do not add up: %+v", c)
	case c.DeadlineFires != c.Fallbacks["timeout"]+c.Outcomes["EXPIRED"] || c.DeadlineFires != r.Lateness.N || r.Fires <= 0:
		t.Errorf("deadline fires do not add up: %+v, %d lateness samples, %g/s", c, r.Lateness.N, r.Fires)
	case c.DLRsPublished < flows || c.DLRsProcessed != c.DLRsPublished:
		t.Errorf("DLRs: %d published, %d processed; want all processed", c.DLRsPublished, c.DLRsProcessed)
	case r.DLRsPerSec != 0 || !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "dlrs_per_sec") }):
		t.Errorf("dlrs_per_sec %g, notes %q: want 0 and a note saying why", r.DLRsPerSec, r.Notes)
	}
	// Lean writes the sends and a FLOW_CLOSED per flow, and DLR_DISCARDED
	// for a DLR that changes nothing, which this mix seldom makes (a
	// flow's intermediate status after its close, say): well under one
	// event per DLR, as full writes.
	if lo, hi := float64(sends+flows)/flows, float64(sends+flows+c.DLRsPublished)/flows; c.OutputsPerFlow < lo-0.006 || c.OutputsPerFlow >= hi {
		t.Errorf("outputs_per_flow %g, want sends + closes (%g) plus what was discarded, below %g", c.OutputsPerFlow, lo, hi)
	}
	if !strings.Contains(stderr.String(), "events lean") {
		t.Errorf("the table does not say the events were lean:\n%s", stderr.String())
	}
}

// benchCounts is the "counts" object of fallback-bench --json, as a
// consumer of that line reads it.
type benchCounts struct {
	Requests       int            `json:"requests"`
	FirstSends     int            `json:"first_sends"`
	FallbackSends  int            `json:"fallback_sends"`
	CatalogSends   int            `json:"sends_from_catalog"`
	DLRsPublished  int            `json:"dlrs_published"`
	DLRsProcessed  int            `json:"dlrs_processed"`
	DeadlineFires  int            `json:"deadline_fires"`
	FlowsClosed    int            `json:"flows_closed"`
	DoubleClosed   int            `json:"double_closed"`
	Rejected       int            `json:"rejected"`
	Outcomes       map[string]int `json:"outcomes"`
	Fallbacks      map[string]int `json:"fallbacks"`
	OutputsPerFlow float64        `json:"outputs_per_flow"`
}
