package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/observe"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/statestore"
)

// runCmd is `fallback run`, the production processor: parse the settings,
// connect to Kafka and Redis, and run until ctx ends.
func runCmd(ctx context.Context, args []string) error {
	r, err := parseRun(args)
	if err != nil {
		return err
	}
	c, httpAddr := r.Common, r.HTTPAddr
	// Traces: OTLP when the OTEL_* variables ask for it, else the no-op
	// provider (observe.NewTracerProvider). The processor's default
	// TracerProvider is the global one.
	tp, stopTraces, err := observe.NewTracerProvider(ctx)
	if err != nil {
		return err
	}
	defer observe.FlushTraces(stopTraces)
	otel.SetTracerProvider(tp)
	conn, err := connectRun(ctx, c)
	if err != nil {
		return err
	}
	defer conn.rc.Close()
	if httpAddr == "" { // no endpoints: the metrics go to the global (no-op) provider
		p, err := newProcessor(c, conn, nil)
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
	mp, metrics, err := observe.NewMeterProvider()
	if err != nil {
		return err
	}
	defer func() { _ = mp.Shutdown(context.Background()) }()
	// go-redis's own metrics (redisotel: connection pool and command
	// timings) on the same provider; franz-go's are added by the processor.
	if err := redisotel.InstrumentMetrics(conn.rc, redisotel.WithMeterProvider(mp)); err != nil {
		return fmt.Errorf("redis client metrics: %w", err)
	}
	p, err := newProcessor(c, conn, mp)
	if err != nil {
		return err
	}
	srv, err := observe.Start(httpAddr, observe.Handler(metrics, p.Ready), c.Logger())
	if err != nil {
		return err
	}
	runErr := p.Run(ctx)
	if err := srv.Shutdown(); err != nil && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	return runErr
}

// parseRun reads the flags and refuses impossible or unsafe settings
// before anything connects. With --print-config it prints the effective
// configuration and returns errDone.
func parseRun(args []string) (*cliconfig.Run, error) {
	fs, r := runFlags()
	if err := parseCommon(fs, r.Common, args); err != nil {
		return nil, err
	}
	if r.PrintConfig {
		return nil, writeConfig(os.Stdout, fs)
	}
	if r.ShutdownTimeout <= 0 {
		return nil, fmt.Errorf("--shutdown-timeout (FALLBACK_SHUTDOWN_TIMEOUT): must be above 0, got %s", r.ShutdownTimeout)
	}
	return r, nil
}

// runFlags is the flag set of `fallback run` (cliconfig.NewRunFlags: every
// shared setting, then its own) with its usage line for -h.
// docs/configuration.md's table is generated from it.
func runFlags() (*flag.FlagSet, *cliconfig.Run) {
	fs, r := cliconfig.NewRunFlags()
	setUsage(fs, "run [flags]")
	return fs, r
}

// runConn are the processor's connections.
type runConn struct {
	brokers   []string
	kafkaOpts []kgo.Opt
	rc        redis.UniversalClient
	store     *statestore.Store
}

// connectRun checks every connection setting, then that the brokers and
// Redis take the connection; then it resolves --redis-wait-replicas auto
// on the Redis it reached and opens the state store.
func connectRun(ctx context.Context, c *cliconfig.Common) (_ *runConn, err error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, err
	}
	kafkaOpts, err := c.KafkaOpts()
	if err != nil {
		return nil, err
	}
	rc, err := c.RedisClient()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rc.Close()
		}
	}()
	if err := c.CheckStore(rc); err != nil {
		return nil, err
	}
	// Settings are all checked; now the brokers must take the connection.
	if err := c.CheckBrokers(ctx, brokers); err != nil {
		return nil, err
	}
	if err := rc.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis not reachable: %w", err)
	}
	if err := c.ResolveWaitReplicas(ctx, rc); err != nil {
		return nil, err
	}
	store, err := c.Store(rc)
	if err != nil {
		return nil, err
	}
	return &runConn{brokers: brokers, kafkaOpts: kafkaOpts, rc: rc, store: store}, nil
}

// newProcessor makes the processor of the settings on the connections.
func newProcessor(c *cliconfig.Common, conn *runConn, mp metric.MeterProvider) (*processor.Processor, error) {
	cfg := processorConfig(c, conn.brokers)
	cfg.MeterProvider = mp
	cfg.KafkaOpts = append(conn.kafkaOpts, cfg.KafkaOpts...)
	var err error
	if cfg.Clock, err = c.Clock(); err != nil {
		return nil, err
	}
	if c.Registry.Enabled() {
		if cfg.SchemaRegistry, err = c.Registry.Client(); err != nil {
			return nil, err
		}
	}
	if cfg.Prices, err = c.PriceTable(); err != nil {
		return nil, fmt.Errorf("--prices: %w", err)
	}
	c.WarnInsecure(cfg.Logger)
	cfg.Logger.Info("connections", "kafka", c.Kafka.Describe(), "redis", clients.RedactURL(c.RedisURL),
		"schema_registry", c.Registry.URLs, "prices", cfg.Prices.Len())
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
		KafkaOpts:        kafkaOpts,
		Brokers:          brokers,
		Group:            c.Group,
		Topics:           c.Names,
		CreateTopics:     c.CreateTopics,
		Partitions:       int32(c.Partitions),
		Replication:      int16(c.Replication),
		ClaimLease:       c.ClaimLease,
		MaxRequestAge:    c.MaxRequestAge,
		ProviderIndexTTL: c.ProviderIndexTTL(),
		DeadlineGrace:    graceSetting(c.DeadlineGrace),
		MaxDeadlineHold:  c.MaxDeadlineHold,
		BatchFill:        c.BatchFill,
		AutoDelayWindow:  c.AutoDelayWindow, AutoDelayMinSamples: c.AutoDelayMinSamples,
		CatalogMode:     c.CatalogMode(),
		Events:          c.EventsMode(),
		ShutdownTimeout: c.ShutdownTimeout,
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
