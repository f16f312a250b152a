// Package processor runs fallback flows: it consumes send requests and DLRs
// from Kafka, keeps each flow's state and deadlines in Redis through the
// state store, fires deadlines, and produces send commands, analytics events
// and dead letters. The flow logic itself is the pure state machine in
// processor/flow.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Config configures a Processor. Zero values take the defaults noted.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// KafkaOpts are added to every Kafka client (TLS, SASL, client id...).
	KafkaOpts []kgo.Opt
	// Group is the consumer group; instances in one group share the work. Default "fallback".
	Group  string
	Topics topics.Names // default topics.DefaultNames()

	// CreateTopics creates missing topics at start with Partitions and
	// Replication (-1: the broker's default).
	CreateTopics bool
	Partitions   int32 // default 12
	Replication  int16 // default -1

	Channels flow.Channels // default flow.DefaultChannels()
	Limits   flow.Limits   // default flow.DefaultLimits()

	// ClaimLease is how long a claimed deadline or owed output waits before
	// another instance takes it over. Shorter re-fires faster after a crash;
	// longer tolerates longer pauses (GC, slow Redis) before work is repeated.
	// Default 10 s of clock time.
	ClaimLease time.Duration
	// ProviderIndexTTL is how long a provider message id resolves to its
	// attempt. It should outlive the longest flow plus the DLR delay of the
	// slowest provider. Default 48 h.
	ProviderIndexTTL time.Duration
	// MaxPollRecords bounds one batch. Larger batches amortise Redis and
	// Kafka round trips; smaller ones cut latency and rework after a crash. Default 1000.
	MaxPollRecords int
	// SweepBatch is how many due deadlines the sweeper claims per shard per
	// round. Default 500.
	SweepBatch int
	// MaxIdle is the longest the sweeper sleeps (clock time) before it looks
	// for deadlines written by other instances. Deadlines are at least 5 s
	// ahead when written, so anything under that keeps them on time. Default 1 s.
	MaxIdle time.Duration

	Clock         Clock                // default RealClock
	Logger        *slog.Logger         // default slog.Default()
	MeterProvider metric.MeterProvider // default the global one
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "fallback"
	}
	if c.Topics == (topics.Names{}) {
		c.Topics = topics.DefaultNames()
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.Replication == 0 {
		c.Replication = -1
	}
	if c.Channels == nil {
		c.Channels = flow.DefaultChannels()
	}
	if c.Limits == (flow.Limits{}) {
		c.Limits = flow.DefaultLimits()
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = 10 * time.Second
	}
	if c.ProviderIndexTTL == 0 {
		c.ProviderIndexTTL = 48 * time.Hour
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = 1000
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = 500
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = time.Second
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Processor is one instance of the fallback processor.
type Processor struct {
	cfg       Config
	consumer  *Consumer
	sweeper   *Sweeper
	recoverer *Recoverer
	table     *FlowTable
	clients   []*kgo.Client
}

// New builds a processor on a state store. It connects lazily: Run fails if
// Kafka cannot be reached.
func New(cfg Config, store StateStore) (*Processor, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("processor: no Kafka brokers configured")
	}
	codecs, err := schemas.New()
	if err != nil {
		return nil, fmt.Errorf("processor: load schemas: %w", err)
	}
	log := cfg.Logger
	m := newMetrics(cfg.MeterProvider)

	base := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...)
	consumerClient, err := kgo.NewClient(append(base,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Requests, cfg.Topics.DLR),
		// A new group starts at the beginning: requests published before the
		// first instance came up are not skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets are committed by hand after state and outputs are durable,
		// and a rebalance waits for the batch in hand to finish.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka consumer: %w", err)
	}
	producerClient, err := kgo.NewClient(append(base,
		// Outputs are only counted as sent when every in-sync replica has them.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
	)...)
	if err != nil {
		consumerClient.Close()
		return nil, fmt.Errorf("processor: kafka producer: %w", err)
	}
	tableClient, err := kgo.NewClient(append(base,
		kgo.ConsumeTopics(cfg.Topics.Flows),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		consumerClient.Close()
		producerClient.Close()
		return nil, fmt.Errorf("processor: kafka flow table reader: %w", err)
	}

	enc := &encoder{codecs: codecs, topics: cfg.Topics}
	eng := &engine{store: store, enc: enc, channels: cfg.Channels, lease: cfg.ClaimLease, log: log, metrics: m}
	del := &deliverer{pub: KafkaPublisher{Client: producerClient}, store: store, log: log}
	table := NewFlowTable(tableClient, cfg.Topics.Flows, codecs, log)
	sweeper := newSweeper(eng, del, cfg.Clock, cfg.ClaimLease, cfg.SweepBatch, cfg.MaxIdle, log.With("worker", "sweeper"), m)
	p := &Processor{
		cfg:     cfg,
		sweeper: sweeper,
		table:   table,
		recoverer: &Recoverer{store: store, deliverer: del, clock: cfg.Clock, lease: cfg.ClaimLease,
			batch: cfg.SweepBatch, log: log.With("worker", "recoverer"), metrics: m},
		consumer: &Consumer{client: consumerClient, engine: eng, deliverer: del, codecs: codecs,
			validator: flow.Validator{Channels: cfg.Channels, Limits: cfg.Limits}, defs: table,
			topics: cfg.Topics, clock: cfg.Clock, sweeper: sweeper, maxPoll: cfg.MaxPollRecords,
			indexTTL: cfg.ProviderIndexTTL, log: log.With("worker", "consumer"), metrics: m},
		clients: []*kgo.Client{consumerClient, producerClient, tableClient},
	}
	return p, nil
}

// FlowTable is the processor's table of stored flow definitions.
func (p *Processor) FlowTable() *FlowTable { return p.table }

// Run creates missing topics (when configured), loads the flow table, then
// runs the consumer, the sweeper, the recoverer and the flow table follower
// until ctx ends or one of them fails. It closes the Kafka clients on return.
func (p *Processor) Run(ctx context.Context) error {
	defer p.close()
	if p.cfg.CreateTopics {
		adm := kadm.NewClient(p.clients[1])
		specs := topics.Specs(p.cfg.Topics, p.cfg.Channels.Names(), p.cfg.Partitions, p.cfg.Replication)
		if err := topics.Create(ctx, adm, specs); err != nil {
			return fmt.Errorf("processor: create topics: %w", err)
		}
	}
	// A topic created a moment ago may not be in every broker's metadata yet.
	if err := retry(ctx, p.cfg.Logger, "load flow table", 10, func() error { return p.table.CatchUp(ctx) }); err != nil {
		return fmt.Errorf("processor: %w", err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"consumer": p.consumer.Run, "sweeper": p.sweeper.Run,
		"recoverer": p.recoverer.Run, "flow table": p.table.Run,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				cancel(fmt.Errorf("processor: %s: %w", name, err))
			}
		}()
	}
	p.cfg.Logger.Info("processor running", "group", p.cfg.Group, "requests", p.cfg.Topics.Requests, "dlr", p.cfg.Topics.DLR)
	<-ctx.Done()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// closeTimeout bounds shutdown: with Kafka unreachable, leaving the group
// would otherwise wait for every retry of the leave request.
const closeTimeout = 5 * time.Second

func (p *Processor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range p.clients {
			c.CloseAllowingRebalance()
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.cfg.Logger.Warn("kafka clients did not close in time; leaving the group is left to the session timeout")
	}
}
