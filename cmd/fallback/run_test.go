package main

import (
	"context"
	"flag"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
)

// TestRequestAgeFlags: --max-request-age and --deadline-grace come from
// their flags or variables and reach the processor's config.
func TestRequestAgeFlags(t *testing.T) {
	parse := func(args ...string) cliconfig.Common {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var c cliconfig.Common
		c.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := parse()
	if c.MaxRequestAge != time.Hour || c.DeadlineGrace != processor.DefaultDeadlineGrace {
		t.Fatalf("defaults: max age %s, grace %s", c.MaxRequestAge, c.DeadlineGrace)
	}
	if err := c.CheckRequestAge(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	t.Setenv("FALLBACK_MAX_REQUEST_AGE", "10m")
	t.Setenv("FALLBACK_DEADLINE_GRACE", "2s")
	c = parse()
	if c.MaxRequestAge != 10*time.Minute || c.DeadlineGrace != 2*time.Second {
		t.Fatalf("from env: max age %s, grace %s", c.MaxRequestAge, c.DeadlineGrace)
	}
	c = parse("--max-request-age", "30m", "--deadline-grace", "1s")
	cfg := processorConfig(&c, []string{"b:9092"})
	if cfg.MaxRequestAge != 30*time.Minute || cfg.DeadlineGrace != time.Second {
		t.Fatalf("processor config: max age %s, grace %s", cfg.MaxRequestAge, cfg.DeadlineGrace)
	}
	// --deadline-grace 0 means none, not the processor's default.
	c = parse("--deadline-grace", "0s", "--max-deadline-hold", "90s")
	cfg = processorConfig(&c, []string{"b:9092"})
	if cfg.DeadlineGrace >= 0 || cfg.MaxDeadlineHold != 90*time.Second {
		t.Fatalf("processor config: grace %s (want negative: none), max hold %s", cfg.DeadlineGrace, cfg.MaxDeadlineHold)
	}
}

// TestRunRefusesTombstonesShorterThanTheRequestAge: a closed flow must be
// remembered as long as a duplicate of its request can still be accepted;
// run refuses to start otherwise, naming both flags, before it connects.
func TestRunRefusesTombstonesShorterThanTheRequestAge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := []string{"run", "--brokers", "127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tombstone-retention", "30m"}, "--tombstone-retention (FALLBACK_TOMBSTONE_RETENTION) 30m0s is shorter than --max-request-age (FALLBACK_MAX_REQUEST_AGE) 1h0m0s"},
		{[]string{"--tombstone-retention", "1h", "--max-request-age", "1h"}, "is shorter than --max-request-age"}, // the grace counts too
		{[]string{"--tombstone-retention", "24h", "--max-request-age", "25h"}, "--tombstone-retention (FALLBACK_TOMBSTONE_RETENTION) 24h0m0s is shorter"},
		{[]string{"--max-request-age", "0s"}, "--max-request-age (FALLBACK_MAX_REQUEST_AGE) must be positive"},
		{[]string{"--deadline-grace", "-1s"}, "--deadline-grace (FALLBACK_DEADLINE_GRACE) must not be negative"},
	} {
		err := dispatch(ctx, append(append([]string{}, base...), tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	// Long enough, or derived from the request age (the default, whatever
	// the age): the check passes and run goes on to connect (and fails there).
	for _, args := range [][]string{{"--tombstone-retention", "2h", "--max-request-age", "1h"}, {"--max-request-age", "25h"}} {
		err := dispatch(ctx, append(append([]string{}, base...), args...))
		if err == nil || strings.Contains(err.Error(), "max-request-age") {
			t.Errorf("%v: err = %v, want a connection error", args, err)
		}
	}
}

// TestRunRefusesAnotherShardCount: once flows are written under a prefix,
// `fallback run` with another --redis-shards exits with an error naming
// both counts, before it takes any work; the recorded count still runs.
func TestRunRefusesAnotherShardCount(t *testing.T) {
	k, r := startBackends(t)

	first, stderr := startRun(t, k, r, "FALLBACK_REDIS_SHARDS=24")
	waitFor(t, 30*time.Second, "the processor to run", func() bool { return strings.Contains(stderr.String(), "processor running") }, stderr)
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := exitAfter(t, first, 30*time.Second, stderr); code != 0 {
		t.Fatalf("first run exit %d; stderr:\n%s", code, stderr)
	}

	second, stderr := startRun(t, k, r, "FALLBACK_REDIS_SHARDS=64")
	code, _ := exitAfter(t, second, 30*time.Second, stderr)
	want := `the flows under prefix "fb" use 24 shards (recorded in fb:layout), this store is configured with 64`
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("64 shards after 24: exit %d, want 1 with %q; stderr:\n%s", code, want, stderr)
	}
	if strings.Contains(stderr.String(), "processor running") {
		t.Fatalf("the refused run started; stderr:\n%s", stderr)
	}
}
