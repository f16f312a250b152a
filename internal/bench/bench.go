// Package bench is `fallback bench`: it drives flows through a processor
// (started in-process by the command, or one already running), with
// simulated providers answering in a chosen mix, and measures throughput,
// deadline lateness, Redis memory and commands per flow, CPU per flow, the
// machine's ceiling for the same work (Redis alone, Kafka alone), and a
// delayed-task peer (asynq) on the same Redis.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// Config is one bench run.
type Config struct {
	Brokers   []string
	KafkaOpts []kgo.Opt
	Topics    topics.Names
	Redis     redis.UniversalClient
	// Store is the processor's state store (its key prefix): pending flows
	// are parked there.
	Store *statestore.Store
	// Group is the processor's consumer group: with Events lean the run
	// learns that every DLR was processed from the group's committed
	// offsets on the DLR topic.
	Group string
	// Events is what the processor writes to the events topic (its
	// --events; empty is full). Lean writes no DLR_RECEIVED and no
	// FALLBACK_TRIGGERED, so the bench counts those another way.
	Events flow.Events
	// OwnPrefix says the store's key prefix is this run's alone (an
	// in-process or spawned processor): every key under it is the run's.
	// An external processor's prefix holds its other flows too.
	OwnPrefix bool
	// Clock is the processor's clock; the providers schedule DLRs on it.
	Clock *clock.Scaled
	// Catalog, when set, is stored on the catalog topics before the run,
	// for a processor that enforces it (fallback-bench --catalog enforce):
	// the senders and templates of the bench's requests. Nil: no catalog
	// is stored, and the processor is to take steps on faith.
	Catalog *simulator.Catalog

	Flows   int
	Pending int             // flows parked on a ParkDelay deadline before the run
	Mix     simulator.Mix   // how step 0 ends
	ThenMix simulator.Mix   // how later steps end
	Delays  []time.Duration // per step, clock time (5 s .. 900 s)
	// DelayAuto makes step 0's delay auto, Delays[0] its fallback.
	DelayAuto bool
	Rate      float64 // requests per wall second; 0: as fast as Kafka takes them
	// DeadlineGrace is the processor's --deadline-grace (clock time): a
	// deadline fires only once every input partition is read past it plus
	// this, so every fire is at least this late by design. Lateness is
	// reported raw (against the deadline) and past deadline+grace.
	DeadlineGrace time.Duration
	RunID         string        // request ids are RunID-m<n>, parked ones RunID-p<n>
	Timeout       time.Duration // for the measured run

	// MemorySample is how many flows are parked (then removed) to measure
	// Redis bytes per in-flight flow when Pending is 0. Real Redis only.
	MemorySample int
	// Limits measures the Redis and Kafka ceilings with LimitFlows flows.
	Limits     bool
	LimitFlows int
	// Asynq runs the peer when not nil; AsynqSkipped says why it did not.
	Asynq        *AsynqConfig
	AsynqSkipped string

	// Commands counts the processor's Redis commands on the client side
	// (in-process only); INFO commandstats is used where Redis has it.
	Commands *CommandCounter
	// ProcessorCPU reads the processor's CPU time; nil reads this process's
	// (getrusage), and CPUScope says what that covers.
	ProcessorCPU func() (time.Duration, error)
	CPUScope     string
	// ProcessorDone ends the run with an error if the processor stops.
	ProcessorDone <-chan error
	// Backend and Processor are reported as given ("real"/"embedded",
	// "in-process"/"external").
	Backend, Processor string
	// WaitReplicas is the processor's --redis-wait-replicas, reported.
	WaitReplicas int
	// OnRunStart and OnRunEnd, when set, bracket the measured run (a CPU
	// profile, say), not the parking, the ceilings or the peer.
	OnRunStart, OnRunEnd func()

	Progress io.Writer
}

