package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fallbackd/fallback/internal/bench"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/flow"
)

// startProcessor starts the processor (in-process or as a child process),
// or points the measurement at an external one. Stopping it, once, is
// registered for close; the clean-up of the run's topics and keys runs
// after it, so no processor polls topics being deleted.
func (r *benchRun) startProcessor(ctx context.Context) error {
	runCtx, stopProc := context.WithCancel(ctx)
	r.onClose(stopProc)
	var procErr error
	procExited := make(chan struct{})
	started := false
	start := func(run func() error) <-chan error {
		started = true
		early := make(chan error, 1)
		go func() {
			procErr = run()
			close(procExited)
			early <- procErr
		}()
		return early
	}
	var stopOnce sync.Once
	stopProcessor := func() {
		stopOnce.Do(func() {
			stopProc()
			if started {
				<-procExited
			}
		})
	}
	r.onClose(stopProcessor)
	var err error
	switch {
	case r.external:
		r.measureExternal()
	case r.spawn:
		err = r.spawnProcessor(runCtx, start)
	default:
		err = r.inProcessProcessor(runCtx, start)
	}
	if err != nil {
		return err
	}
	if !r.external && !r.keep {
		r.onClose(func() {
			stopProcessor()
			cleanupRun(r.stderr, r.brokers, r.kafkaOpts, r.benchRC, r.c.Names, r.c.RedisPrefix)
		})
	}
	return nil
}

// measureExternal measures a processor that runs elsewhere.
func (r *benchRun) measureExternal() {
	cfg := r.cfg
	cfg.Processor = "external"
	if r.procPID > 0 {
		cfg.ProcessorCPU, cfg.CPUScope = bench.ProcessCPU(r.procPID), fmt.Sprintf("the processor alone (pid %d, /proc)", r.procPID)
	} else {
		cfg.ProcessorCPU = func() (time.Duration, error) { return 0, fmt.Errorf("external processor: give --processor-pid") }
	}
}

// spawnProcessor starts `fallback run` as a child process with the run's
// settings.
func (r *benchRun) spawnProcessor(runCtx context.Context, start func(func() error) <-chan error) error {
	c, cfg := &r.c, r.cfg
	cfg.Processor = "child process"
	exe, err := r.fallbackExecutable()
	if err != nil {
		return err
	}
	n := c.Names
	cmd := exec.CommandContext(runCtx, exe, "run", "--brokers", c.Brokers, "--redis", c.RedisURL,
		"--redis-prefix", c.RedisPrefix, "--group", c.Group, "--create-topics=true",
		"--partitions", strconv.Itoa(c.Partitions), "--replication", strconv.Itoa(c.Replication),
		"--topic-requests", n.Requests, "--topic-dlr", n.DLR, "--topic-sends-prefix", n.SendsPrefix,
		"--topic-events", n.Events, "--topic-dlq", n.DLQ, "--topic-flows", n.Flows,
		"--claim-lease", r.lease.String(), "--deadline-grace", c.DeadlineGrace.String(), "--max-deadline-hold", c.MaxDeadlineHold.String(), "--log-level", map[bool]string{true: "info", false: "warn"}[r.verbose],
		"--clock-speed", strconv.FormatFloat(r.speed, 'g', -1, 64), "--clock-epoch", strconv.FormatInt(r.epoch.UnixMilli(), 10),
		"--http-addr", "127.0.0.1:0") // a port of its own, whatever else runs here
	if e := c.EventsMode(); e != flow.EventsFull {
		// Only when not the default: a build from before --events (benched
		// side by side with --fallback-bin) writes every event.
		cmd.Args = append(cmd.Args, "--events", string(e))
	}
	if c.AutoDelayWindow != autodelay.DefaultWindow || c.AutoDelayMinSamples != autodelay.DefaultMinSamples {
		// Only when set, as below.
		cmd.Args = append(cmd.Args, "--auto-delay-window", c.AutoDelayWindow.String(), "--auto-delay-min-samples", strconv.Itoa(c.AutoDelayMinSamples))
	}
	if c.ClosedDetail != cliconfig.DefaultClosedDetail {
		// Only when set, as below.
		cmd.Args = append(cmd.Args, "--closed-detail-retention", c.ClosedDetail.String())
	}
	if c.RedisShards != 0 {
		// Only when set (and the same for the wait below): a build from
		// before these settings (benched side by side with --fallback-bin)
		// does not know the flags.
		cmd.Args = append(cmd.Args, "--redis-shards", strconv.Itoa(c.RedisShards))
	}
	if c.WaitReplicas != 0 || !r.waitAuto {
		// As resolved in connect; a 0 that auto chose is what the child's
		// own auto (or an older build's default) chooses too.
		cmd.Args = append(cmd.Args, "--redis-wait-replicas", strconv.Itoa(c.WaitReplicas), "--redis-wait-timeout", c.WaitTimeout.String())
	}
	if r.catalog == flow.CatalogEnforce {
		// Only with enforce, as above: with off a build from before the
		// catalog runs too. The child then runs in its default mode, auto,
		// on its default catalog topics, which checks nothing unless
		// someone stored a catalog there.
		cmd.Args = append(cmd.Args, "--catalog", r.catalog.String(), "--topic-senders", n.Senders, "--topic-templates", n.Templates)
	}
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: start the processor: %w", err)
	}
	cfg.ProcessorDone = start(cmd.Wait)
	cfg.ProcessorCPU, cfg.CPUScope = bench.ProcessCPU(cmd.Process.Pid), "the processor alone (child process, /proc)"
	return nil
}

