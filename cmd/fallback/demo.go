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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/console"
	"github.com/fallbackd/fallback/console/consolewire"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

func demoCmd(ctx context.Context, args []string) error {
	return demo(ctx, args, os.Stdout, os.Stderr)
}

// demo writes progress to stdout (stderr with --json, where stdout gets only
// the summary line) and the processor's log to stderr. It runs in phases:
// parse the flags, start the embedded Kafka and Redis, run the processor,
// the simulated providers and the load until every flow has closed, report.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseDemo(args, stderr)
	if err != nil {
		return err
	}
	// The console outlives the flows with --stay, and stops with the demo
	// otherwise.
	consoleCtx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	progress := stdout
	if o.asJSON {
		progress = stderr
	}
	log := o.logger(stderr)
	routeRedisLogs(log, map[bool]string{true: "info", false: "warn"}[o.verbose])
	b, err := startEmbedded(o.speed)
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Fprintf(progress, "embedded Kafka on %s, embedded Redis on %s, clock x%g\n", b.brokers[0], b.redisAddr, o.speed)
	sum, pub, consoleDone, err := runDemo(ctx, consoleCtx, o, b, progress, log)
	if err != nil {
		if consoleDone != nil {
			stopConsole()
			<-consoleDone
		}
		return err
	}
	if err := reportDemo(sum, pub, o.asJSON, stdout); err != nil {
		return err
	}
	if consoleDone != nil {
		if o.stay {
			fmt.Fprintln(progress, "the console stays up (--stay); Ctrl-C stops it")
		} else {
			stopConsole()
		}
		<-consoleDone
	}
	return nil
}

// demoOptions are the demo's flags.
type demoOptions struct {
	flows   int
	speed   float64
	rate    float64
	asJSON  bool
	timeout time.Duration
	verbose bool
	// consoleAddr is where the web console listens ("" for none); stay
	// keeps it up after the flows closed.
	consoleAddr string
	stay        bool
}

func parseDemo(args []string, stderr io.Writer) (*demoOptions, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, "demo [flags]")
	o := &demoOptions{}
	fs.IntVar(&o.flows, "flows", 300, "stop after this many flows have closed")
	fs.Float64Var(&o.speed, "speed", 10, "run the clock this many times faster than the wall clock")
	fs.Float64Var(&o.rate, "rate", 100, "new flows per wall-clock second")
	fs.BoolVar(&o.asJSON, "json", false, "end with one JSON summary line on standard output")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long (wall time)")
	fs.BoolVar(&o.verbose, "v", false, "show the processor's log")
	fs.StringVar(&o.consoleAddr, "console", "127.0.0.1:8080", "serve the web console here, without users (a loopback address); empty for none")
	fs.BoolVar(&o.stay, "stay", false, "keep the console up after the flows closed, until interrupted")
	cliconfig.RegisterConfig(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if o.flows < 1 || o.speed <= 0 {
		return nil, fmt.Errorf("demo: --flows must be at least 1 and --speed above 0")
	}
	if o.consoleAddr != "" {
		if err := console.CheckListenAddr(o.consoleAddr, true); err != nil {
			return nil, fmt.Errorf("demo: --console: %w", err)
		}
	}
	return o, nil
}

func (o *demoOptions) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// demoBackends are the embedded Kafka and Redis, and the store, clock and
// topic names on them.
type demoBackends struct {
	kafka     *embedded.Kafka
	red       *embedded.Redis
	rc        *redis.Client
	store     *statestore.Store
	clock     *clock.Scaled
	names     topics.Names
	brokers   []string
	redisAddr string
}

func startEmbedded(speed float64) (*demoBackends, error) {
	kafka, err := embedded.StartKafka(12)
	if err != nil {
		return nil, err
	}
	red, err := embedded.StartRedis()
	if err != nil {
		kafka.Close()
		return nil, err
	}
	rc := redis.NewClient(&redis.Options{Addr: red.Addr()})
	return &demoBackends{kafka: kafka, red: red, rc: rc, store: statestore.New(rc, statestore.Config{}),
		clock: clock.NewScaled(speed), names: topics.DefaultNames(), brokers: kafka.Brokers(), redisAddr: red.Addr()}, nil
}

func (b *demoBackends) close() {
	b.rc.Close()
	b.red.Close()
	b.kafka.Close()
}