// Result is what a run measured; its JSON form is `fallback bench --json`.
type Result struct {
	Flows      int      `json:"flows"`
	Pending    int      `json:"pending"`
	Backend    string   `json:"backend"`
	Processor  string   `json:"processor"`
	ClockSpeed float64  `json:"clock_speed"`
	DelaysS    []int    `json:"delays_s"`
	DelayAuto  bool     `json:"delay_auto"` // step 0's delay is auto (--delay-auto), delays_s[0] its fallback
	Mix        string   `json:"mix"`
	ThenMix    string   `json:"then_mix"`
	Catalog    string   `json:"catalog"` // enforce: the run stored a catalog the processor checks each step against; off: none
	Events     string   `json:"events"`  // the processor's --events, full or lean: which events it wrote, so that runs side by side say which is which
	Rate       float64  `json:"rate"`
	WallS      float64  `json:"wall_s"`
	Notes      []string `json:"notes"`
	// RedisWaitReplicas is the processor's --redis-wait-replicas: how many
	// replicas each state change waited for (WAIT), auto resolved.
	RedisWaitReplicas int `json:"redis_wait_replicas"`

	// Rates over the run: count over (the last one seen - the first request
	// published), wall seconds. DLRsPerSec is 0 with lean events, which
	// write no event per DLR processed to time it by (a note says so).
	RequestsPerSec          float64 `json:"requests_per_sec"`
	DLRsPerSec              float64 `json:"dlrs_per_sec"`
	DeadlineFiresPerSec     float64 `json:"deadline_fires_per_sec"`
	FlowsClosedPerSec       float64 `json:"flows_closed_per_sec"`
	FlowsClosedPerSecSteady float64 `json:"flows_closed_per_sec_steady"`

	// Lateness of fired deadlines, wall ms: decided (sent_at/occurred_at,
	// processor clock, divided by the speed) and emitted (Kafka timestamp of
	// the output record).
	DeadlineLatenessMS        Stats `json:"deadline_lateness_ms"`
	DeadlineLatenessEmittedMS Stats `json:"deadline_lateness_emitted_ms"`
	// The same, measured against deadline + DeadlineGraceMS (the earliest a
	// deadline may fire under the event-time rule) instead of the deadline.
	DeadlineGraceMS                    float64 `json:"deadline_grace_ms"`
	DeadlineLatenessPastGraceMS        Stats   `json:"deadline_lateness_past_grace_ms"`
	DeadlineLatenessPastGraceEmittedMS Stats   `json:"deadline_lateness_past_grace_emitted_ms"`

	// Outcomes: the shares the providers' mix calls for against the shares
	// measured.
	OutcomeShares OutcomeShares `json:"outcome_shares"`

	RedisBytesPerInflightFlow float64 `json:"redis_bytes_per_inflight_flow"`
	// RedisBytesPerClosedFlow is what Redis keeps per measured flow once
	// all closed and their outputs were acked (the tombstone, the
	// provider-id index entries): the used_memory delta without client and
	// AOF buffers, from before the first request to then, over the flows.
	RedisBytesPerClosedFlow float64 `json:"redis_bytes_per_closed_flow"`
	// RedisTombstoneBytesPerFlow is the part of it in the closed flows'
	// own records (<prefix>{<shard>}:f:<id>, kept for the tombstone TTL):
	// MEMORY USAGE summed over them, over the flows.
	RedisTombstoneBytesPerFlow float64 `json:"redis_tombstone_bytes_per_flow"`
	// RedisProviderIndexBytesPerFlow is the part of it in the provider-id
	// index (<prefix>:pm:*): MEMORY USAGE summed over its keys, over the
	// flows; RedisProviderIndexKeysPerFlow is its keys over the flows. Only
	// with a prefix of the run's own.
	// RedisCompactBytesPerFlow is the part of it in the compact entries
	// of closed flows past their detail window (<prefix>{<shard>}:cf:*,
	// --closed-detail-retention): MEMORY USAGE summed over their keys, over
	// the flows. Only with a prefix of the run's own, and a detail window
	// short enough for the run to wait for (at most maxCompactWait).
	RedisCompactBytesPerFlow float64 `json:"redis_compact_bytes_per_flow"`
	// RedisCompactProviderBytesPerFlow is the same for the packed
	// provider-id entries of those flows (<prefix>{<shard>}:cp:*).
	RedisCompactProviderBytesPerFlow float64          `json:"redis_compact_provider_bytes_per_flow"`
	RedisProviderIndexBytesPerFlow   float64          `json:"redis_provider_index_bytes_per_flow"`
	RedisProviderIndexKeysPerFlow    float64          `json:"redis_provider_index_keys_per_flow"`
	RedisCommandsPerFlow             float64          `json:"redis_commands_per_flow"`
	RedisCommandsSource              string           `json:"redis_commands_source"`
	RedisCommands                    map[string]int64 `json:"redis_commands,omitempty"`
	// RedisCPUUsPerFlow is the Redis main thread's CPU time over the run
	// (INFO cpu) per flow: 1e6 over it is the flows/s at which Redis's one
	// core would be saturated.
	RedisCPUUsPerFlow float64 `json:"redis_cpu_us_per_flow"`
	CPUUsPerFlow      float64 `json:"cpu_us_per_flow"`
	CPUScope          string  `json:"cpu_scope"`

	Counts Counts `json:"counts"`
	Limit  *Limit `json:"limit"`
	Peer   *Peer  `json:"peer"`
}

// Counts are what the bench saw; they must add up.
type Counts struct {
	Requests      int   `json:"requests"`
	FirstSends    int64 `json:"first_sends"`
	FallbackSends int64 `json:"fallback_sends"`
	// CatalogSends are the sends that carry their template's language from
	// the processor's catalog: all of them when it enforces one, else 0.
	CatalogSends  int64 `json:"sends_from_catalog"`
	DLRsPublished int64 `json:"dlrs_published"`
	// DLRsProcessed counts DLR_RECEIVED and DLR_DISCARDED; with lean events
	// (no DLR_RECEIVED) it is DLRsPublished, all of which the processor's
	// group committed before the run ended.
	DLRsProcessed int64 `json:"dlrs_processed"`
	DeadlineFires int64 `json:"deadline_fires"`
	FlowsClosed   int64 `json:"flows_closed"`
	// RepeatedCloses are FLOW_CLOSED records seen again under the same
	// event id: at-least-once replays, which consumers drop; not an error.
	RepeatedCloses int64 `json:"repeated_closes"`
	simulator.Closes
	InputsPerFlow float64 `json:"inputs_per_flow"`
	// OutputsPerFlow is the send and event records written per flow, as
	// read: it is smaller with lean events.
	OutputsPerFlow float64 `json:"outputs_per_flow"`
}

// OutcomeShares compares how flows closed with how the simulated
// providers' answers say they must close. Shares are percent of the flows.
type OutcomeShares struct {
	// Expected follows from the mixes and the steps alone (ExpectedShares).
	Expected map[string]float64 `json:"expected_pct"`
	// Drawn follows from the fates the providers actually drew for this
	// run's attempts: Expected plus sampling noise (about 0.1 point at
	// 30,000 flows).
	Drawn map[string]float64 `json:"drawn_pct"`
	// Measured is the FLOW_CLOSED outcomes seen.
	Measured map[string]float64 `json:"measured_pct"`
	// MaxDiffPP is the largest |measured - expected| over the outcomes, in
	// percentage points, and MaxDiffOutcome the outcome it is on.
	MaxDiffPP      float64 `json:"max_diff_pp"`
	MaxDiffOutcome string  `json:"max_diff_outcome"`
	// FlowsOffDrawn is how many flows closed otherwise than their own
	// providers' answers call for (or never saw a send they needed).
	FlowsOffDrawn int `json:"flows_off_drawn"`
}

func (c *Config) printf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format, args...)
	}
}

