package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/fallbackd/fallback/processor"
)

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	rc, err := c.redisClient()
	if err != nil {
		return err
	}
	defer rc.Close()
	store, err := c.store(rc)
	if err != nil {
		return err
	}
	if err := store.Ping(ctx); err != nil {
		return fmt.Errorf("redis not reachable: %w", err)
	}
	cfg := c.processorConfig(brokers)
	if cfg.Clock, err = c.clock(); err != nil {
		return err
	}
	p, err := processor.New(cfg, store)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

func (c *common) processorConfig(brokers []string) processor.Config {
	return processor.Config{
		Brokers:      brokers,
		Group:        c.group,
		Topics:       c.names,
		CreateTopics: c.createTopics,
		Partitions:   int32(c.partitions),
		Replication:  int16(c.replication),
		ClaimLease:   c.claimLease,
		Logger:       c.logger(),
	}
}
