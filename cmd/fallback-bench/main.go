// Command fallback-bench measures the fallback processor: throughput,
// deadline lateness, Redis memory and CPU per flow, the machine's ceilings
// and asynq on the same Redis (BENCHMARKS.md). It starts the processor
// itself (in-process, or as a child process with --spawn), or measures one
// already running (--external). Without --brokers and --redis it runs on
// the embedded Kafka and Redis.
//
// It is a development tool, kept out of the production binary: through
// package bench it links asynq, kfake and miniredis.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fallbackd/fallback/internal/bench"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor"
)

// defaultGCPercent is `fallback`'s garbage collector target (see
// cmd/fallback), so that an in-process processor runs as it does there.
// GOGC in the environment wins.
const defaultGCPercent = 400

var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help") // -h, --help: the usage is printed, nothing failed
)

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, errHelp) {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "fallback-bench:", err)
		}
		os.Exit(1)
	}
}

// benchMain is the command: the table goes to stdout, or with --json one
// JSON line goes to stdout and the table and progress to stderr. It runs in
// phases: parse the flags, connect to the backends, set up the run's names
// and clock, the asynq peer and the processor, run, report.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.compare != nil {
		return compareDelays(o, stdout)
	}
	r := &benchRun{options: o, stdout: stdout, stderr: stderr, runID: randomID()}
	defer r.close()
	r.progress, r.tableOut = stdout, stdout
	if o.asJSON {
		r.progress, r.tableOut = stderr, stderr
	}
	cfg := o.config(r.runID, r.progress)
	r.cfg = &cfg
	if err := r.connect(ctx); err != nil {
		return err
	}
	if err := r.scope(); err != nil {
		return err
	}
	if err := r.setPeer(); err != nil {
		return err
	}
	if err := r.startProcessor(ctx); err != nil {
		return err
	}
	if err := r.profile(); err != nil {
		return err
	}
	return r.run(ctx)
}

// run measures and reports: the table, and with --json the JSON line.
func (r *benchRun) run(ctx context.Context) error {
	cfg := r.cfg
	fmt.Fprintf(r.progress, "fallback bench %s: %d flows, %s, clock x%g, processor %s\n", r.runID, r.flows, cfg.Backend, r.speed, cfg.Processor)
	cfg.DeadlineGrace = effectiveGrace(r.c.DeadlineGrace)
	res, err := bench.Run(ctx, *cfg)
	if res != nil && r.external {
		res.Notes = append(res.Notes, fmt.Sprintf("external processor: lateness past deadline+grace assumes its --deadline-grace is this command's (%s)", cfg.DeadlineGrace))
	}
	if res != nil {
		res.WriteTable(r.tableOut)
	}
	if err != nil {
		return err
	}
	if r.asJSON {
		return json.NewEncoder(r.stdout).Encode(res)
	}
	return nil
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

// compareDelays is --compare-delays: one table per market set, and whether
// auto is on the Pareto front of paid duplicates and p95 time to delivery.
func compareDelays(o *options, stdout io.Writer) error {
	for _, name := range strings.Split(o.marketsText, ",") {
		var markets []simulator.Market
		switch strings.TrimSpace(name) {
		case "default":
			markets = simulator.DefaultMarkets()
		case "single":
			markets = simulator.SingleMarket()
		default:
			return fmt.Errorf("bench: --markets: %q is not default or single", name)
		}
		cfg := bench.DefaultCompare(markets)
		cfg.Flows, cfg.Warmup = o.compareFlows, o.compareFlows/4
		start := time.Now()
		rs := bench.Compare(cfg, o.compare)
		var names []string
		for _, m := range markets {
			names = append(names, fmt.Sprintf("%s %s %.0f%%", m.Name, m.Country, m.Share*100))
		}
		bench.WriteCompare(stdout, fmt.Sprintf("markets %s (%s): %d flows per policy, %d counted after a warm-up of %d; %s of wall time",
			name, strings.Join(names, ", "), cfg.Flows, cfg.Flows-cfg.Warmup, cfg.Warmup, time.Since(start).Round(time.Millisecond)), rs)
		if why := bench.ParetoCheck(rs); why != "" {
			fmt.Fprintf(stdout, "auto is dominated: %s\n\n", why)
		} else {
			fmt.Fprintf(stdout, "auto is on the Pareto front: no fixed delay has both as few paid duplicates and as good a p95 time to delivery\n\n")
		}
		if o.asJSON {
			if err := json.NewEncoder(stdout).Encode(map[string]any{"markets": name, "results": rs}); err != nil {
				return err
			}
		}
	}
	return nil
}