// Run runs the bench. The processor must be running (or starting) on the
// same topics, Redis prefix and clock. Its phases: prepare the result,
// connect to the topics, park the pending flows, run the measured flows,
// report what they showed, then the ceilings and the peer.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	res, err := newResult(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.close()
	parked, err := parkFlows(ctx, cfg, res)
	if err != nil {
		return nil, err
	}
	defer parked.removeLeft(cfg)
	run, err := runFlows(ctx, cfg, conn)
	if err != nil {
		return nil, err
	}
	if err := reportRun(cfg, run, res); err != nil {
		return res, err
	}
	measureClosedFlows(ctx, cfg, run, res)
	if err := parked.remove(ctx, cfg); err != nil {
		return res, err
	}
	if cfg.Limits {
		if res.Limit, err = measureCeilings(ctx, cfg, res); err != nil {
			return res, err
		}
	}
	res.Peer = runPeer(ctx, cfg, res)
	return res, nil
}

// newResult checks the configuration and starts the result with the run's
// settings.
func newResult(cfg Config) (*Result, error) {
	if cfg.Flows < 1 || len(cfg.Delays) < 2 {
		return nil, errors.New("bench: need at least 1 flow and 2 steps")
	}
	if cfg.Events == flow.EventsLean && cfg.Group == "" {
		return nil, errors.New("bench: with lean events the processor's consumer group is needed, to see its DLRs read")
	}
	res := &Result{Flows: cfg.Flows, Pending: cfg.Pending, Backend: cfg.Backend, Processor: cfg.Processor,
		ClockSpeed: cfg.Clock.Speed, DelayAuto: cfg.DelayAuto, Mix: cfg.Mix.String(), ThenMix: cfg.ThenMix.String(), Rate: cfg.Rate, Notes: []string{},
		Catalog: flow.CatalogOff.String(), Events: string(cfg.eventsMode()), RedisWaitReplicas: cfg.WaitReplicas}
	if cfg.Catalog != nil {
		res.Catalog = flow.CatalogEnforce.String()
	}
	for _, d := range cfg.Delays {
		res.DelaysS = append(res.DelaysS, int(d/time.Second))
	}
	return res, nil
}

// eventsMode is cfg.Events, with empty read as full (the processor's
// default).
func (c *Config) eventsMode() flow.Events {
	if c.Events == "" {
		return flow.EventsFull
	}
	return c.Events
}

// lean tells whether the processor writes lean events.
func (c *Config) lean() bool { return c.eventsMode() == flow.EventsLean }

// validator checks requests as the processor does: against the run's
// catalog when it has one.
func (c *Config) validator() flow.Validator {
	v := flow.Validator{Channels: flow.DefaultChannels(), Limits: flow.DefaultLimits(), CatalogMode: flow.CatalogOff}
	if c.Catalog != nil {
		v.Catalog, v.CatalogMode = *c.Catalog, flow.CatalogEnforce
	}
	return v
}

// connection is where the measured run reads from: the send and events
// topics from their ends before the run.
type connection struct {
	admin     *kgo.Client
	sendStart map[string]map[int32]kgo.Offset
	// dlrStart is where the DLR topic ended before the run: the partitions
	// that grew since hold the run's DLRs.
	dlrStart map[int32]int64
	events   *kgo.Client // reads the events topic from its end before the run
}

func (c *connection) close() {
	c.events.Close()
	c.admin.Close()
}

// connect waits for the processor's topics and notes where they end now.
func connect(ctx context.Context, cfg Config) (*connection, error) {
	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...)...)
	if err != nil {
		return nil, err
	}
	c := &connection{admin: admCl}
	adm := kadm.NewClient(admCl)
	var sendTopics []string
	for _, ch := range flow.DefaultChannels().Names() {
		sendTopics = append(sendTopics, cfg.Topics.Sends(ch))
	}
	want := append([]string{cfg.Topics.Requests, cfg.Topics.DLR, cfg.Topics.Events}, sendTopics...)
	if cfg.Catalog != nil {
		want = append(want, cfg.Topics.Senders, cfg.Topics.Templates)
	}
	eventStart, err := func() (map[string]map[int32]kgo.Offset, error) {
		if err := waitTopics(ctx, adm, want); err != nil {
			return nil, err
		}
		if err := storeCatalog(ctx, cfg, admCl); err != nil {
			return nil, err
		}
		if c.sendStart, err = endOffsets(ctx, adm, sendTopics...); err != nil {
			return nil, err
		}
		if c.dlrStart, err = partitionEnds(ctx, adm, cfg.Topics.DLR); err != nil {
			return nil, err
		}
		return endOffsets(ctx, adm, cfg.Topics.Events)
	}()
	if err == nil {
		c.events, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(eventStart)}, cfg.KafkaOpts...)...)
	}
	if err != nil {
		admCl.Close()
		return nil, err
	}
	return c, nil
}

// storeCatalog writes the run's catalog, if any, before any request: a
// processor that enforces it and reads a request before its config table
// has the catalog reads the catalog topics to their end first, so no
// request is refused for want of it.
func storeCatalog(ctx context.Context, cfg Config, cl *kgo.Client) error {
	if cfg.Catalog == nil {
		return nil
	}
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	if err := simulator.StoreCatalog(ctx, cl, codecs, cfg.Topics, *cfg.Catalog); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cfg.printf("catalog: %s\n", cfg.Catalog.Summary(cfg.Topics))
	return nil
}

// parkedFlows are the flows parked in Redis before the run.
type parkedFlows struct {
	park *parker
	ids  []string
}