// fallbackExecutable is the fallback binary --spawn starts: --fallback-bin,
// else fallback next to this executable, else fallback on PATH.
func (r *benchRun) fallbackExecutable() (string, error) {
	if r.fallbackBin != "" {
		return r.fallbackBin, nil
	}
	if self, err := os.Executable(); err == nil {
		sibling := filepath.Join(filepath.Dir(self), "fallback")
		if st, err := os.Stat(sibling); err == nil && !st.IsDir() {
			return sibling, nil
		}
	}
	if p, err := exec.LookPath("fallback"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("bench: --spawn needs the fallback binary: build it (go build -o /tmp/fallback ./cmd/fallback) and give --fallback-bin /tmp/fallback")
}

// inProcessProcessor runs the processor in this process, counting its
// Redis commands.
func (r *benchRun) inProcessProcessor(runCtx context.Context, start func(func() error) <-chan error) error {
	c, cfg := &r.c, r.cfg
	cfg.Processor = "in-process"
	counter := &bench.CommandCounter{}
	r.procRC.AddHook(counter)
	cfg.Commands = counter
	procStore, err := c.Store(r.procRC)
	if err != nil {
		return err
	}
	pcfg := processor.Config{Brokers: r.brokers, KafkaOpts: r.kafkaOpts, Group: c.Group, Topics: c.Names, CreateTopics: true,
		Partitions: int32(c.Partitions), Replication: int16(c.Replication), Clock: r.clock, ClaimLease: r.lease,
		MaxPollRecords: r.maxPoll, BatchFill: c.BatchFill, ProviderIndexTTL: c.ProviderIndexTTL(), DeadlineGrace: c.DeadlineGrace, MaxDeadlineHold: c.MaxDeadlineHold,
		AutoDelayWindow: c.AutoDelayWindow, AutoDelayMinSamples: c.AutoDelayMinSamples,
		CatalogMode: r.catalog, Events: c.EventsMode(), Logger: r.logger(r.stderr)}
	proc, err := processor.New(pcfg, procStore)
	if err != nil {
		return err
	}
	cfg.ProcessorDone = start(func() error { return proc.Run(runCtx) })
	cfg.CPUScope = "this process: processor, simulated providers, load and measurement (--spawn for the processor alone)"
	if cfg.Backend != "real" {
		cfg.CPUScope = "this process: processor, providers, load, measurement and the embedded Kafka and Redis"
	}
	return nil
}
