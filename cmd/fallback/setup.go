package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/statestore"
)

// The setup prologue of the commands that talk to Kafka or Redis: a flag
// set with the shared settings (package cliconfig: brokers, Redis, group,
// topics, TLS, SASL, clock, log level, each with its FALLBACK_* variable),
// then the connections made from them. cmd/fallback-bench uses the same
// settings.

// newFlags is a command's flag set with the shared settings of groups
// registered: its -h lists only those and its own flags. synopsis is the
// usage line after "usage: fallback ".
func newFlags(name, synopsis string, groups cliconfig.Group) (*flag.FlagSet, *cliconfig.Common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	setUsage(fs, synopsis)
	c := &cliconfig.Common{}
	c.RegisterGroups(fs, groups)
	cliconfig.RegisterConfig(fs)
	return fs, c
}

// setUsage makes -h print the command's usage line, then its flags.
func setUsage(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: fallback %s\n\nFlags (each also set by its FALLBACK_* variable, docs/configuration.md):\n", synopsis)
		fs.PrintDefaults()
	}
}

// parseFlags parses args; the flag package has already printed what was
// wrong (errUsage), or the usage for -h (errDone). Then the flags that
// neither args nor a FALLBACK_* variable set are taken from the --config
// file, if any; a key or value it refuses is an error naming the file, the
// key and the flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if sawFlags != nil {
		sawFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errDone
		}
		return errUsage
	}
	return cliconfig.ApplyConfig(fs)
}

// sawFlags, when a test sets it, is shown each command's flag set before
// parsing (the generated tables of docs/configuration.md).
var sawFlags func(*flag.FlagSet)

// parseCommon parses args, then refuses impossible shared settings (a
// FALLBACK_* variable that does not parse, a value out of range) before
// anything connects.
func parseCommon(fs *flag.FlagSet, c *cliconfig.Common, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.Check(); err != nil {
		return err
	}
	routeRedisLogs(c.Logger(), c.LogLevel)
	return nil
}

// go-redis has no logger per client, only a process-wide one
// (redis.SetLogger) that every client, pool and background goroutine
// writes to; by default it prints to stderr past slog. So it is set here,
// once for the process, to the first command's logger: a process runs one
// command, and swapping it later would move the lines of clients still
// running under another logger.
var redisLogOnce sync.Once

func routeRedisLogs(log *slog.Logger, level string) {
	redisLogOnce.Do(func() {
		redis.SetLogger(redisLogger{log.With("component", "go-redis")})
		// go-redis's own gate for its optional lines (maintenance
		// notifications and the like): as verbose as --log-level.
		switch strings.ToLower(level) {
		case "debug":
			redis.SetLogLevel(logging.LogLevelDebug)
		case "info":
			redis.SetLogLevel(logging.LogLevelInfo)
		case "warn":
			redis.SetLogLevel(logging.LogLevelWarn)
		default:
			redis.SetLogLevel(logging.LogLevelError)
		}
	})
}

// redisLogger is go-redis's logger on slog. go-redis's lines carry no
// level and are mostly trouble (a dial or pool failure, a bad connection,
// a cluster or sentinel error), so they log at WARN. They name addresses
// and errors, never command arguments.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// redisStore connects to Redis and opens the flow state store on it. The
// caller closes the client.
func redisStore(c *cliconfig.Common) (redis.UniversalClient, *statestore.Store, error) {
	rc, err := c.RedisClient()
	if err != nil {
		return nil, nil, err
	}
	store, err := c.Store(rc)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return rc, store, nil
}

// simulatorSetup is what the simulated parts (providers, load) need: the
// brokers, checked to take the connection, their options, and the clock.
func simulatorSetup(ctx context.Context, c *cliconfig.Common) ([]string, []kgo.Opt, clock.Clock, error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, nil, nil, err
	}
	clock, err := c.Clock()
	if err != nil {
		return nil, nil, nil, err
	}
	kafkaOpts, err := c.KafkaOpts()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := c.CheckBrokers(ctx, brokers); err != nil {
		return nil, nil, nil, err
	}
	return brokers, kafkaOpts, clock, nil
}
