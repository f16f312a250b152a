package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/bench"
	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/topics"
)

func benchCmd(ctx context.Context, args []string) error {
	return benchMain(ctx, args, os.Stdout, os.Stderr)
}

// benchMain is `fallback bench`: the table goes to stdout, or with --json
// one JSON line goes to stdout and the table and progress to stderr.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	flows := fs.Int("flows", 100_000, "measured flows")
	pending := fs.Int("pending", 0, "flows parked in Redis on 900 s deadlines before the run, so that many deadlines are pending while the measured flows run")
	mixFlag := fs.String("mix", "delivered=0.6,failed=0.2,silent=0.2", "how step 0 ends: shares of delivered, failed (failure DLR) and silent (the deadline fires)")
	thenMixFlag := fs.String("then-mix", "delivered=0.97,failed=0.02,silent=0.01", "how the later (SMS) step ends")
	speed := fs.Float64("speed", 1, "run the processor's clock this many times faster than wall time (1: lateness is real wall time)")
	delay := fs.Duration("delay", 5*time.Second, "delay of step 0 (clock time, 5s..900s)")
	delay2 := fs.Duration("delay2", 0, "delay of step 1 (default: --delay)")
	rate := fs.Float64("rate", 0, "requests per wall second; 0 publishes as fast as Kafka takes them")
	external := fs.Bool("external", false, "measure a processor already running on --brokers/--redis (same topics, --redis-prefix, --clock-speed and --clock-epoch); only publish and measure")
	spawn := fs.Bool("spawn", false, "start the processor as a child process (`fallback run`), so its CPU time is its own; needs --brokers and --redis (TLS and SASL settings reach it only through their FALLBACK_* variables)")
	procPID := fs.Int("processor-pid", 0, "with --external: read the processor's CPU time from /proc/PID")
	maxPoll := fs.Int("max-poll", 0, "in-process processor: MaxPollRecords (0: the default)")
	asJSON := fs.Bool("json", false, "print one JSON line on stdout (the table goes to stderr)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up on the measured run after this long (wall)")
	limits := fs.Bool("limit", true, "measure the ceilings in the same run: Redis alone (this project's scripts) and Kafka alone")
	limitFlows := fs.Int("limit-flows", 100_000, "flows of each ceiling run (at most --flows)")
	peer := fs.String("peer", "auto", "delayed-task peer on the same Redis: asynq, none, or auto (asynq on a real Redis)")
	asynqConc := fs.Int("asynq-concurrency", 100, "asynq server concurrency")
	asynqCheck := fs.Duration("asynq-delayed-check", 100*time.Millisecond, "asynq DelayedTaskCheckInterval (asynq's default is 5s)")
	memSample := fs.Int("memory-sample", 20_000, "with --pending 0: flows parked (then removed) to measure Redis bytes per in-flight flow")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured run (not the ceilings or the peer) to this file")
	keep := fs.Bool("keep", false, "keep the run's topics and Redis keys (in-process runs delete them)")
	verbose := fs.Bool("v", false, "show the processor's log")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	mix, err := bench.ParseMix(*mixFlag)
	if err != nil {
		return err
	}
	thenMix, err := bench.ParseMix(*thenMixFlag)
	if err != nil {
		return err
	}
	if *delay2 == 0 {
		*delay2 = *delay
	}
	if *flows < 1 || *speed <= 0 || *pending < 0 {
		return fmt.Errorf("bench: --flows must be at least 1, --speed above 0, --pending not negative")
	}
	for _, d := range []time.Duration{*delay, *delay2} {
		if d < 5*time.Second || d > 900*time.Second || d%time.Second != 0 {
			return fmt.Errorf("bench: delays must be whole seconds in 5s..900s, got %s", d)
		}
	}
	if *external && *spawn {
		return fmt.Errorf("bench: --external and --spawn exclude each other")
	}
	progress := stdout
	if *asJSON {
		progress = stderr
	}
	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	runID := randomID()

	cfg := bench.Config{Flows: *flows, Pending: *pending, Mix: mix, ThenMix: thenMix,
		Delays: []time.Duration{*delay, *delay2}, Rate: *rate, RunID: runID, Timeout: *timeout,
		MemorySample: *memSample, Limits: *limits, LimitFlows: min(*limitFlows, *flows), Progress: progress}

	// Backends.
	var brokers []string
	var kafkaOpts []kgo.Opt
	var benchRC, procRC redis.UniversalClient
	realRedis := c.redisURL != ""
	switch {
	case c.brokers == "" && c.redisURL == "":
		if *external || *spawn {
			return fmt.Errorf("bench: --external and --spawn need --brokers and --redis")
		}
		kafka, err := embedded.StartKafka(int32(c.partitions))
		if err != nil {
			return err
		}
		defer kafka.Close()
		red, err := embedded.StartRedis()
		if err != nil {
			return err
		}
		defer red.Close()
		brokers = kafka.Brokers()
		benchRC = redis.NewClient(&redis.Options{Addr: red.Addr()})
		procRC = redis.NewClient(&redis.Options{Addr: red.Addr()})
		cfg.Backend = "embedded (kfake, miniredis)"
		c.redisURL = red.URL()
	case c.brokers == "" || c.redisURL == "":
		return fmt.Errorf("bench: give both --brokers and --redis (real services), or neither (embedded)")
	default:
		if brokers, err = c.brokerList(); err != nil {
			return err
		}
		if kafkaOpts, err = c.kafkaOpts(); err != nil {
			return err
		}
		if benchRC, err = c.redisClient(); err != nil {
			return err
		}
		if procRC, err = c.redisClient(); err != nil {
			return err
		}
		cfg.Backend = "real"
	}
	defer benchRC.Close()
	defer procRC.Close()
	if err := benchRC.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bench: redis: %w", err)
	}
	cfg.Brokers, cfg.KafkaOpts, cfg.Redis = brokers, kafkaOpts, benchRC

	// Clock, names and prefix: an in-process or spawned processor gets the
	// run's own topics, group and key prefix (removed at the end); an
	// external one is found where the flags say.
	epoch := time.Now()
	if *external {
		if *speed != 1 && c.clockEpoch <= 0 {
			return fmt.Errorf("bench: --external with --speed %g needs the processor's --clock-epoch", *speed)
		}
		if c.clockEpoch > 0 {
			epoch = time.UnixMilli(c.clockEpoch)
		}
	} else {
		c.names = c.names.WithPrefix("bench-" + runID + ".")
		c.group = "fallback-bench-" + runID
		c.redisPrefix = "fbb" + runID
	}
	clock := clock.NewScaledAt(epoch, *speed)
	cfg.Clock, cfg.Topics = clock, c.names
	store, err := c.store(benchRC)
	if err != nil {
		return err
	}
	cfg.Store = store
	lease := time.Duration(float64(c.claimLease) * *speed) // 10 s of wall time, as in the demo

	switch *peer {
	case "asynq":
	case "none":
		cfg.AsynqSkipped = "--peer none"
	case "auto":
		if !realRedis {
			cfg.AsynqSkipped = "embedded Redis (miniredis) is a stand-in; the peer is measured on a real Redis (--redis)"
			*peer = "none"
		}
	default:
		return fmt.Errorf("bench: --peer must be asynq, none or auto")
	}
	if *peer == "asynq" || *peer == "auto" {
		cfg.Asynq = &bench.AsynqConfig{Tasks: *flows, Delay: time.Duration(float64(*delay) / *speed), Concurrency: *asynqConc,
			Enqueuers: 8, DelayedTaskCheckInterval: *asynqCheck, TaskCheckInterval: 10 * time.Millisecond,
			Queue: "fallback-bench-" + runID, Timeout: *timeout}
	}

	// The processor. stopProcessor stops it and waits, once; the clean-up
	// runs after it, so no processor polls topics being deleted.
	runCtx, stopProc := context.WithCancel(ctx)
	defer stopProc()
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
	defer stopProcessor()
	switch {
	case *external:
		cfg.Processor = "external"
		if *procPID > 0 {
			cfg.ProcessorCPU, cfg.CPUScope = bench.ProcessCPU(*procPID), fmt.Sprintf("the processor alone (pid %d, /proc)", *procPID)
		} else {
			cfg.ProcessorCPU = func() (time.Duration, error) { return 0, fmt.Errorf("external processor: give --processor-pid") }
		}
	case *spawn:
		cfg.Processor = "child process"
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		n := c.names
		cmd := exec.CommandContext(runCtx, exe, "run", "--brokers", c.brokers, "--redis", c.redisURL,
			"--redis-prefix", c.redisPrefix, "--group", c.group, "--create-topics=true",
			"--partitions", strconv.Itoa(c.partitions), "--replication", strconv.Itoa(c.replication),
			"--topic-requests", n.Requests, "--topic-dlr", n.DLR, "--topic-sends-prefix", n.SendsPrefix,
			"--topic-events", n.Events, "--topic-dlq", n.DLQ, "--topic-flows", n.Flows,
			"--claim-lease", lease.String(), "--deadline-grace", c.grace.String(), "--max-deadline-hold", c.maxHold.String(), "--log-level", map[bool]string{true: "info", false: "warn"}[*verbose],
			"--clock-speed", strconv.FormatFloat(*speed, 'g', -1, 64), "--clock-epoch", strconv.FormatInt(epoch.UnixMilli(), 10))
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("bench: start the processor: %w", err)
		}
		cfg.ProcessorDone = start(cmd.Wait)
		cfg.ProcessorCPU, cfg.CPUScope = bench.ProcessCPU(cmd.Process.Pid), "the processor alone (child process, /proc)"
	default:
		cfg.Processor = "in-process"
		counter := &bench.CommandCounter{}
		procRC.AddHook(counter)
		cfg.Commands = counter
		procStore, err := c.store(procRC)
		if err != nil {
			return err
		}
		pcfg := processor.Config{Brokers: brokers, KafkaOpts: kafkaOpts, Group: c.group, Topics: c.names, CreateTopics: true,
			Partitions: int32(c.partitions), Replication: int16(c.replication), Clock: clock, ClaimLease: lease,
			MaxPollRecords: *maxPoll, DeadlineGrace: c.grace, MaxDeadlineHold: c.maxHold, Logger: log}
		proc, err := processor.New(pcfg, procStore)
		if err != nil {
			return err
		}
		cfg.ProcessorDone = start(func() error { return proc.Run(runCtx) })
		cfg.CPUScope = "this process: processor, simulated providers, load and measurement (--spawn for the processor alone)"
		if cfg.Backend != "real" {
			cfg.CPUScope = "this process: processor, providers, load, measurement and the embedded Kafka and Redis"
		}
	}
	if !*external && !*keep {
		defer func() {
			stopProcessor()
			cleanupRun(stderr, brokers, kafkaOpts, benchRC, c.names, c.redisPrefix)
		}()
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.OnRunStart = func() { _ = pprof.StartCPUProfile(f) }
		cfg.OnRunEnd = pprof.StopCPUProfile
	}

	fmt.Fprintf(progress, "fallback bench %s: %d flows, %s, clock x%g, processor %s\n", runID, *flows, cfg.Backend, *speed, cfg.Processor)
	cfg.DeadlineGrace = effectiveGrace(c.grace)
	res, err := bench.Run(ctx, cfg)
	if res != nil && *external {
		res.Notes = append(res.Notes, fmt.Sprintf("external processor: lateness past deadline+grace assumes its --deadline-grace is this command's (%s)", cfg.DeadlineGrace))
	}
	if res != nil {
		tableOut := stdout
		if *asJSON {
			tableOut = stderr
		}
		res.WriteTable(tableOut)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	return nil
}

// cleanupRun deletes the topics and Redis keys of an in-process run.
func cleanupRun(stderr io.Writer, brokers []string, opts []kgo.Opt, rdb redis.UniversalClient, names topics.Names, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...); err == nil {
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, names.All(flow.DefaultChannels().Names())...); err != nil {
			fmt.Fprintf(stderr, "bench: delete topics: %v\n", err)
		}
		cl.Close()
	}
	for _, match := range []string{prefix + "{*", prefix + ":pm:*"} {
		if err := bench.DeleteKeys(ctx, rdb, match); err != nil {
			fmt.Fprintf(stderr, "bench: delete keys %s: %v\n", match, err)
		}
	}
}

// effectiveGrace is the deadline grace a processor started with
// --deadline-grace g applies: processor.Config takes 0 as its default.
func effectiveGrace(g time.Duration) time.Duration {
	if g == 0 {
		return processor.DefaultDeadlineGrace
	}
	return g
}

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
