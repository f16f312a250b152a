package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/redis/go-redis/v9"
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
// wrong (errUsage), or the usage for -h (errDone).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errDone
		}
		return errUsage
	}
	return nil
}

// parseCommon parses args, then refuses impossible shared settings (a
// FALLBACK_* variable that does not parse, a value out of range) before
// anything connects.
func parseCommon(fs *flag.FlagSet, c *cliconfig.Common, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return c.Check()
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
