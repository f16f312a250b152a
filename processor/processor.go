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
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/processor/prices"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// consumerFetchMaxWait is the consumer's long-poll bound (see the client's
// options in New).
const consumerFetchMaxWait = 250 * time.Millisecond

// Defaults of the event-time deadline settings (docs/delivery-guarantees.md).
const (
	DefaultDeadlineGrace   = 250 * time.Millisecond
	DefaultMaxDeadlineHold = 5 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
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
	// CatalogMode says whether each step's sender and template are checked
	// against the catalog (the senders and templates topics). The default,
	// auto, enforces it once it holds anything, so a deployment without a
	// catalog keeps working; warn logs and counts what enforce would refuse
	// and refuses nothing, to try a new catalog on live traffic.
	CatalogMode flow.CatalogMode
	// Prices is the price table (--prices): each flow's steps take their
	// price from it when the flow starts. Nil: no table, and a step's cost
	// is known only when its DLR carries one (docs/cost.md).
	Prices *prices.Table
	// AutoDelayWindow is how long an observed send-to-delivery latency
	// counts for auto delays (Step.delay_auto), default an hour;
	// AutoDelayMinSamples how many a channel and country need in it before
	// an auto delay is chosen from them rather than the step's
	// delay_seconds, default 50 (docs/auto-delay.md).
	AutoDelayWindow     time.Duration
	AutoDelayMinSamples int

	// ClaimLease is how long a claimed deadline or owed output waits before
	// another instance takes it over. Shorter re-fires faster after a crash;
	// longer tolerates longer pauses (GC, slow Redis) before work is repeated.
	// Default 10 s of clock time.
	ClaimLease time.Duration
	// ProviderIndexTTL is how long a provider message id resolves to its
	// attempt. It should outlive the longest flow plus the DLR delay of the
	// slowest provider. Default 48 h.
	ProviderIndexTTL time.Duration
	// MaxRequestAge: a send read more than this after its requested_at (or,
	// when that is not given, its Kafka record's timestamp) is rejected
	// (REQUEST_REJECTED, reason expired) and nothing is sent, so a new
	// consumer group or an offset reset does not send old OTPs again. A
	// request's own expires_at can only shorten it. The state store must
	// remember closed flows for at least MaxRequestAge + DeadlineGrace, or a
	// duplicate still young enough to be accepted would start a second flow
	// (docs/delivery-guarantees.md). Default 1 h of clock time.
	MaxRequestAge time.Duration
	// MaxPollRecords bounds one batch. Larger batches amortise Redis and
	// Kafka round trips; smaller ones cut latency and rework after a crash. Default 1000.
	MaxPollRecords int
	// BatchFill is how long a poll that returned a small batch (under a
	// quarter of MaxPollRecords) polls again for more before the batch
	// runs. Longer fills batches at moderate rates, which spreads the fixed
	// cost of a batch (a script call per Redis shard, a produce round trip,
	// an offset commit) over more records; every input then waits up to
	// this much longer. 0 runs each poll's records at once (the default
	// here; `fallback run --batch-fill` defaults to 25 ms, docs/batching.md).
	BatchFill time.Duration
	// SweepBatch is how many due deadlines the sweeper claims per shard per
	// round. Default 500.
	SweepBatch int
	// MaxIdle is the longest the sweeper sleeps (clock time) before it looks
	// for deadlines written by other instances. Deadlines are at least 5 s
	// ahead when written, so anything under that keeps them on time. Default 1 s.
	MaxIdle time.Duration

	// DeadlineGrace is how far the input timestamps (the broker's clock,
	// or the producers' with CreateTime topics) may run behind the clock the
	// deadlines are set on: a deadline fires once every input partition is
	// read to its due time plus this. Larger covers worse clock skew; every
	// fallback is that much later. A request dated further than this in the
	// future is rejected. Default 250 ms; negative means none (one clock for
	// everything, as in tests on a manual clock).
	DeadlineGrace time.Duration
	// MaxDeadlineHold is the longest a due deadline waits for an input
	// partition that is not read (its owner is dead, a rebalance hangs,
	// Kafka is down). Past it the deadline fires anyway and its events carry
	// deadline_forced. Longer protects against paying for a fallback through
	// longer outages; shorter bounds how late a fallback can be. Default 5 min.
	MaxDeadlineHold time.Duration
	// WatermarkInterval is the wall time between checks for input partitions
	// that are read to their end (the sweeper also asks for one whenever a
	// deadline is held). Each check lists offsets in Kafka (three requests).
	// Default 100 ms.
	WatermarkInterval time.Duration
	// DLRBacklogPause: while more DLRs than this wait unread on this
	// instance's partitions, it stops reading requests, so a burst of
	// requests never starves the DLRs that decide fallbacks. Default
	// MaxPollRecords.
	DLRBacklogPause int64
	// ShutdownTimeout bounds a stop (ctx ending): reading stops at once,
	// the batch in hand and the sweeper's and recoverer's deliveries in
	// flight finish and commit, then the clients leave the group. Past it,
	// the work still running is abandoned (the outbox and the uncommitted
	// offsets keep it safe) and Run returns an error naming it. Default 30 s.
	ShutdownTimeout time.Duration

	// Events says which events reach the events topic: flow.EventsFull,
	// every transition (the default), or flow.EventsLean, the closes with
	// their summaries, multi-channel deliveries and the answers to refused
	// inputs: 3 records of a flow that falls back instead of 10.5. Lean is for
	// consumers that bill and report outcomes, not ones that follow a flow's
	// progress (docs/events.md).
	Events flow.Events

	// SchemaRegistry, when set, makes the processor register the
	// contract's schemas at start (subjects "<topic>-value"), write its
	// outputs in the Confluent wire format (byte 0, the 4-byte schema id,
	// the Avro binary) and read inputs in either format
	// (docs/schema-registry.md). Nil: plain Avro everywhere. Confluent
	// deserializers, Kafka Connect and ksqlDB need it; consumers of plain
	// Avro cannot read the framed values.
	SchemaRegistry SchemaRegistry

	Clock         clock.Clock          // default clock.Real
	Logger        *slog.Logger         // default slog.Default()
	MeterProvider metric.MeterProvider // default the global one
	// TracerProvider records the spans of requests, sends, DLRs, fallbacks
	// and closes (tracing.go); default the global one, a no-op unless set.
	TracerProvider trace.TracerProvider
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
	if c.MaxRequestAge == 0 {
		c.MaxRequestAge = time.Hour
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
	switch {
	case c.DeadlineGrace == 0:
		c.DeadlineGrace = DefaultDeadlineGrace
	case c.DeadlineGrace < 0:
		c.DeadlineGrace = 0
	}
	if c.MaxDeadlineHold == 0 {
		c.MaxDeadlineHold = DefaultMaxDeadlineHold
	}
	if c.WatermarkInterval == 0 {
		c.WatermarkInterval = 100 * time.Millisecond
	}
	if c.DLRBacklogPause == 0 {
		c.DLRBacklogPause = int64(c.MaxPollRecords)
	}
	if c.Events == "" {
		c.Events = flow.EventsFull
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Processor is one instance of the fallback processor.
type Processor struct {
	cfg        Config
	consumer   *Consumer
	sweeper    *Sweeper
	recoverer  *Recoverer
	compactor  *Compactor
	table      *ConfigTable
	wire       *wireFormat
	watermarks *Watermarks
	clients    []*kgo.Client
	store      StateStore
	joined     *atomic.Bool
	gauges     metric.Registration // the observable gauges' callback
}

// New builds a processor on a state store. It connects lazily: Run fails if
// Kafka cannot be reached.
func New(cfg Config, store StateStore) (*Processor, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("processor: no Kafka brokers configured")
	}
	if cfg.MaxDeadlineHold < 0 || cfg.WatermarkInterval < 0 {
		return nil, fmt.Errorf("processor: max deadline hold (%s) and watermark interval (%s) must not be negative",
			cfg.MaxDeadlineHold, cfg.WatermarkInterval)
	}
	if cfg.ShutdownTimeout < 0 {
		return nil, fmt.Errorf("processor: shutdown timeout (%s) must not be negative", cfg.ShutdownTimeout)
	}
	if _, err := flow.ParseEvents(string(cfg.Events)); err != nil {
		return nil, fmt.Errorf("processor: events: %w", err)
	}
	if cfg.MaxRequestAge < 0 {
		return nil, fmt.Errorf("processor: max request age (%s) must not be negative", cfg.MaxRequestAge)
	}
	codecs, err := schemas.New()
	if err != nil {
		return nil, fmt.Errorf("processor: load schemas: %w", err)
	}
	log := cfg.Logger
	m := newMetrics(cfg.MeterProvider)
	m.zeroKnown(cfg.Channels, cfg.Prices)
	wm := newWatermarks(nil, store, cfg.Group, cfg.Topics.Requests, cfg.Topics.DLR, cfg.Clock, cfg.WatermarkInterval,
		log.With("worker", "watermarks"))

	joined := new(atomic.Bool) // the group gave this instance partitions, and has not taken them back as lost
	// base is the options of every client: its franz-go logs go through
	// the processor's slog logger, at that logger's level (kslog asks the
	// handler which levels are enabled), tagged with the client's role. A
	// logger in cfg.KafkaOpts wins. franz-go logs connections, group and
	// partition changes and errors, never record keys or values.
	// The clients' own metrics (kotel: connections, bytes and records read
	// and written, per broker and topic) go to cfg.MeterProvider, summed
	// over the three clients.
	kafkaMeter := kotel.NewMeter(kotel.MeterProvider(cfg.MeterProvider))
	base := func(client string) []kgo.Opt {
		return append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...),
			kgo.WithLogger(kslog.New(log.With("component", "franz-go", "client", client))),
			kgo.WithHooks(kafkaMeter)}, cfg.KafkaOpts...)
	}
	consumerClient, err := kgo.NewClient(append(base("consumer"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Requests, cfg.Topics.DLR),
		// A new group starts at the beginning: requests published before the
		// first instance came up are not skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets are committed by hand after state and outputs are durable,
		// and a rebalance waits for the batch in hand to finish.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Requests are paused while DLRs wait (prioritiseDLRs), and resumed
		// topics join only the next fetch: with the default 5 s long poll and
		// no new DLRs, a resume waited up to 5 s, which throttled bursts of
		// timer-only flows to a few hundred requests per second. An idle
		// fetch every 250 ms per broker costs next to nothing.
		kgo.FetchMaxWait(consumerFetchMaxWait),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, p map[string][]int32) {
			wm.assign(p, true)
			joined.Store(true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { wm.assign(p, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, p map[string][]int32) {
			wm.assign(p, false)
			joined.Store(false)
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka consumer: %w", err)
	}
	producerClient, err := kgo.NewClient(append(base("producer"),
		// Outputs are only counted as sent when every in-sync replica has them.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
	)...)
	if err != nil {
		consumerClient.Close()
		return nil, fmt.Errorf("processor: kafka producer: %w", err)
	}
	configTopics := ConfigTopics{Flows: cfg.Topics.Flows, Senders: cfg.Topics.Senders, Templates: cfg.Topics.Templates,
		MissingIsEmpty: true}
	tableClient, err := kgo.NewClient(append(base("config-table"),
		kgo.ConsumeTopics(configTopics.names()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		consumerClient.Close()
		producerClient.Close()
		return nil, fmt.Errorf("processor: kafka config table reader: %w", err)
	}

	wire := newWireFormat(cfg.SchemaRegistry, Subjects(cfg.Topics, cfg.Channels.Names(), codecs))
	enc := &encoder{codecs: codecs, topics: cfg.Topics, wire: wire}
	eng := &engine{store: store, enc: enc, channels: cfg.Channels, lease: cfg.ClaimLease, log: log, metrics: m, events: cfg.Events,
		tracer: newTracer(cfg.TracerProvider), delays: autodelay.New(cfg.AutoDelayWindow, cfg.AutoDelayMinSamples)}
	del := &deliverer{pub: KafkaPublisher{Client: producerClient}, store: store, log: log}
	table := NewConfigTable(tableClient, configTopics, codecs, log)
	wm.admin = kadm.NewClient(producerClient)
	sweeper := newSweeper(eng, del, cfg.Clock, cfg.ClaimLease, cfg.SweepBatch, cfg.MaxIdle,
		wm, cfg.DeadlineGrace, cfg.MaxDeadlineHold, log.With("worker", "sweeper"), m)
	wm.onAdvance = sweeper.Wake
	p := &Processor{
		cfg:     cfg,
		sweeper: sweeper,
		table:   table,
		wire:    wire,
		recoverer: &Recoverer{engine: eng, deliverer: del, clock: cfg.Clock, lease: cfg.ClaimLease,
			batch: cfg.SweepBatch, log: log.With("worker", "recoverer"), metrics: m},
		watermarks: wm,
		consumer: &Consumer{client: consumerClient, engine: eng, deliverer: del, codecs: codecs, wire: wire, watermarks: wm,
			grace: cfg.DeadlineGrace, dlrBacklogPause: cfg.DLRBacklogPause,
			validator: flow.Validator{Channels: cfg.Channels, Limits: cfg.Limits,
				MaxRequestAge: cfg.MaxRequestAge, ClockSkewGrace: cfg.DeadlineGrace,
				Catalog: table, CatalogMode: cfg.CatalogMode}, defs: table, prices: cfg.Prices,
			topics: cfg.Topics, clock: cfg.Clock, onDeadline: sweeper.Notify, maxPoll: cfg.MaxPollRecords, batchFill: cfg.BatchFill,
			indexTTL: cfg.ProviderIndexTTL, indexed: indexMemo{max: indexMemoSize}, log: log.With("worker", "consumer"), metrics: m},
		clients: []*kgo.Client{consumerClient, producerClient, tableClient},
		store:   store,
		joined:  joined,
	}
	p.compactor = newCompactor(store, cfg.SweepBatch, log.With("worker", "compactor"), m)
	if p.gauges, err = m.registerGauges(sweeper, wm, store); err != nil {
		for _, c := range p.clients {
			c.Close()
		}
		return nil, fmt.Errorf("processor: register gauges: %w", err)
	}
	return p, nil
}

// layoutChecker is a state store that can tell flows written in another
// layout: an earlier build's record format (LegacyFlows) or another shard
// count (CheckShards, which returns a *statestore.ShardsChangedError).
type layoutChecker interface {
	LegacyFlows(ctx context.Context) (int, error)
	CheckShards(ctx context.Context) error
}

// checkLayout refuses to start on flows that this build, as configured,
// would not find: written in an earlier build's state layout, or with
// another shard count. It would not fire their deadlines nor find their
// owed outputs.
func (p *Processor) checkLayout(ctx context.Context) error {
	lc, ok := p.store.(layoutChecker)
	if !ok {
		return nil
	}
	var n int
	var refused *statestore.ShardsChangedError
	err := retry(ctx, p.cfg.Logger, "check the state layout", 0, func() (err error) {
		if err = lc.CheckShards(ctx); errors.As(err, &refused) {
			return nil // a refusal, not a failure to retry
		} else if err != nil {
			return err
		}
		n, err = lc.LegacyFlows(ctx)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("processor: %w", err)
	case refused != nil:
		return fmt.Errorf("processor: %w", refused)
	case n > 0:
		return fmt.Errorf("processor: Redis holds flows in flight in the state layout of an earlier build (%d seen): "+
			"this build would not fire their deadlines; let them close under the earlier build first, "+
			"or start this one on a new --redis-prefix (CHANGELOG.md, Unreleased)", n)
	}
	return nil
}

// Ready reports why the processor is not ready to take traffic, or nil when
// it is: Kafka answers, Redis answers (when the state store can be pinged),
// and the consumer has joined its group and been given partitions. An
// instance the group gives no partition (more instances than partitions) is
// not ready: it takes no traffic.
// It is what /readyz serves.
func (p *Processor) Ready(ctx context.Context) error {
	if err := p.clients[0].Ping(ctx); err != nil {
		return fmt.Errorf("kafka not reachable: %w", err)
	}
	if pinger, ok := p.store.(interface{ Ping(context.Context) error }); ok {
		if err := pinger.Ping(ctx); err != nil {
			return fmt.Errorf("redis not reachable: %w", err)
		}
	}
	if !p.joined.Load() {
		return fmt.Errorf("consumer group %q not joined yet (or no partitions assigned to this instance)", p.cfg.Group)
	}
	return nil
}

// ConfigTable is the processor's table of stored flow definitions and of
// the catalog.
func (p *Processor) ConfigTable() *ConfigTable { return p.table }

// Run creates missing topics (when configured), loads the flow table, then
// runs the consumer, the sweeper, the recoverer and the flow table follower
// until ctx ends or one of them fails. It closes the Kafka clients on return.
//
// When ctx ends, Run shuts down gracefully within Config.ShutdownTimeout:
// reading stops, the batch in hand is applied, delivered and committed (a
// batch polled but not started is handed back uncommitted), the sweeper's
// and the recoverer's deliveries in flight finish, and the clients leave
// the group. If that takes longer, the work still running is cancelled
// (outputs stay owed in the outbox, offsets uncommitted: nothing is lost)
// and Run returns an error naming it. When a component fails, everything
// is cancelled at once.
func (p *Processor) Run(ctx context.Context) (err error) {
	var closeBy time.Time // zero: closeTimeout from the start of the close
	defer func() {
		if cerr := p.close(closeBy); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := p.checkLayout(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if p.cfg.CreateTopics {
		adm := kadm.NewClient(p.clients[1])
		specs := topics.Specs(p.cfg.Topics, p.cfg.Channels.Names(), p.cfg.Partitions, p.cfg.Replication)
		if err := topics.Create(ctx, adm, specs); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return fmt.Errorf("processor: create topics: %w", err)
		}
		waitServed(ctx, p.clients, p.cfg.Topics.Flows, p.cfg.Topics.Senders, p.cfg.Topics.Templates, p.cfg.Topics.Requests, p.cfg.Topics.DLR)
	}
	var refused error // a registry that answers no will not say yes later
	if err := retry(ctx, p.cfg.Logger, "register schemas", 10, func() error {
		err := p.wire.register(ctx)
		if registryRefused(err) {
			refused, err = err, nil
		}
		return err
	}); err != nil || refused != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("processor: %w", errors.Join(err, refused))
	}
	// A topic created a moment ago may not be in every broker's metadata yet.
	if err := retry(ctx, p.cfg.Logger, "load config table", 10, func() error { return p.table.CatchUp(ctx) }); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("processor: %w", err)
	}

	// stop ends reading and new rounds; work ends the work in hand. work
	// outlives stop by the shutdown timeout, unless a component failed.
	stop, cancelStop := context.WithCancelCause(ctx)
	defer cancelStop(nil)
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(nil)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[string]bool{}
	)
	for name, run := range map[string]func(stop, work context.Context) error{
		"consumer": p.consumer.run, "sweeper": p.sweeper.run, "recoverer": p.recoverer.run, "compactor": p.compactor.run,
		"config table": func(stop, _ context.Context) error { return p.table.Run(stop) },
		"watermarks":   func(stop, _ context.Context) error { return p.watermarks.Run(stop) },
	} {
		wg.Add(1)
		running[name] = true
		go func() {
			defer wg.Done()
			err := run(stop, work)
			mu.Lock()
			delete(running, name)
			mu.Unlock()
			switch {
			case err == nil:
			case stop.Err() == nil: // a failure: everything stops at once
				err = fmt.Errorf("processor: %s: %w", name, err)
				cancelStop(err)
				cancelWork(err)
			case work.Err() == nil:
				p.cfg.Logger.Warn("error while shutting down", "worker", name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	p.cfg.Logger.Info("processor running", "group", p.cfg.Group, "requests", p.cfg.Topics.Requests, "dlr", p.cfg.Topics.DLR)
	<-stop.Done()
	if ctx.Err() == nil {
		<-done // a component failed: work is cancelled, everything returns
		return context.Cause(stop)
	}
	closeBy = time.Now().Add(p.cfg.ShutdownTimeout)
	p.cfg.Logger.Info("shutting down: finishing the work in hand", "timeout", p.cfg.ShutdownTimeout)
	timer := time.NewTimer(p.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		mu.Lock()
		still := slices.Sorted(maps.Keys(running))
		mu.Unlock()
		err := fmt.Errorf("processor: shutdown timeout %s passed; still running: %s (their work is handed back: outputs stay owed, offsets uncommitted)",
			p.cfg.ShutdownTimeout, strings.Join(still, ", "))
		cancelWork(err)
		<-done
		return err
	}
	if cause := context.Cause(work); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // a component failed while shutting down
	}
	return nil
}

// closeTimeout bounds the close when no shutdown deadline applies (Run
// failed) or too little of it is left: with Kafka unreachable, leaving the
// group would otherwise wait for every retry of the leave request.
const closeTimeout = 5 * time.Second

// close closes the Kafka clients (the consumer leaves its group) by
// deadline, or within closeTimeout when deadline is zero. It reports a close
// that did not finish in time.
func (p *Processor) close(deadline time.Time) error {
	// A stopped processor's gauges would go on showing its last values.
	_ = p.gauges.Unregister()
	budget := closeTimeout
	if !deadline.IsZero() {
		budget = max(time.Until(deadline), 500*time.Millisecond)
	}
	timer := time.NewTimer(budget)
	defer timer.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range p.clients {
			c.CloseAllowingRebalance()
		}
	}()
	select {
	case <-done:
		return nil
	case <-timer.C:
		p.cfg.Logger.Warn("kafka clients did not close in time; leaving the group is left to the session timeout")
		return errors.New("processor: shutdown: the kafka clients did not close (leave the group) in time")
	}
}
