package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fallbackd/fallback/internal/bench"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
)

// options are the command's flags.
type options struct {
	c                    cliconfig.Common
	flows, pending       int
	mix, thenMix         simulator.Mix
	speed, rate          float64
	delay, delay2        time.Duration
	external, spawn      bool
	fallbackBin          string
	procPID, maxPoll     int
	asJSON               bool
	timeout              time.Duration
	limits               bool
	limitFlows           int
	peer                 string
	asynqConc            int
	asynqCheck           time.Duration
	memSample            int
	cpuProfile           string
	keep, verbose        bool
	mixText, thenMixText string
	catalogText          string
	catalog              flow.CatalogMode // off or enforce
	// --compare-delays: the delay evaluation instead of a run.
	compare      []bench.DelayPolicy
	marketsText  string
	compareFlows int
	delayAuto    bool
}

// parse reads and checks the flags.
func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("fallback-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: fallback-bench [flags]
Measures the fallback processor: throughput, deadline lateness, Redis memory
and CPU per flow, the machine's ceilings and asynq (BENCHMARKS.md). Without
--brokers and --redis it runs on the embedded Kafka and Redis. With --events
lean the processor writes no per-transition events: the bench counts the
fallbacks from the sends, takes every DLR as processed once the processor's
--group committed past it, reports dlrs_per_sec 0, and says "events": "lean".
`)
		fs.PrintDefaults()
	}
	o := &options{}
	o.c.Register(fs)
	fs.IntVar(&o.flows, "flows", 100_000, "measured flows")
	fs.IntVar(&o.pending, "pending", 0, "flows parked in Redis on 900 s deadlines before the run, so that many deadlines are pending while the measured flows run")
	fs.StringVar(&o.mixText, "mix", "delivered=0.6,failed=0.2,silent=0.2", "how step 0 ends: shares of delivered, failed (failure DLR) and silent (the deadline fires)")
	fs.StringVar(&o.thenMixText, "then-mix", "delivered=0.97,failed=0.02,silent=0.01", "how the later (SMS) step ends")
	fs.Float64Var(&o.speed, "speed", 1, "run the processor's clock this many times faster than wall time (1: lateness is real wall time)")
	fs.DurationVar(&o.delay, "delay", 5*time.Second, "delay of step 0 (clock time, 5s..900s)")
	fs.DurationVar(&o.delay2, "delay2", 0, "delay of step 1 (default: --delay)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per wall second; 0 publishes as fast as Kafka takes them")
	fs.BoolVar(&o.external, "external", false, "measure a processor already running on --brokers/--redis (same topics, --redis-prefix, --clock-speed and --clock-epoch); only publish and measure")
	fs.BoolVar(&o.spawn, "spawn", false, "start the processor as a child process (`fallback run`, see --fallback-bin), so its CPU time is its own; needs --brokers and --redis (TLS and SASL settings reach it only through their FALLBACK_* variables)")
	fs.StringVar(&o.fallbackBin, "fallback-bin", "", "with --spawn: the fallback binary to start (default: fallback next to this executable, else on PATH; build it with go build -o /tmp/fallback ./cmd/fallback)")
	fs.IntVar(&o.procPID, "processor-pid", 0, "with --external: read the processor's CPU time from /proc/PID")
	fs.IntVar(&o.maxPoll, "max-poll", 0, "in-process processor: MaxPollRecords (0: the default)")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON line on stdout (the table goes to stderr); its \"events\" field is the --events the run used, full or lean")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up on the measured run after this long (wall)")
	fs.BoolVar(&o.limits, "limit", true, "measure the ceilings in the same run: Redis alone (this project's scripts) and Kafka alone")
	fs.IntVar(&o.limitFlows, "limit-flows", 100_000, "flows of each ceiling run (at most --flows)")
	fs.StringVar(&o.peer, "peer", "auto", "delayed-task peer on the same Redis: asynq, none, or auto (asynq on a real Redis)")
	fs.IntVar(&o.asynqConc, "asynq-concurrency", 100, "asynq server concurrency")
	fs.DurationVar(&o.asynqCheck, "asynq-delayed-check", 100*time.Millisecond, "asynq DelayedTaskCheckInterval (asynq's default is 5s)")
	fs.IntVar(&o.memSample, "memory-sample", 20_000, "with --pending 0: flows parked (then removed) to measure Redis bytes per in-flight flow")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured run (not the ceilings or the peer) to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's topics and Redis keys (in-process runs delete them)")
	fs.StringVar(&o.catalogText, "catalog", "off", "off: no catalog, the processor takes every step on faith (its mode off); "+
		"enforce: store a catalog of the senders and templates the requests use before the run, and run the processor with --catalog enforce "+
		"(with --external, start it so; the catalog goes to its catalog topics)")
	fs.BoolVar(&o.verbose, "v", false, "show the processor's log")
	compareText := fs.String("compare-delays", "", "instead of a run: the same simulated traffic against each first-step delay policy, e.g. 5,15,30,60,120,auto; "+
		"the processor's state machine and auto-delay estimator on a virtual clock (no Kafka, no Redis), one table per --markets (docs/auto-delay.md)")
	fs.StringVar(&o.marketsText, "markets", "default,single", "with --compare-delays: default (three countries, one with a slow WhatsApp, one with a fast one), single (the slow one alone), or both comma-separated")
	fs.IntVar(&o.compareFlows, "compare-flows", 60_000, "with --compare-delays: flows per policy, a quarter of them a warm-up not counted")
	fs.BoolVar(&o.delayAuto, "delay-auto", false, "step 0's delay is auto (delay_auto: p95 + 2 s, 5..300 s), --delay its fallback")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, errUsage
	}
	var err error
	if *compareText != "" {
		if o.compare, err = bench.ParseDelayPolicies(*compareText); err != nil {
			return nil, err
		}
		if o.compareFlows < 100 {
			return nil, fmt.Errorf("bench: --compare-flows must be at least 100")
		}
		return o, nil // no backend
	}
	if err := o.c.Check(); err != nil {
		return nil, err
	}
	if o.mix, err = simulator.ParseMix(o.mixText); err != nil {
		return nil, err
	}
	if o.thenMix, err = simulator.ParseMix(o.thenMixText); err != nil {
		return nil, err
	}
	switch o.catalog, err = flow.ParseCatalogMode(o.catalogText); {
	case err != nil:
		return nil, fmt.Errorf("bench: --catalog: %w", err)
	case o.catalog != flow.CatalogOff && o.catalog != flow.CatalogEnforce:
		return nil, fmt.Errorf("bench: --catalog must be off or enforce, not %s", o.catalog)
	}
	if o.delay2 == 0 {
		o.delay2 = o.delay
	}
	if o.flows < 1 || o.speed <= 0 || o.pending < 0 {
		return nil, fmt.Errorf("bench: --flows must be at least 1, --speed above 0, --pending not negative")
	}
	for _, d := range []time.Duration{o.delay, o.delay2} {
		if d < 5*time.Second || d > 900*time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("bench: delays must be whole seconds in 5s..900s, got %s", d)
		}
	}
	if o.external && o.spawn {
		return nil, fmt.Errorf("bench: --external and --spawn exclude each other")
	}
	return o, nil
}

// config is the run's bench.Config as far as the flags alone set it.
func (o *options) config(runID string, progress io.Writer) bench.Config {
	cfg := bench.Config{Flows: o.flows, Pending: o.pending, Mix: o.mix, ThenMix: o.thenMix,
		Delays: []time.Duration{o.delay, o.delay2}, Rate: o.rate, RunID: runID, Timeout: o.timeout,
		DelayAuto:    o.delayAuto,
		MemorySample: o.memSample, Limits: o.limits, LimitFlows: min(o.limitFlows, o.flows),
		Events: o.c.EventsMode(), Progress: progress}
	if o.catalog == flow.CatalogEnforce {
		// The demo's catalog holds the senders and templates of the
		// bench's requests (bench's otpRequest), and a few more.
		cat := simulator.DemoCatalog("fallback-bench", time.Now())
		cfg.Catalog = &cat
	}
	return cfg
}

func (o *options) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}
