package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

func demoCmd(ctx context.Context, args []string) error {
	return demo(ctx, args, os.Stdout, os.Stderr)
}

// demo writes progress to stdout (stderr with --json, where stdout gets only
// the summary line) and the processor's log to stderr.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flows := fs.Int("flows", 300, "stop after this many flows have closed")
	speed := fs.Float64("speed", 10, "run the clock this many times faster than the wall clock")
	rate := fs.Float64("rate", 100, "new flows per wall-clock second")
	asJSON := fs.Bool("json", false, "end with one JSON summary line on standard output")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long (wall time)")
	verbose := fs.Bool("v", false, "show the processor's log")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *flows < 1 || *speed <= 0 {
		return fmt.Errorf("demo: --flows must be at least 1 and --speed above 0")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	progress := stdout
	if *asJSON {
		progress = stderr
	}
	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))

	kafka, err := embedded.StartKafka(12)
	if err != nil {
		return err
	}
	defer kafka.Close()
	red, err := embedded.StartRedis()
	if err != nil {
		return err
	}
	defer red.Close()
	rc := redis.NewClient(&redis.Options{Addr: red.Addr()})
	defer rc.Close()
	store := statestore.New(rc, statestore.Config{})
	clock := clock.NewScaled(*speed)
	names := topics.DefaultNames()
	brokers := kafka.Brokers()
	fmt.Fprintf(progress, "embedded Kafka on %s, embedded Redis on %s, clock x%g\n", brokers[0], red.Addr(), *speed)

	// The lease is clock time; scaled with the clock it stays 10 s of wall
	// time, so a slow batch is not mistaken for a dead instance.
	proc, err := processor.New(processor.Config{Brokers: brokers, Topics: names, CreateTopics: true,
		Clock: clock, ClaimLease: time.Duration(float64(10*time.Second) * *speed), Logger: log}, store)
	if err != nil {
		return err
	}
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(runCtx) }()

	tally := simulator.NewTally()
	if err := waitForTopics(runCtx, brokers, names); err != nil {
		return err
	}
	go tally.Follow(runCtx, brokers, nil, names.Events)
	providers := &simulator.Providers{Brokers: brokers, Topics: names, Channels: flow.DefaultChannels().Names(),
		Mixes: simulator.DefaultMixes(), Clock: clock, Log: log}
	go providers.Run(runCtx)
	load := &simulator.Load{Brokers: brokers, Topics: names, Clock: clock, Flows: *flows,
		Invalid: 0.02, Cancel: 0.03, Rate: *rate, IDPrefix: "demo-"}
	type loadResult struct {
		pub simulator.Published
		err error
	}
	loaded := make(chan loadResult, 1)
	go func() { pub, err := load.Run(runCtx); loaded <- loadResult{pub, err} }()

	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var pub simulator.Published
	for published := false; !published || tally.Closed() < pub.Flows; {
		select {
		case r := <-loaded:
			if r.err != nil {
				return r.err
			}
			pub, published = r.pub, true
			fmt.Fprintf(progress, "published %d flows (%d cancelled right away) and %d invalid requests\n", pub.Flows, pub.Cancels, pub.Invalid)
		case err := <-procDone:
			return fmt.Errorf("demo: processor stopped: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("demo: %d of %d flows closed before the timeout", tally.Closed(), *flows)
		case <-tick.C:
			printProgress(progress, tally.Summary(), *flows, clock.Now().Sub(clock.Start))
		}
	}
	sum := tally.Summary()
	fmt.Fprintf(progress, "all %d flows closed in %s wall time\n", sum.Flows, time.Since(start).Round(time.Millisecond))
	stopAll()
	<-procDone

	if err := checkSummary(sum, pub); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(sum)
	}
	return nil
}

// checkSummary fails the demo when the numbers do not add up: every flow
// closed exactly once, with exactly one outcome.
func checkSummary(s simulator.Summary, pub simulator.Published) error {
	total := 0
	for _, n := range s.Outcomes {
		total += n
	}
	if total != s.Flows || s.Flows != pub.Flows || s.DoubleClosed != 0 || s.Rejected != pub.Invalid {
		return fmt.Errorf("demo: summary does not add up: %d outcomes, %d flows closed of %d, %d closed twice, %d rejected of %d invalid",
			total, s.Flows, pub.Flows, s.DoubleClosed, s.Rejected, pub.Invalid)
	}
	return nil
}

func printProgress(w io.Writer, s simulator.Summary, want int, clockTime time.Duration) {
	fmt.Fprintf(w, "[clock +%6s] closed %d/%d  %s  fallbacks %s  discarded %s  rejected %d\n",
		clockTime.Round(time.Second), s.Flows, want, counts(s.Outcomes), counts(s.Fallbacks), counts(s.DLRsDiscarded), s.Rejected)
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%s=%d", k, m[k])
	}
	if out == "" {
		return "-"
	}
	return out
}

// waitForTopics returns once the processor has created the topics the
// simulated parts use, so none of them starts on a missing topic.
func waitForTopics(ctx context.Context, brokers []string, names topics.Names) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	want := []string{names.Requests, names.DLR, names.Events, names.Flows, names.Sends("sms"), names.Sends("whatsapp")}
	for {
		listed, err := adm.ListTopics(ctx, want...)
		if err == nil {
			missing := 0
			for _, t := range want {
				if d, ok := listed[t]; !ok || d.Err != nil {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: topics not created: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
