// Command fallback runs multi-channel message fallback flows on Kafka and
// Redis. `fallback demo` runs the whole product in-process with no setup;
// `fallback run` is the production processor.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `fallback: multi-channel message fallback on Kafka and Redis

Commands:
  run                 run the processor (needs --brokers and --redis)
  demo                run everything in-process: embedded Kafka and Redis, the
                      processor, simulated providers and a load of flows
  topics create       create the topics
  send                publish one send or cancel request given as JSON
  flow REQUEST_ID     print a flow's state from Redis
  providers           run the simulated SMS and WhatsApp provider adapters
  load                publish a load of send requests

Run 'fallback COMMAND -h' for a command's flags. Every flag can also be set
through its FALLBACK_* environment variable (docs/configuration.md).
The benchmark is its own command: go run ./cmd/fallback-bench (BENCHMARKS.md).
`

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// The processor's live heap is small (one batch, the clients' buffers) and
// it allocates per record; at Go's default of 100 the collector took about
// a quarter of its CPU. 400 cut the CPU per flow by about a quarter in
// `fallback-bench` (BENCHMARKS.md) for a few tens of MB more heap. GOGC in
// the environment wins.
const defaultGCPercent = 400

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "fallback:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest)
	case "demo":
		return demoCmd(ctx, rest)
	case "topics":
		if len(rest) == 0 || rest[0] != "create" {
			return fmt.Errorf("topics: the only subcommand is 'create'")
		}
		return topicsCreateCmd(ctx, rest[1:])
	case "send":
		return sendCmd(ctx, rest)
	case "flow":
		return flowCmd(ctx, rest)
	case "providers":
		return providersCmd(ctx, rest)
	case "load":
		return loadCmd(ctx, rest)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
