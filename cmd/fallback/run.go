package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/statestore"
)

// runCmd is `fallback run`, the production processor: parse the settings,
// connect to Kafka and Redis, and run until ctx ends.
func runCmd(ctx context.Context, args []string) error {
	c, err := parseRun(args)
	if err != nil {
		return err
	}
	conn, err := connectRun(ctx, c)
	if err != nil {
		return err
	}
	defer conn.rc.Close()
	p, err := newProcessor(c, conn)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// parseRun reads the flags and refuses unsafe settings before anything
// connects.
func parseRun(args []string) (*cliconfig.Common, error) {
	fs, c := newFlags("run")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := c.CheckRequestAge(); err != nil {
		return nil, err
	}
	return c, nil
}

// runConn are the processor's connections.
type runConn struct {
	brokers   []string
	kafkaOpts []kgo.Opt
	rc        redis.UniversalClient
	store     *statestore.Store
}

// connectRun checks every connection setting, then that the brokers and
// Redis take the connection.
func connectRun(ctx context.Context, c *cliconfig.Common) (*runConn, error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, err
	}
	kafkaOpts, err := c.KafkaOpts()
	if err != nil {
		return nil, err
	}
	rc, store, err := redisStore(c)
	if err != nil {
		return nil, err
	}
	// Settings are all checked; now the brokers must take the connection.
	if err := c.CheckBrokers(ctx, brokers); err != nil {
		rc.Close()
		return nil, err
	}
	if err := store.Ping(ctx); err != nil {
		rc.Close()
		return nil, fmt.Errorf("redis not reachable: %w", err)
	}
	return &runConn{brokers: brokers, kafkaOpts: kafkaOpts, rc: rc, store: store}, nil
}

// newProcessor makes the processor of the settings on the connections.
func newProcessor(c *cliconfig.Common, conn *runConn) (*processor.Processor, error) {
	cfg := processorConfig(c, conn.brokers)
	cfg.KafkaOpts = append(conn.kafkaOpts, cfg.KafkaOpts...)
	var err error
	if cfg.Clock, err = c.Clock(); err != nil {
		return nil, err
	}
	c.WarnInsecure(cfg.Logger)
	cfg.Logger.Info("connections", "kafka", c.Kafka.Describe(), "redis", clients.RedactURL(c.RedisURL))
	return processor.New(cfg, conn.store)
}

// processorConfig is the processor's config of the settings, without the
// connection options and the clock.
func processorConfig(c *cliconfig.Common, brokers []string) processor.Config {
	var kafkaOpts []kgo.Opt
	if c.InstanceID != "" {
		// Group options are ignored by the processor's clients that are not
		// in the group (producer, flow table reader).
		kafkaOpts = append(kafkaOpts, kgo.InstanceID(c.InstanceID))
	}
	return processor.Config{
		KafkaOpts:       kafkaOpts,
		Brokers:         brokers,
		Group:           c.Group,
		Topics:          c.Names,
		CreateTopics:    c.CreateTopics,
		Partitions:      int32(c.Partitions),
		Replication:     int16(c.Replication),
		ClaimLease:      c.ClaimLease,
		MaxRequestAge:   c.MaxRequestAge,
		DeadlineGrace:   graceSetting(c.DeadlineGrace),
		MaxDeadlineHold: c.MaxDeadlineHold,
		Logger:          c.Logger(),
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