// parkFlows parks cfg.Pending flows on ParkDelay deadlines, which stay
// there during the run, or, with none pending, a sample of cfg.MemorySample
// flows that is removed at once. Either way it measures Redis bytes per
// in-flight flow on a real Redis.
func parkFlows(ctx context.Context, cfg Config, res *Result) (*parkedFlows, error) {
	p := &parkedFlows{park: &parker{store: cfg.Store, rdb: cfg.Redis, clock: cfg.Clock, validator: cfg.validator()}}
	if cfg.Pending > 0 {
		p.ids = p.park.ids(cfg.RunID+"-p", cfg.Pending)
	} else if _, real := readInfo(ctx, cfg.Redis); real && cfg.MemorySample > 0 {
		p.ids = p.park.ids(cfg.RunID+"-s", cfg.MemorySample)
	} else if !real {
		res.Notes = append(res.Notes, "redis_bytes_per_inflight_flow: not measured (the embedded Redis reports no memory)")
	}
	if len(p.ids) == 0 {
		return p, nil
	}
	settle(ctx, cfg.Redis)
	before, real := readInfo(ctx, cfg.Redis)
	t := time.Now()
	if err := p.park.park(ctx, p.ids, ParkDelay); err != nil {
		p.removeLeft(cfg)
		return nil, err
	}
	after, _ := readInfo(ctx, cfg.Redis)
	cfg.printf("parked %d flows on %s deadlines in %s\n", len(p.ids), ParkDelay, time.Since(t).Round(time.Millisecond))
	if real {
		res.RedisBytesPerInflightFlow = float64(int64(float64(after.usedMemory-before.usedMemory)/float64(len(p.ids))*10)) / 10
	}
	if cfg.Pending == 0 {
		if err := p.park.remove(ctx, p.ids); err != nil {
			p.removeLeft(cfg)
			return nil, err
		}
		p.ids = nil
	}
	return p, nil
}

// remove removes the parked flows after the run.
func (p *parkedFlows) remove(ctx context.Context, cfg Config) error {
	if len(p.ids) == 0 {
		return nil
	}
	t := time.Now()
	if err := p.park.remove(ctx, p.ids); err != nil {
		return err
	}
	p.ids = nil
	cfg.printf("removed the parked flows in %s\n", time.Since(t).Round(time.Millisecond))
	return nil
}

// removeLeft removes the parked flows still there when the bench stops
// early.
func (p *parkedFlows) removeLeft(cfg Config) {
	if len(p.ids) > 0 {
		if err := p.park.remove(context.Background(), p.ids); err != nil {
			cfg.printf("%v\n", err)
		}
	}
}

// measuredRun is what runFlows saw: the tracker and the providers' counts,
// and the resource readings before and after.
type measuredRun struct {
	t        *tracker
	dlrs     simulator.ProviderCounts
	start    time.Time
	wall     time.Duration
	cpu      [2]time.Duration
	cpuErr   error
	info     [2]serverInfo
	realInfo bool
	// memBefore is the settled reading before the first request, for
	// redis_bytes_per_closed_flow.
	memBefore                 serverInfo
	memBeforeReal, memSettled bool
	commands                  [2]int64
	hasCommands               bool
}

// runFlows publishes the measured requests, answers their sends with the
// simulated providers, and follows the events until every flow closed and
// every DLR was processed.
func runFlows(ctx context.Context, cfg Config, conn *connection) (*measuredRun, error) {
	m := &measuredRun{t: newTracker(cfg.RunID+"-m", cfg.Flows, len(cfg.Delays), cfg.eventsMode())}
	prov := &simulator.Providers{Brokers: cfg.Brokers, KafkaOpts: cfg.KafkaOpts, Topics: cfg.Topics, From: conn.sendStart,
		StepMixes: []simulator.Mix{cfg.Mix, cfg.ThenMix}, Codec: avroCodec{}, OnSend: m.t.sawSend, Clock: cfg.Clock}
	obs := &observer{cl: conn.events, t: m.t}
	m.memBefore, m.memBeforeReal, m.memSettled = settledInfo(ctx, cfg.Redis)
	m.readBefore(ctx, cfg)
	if cfg.OnRunStart != nil {
		cfg.OnRunStart()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stop := context.WithCancel(ctx)
	defer stop() // before wg.Wait
	provErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); provErr <- prov.Run(runCtx) }()
	go func() { defer wg.Done(); obs.run(runCtx) }()

	m.start = time.Now()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(runCtx, cfg, m.t) }()
	dlrsRead := func(ctx context.Context) (bool, error) {
		return groupReadDLRs(ctx, kadm.NewClient(conn.admin), cfg.Group, cfg.Topics.DLR, conn.dlrStart)
	}
	if err := waitForFlows(ctx, cfg, m, prov, dlrsRead, pubErr, provErr); err != nil {
		return nil, err
	}
	m.wall = time.Since(m.start)
	if cfg.OnRunEnd != nil {
		cfg.OnRunEnd()
	}
	m.readAfter(ctx, cfg)
	m.dlrs = prov.Counts()
	stop()
	wg.Wait()
	cfg.printf("all %d flows closed in %s\n", cfg.Flows, m.wall.Round(time.Millisecond))
	return m, nil
}

