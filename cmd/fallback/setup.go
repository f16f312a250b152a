package main

import (
	"context"
	"flag"

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

// newFlags is a command's flag set with the shared settings registered.
func newFlags(name string) (*flag.FlagSet, *cliconfig.Common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &cliconfig.Common{}
	c.Register(fs)
	return fs, c
}

// parseFlags parses args; the flag package has already printed what was
// wrong (or the usage, for -h).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
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