// runDemo runs the processor, the simulated providers and the load until
// every published flow has closed, printing progress, and returns the tally.
// Before the load it stores the demo catalog and the published flow some
// requests name, and says what they hold.
//
// With --console it also starts the web console on the same Kafka and
// Redis, running until consoleCtx ends; consoleDone is closed when it has
// stopped (nil without a console).
func runDemo(ctx, consoleCtx context.Context, o *demoOptions, b *demoBackends, progress io.Writer, log *slog.Logger) (sum simulator.Summary, pub simulator.Published, consoleDone <-chan struct{}, err error) {
	// The lease is clock time; scaled with the clock it stays 10 s of wall
	// time, so a slow batch is not mistaken for a dead instance. The
	// catalog is enforced rather than left to auto: it is stored after the
	// processor started, and in auto mode a request read before the config
	// table has it would skip the checks (the table is still empty),
	// letting through the requests only the catalog refuses. In enforce
	// mode a refused request first makes the table read its topics to their
	// end, and the catalog is stored before any request.
	proc, err := processor.New(processor.Config{Brokers: b.brokers, Topics: b.names, CreateTopics: true,
		CatalogMode: flow.CatalogEnforce,
		Clock:       b.clock, ClaimLease: time.Duration(float64(10*time.Second) * o.speed), Logger: log}, b.store)
	if err != nil {
		return simulator.Summary{}, simulator.Published{}, nil, err
	}
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(runCtx) }()

	tally := simulator.NewTally()
	if err := waitForTopics(runCtx, b.brokers, b.names); err != nil {
		return simulator.Summary{}, simulator.Published{}, nil, err
	}
	go tally.Follow(runCtx, b.brokers, nil, b.names.Events)
	providers := &simulator.Providers{Brokers: b.brokers, Topics: b.names, Channels: flow.DefaultChannels().Names(),
		Mixes: simulator.DefaultMixes(), Clock: b.clock, Log: log}
	go providers.Run(runCtx)
	catalog := simulator.DemoCatalog("demo", b.clock.Now())
	load := &simulator.Load{Brokers: b.brokers, Topics: b.names, Clock: b.clock, Flows: o.flows,
		Invalid: 0.02, Cancel: 0.03, Rate: o.rate, IDPrefix: "demo-", Catalog: &catalog}
	stored, err := load.Store(runCtx)
	if err != nil {
		return simulator.Summary{}, simulator.Published{}, nil, err
	}
	printStored(progress, catalog, stored, b.names)
	if o.consoleAddr != "" {
		consoleDone = startDemoConsole(consoleCtx, o.consoleAddr, b, progress, log)
	}
	loaded := make(chan loadResult, 1)
	go func() { pub, err := load.Run(runCtx); loaded <- loadResult{pub, err} }()

	sum, pub, err = waitClosed(ctx, o.flows, b.clock, tally, loaded, procDone, progress)
	if err != nil {
		return sum, pub, consoleDone, err
	}
	stopAll()
	<-procDone
	return sum, pub, consoleDone, nil
}

// startDemoConsole serves the web console without users on addr until ctx
// ends, its clock the demo's (the outcome windows end at the demo's now).
// A console that cannot start is reported and the demo goes on without it.
func startDemoConsole(ctx context.Context, addr string, b *demoBackends, progress io.Writer, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	app, err := consolewire.Open(ctx, consolewire.Options{Brokers: b.brokers, Names: b.names, States: b.store,
		Validator: client.DefaultValidator(), InsecureLocal: true, Logger: log, Now: b.clock.Now})
	if err != nil {
		fmt.Fprintf(progress, "console: %v (the demo goes on without it)\n", err)
		close(done)
		return done
	}
	go func() {
		defer close(done)
		defer app.Close()
		if err := serveConsole(ctx, app, consoleSettings{addr: addr, insecureLocal: true}, log, progress); err != nil {
			fmt.Fprintf(progress, "%v (the demo goes on without it)\n", err)
		}
	}()
	return done
}

// printStored says what the load's requests name: the catalog (enforced)
// and the stored flow.
func printStored(w io.Writer, c simulator.Catalog, def schemas.FlowDefinition, names topics.Names) {
	steps := make([]string, len(def.Steps))
	for i, s := range def.Steps {
		steps[i] = fmt.Sprintf("%s %s %ds", s.Channel, s.Template, s.DelaySeconds)
	}
	fmt.Fprintf(w, "catalog: %s, enforced\n", c.Summary(names))
	fmt.Fprintf(w, "flow %s version %d %s on %s: %s\n", def.FlowID, def.Version, def.Status, names.Flows, strings.Join(steps, ", then "))
}

type loadResult struct {
	pub simulator.Published
	err error
}

// waitClosed waits for the load to be published and every flow it
// published to close, printing progress twice a second, and returns the
// tally's summary then.
func waitClosed(ctx context.Context, want int, clock *clock.Scaled, tally *simulator.Tally, loaded <-chan loadResult, procDone <-chan error, progress io.Writer) (simulator.Summary, simulator.Published, error) {
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var pub simulator.Published
	for published := false; !published || tally.Closed() < pub.Flows; {
		select {
		case r := <-loaded:
			if r.err != nil {
				return simulator.Summary{}, pub, r.err
			}
			pub, published = r.pub, true
			fmt.Fprintf(progress, "published %d flows (%d cancelled right away) and %d invalid requests\n", pub.Flows, pub.Cancels, pub.Invalid)
		case err := <-procDone:
			return simulator.Summary{}, pub, fmt.Errorf("demo: processor stopped: %v", err)
		case <-ctx.Done():
			return simulator.Summary{}, pub, fmt.Errorf("demo: %d of %d flows closed before the timeout", tally.Closed(), want)
		case <-tick.C:
			printProgress(progress, tally.Summary(), want, clock.Now().Sub(clock.Start))
		}
	}
	sum := tally.Summary()
	fmt.Fprintf(progress, "all %d flows closed in %s wall time\n", sum.Flows, time.Since(start).Round(time.Millisecond))
	return sum, pub, nil
}

// reportDemo checks the summary and, with --json, prints it.
func reportDemo(sum simulator.Summary, pub simulator.Published, asJSON bool, stdout io.Writer) error {
	if err := checkSummary(sum, pub); err != nil {
		return err
	}
	if asJSON {
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
	fmt.Fprintf(w, "[clock +%6s] closed %d/%d  %s  sent %s  fallbacks %s  discarded %s  rejected %d\n",
		clockTime.Round(time.Second), s.Flows, want, counts(s.Outcomes), counts(s.Attempts), counts(s.Fallbacks), counts(s.DLRsDiscarded), s.Rejected)
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

// demoTopics are the topics the simulated parts use: the inputs, the
// events, the configuration (flows and the catalog) and every channel's
// sends.
func demoTopics(names topics.Names) []string {
	want := []string{names.Requests, names.DLR, names.Events, names.Flows, names.Senders, names.Templates}
	for _, c := range flow.DefaultChannels().Names() {
		want = append(want, names.Sends(c))
	}
	return want
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
	want := demoTopics(names)
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