// waitForFlows waits for the measured run to end, printing progress each
// second. dlrsRead tells whether the processor has read every DLR produced
// so far; it is asked with lean events only, which write no DLR_RECEIVED to
// count, and at most once a tick, once every flow closed and no DLR is
// pending at the providers (before that the run cannot be done anyway).
func waitForFlows(ctx context.Context, cfg Config, m *measuredRun, prov *simulator.Providers,
	dlrsRead func(context.Context) (bool, error), pubErr, provErr <-chan error) error {
	t := m.t
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var deadline <-chan time.Time
	if cfg.Timeout > 0 {
		deadline = time.After(cfg.Timeout)
	}
	published := false
	allDLRsRead := false // lean: the last dlrsRead said so
	var dlrsReadErr error
	done := func() bool {
		if cfg.lean() {
			return doneLean(t, prov.Counts(), cfg.Flows, allDLRsRead)
		}
		return doneCounting(t, prov.Counts(), cfg.Flows)
	}
	for !published || !done() {
		select {
		case err := <-pubErr:
			if err != nil {
				return fmt.Errorf("bench: publish: %w", err)
			}
			published = true
			cfg.printf("published %d requests in %s\n", cfg.Flows, time.Since(m.start).Round(time.Millisecond))
		case err := <-provErr:
			if ctx.Err() == nil {
				return fmt.Errorf("bench: the simulated providers stopped: %v", err)
			}
			return fmt.Errorf("bench: interrupted: %w", context.Cause(ctx))
		case err := <-cfg.ProcessorDone:
			return fmt.Errorf("bench: processor stopped: %v", err)
		case <-deadline:
			if cfg.lean() {
				read := "not all read"
				if dlrsReadErr != nil {
					read = fmt.Sprintf("not known to be read (%v)", dlrsReadErr)
				}
				return fmt.Errorf("bench: %d of %d flows closed, %d DLRs published and %s by group %s, before the %s timeout",
					t.closed.Load(), cfg.Flows, prov.Counts().Published, read, cfg.Group, cfg.Timeout)
			}
			return fmt.Errorf("bench: %d of %d flows closed, %d of %d DLRs processed, before the %s timeout",
				t.closed.Load(), cfg.Flows, t.dlrEvents.Load(), prov.Counts().Published, cfg.Timeout)
		case <-ctx.Done():
			return fmt.Errorf("bench: interrupted: %w", context.Cause(ctx))
		case <-tick.C:
			dlrs := prov.Counts()
			dlrText := fmt.Sprintf("dlrs %d/%d", t.dlrEvents.Load(), dlrs.Published)
			if cfg.lean() {
				if published && t.closed.Load() >= int64(cfg.Flows) && dlrs.Pending == 0 {
					allDLRsRead, dlrsReadErr = dlrsRead(ctx)
				}
				dlrText = fmt.Sprintf("dlrs published %d, all read %t", dlrs.Published, allDLRsRead)
			}
			cfg.printf("[%5.1fs] first sends %d  %s  fallbacks %d+%d  closed %d/%d  (other records %d)\n", time.Since(m.start).Seconds(),
				t.firstSends.Load(), dlrText, t.fallbackFailure.Load(), t.fallbackTimeout.Load(),
				t.closed.Load(), cfg.Flows, t.foreign.Load())
		}
	}
	return nil
}

// doneCounting: every flow closed, and every DLR the providers planned was
// produced and processed.
func doneCounting(t *tracker, dlrs simulator.ProviderCounts, flows int) bool {
	return t.closed.Load() >= int64(flows) && dlrs.Pending == 0 && t.dlrEvents.Load() >= dlrs.Published
}

// doneLean is doneCounting for lean events, which give no event per DLR
// processed: every flow closed, every DLR the providers planned was
// produced, and the processor's group committed past all of them
// (allDLRsRead, from groupReadDLRs once the rest held).
func doneLean(t *tracker, dlrs simulator.ProviderCounts, flows int, allDLRsRead bool) bool {
	return t.closed.Load() >= int64(flows) && dlrs.Pending == 0 && allDLRsRead
}

// groupReadDLRs tells whether consumer group has committed offsets at or
// past the end of every partition of the DLR topic that grew since start
// (its ends before the run). The processor commits a batch only once its
// state and outputs are durable, so a committed DLR is a processed one. The
// ends are read before the commits, so DLRs of others arriving meanwhile do
// not keep the answer from being yes.
func groupReadDLRs(ctx context.Context, adm *kadm.Client, group, topic string, start map[int32]int64) (bool, error) {
	ends, err := partitionEnds(ctx, adm, topic)
	if err != nil {
		return false, err
	}
	maps.DeleteFunc(ends, func(p int32, end int64) bool { return end <= start[p] }) // none of the run's DLRs there
	if len(ends) == 0 {
		return true, nil
	}
	// An unknown group (it committed nothing yet, or --group names
	// another) is an error here: the caller waits on, and says why if the
	// run times out.
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, fmt.Errorf("bench: committed offsets of group %s: %w", group, err)
	}
	for p, end := range ends {
		c, ok := committed.Lookup(topic, p)
		if !ok || c.Err != nil || c.At < end {
			return false, c.Err
		}
	}
	return true, nil
}

func (m *measuredRun) readBefore(ctx context.Context, cfg Config) {
	m.info[0], m.realInfo = readInfo(ctx, cfg.Redis)
	if m.hasCommands = cfg.Commands != nil; m.hasCommands {
		m.commands[0] = cfg.Commands.Count()
	}
	m.cpu[0], m.cpuErr = cfg.cpuRead()()
}

func (m *measuredRun) readAfter(ctx context.Context, cfg Config) {
	var err error
	m.cpu[1], err = cfg.cpuRead()()
	m.cpuErr = errors.Join(m.cpuErr, err)
	m.info[1], _ = readInfo(ctx, cfg.Redis)
	if m.hasCommands {
		m.commands[1] = cfg.Commands.Count()
	}
}

// cpuRead is how the processor's CPU time is read.
func (c *Config) cpuRead() func() (time.Duration, error) {
	if c.ProcessorCPU != nil {
		return c.ProcessorCPU
	}
	return selfCPU
}

