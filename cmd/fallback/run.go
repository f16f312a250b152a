package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/processor"
)

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := c.checkRequestAge(); err != nil {
		return err
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	kafkaOpts, err := c.kafkaOpts()
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
	// Settings are all checked; now the brokers must take the connection.
	if err := c.checkBrokers(ctx, brokers); err != nil {
		return err
	}
	if err := store.Ping(ctx); err != nil {
		return fmt.Errorf("redis not reachable: %w", err)
	}
	cfg := c.processorConfig(brokers)
	cfg.KafkaOpts = append(kafkaOpts, cfg.KafkaOpts...)
	if cfg.Clock, err = c.clock(); err != nil {
		return err
	}
	c.warnInsecure(cfg.Logger)
	cfg.Logger.Info("connections", "kafka", c.sec.kafka.Describe(), "redis", clients.RedactURL(c.redisURL))
	p, err := processor.New(cfg, store)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

func (c *common) processorConfig(brokers []string) processor.Config {
	var kafkaOpts []kgo.Opt
	if c.instanceID != "" {
		// Group options are ignored by the processor's clients that are not
		// in the group (producer, flow table reader).
		kafkaOpts = append(kafkaOpts, kgo.InstanceID(c.instanceID))
	}
	return processor.Config{
		KafkaOpts:       kafkaOpts,
		Brokers:         brokers,
		Group:           c.group,
		Topics:          c.names,
		CreateTopics:    c.createTopics,
		Partitions:      int32(c.partitions),
		Replication:     int16(c.replication),
		ClaimLease:      c.claimLease,
		MaxRequestAge:   c.maxAge,
		DeadlineGrace:   graceSetting(c.grace),
		MaxDeadlineHold: c.maxHold,
		Logger:          c.logger(),
	}
}

// graceSetting turns --deadline-grace into processor.Config's form, where
// zero means the default and a negative value means none.
func graceSetting(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
