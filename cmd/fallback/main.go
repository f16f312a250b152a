// Command fallback runs multi-channel message fallback flows on Kafka and
// Redis. `fallback demo` runs the whole product in-process with no setup;
// `fallback run` is the production processor.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
  flow REQUEST_ID     print a flow's story from Redis (steps, statuses, outcome)
  flows put FILE|publish ID|unpublish ID|get ID|list|delete ID
                      store (as drafts), publish, unpublish, print, list or
                      delete the stored flow definitions on fallback.flows
  senders put|list|disable ID
                      the catalog's senders on fallback.senders
  templates put FILE|list|preview NAME
                      the catalog's templates on fallback.templates; preview
                      prints one filled with sample params
  console             the web console: build, preview, publish and watch flows,
                      the catalog, flow lookup, outcomes (docs/console.md)
  console hash-password
                      print the bcrypt hash of a password read from stdin
  providers           run the simulated SMS, WhatsApp and RCS provider adapters
  load                publish a load of send requests
  dlq list            print the dead letters on fallback.dlq (never their values)
  dlq redrive         re-publish dead letters to their source topic, once each
  schemas print [RECORD]
                      print the records' fingerprints, or one record's .avsc
  schemas register    register each topic's schema in --schema-registry
  version             print the version and commit (also --version)

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
	code := exitCode(dispatch(ctx, os.Args[1:]), os.Stderr)
	stop()
	os.Exit(code)
}

var (
	// errUsage: the command line is wrong and the usage has been printed;
	// exit 2. An error wrapping it is printed too.
	errUsage = errors.New("usage")
	// errDone: the command did what was asked (-h, --print-config); exit 0.
	errDone = errors.New("done")
)

// usageError is a wrong command line, after the usage is printed: its
// message is printed and the exit status is 2.
type usageError string

func (e usageError) Error() string        { return string(e) }
func (e usageError) Is(target error) bool { return target == errUsage }

// exitCode is the process's exit status for dispatch's result, after
// printing the error: 0 for success, -h and --print-config; 2 for a wrong
// command line (unknown command or flag); 1 for any other error.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, errDone):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintln(stderr, "fallback:", err)
		}
		return 2
	}
	fmt.Fprintln(stderr, "fallback:", err)
	return 1
}

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
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			fmt.Println("usage: fallback topics create [flags]   (fallback topics create -h for its flags)")
			return errDone
		}
		if len(rest) == 0 || rest[0] != "create" {
			fmt.Fprint(os.Stderr, usage)
			return usageError("topics: the only subcommand is 'create'")
		}
		return topicsCreateCmd(ctx, rest[1:])
	case "send":
		return sendCmd(ctx, rest)
	case "flow":
		return flowCmd(ctx, rest)
	case "flows":
		return flowsCmd(ctx, rest)
	case "senders":
		return sendersCmd(ctx, rest)
	case "templates":
		return templatesCmd(ctx, rest)
	case "console":
		return consoleCmd(ctx, rest)
	case "providers":
		return providersCmd(ctx, rest)
	case "load":
		return loadCmd(ctx, rest)
	case "dlq":
		return dlqCmd(ctx, rest)
	case "schemas":
		return schemasCmd(ctx, rest)
	case "version", "--version", "-version", "-v":
		fmt.Println(versionString())
		return nil
	case "-h", "--help", "-help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}