// reportRun puts the figures of the measured run into res, and fails when
// its counts do not add up.
func reportRun(cfg Config, m *measuredRun, res *Result) error {
	t := m.t
	cmap := clockMap{epochMS: cfg.Clock.Start.UnixMilli(), speed: cfg.Clock.Speed}
	if due := time.Duration(float64(ParkDelay) / cfg.Clock.Speed); cfg.Pending > 0 && m.wall > due {
		res.Notes = append(res.Notes, fmt.Sprintf("the run outlasted the parked flows' %s delay (%s of wall time at clock x%g): some of them fired during it", ParkDelay, due, cfg.Clock.Speed))
	}
	res.WallS = round2(m.wall.Seconds())
	startMS := m.start.UnixMilli()
	rate := func(n int64, last int64) float64 {
		if n == 0 || last <= startMS {
			return 0
		}
		return float64(int64(float64(n)/(float64(last-startMS)/1000)*10)) / 10
	}
	fires := t.fallbackTimeout.Load() + t.expired.Load()
	res.RequestsPerSec = rate(t.firstSends.Load(), t.lastFirstSend.Load())
	if cfg.lean() {
		res.Notes = append(res.Notes, "dlrs_per_sec: not measured (0): lean events have no DLR_RECEIVED to time the DLRs by; dlrs_processed is the DLRs published, all of which the processor's consumer group committed before the run ended")
	} else {
		res.DLRsPerSec = rate(t.dlrEvents.Load(), t.lastDLREvent.Load())
	}
	res.DeadlineFiresPerSec = rate(fires, t.lastDeadlineFire.Load())
	res.FlowsClosedPerSec = rate(t.closed.Load(), t.lastClose.Load())
	res.FlowsClosedPerSecSteady = float64(int64(t.steadyCloseRate()*10)) / 10
	decided, emitted := t.lateness(cmap)
	res.DeadlineLatenessMS, res.DeadlineLatenessEmittedMS = statsOf(decided), statsOf(emitted)
	grace := cmap.wallMS(cfg.DeadlineGrace.Milliseconds())
	res.DeadlineGraceMS = round2(grace)
	res.DeadlineLatenessPastGraceMS = statsOf(shifted(decided, -grace))
	res.DeadlineLatenessPastGraceEmittedMS = statsOf(shifted(emitted, -grace))
	if cfg.Clock.Speed != 1 {
		res.Notes = append(res.Notes, fmt.Sprintf("deadline lateness is measured on the processor clock (x%g) and divided by the speed: wall ms; at x1 it needs no conversion", cfg.Clock.Speed))
	}
	flows := float64(cfg.Flows)
	if m.realInfo {
		total, per := m.info[1].callsSince(m.info[0])
		total -= per["info"]
		delete(per, "info")
		res.RedisCommandsPerFlow = round2(float64(total) / flows)
		res.RedisCommandsSource = "INFO commandstats delta over the run (commands called inside Lua scripts count too), all clients"
		res.RedisCommands = per
		res.RedisCPUUsPerFlow = round2((m.info[1].cpuMain - m.info[0].cpuMain) * 1e6 / flows)
	} else if m.hasCommands {
		res.RedisCommandsPerFlow = round2(float64(m.commands[1]-m.commands[0]) / flows)
		res.RedisCommandsSource = "the processor's client, commands sent (one EVALSHA counts once)"
	}
	if m.cpuErr == nil {
		res.CPUUsPerFlow = round2(float64((m.cpu[1] - m.cpu[0]).Microseconds()) / flows)
		res.CPUScope = cfg.CPUScope
	} else {
		res.CPUScope = fmt.Sprintf("not measured: %v", m.cpuErr)
	}

	c := &res.Counts
	c.Requests = cfg.Flows
	c.FirstSends, c.FallbackSends = t.firstSends.Load(), t.laterSends.Load()
	c.CatalogSends = t.catalogSends.Load()
	c.DLRsPublished, c.DLRsProcessed = m.dlrs.Published, t.dlrEvents.Load()
	if cfg.lean() {
		// The run ended once the group committed past every DLR (doneLean).
		c.DLRsProcessed = m.dlrs.Published
	}
	c.DeadlineFires, c.FlowsClosed = fires, t.closed.Load()
	c.DoubleClosed, c.Rejected = int(t.doubleClosed.Load()), int(t.rejected.Load())
	c.RepeatedCloses = t.repeatedCloses.Load()
	c.Outcomes = map[string]int{}
	for o := outcomeDelivered; o < outcomeKinds; o++ {
		if n := t.outcomeCount[o].Load(); n > 0 || o <= outcomeExpired {
			c.Outcomes[outcomeNames[o]] = int(n)
		}
	}
	res.OutcomeShares = outcomeShares(t, []simulator.Mix{cfg.Mix, cfg.ThenMix}, len(cfg.Delays))
	c.Fallbacks = map[string]int{"failure": int(t.fallbackFailure.Load()), "timeout": int(t.fallbackTimeout.Load())}
	// Inputs: the request and the DLRs. Outputs: the sends and the event
	// records the observer read for the run's flows, whatever the mode
	// wrote. Full: FLOW_STARTED, ATTEMPT_SENT per send, one per DLR,
	// FALLBACK_TRIGGERED per fallback, FLOW_CLOSED, and a
	// MULTI_CHANNEL_DELIVERY per second channel delivered (a late DLR);
	// in a run without replays nor late deliveries that is
	// flows + sends + DLRs + fallback sends + closes. Lean: FLOW_CLOSED,
	// the DLR_DISCARDED (and other answers to inputs that change nothing)
	// and the MULTI_CHANNEL_DELIVERY. Counted rather than derived, so that
	// each mode is measured as it ran.
	c.InputsPerFlow = round2(float64(int64(cfg.Flows)+c.DLRsPublished) / flows)
	sends := c.FirstSends + c.FallbackSends
	c.OutputsPerFlow = round2(float64(sends+t.eventRecords.Load()) / flows)
	if n := t.scanErrors.Load() + m.dlrs.Undecodable; n > 0 {
		return fmt.Errorf("bench: %d records did not scan", n)
	}
	if m.dlrs.ProduceErrs > 0 {
		return fmt.Errorf("bench: %d DLRs of the simulated providers were not produced", m.dlrs.ProduceErrs)
	}
	if c.FlowsClosed != int64(cfg.Flows) || c.DoubleClosed != 0 || c.Rejected != 0 || c.FirstSends != int64(cfg.Flows) {
		return fmt.Errorf("bench: counts do not add up: %d first sends, %d flows closed (%d twice), %d rejected, of %d requests",
			c.FirstSends, c.FlowsClosed, c.DoubleClosed, c.Rejected, cfg.Flows)
	}
	return nil
}

// measureClosedFlows measures what Redis keeps of the measured flows once
// they all closed: it waits until the processor acked every owed output,
// then until Redis settled (settledInfo), and compares the memory with the
// settled reading taken before the first request. Parked flows are in
// both readings (or were removed before the first). It also sums the
// memory of the measured flows' records (tombstones) and, with a prefix of
// the run's own, of the provider-id index's keys.
func measureClosedFlows(ctx context.Context, cfg Config, m *measuredRun, res *Result) {
	if !m.memBeforeReal {
		res.Notes = append(res.Notes, "redis_bytes_per_closed_flow, redis_tombstone_bytes_per_flow, redis_provider_index_bytes_per_flow: not measured (the embedded Redis reports no memory)")
		return
	}
	sc := cfg.Store.Config()
	const owedWait = 30 * time.Second
	if !waitNothingOwed(ctx, cfg.Redis, sc.Prefix, sc.Shards, owedWait) {
		res.Notes = append(res.Notes, fmt.Sprintf("redis_bytes_per_closed_flow: outputs still owed (%s{*}:ob) %s after the last close; measured anyway", sc.Prefix, owedWait))
	}
	compacted := false
	switch detail := sc.ClosedDetailTTL; {
	case detail > maxCompactWait:
		res.Notes = append(res.Notes, fmt.Sprintf("redis_bytes_per_closed_flow: closed flows kept whole (their detail window, %s of Redis time, is longer than the bench waits; --closed-detail-retention 1s measures the compact form)", detail))
	case detail > 0:
		// The compactor moves a few thousand flows a second: a big run's
		// last closes need a while more than a small one's.
		wait := 30*time.Second + time.Duration(cfg.Flows/compactPerSec)*time.Second
		if compacted = waitCompacted(ctx, cfg.Store, detail+wait); !compacted {
			res.Notes = append(res.Notes, fmt.Sprintf("redis_bytes_per_closed_flow: closed flows not all compacted %s past their detail window; measured anyway", wait))
		}
	}
	after, real, settled := settledInfo(ctx, cfg.Redis)
	if !real {
		return
	}
	if !settled || !m.memSettled {
		res.Notes = append(res.Notes, "redis_bytes_per_closed_flow: Redis's memory kept moving for 10 s before or after the run (another client writing to it?), so the delta includes whatever else changed; redis_tombstone_bytes_per_flow and redis_provider_index_bytes_per_flow count the run's own keys")
	}
	if cfg.Pending > 0 && m.wall > time.Duration(float64(ParkDelay)/cfg.Clock.Speed) {
		res.Notes = append(res.Notes, "redis_bytes_per_closed_flow: parked flows fired during the run, so their changes are in it too")
	}
	flows := float64(cfg.Flows)
	res.RedisBytesPerClosedFlow = float64(int64(float64(after.dataMemory()-m.memBefore.dataMemory())/flows*10)) / 10
	// The measured flows' records: their ids are the run's, whoever's prefix.
	records, bytes, err := keyMemory(ctx, cfg.Redis, sc.Prefix+"{*}:f:"+cfg.RunID+"-m*")
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("redis_tombstone_bytes_per_flow: not measured: %v", err))
	} else {
		res.RedisTombstoneBytesPerFlow = float64(int64(float64(bytes)/flows*10)) / 10
		if records != int64(cfg.Flows) && !compacted {
			res.Notes = append(res.Notes, fmt.Sprintf("redis_tombstone_bytes_per_flow: %d records found for %d closed flows", records, cfg.Flows))
		}
	}
	if !cfg.OwnPrefix {
		res.Notes = append(res.Notes, fmt.Sprintf("redis_provider_index_bytes_per_flow: not measured (an external processor's provider-id index, %s:pm:*, holds its other flows' entries too)", sc.Prefix))
		return
	}
	keys, bytes, err := keyMemory(ctx, cfg.Redis, sc.Prefix+":pm:*")
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("redis_provider_index_bytes_per_flow: not measured: %v", err))
		return
	}
	res.RedisProviderIndexKeysPerFlow = round2(float64(keys) / flows)
	res.RedisProviderIndexBytesPerFlow = float64(int64(float64(bytes)/flows*10)) / 10
	if compacted {
		_, bytes, err := keyMemory(ctx, cfg.Redis, sc.Prefix+"{*}:cf:*")
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("redis_compact_bytes_per_flow: not measured: %v", err))
			return
		}
		res.RedisCompactBytesPerFlow = float64(int64(float64(bytes)/flows*10)) / 10
		_, bytes, err = keyMemory(ctx, cfg.Redis, sc.Prefix+"{*}:cp:*")
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("redis_compact_provider_bytes_per_flow: not measured: %v", err))
			return
		}
		res.RedisCompactProviderBytesPerFlow = float64(int64(float64(bytes)/flows*10)) / 10
	}
}

// compactPerSec is the fewest flows a second measureClosedFlows expects
// the compactor to move once the run is over.
const compactPerSec = 2000

// maxCompactWait is the longest detail window measureClosedFlows waits
// for before it measures closed flows.
const maxCompactWait = 2 * time.Minute

// waitCompacted waits until no closed flow keeps its whole record
// (statestore.ClosedWaiting) and their provider ids moved with them
// (statestore.ProviderIDsWaiting), for at most limit.
func waitCompacted(ctx context.Context, store *statestore.Store, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		n, err := store.ClosedWaiting(ctx)
		q, qerr := store.ProviderIDsWaiting(ctx)
		if err == nil && qerr == nil && n == 0 && q == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// measureCeilings measures what Redis alone and Kafka alone sustain for the
// same work, and compares the run with the lower.
func measureCeilings(ctx context.Context, cfg Config, res *Result) (*Limit, error) {
	var err error
	lim := &Limit{Flows: cfg.LimitFlows}
	cfg.printf("limit: Redis alone, %d flows...\n", lim.Flows)
	if lim.RedisFlowsPerSec, err = redisCeiling(ctx, cfg.Redis, cfg.RunID+"lim", lim.Flows, 4); err != nil {
		return nil, fmt.Errorf("bench: redis ceiling: %w", err)
	}
	cfg.printf("limit: Redis alone, plain commands, %d flows...\n", lim.Flows)
	plain, err := redisPlainCeiling(ctx, cfg.Redis, cfg.RunID+"plain", lim.Flows, plainConns, plainDepth)
	if err != nil {
		return nil, fmt.Errorf("bench: redis plain ceiling: %w", err)
	}
	lim.RedisPlainFlowsPerSec = float64(int64(plain.flowsPerSec*10)) / 10
	lim.RedisPlainCommandsPerFlow = round2(plain.commandsPerFlow)
	if lim.RedisPlainFlowsPerSec > 0 {
		lim.RatioToPlain = round2(res.FlowsClosedPerSecSteady / lim.RedisPlainFlowsPerSec)
	}
	cfg.printf("limit: Kafka alone, %d flows...\n", lim.Flows)
	if lim.KafkaFlowsPerSec, err = kafkaCeiling(ctx, cfg.Brokers, cfg.KafkaOpts, "bench-"+cfg.RunID+".", lim.Flows, res.Counts.InputsPerFlow, res.Counts.OutputsPerFlow); err != nil {
		return nil, fmt.Errorf("bench: kafka ceiling: %w", err)
	}
	lim.RedisFlowsPerSec = float64(int64(lim.RedisFlowsPerSec*10)) / 10
	lim.KafkaFlowsPerSec = float64(int64(lim.KafkaFlowsPerSec*10)) / 10
	lower := min(lim.RedisFlowsPerSec, lim.KafkaFlowsPerSec)
	lim.Lower = "redis"
	if lim.KafkaFlowsPerSec < lim.RedisFlowsPerSec {
		lim.Lower = "kafka"
	}
	if lower > 0 {
		lim.Ratio = round2(res.FlowsClosedPerSecSteady / lower)
	}
	if res.RedisCPUUsPerFlow > 0 {
		lim.RedisCPUBoundFlowsPerSec = float64(int64(1e6 / res.RedisCPUUsPerFlow))
	}
	return lim, nil
}

// runPeer runs the delayed-task peer (asynq) when configured.
func runPeer(ctx context.Context, cfg Config, res *Result) *Peer {
	if cfg.Asynq == nil {
		if cfg.AsynqSkipped != "" {
			return &Peer{Name: "asynq", Skipped: cfg.AsynqSkipped}
		}
		return nil
	}
	cfg.printf("peer: asynq, %d tasks in %s...\n", cfg.Asynq.Tasks, cfg.Asynq.Delay)
	p, err := runAsynq(ctx, cfg.Redis, *cfg.Asynq)
	cleanAsynq(context.Background(), cfg.Redis, cfg.Asynq.Queue)
	if err != nil {
		p.Skipped = "failed: " + err.Error()
	} else if p.HandledPerSec > 0 {
		p.ProcessorOverPeer = round2(res.DeadlineFiresPerSec / p.HandledPerSec)
	}
	return &p
}

// outcomeShares puts the expected, drawn and measured shares side by side.
func outcomeShares(t *tracker, mixes []simulator.Mix, steps int) OutcomeShares {
	pct := func(n int) float64 { return round2(float64(n) * 100 / float64(t.n)) }
	exp := simulator.ExpectedShares(mixes, steps)
	sh := OutcomeShares{
		Expected: map[string]float64{"DELIVERED": round2(exp.Delivered * 100), "FAILED": round2(exp.Failed * 100), "EXPIRED": round2(exp.Expired * 100)},
		Drawn:    map[string]float64{}, Measured: map[string]float64{},
	}
	drawn, off := t.drawn()
	sh.FlowsOffDrawn = off
	if drawn[outcomeNone] > 0 {
		sh.Drawn["(not sent)"] = pct(drawn[outcomeNone])
	}
	expPct := map[string]float64{"DELIVERED": exp.Delivered * 100, "FAILED": exp.Failed * 100, "EXPIRED": exp.Expired * 100}
	for o := outcomeDelivered; o < outcomeKinds; o++ {
		name := outcomeNames[o]
		measured := int(t.outcomeCount[o].Load())
		always := o == outcomeDelivered || o == outcomeFailed || o == outcomeExpired
		if measured > 0 || always {
			sh.Measured[name] = pct(measured)
		}
		if drawn[o] > 0 || always {
			sh.Drawn[name] = pct(drawn[o])
		}
		if d := math.Abs(float64(measured)*100/float64(t.n) - expPct[name]); sh.MaxDiffOutcome == "" || d > sh.MaxDiffPP {
			sh.MaxDiffPP, sh.MaxDiffOutcome = d, name
		}
	}
	if unclosed := t.n - int(t.closed.Load()); unclosed > 0 {
		sh.Measured["(not closed)"] = pct(unclosed)
	}
	sh.MaxDiffPP = round2(sh.MaxDiffPP)
	return sh
}

func shifted(xs []float64, by float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x + by
	}
	return out
}

// publish sends the measured requests, paced to cfg.Rate when set.
func publish(ctx context.Context, cfg Config, t *tracker) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(50_000)}, cfg.KafkaOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	var firstErr error
	prefix := t.prefix
	start := time.Now()
	for i := range cfg.Flows {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		id := prefix + strconv.Itoa(i)
		req := otpRequest(id, i, cfg.Delays, cfg.Clock.Now())
		params := [][2]string{{"code", req.Params["code"]}}
		specs := stepSpecs(req)
		specs[0].auto = cfg.DelayAuto
		v := appendRequest(make([]byte, 0, 256), id, req.Recipient, specs, params, req.RequestedAt)
		cl.Produce(ctx, &kgo.Record{Topic: cfg.Topics.Requests, Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
		if cfg.Rate > 0 {
			if ahead := time.Duration(float64(i+1)/cfg.Rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("bench: publish: %w", firstErr)
	}
	return nil
}

func waitTopics(ctx context.Context, adm *kadm.Client, want []string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		listed, err := adm.ListTopics(ctx, want...)
		if err == nil {
			missing := slices.DeleteFunc(slices.Clone(want), func(t string) bool { d, ok := listed[t]; return ok && d.Err == nil })
			if len(missing) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("bench: topics missing: %v (is the processor running with --create-topics?)", missing)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("bench: list topics: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// partitionEnds returns where each partition of topic ends now.
func partitionEnds(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// endOffsets returns where the topics end now, as start offsets for a
// consumer that must see exactly what comes after.
func endOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (map[string]map[int32]kgo.Offset, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}
	out := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	return out, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ProcessCPU reads another process's user+system CPU time from /proc.
func ProcessCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) { return procCPU(pid) }
}
