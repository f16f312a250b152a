// Package cliconfig is the setup prologue the fallback commands share: the
// settings of every command that talks to Kafka or Redis (brokers, Redis URL
// and key prefix, group, topics, TLS, SASL and passwords, clock speed,
// epoch and offset, log level ...), their flags and FALLBACK_* variables with the
// documented defaults (docs/configuration.md), and the clients, store, clock
// and logger made from them. cmd/fallback and cmd/fallback-bench both
// register it on their flag sets; package clients turns the connection
// settings into client options. `fallback run`'s whole flag set is built
// here too (NewRunFlags), so tests outside package main use the very one
// run parses.
package cliconfig

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/processor/prices"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// Common holds the settings every command that talks to Kafka or Redis
// shares. Each flag defaults to its FALLBACK_* variable, then to the
// documented default (docs/configuration.md).
type Common struct {
	Brokers         string
	RedisURL        string
	RedisPrefix     string
	RedisShards     int
	ClosedDetail    time.Duration // --closed-detail-retention
	WaitReplicas    int           // --redis-wait-replicas; WaitReplicasAuto until ResolveWaitReplicas
	WaitTimeout     time.Duration // --redis-wait-timeout
	Group           string
	InstanceID      string
	Names           topics.Names
	Partitions      int
	Replication     int
	CreateTopics    bool
	Tombstone       time.Duration
	ClaimLease      time.Duration
	MaxRequestAge   time.Duration // a send older than this is rejected (expired)
	DeadlineGrace   time.Duration // clock skew: deadline grace, future requested_at
	MaxDeadlineHold time.Duration // the longest a due deadline waits for unread input
	BatchFill       time.Duration // --batch-fill
	// --auto-delay-window and --auto-delay-min-samples (docs/auto-delay.md).
	AutoDelayWindow     time.Duration
	AutoDelayMinSamples int
	ShutdownTimeout     time.Duration // `fallback run --shutdown-timeout` (registered by NewRunFlags)
	LogLevel            string
	LogFormat           string // text or json
	Catalog             string // --catalog: auto, off, warn or enforce (CatalogMode)
	Prices              string // --prices: the price table's file; empty: none (PriceTable)
	priceTable          *prices.Table
	priceTableOf        string // the --prices priceTable was read from
	Events              string // --events: full or lean (EventsMode)
	ClockSpeed          float64
	ClockEpoch          int64
	ClockOffset         time.Duration // --clock-offset: testing only, a host whose clock is off

	groups  Group   // registered (RegisterGroups), for Check
	envErrs []error // FALLBACK_* variables that did not parse

	// TLS, SASL and passwords (security.go).
	Kafka clients.Kafka
	Redis clients.Redis // URL comes from RedisURL

	Registry clients.SchemaRegistry // --schema-registry*
}

// Group is a set of the shared settings. A command registers only the
// groups it uses, so its -h lists only flags that change what it does.
type Group uint

const (
	// GroupKafka: --brokers and the Kafka TLS and SASL flags.
	GroupKafka Group = 1 << iota
	// GroupRedis: --redis, --redis-prefix and the Redis TLS and password flags.
	GroupRedis
	// GroupRequestsTopic: --topic-requests alone (GroupTopics includes it).
	GroupRequestsTopic
	// GroupTopics: every --topic-* flag.
	GroupTopics
	// GroupTopicCreation: --partitions and --replication.
	GroupTopicCreation
	// GroupProcessor: the processor's own settings (--group, --instance-id,
	// --create-topics, --tombstone-retention, --max-request-age,
	// --deadline-grace, --max-deadline-hold, --claim-lease, --events).
	GroupProcessor
	// GroupLog: --log-level and --log-format.
	GroupLog
	// GroupClock: --clock-speed, --clock-epoch and --clock-offset.
	GroupClock
	// GroupSchemaRegistry: --schema-registry, --schema-registry-user and
	// --schema-registry-password-file.
	GroupSchemaRegistry
	// GroupCatalog: --catalog. Not in GroupAll: fallback-bench builds its
	// processor's config itself and would ignore it.
	GroupCatalog
	// GroupConfigTopics: --topic-flows, --topic-senders and
	// --topic-templates alone (GroupTopics includes them), for the
	// commands that keep the flows and the catalog.
	GroupConfigTopics
	// GroupPrices: --prices, `fallback run`'s alone.
	GroupPrices

	// GroupAll is every shared setting of the processor: fallback-bench.
	GroupAll = GroupKafka | GroupRedis | GroupRequestsTopic | GroupTopics | GroupTopicCreation | GroupProcessor | GroupLog | GroupClock
	// GroupRun is `fallback run`'s: GroupAll, the schema registry and the
	// catalog mode.
	GroupRun = GroupAll | GroupSchemaRegistry | GroupCatalog | GroupPrices
)

// LogLevels are the values --log-level takes.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogFormats are the values --log-format takes.
var LogFormats = []string{"text", "json"}

// Register adds every shared flag to fs (GroupAll).
func (c *Common) Register(fs *flag.FlagSet) { c.RegisterGroups(fs, GroupAll) }

// RegisterGroups adds the flags of groups to fs. Each takes its FALLBACK_*
// variable (clients.EnvOf) when that is set, else the documented default;
// a flag on the command line wins. A variable that does not parse is kept
// for Check, which reports it naming the variable and the flag. The
// settings of the other groups get their defaults and no flag.
func (c *Common) RegisterGroups(fs *flag.FlagSet, groups Group) {
	c.groups |= groups
	hidden := flag.NewFlagSet("hidden", flag.ContinueOnError)
	on := func(g Group) *flag.FlagSet {
		if groups&g != 0 {
			return fs
		}
		return hidden
	}
	before := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })

	d := topics.DefaultNames()
	kafka, red := on(GroupKafka), on(GroupRedis)
	kafka.StringVar(&c.Brokers, "brokers", "", "Kafka seed brokers, comma-separated (env FALLBACK_BROKERS)")
	red.StringVar(&c.RedisURL, "redis", "", "Redis URL redis://[user:pass@]host:port/db, rediss:// for TLS, ?addr=host:port&addr=... for a cluster (env FALLBACK_REDIS_URL)")
	red.StringVar(&c.RedisPrefix, "redis-prefix", statestore.DefaultPrefix, "prefix of every Redis key (env FALLBACK_REDIS_PREFIX)")
	red.DurationVar(&c.ClosedDetail, "closed-detail-retention", DefaultClosedDetail, "how long a closed flow keeps its whole record (what `fallback flow` shows, how late DLRs are told apart); after it, until --tombstone-retention ends, only a compact entry of about 20 bytes that still refuses a duplicate and reports a late delivery once; 0, or at least the tombstone retention, keeps every closed flow whole (docs/closed-flows.md) (env FALLBACK_CLOSED_DETAIL_RETENTION)")
	red.IntVar(&c.RedisShards, "redis-shards", 0, "how many deadline and outbox sets the flows are spread over; 0: 16 on a single Redis, 64 on a cluster. More spreads a cluster's load over more masters, fewer puts more flows in each script call; fixed for a --redis-prefix once flows are written (docs/redis-shards.md) (env FALLBACK_REDIS_SHARDS)")
	proc := on(GroupProcessor)
	proc.StringVar(&c.Group, "group", "fallback", "Kafka consumer group (env FALLBACK_GROUP)")
	proc.StringVar(&c.InstanceID, "instance-id", "", "static group membership: an instance restarted with the same id gets its partitions back at once instead of after the session timeout; unique per instance, empty for dynamic membership (env FALLBACK_INSTANCE_ID)")
	req := on(GroupRequestsTopic | GroupTopics)
	req.StringVar(&c.Names.Requests, "topic-requests", d.Requests, "requests topic (env FALLBACK_TOPIC_REQUESTS)")
	tp := on(GroupTopics)
	tp.StringVar(&c.Names.DLR, "topic-dlr", d.DLR, "delivery reports topic (env FALLBACK_TOPIC_DLR)")
	tp.StringVar(&c.Names.SendsPrefix, "topic-sends-prefix", d.SendsPrefix, "send commands go to this prefix + channel (env FALLBACK_TOPIC_SENDS_PREFIX)")
	tp.StringVar(&c.Names.Events, "topic-events", d.Events, "analytics events topic (env FALLBACK_TOPIC_EVENTS)")
	tp.StringVar(&c.Names.DLQ, "topic-dlq", d.DLQ, "dead-letter topic (env FALLBACK_TOPIC_DLQ)")
	conf := on(GroupConfigTopics | GroupTopics)
	conf.StringVar(&c.Names.Flows, "topic-flows", d.Flows, "stored flow definitions, compacted (env FALLBACK_TOPIC_FLOWS)")
	conf.StringVar(&c.Names.Senders, "topic-senders", d.Senders, "the catalog's senders, compacted (env FALLBACK_TOPIC_SENDERS)")
	conf.StringVar(&c.Names.Templates, "topic-templates", d.Templates, "the catalog's templates, compacted (env FALLBACK_TOPIC_TEMPLATES)")
	conf.StringVar(&c.Names.FlowHistory, "topic-flows-history", d.FlowHistory, "every version of every stored flow, compacted, key <flow_id>/<version>; written by fallback flows and the console, not read by the processor (env FALLBACK_TOPIC_FLOWS_HISTORY)")
	create := on(GroupTopicCreation)
	create.IntVar(&c.Partitions, "partitions", 12, "partitions of created topics, at least 1 (env FALLBACK_PARTITIONS)")
	create.IntVar(&c.Replication, "replication", -1, "replication factor of created topics: at least 1, or -1 for the broker default (env FALLBACK_REPLICATION)")
	proc.BoolVar(&c.CreateTopics, "create-topics", true, "create missing topics at start (env FALLBACK_CREATE_TOPICS)")
	proc.DurationVar(&c.Tombstone, "tombstone-retention", 0, "how long a closed flow is remembered, so that a duplicate request or a late DLR is recognised; 0: --max-request-age plus --deadline-grace, the least that keeps a duplicate from sending again (env FALLBACK_TOMBSTONE_RETENTION)")
	proc.DurationVar(&c.MaxRequestAge, "max-request-age", time.Hour, "a send read more than this after its requested_at (or record timestamp) is rejected as expired and nothing is sent; --tombstone-retention must be at least this plus --deadline-grace (env FALLBACK_MAX_REQUEST_AGE)")
	proc.DurationVar(&c.DeadlineGrace, "deadline-grace", processor.DefaultDeadlineGrace, "how far the brokers' and producers' clocks may disagree with the processor's: a deadline fires once every input partition is read this much past it, and a request dated further in the future is rejected; 0 for none (env FALLBACK_DEADLINE_GRACE)")
	proc.DurationVar(&c.MaxDeadlineHold, "max-deadline-hold", processor.DefaultMaxDeadlineHold, "the longest a due deadline waits for an input partition that is not read past it (owner dead, rebalance, Kafka down); past it the deadline fires anyway and its events carry deadline_forced; 0 for the default (env FALLBACK_MAX_DEADLINE_HOLD)")
	c.WaitReplicas = WaitReplicasAuto
	proc.Var((*waitReplicasValue)(&c.WaitReplicas), "redis-wait-replicas", "make every state change wait until this many replicas of its Redis master have it (WAIT), so that a failover cannot lose it: a `count`, 0 for Redis's asynchronous replication, or auto: 1 when a master has a connected replica at start, else 0 (docs/delivery-guarantees.md) (env FALLBACK_REDIS_WAIT_REPLICAS)")
	proc.DurationVar(&c.WaitTimeout, "redis-wait-timeout", statestore.DefaultWaitTimeout, fmt.Sprintf("the longest a state change waits for --redis-wait-replicas; a master whose replicas do not answer in time is then written to without waiting for %s, counted in fallback_redis_replica_shortfalls_total (env FALLBACK_REDIS_WAIT_TIMEOUT)", statestore.WaitPause))
	proc.StringVar(&c.Events, "events", string(flow.EventsFull), "which events the processor writes to the events topic: full, every transition; lean, FLOW_CLOSED with its summary, MULTI_CHANNEL_DELIVERY and the answers to refused inputs (REQUEST_REJECTED, REQUEST_DUPLICATE, DLR_DISCARDED, CANCEL_IGNORED), 3 records of a flow that falls back instead of 10.5; sends and dead letters are the same in both; empty is full (docs/events.md) (env FALLBACK_EVENTS)")
	proc.DurationVar(&c.AutoDelayWindow, "auto-delay-window", autodelay.DefaultWindow, "auto delays (Step.delay_auto): how long an observed send-to-delivery latency counts, per channel and recipient country, in memory per instance; older ones leave the window within a sixth of it (docs/auto-delay.md) (env FALLBACK_AUTO_DELAY_WINDOW)")
	proc.IntVar(&c.AutoDelayMinSamples, "auto-delay-min-samples", autodelay.DefaultMinSamples, "auto delays: the latencies a channel and country need in the window before a delay is chosen from them; with fewer a step uses its delay_seconds, and its events say so (env FALLBACK_AUTO_DELAY_MIN_SAMPLES)")
	proc.DurationVar(&c.BatchFill, "batch-fill", DefaultBatchFill, "how long a poll that returned a small batch (under a quarter of the 1,000 records a batch holds) polls again for more before the batch runs: at moderate rates fuller batches cost less CPU per flow in the processor and in Redis, and every DLR and request waits up to this much longer; 0 runs each poll at once; at most 1s (docs/batching.md) (env FALLBACK_BATCH_FILL)")
	proc.DurationVar(&c.ClaimLease, "claim-lease", 10*time.Second, "how long a claimed deadline or owed output waits before another instance retries it; above 0 (env FALLBACK_CLAIM_LEASE)")
	on(GroupLog).StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (env FALLBACK_LOG_LEVEL)")
	on(GroupCatalog).StringVar(&c.Catalog, "catalog", flow.CatalogAuto.String(), "whether each step's sender and template are checked against the catalog (--topic-senders, --topic-templates): auto enforces it once it holds a sender or a template and is off while it is empty; enforce rejects a request whose step the catalog does not allow; warn logs and counts what enforce would reject and rejects nothing; off checks nothing; empty is auto (docs/catalog-command.md) (env FALLBACK_CATALOG)")
	on(GroupPrices).StringVar(&c.Prices, "prices", "", "price table, a CSV file (channel,prefix,price,currency: a channel, an E.164 prefix, the longest matching wins, a decimal price, an ISO 4217 code), read at start: each flow's steps take their price from it when the flow starts, a DLR's own price wins; FLOW_CLOSED's summary carries each step's cost, the flow's and the wasted cost; empty: costs only from DLR prices (docs/cost.md) (env FALLBACK_PRICES)")
	on(GroupLog).StringVar(&c.LogFormat, "log-format", "text", "text or json: the format of the log lines on stderr (env FALLBACK_LOG_FORMAT)")
	clk := on(GroupClock)
	clk.Float64Var(&c.ClockSpeed, "clock-speed", 1, "testing only: run flow time this many times faster than wall time; every instance sharing a Redis needs the same speed and epoch (env FALLBACK_CLOCK_SPEED)")
	clk.Int64Var(&c.ClockEpoch, "clock-epoch", 0, "testing only: unix ms at which the sped-up clock equals wall time (env FALLBACK_CLOCK_EPOCH)")
	clk.DurationVar(&c.ClockOffset, "clock-offset", 0, "testing only: this process's clock reads the true time plus this (negative: behind), as on a host whose clock is off; in flow time, as --deadline-grace is (with --clock-speed 10, 2s is a host 200ms off); record timestamps, from the brokers' clocks, are not shifted; at most 1h either way (docs/event-time-deadlines.md#clock-skew) (env FALLBACK_CLOCK_OFFSET)")
	c.registerSecurity(kafka, red)
	reg := on(GroupSchemaRegistry)
	reg.StringVar(&c.Registry.URLs, "schema-registry", "", "Confluent Schema Registry URLs, comma-separated: register the schemas at start, write outputs in the Confluent wire format, read inputs in either format (docs/schema-registry.md); empty: plain Avro (env FALLBACK_SCHEMA_REGISTRY)")
	reg.StringVar(&c.Registry.User, "schema-registry-user", "", "basic-auth user of the schema registry (a Confluent Cloud API key); needs --schema-registry-password-file (env FALLBACK_SCHEMA_REGISTRY_USER)")
	reg.StringVar(&c.Registry.PasswordFile, "schema-registry-password-file", "", "file holding the schema registry's basic-auth password, read at start (env FALLBACK_SCHEMA_REGISTRY_PASSWORD_FILE)")

	// The variables of the flags just added.
	fs.VisitAll(func(f *flag.Flag) {
		if before[f.Name] {
			return
		}
		c.fromEnv(fs, f)
	})
}

// fromEnv sets f from its FALLBACK_* variable, if set. An empty variable
// counts as unset for a number, duration or boolean, and for
// --redis-wait-replicas (so a compose file can pass one through empty); a
// value that does not parse is kept for Check.
func (c *Common) fromEnv(fs *flag.FlagSet, f *flag.Flag) {
	name := clients.EnvOf("--" + f.Name)
	v, ok := os.LookupEnv(name)
	if !ok {
		return
	}
	getter, _ := f.Value.(flag.Getter)
	var kind string
	if getter != nil {
		switch getter.Get().(type) {
		case bool:
			kind = "not a boolean (true or false)"
		case int, int64:
			kind = "not an integer"
		case float64:
			kind = "not a number"
		case time.Duration:
			kind = "not a duration (such as 500ms, 10s, 5m or 24h)"
		}
	}
	if _, ok := f.Value.(*waitReplicasValue); ok {
		kind = waitReplicasKind
	}
	if kind != "" && strings.TrimSpace(v) == "" {
		return
	}
	if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
		if kind == "" {
			kind = err.Error()
		}
		c.envErrs = append(c.envErrs, fmt.Errorf("%s=%q (--%s): %s", name, v, f.Name, kind))
	}
}

// Check refuses impossible settings before anything connects, each error
// naming the flag and its variable: a FALLBACK_* variable that did not
// parse, an unknown --log-level, a partition count or replication factor
// Kafka cannot create, a lease or hold out of range, an empty name, and
// the unsafe request age of CheckRequestAge. It checks only the groups
// that were registered.
func (c *Common) Check() error {
	if len(c.envErrs) > 0 {
		return errors.Join(c.envErrs...)
	}
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s (%s): %s", flag, clients.EnvOf(flag), fmt.Sprintf(format, args...)))
	}
	g := c.groups
	if g&GroupLog != 0 && !slices.Contains(LogLevels, strings.ToLower(c.LogLevel)) {
		bad("--log-level", "%q is not a log level: use one of %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	if g&GroupLog != 0 && !slices.Contains(LogFormats, strings.ToLower(c.LogFormat)) {
		bad("--log-format", "%q is not a log format: use one of %s", c.LogFormat, strings.Join(LogFormats, ", "))
	}
	if g&GroupTopicCreation != 0 && c.CreateTopics {
		if c.Partitions < 1 || c.Partitions > math.MaxInt32 {
			bad("--partitions", "created topics need at least 1 partition, got %d", c.Partitions)
		}
		if (c.Replication < 1 && c.Replication != -1) || c.Replication > math.MaxInt16 {
			bad("--replication", "the replication factor is -1 (the broker's default) or at least 1, got %d", c.Replication)
		}
	}
	if g&GroupCatalog != 0 && strings.TrimSpace(c.Catalog) != "" {
		if _, err := flow.ParseCatalogMode(c.Catalog); err != nil {
			bad("--catalog", "%v", err)
		}
	}
	if g&GroupPrices != 0 && c.Prices != "" {
		if _, err := c.PriceTable(); err != nil {
			bad("--prices", "%v", err)
		}
	}
	if g&GroupRedis != 0 && c.RedisPrefix == "" {
		bad("--redis-prefix", "must not be empty")
	}
	if g&GroupProcessor != 0 && c.WaitReplicas < 0 && c.WaitReplicas != WaitReplicasAuto {
		bad("--redis-wait-replicas", "must not be negative, got %d", c.WaitReplicas)
	}
	if g&GroupProcessor != 0 && c.WaitTimeout < time.Millisecond {
		bad("--redis-wait-timeout", "must be at least 1ms, got %s", c.WaitTimeout)
	}
	if g&GroupProcessor != 0 && c.AutoDelayWindow < time.Minute {
		bad("--auto-delay-window", "must be at least 1m, got %s", c.AutoDelayWindow)
	}
	if g&GroupProcessor != 0 && c.AutoDelayMinSamples < 1 {
		bad("--auto-delay-min-samples", "must be at least 1, got %d", c.AutoDelayMinSamples)
	}
	if g&GroupRedis != 0 && c.ClosedDetail < 0 {
		bad("--closed-detail-retention", "must not be negative, got %s", c.ClosedDetail)
	}
	if g&GroupRedis != 0 && (c.RedisShards < 0 || c.RedisShards > statestore.MaxShards) {
		bad("--redis-shards", "must be from 1 to %d, or 0 for the default, got %d", statestore.MaxShards, c.RedisShards)
	}
	for _, t := range []struct {
		group Group
		flag  string
		name  string
	}{
		{GroupRequestsTopic | GroupTopics, "--topic-requests", c.Names.Requests},
		{GroupTopics, "--topic-dlr", c.Names.DLR},
		{GroupTopics, "--topic-sends-prefix", c.Names.SendsPrefix},
		{GroupTopics, "--topic-events", c.Names.Events},
		{GroupTopics, "--topic-dlq", c.Names.DLQ},
		{GroupConfigTopics | GroupTopics, "--topic-flows", c.Names.Flows},
		{GroupConfigTopics | GroupTopics, "--topic-senders", c.Names.Senders},
		{GroupConfigTopics | GroupTopics, "--topic-templates", c.Names.Templates},
		{GroupConfigTopics | GroupTopics, "--topic-flows-history", c.Names.FlowHistory},
	} {
		if g&t.group != 0 && strings.TrimSpace(t.name) == "" {
			bad(t.flag, "must not be empty")
		}
	}
	if g&GroupProcessor != 0 {
		if strings.TrimSpace(c.Group) == "" {
			bad("--group", "must not be empty")
		}
		if c.ClaimLease <= 0 {
			bad("--claim-lease", "must be above 0, got %s", c.ClaimLease)
		}
		if c.BatchFill < 0 || c.BatchFill > time.Second {
			bad("--batch-fill", "must be between 0 and 1s, got %s", c.BatchFill)
		}
		if c.MaxDeadlineHold < 0 {
			bad("--max-deadline-hold", "must not be negative, got %s", c.MaxDeadlineHold)
		}
		if c.Tombstone < 0 {
			bad("--tombstone-retention", "must not be negative, got %s", c.Tombstone)
		}
		if _, err := flow.ParseEvents(c.Events); err != nil {
			bad("--events", "%v", err)
		}
	}
	if g&GroupClock != 0 {
		if !(c.ClockSpeed > 0) || math.IsInf(c.ClockSpeed, 0) {
			bad("--clock-speed", "must be a finite number above 0, got %g", c.ClockSpeed)
		}
		if c.ClockEpoch < 0 {
			bad("--clock-epoch", "must not be negative, got %d", c.ClockEpoch)
		} else if c.ClockSpeed != 1 && c.ClockEpoch == 0 {
			bad("--clock-epoch", "--clock-speed %g needs the unix ms at which the sped-up clock equals wall time", c.ClockSpeed)
		}
		if c.ClockOffset > MaxClockOffset || c.ClockOffset < -MaxClockOffset {
			bad("--clock-offset", "must be within %s either way, got %s", MaxClockOffset, c.ClockOffset)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if g&GroupProcessor != 0 && c.Tombstone >= 0 {
		if err := c.CheckRequestAge(); err != nil {
			return err
		}
	}
	return nil
}

// DefaultBatchFill is --batch-fill's default: at a steady 2,000 requests/s
// it cut the processor's CPU per flow by about a quarter and Redis's by
// about a third, for a few tens of ms on each DLR and request (docs/batching.md).
const DefaultBatchFill = 25 * time.Millisecond

// DefaultClosedDetail is --closed-detail-retention's default: long enough
// for an operator to look a flow up in full after an incident report.
const DefaultClosedDetail = 10 * time.Minute

// tombstoneTTL is the tombstone retention in flow time, the state store's
// default when none is set.
func (c *Common) tombstoneTTL() time.Duration {
	if t := c.TombstoneRetention(); t > 0 {
		return t
	}
	return statestore.DefaultTombstoneTTL
}

// CheckRequestAge refuses settings under which a duplicate of a request
// could start a second flow: a closed flow must be remembered for as long
// as a copy of its request can still be accepted. A request is accepted up
// to max-request-age after its requested_at, which may lie up to
// deadline-grace ahead of the processor's clock when the flow starts, and
// the flow may close at once: its tombstone must outlive both.
func (c *Common) CheckRequestAge() error {
	if c.MaxRequestAge <= 0 {
		return fmt.Errorf("--max-request-age (FALLBACK_MAX_REQUEST_AGE) must be positive, got %s", c.MaxRequestAge)
	}
	if c.DeadlineGrace < 0 {
		return fmt.Errorf("--deadline-grace (FALLBACK_DEADLINE_GRACE) must not be negative, got %s", c.DeadlineGrace)
	}
	tombstone := c.TombstoneRetention()
	if need := c.MaxRequestAge + c.DeadlineGrace; tombstone < need {
		return fmt.Errorf("--tombstone-retention (FALLBACK_TOMBSTONE_RETENTION) %s is shorter than --max-request-age (FALLBACK_MAX_REQUEST_AGE) %s plus --deadline-grace %s: "+
			"a closed flow must be remembered as long as a duplicate of its request can still be accepted, or the duplicate sends again; "+
			"raise --tombstone-retention to at least %s or lower --max-request-age", c.Tombstone, c.MaxRequestAge, c.DeadlineGrace, need)
	}
	return nil
}

// PriceTable reads --prices; nil without one. The file is read once:
// Check reads it to refuse a bad one, and the processor gets that table.
func (c *Common) PriceTable() (*prices.Table, error) {
	if c.Prices == "" {
		return nil, nil
	}
	if c.priceTable == nil || c.priceTableOf != c.Prices {
		t, err := prices.Load(c.Prices, flow.DefaultChannels())
		if err != nil {
			return nil, err
		}
		c.priceTable, c.priceTableOf = t, c.Prices
	}
	return c.priceTable, nil
}

// CatalogMode is --catalog; empty is auto, the default (so a compose file
// can pass the variable through empty). Check refuses an unknown mode;
// without Check it is auto.
func (c *Common) CatalogMode() flow.CatalogMode {
	m, err := flow.ParseCatalogMode(c.Catalog)
	if err != nil {
		return flow.CatalogAuto
	}
	return m
}

// EventsMode is --events; empty is full, the default. Check refuses an
// unknown mode; without Check it is full.
func (c *Common) EventsMode() flow.Events {
	e, err := flow.ParseEvents(c.Events)
	if err != nil {
		return flow.EventsFull
	}
	return e
}

// MaxClockOffset bounds --clock-offset: it simulates a host's clock off by
// a few seconds, not a clock set to another day.
const MaxClockOffset = time.Hour

// Clock is the wall clock unless a test asked for a faster one
// (--clock-speed) or one that is off (--clock-offset, clock.Skewed).
func (c *Common) Clock() (clock.Clock, error) {
	var base clock.Wall = clock.Real{}
	if c.ClockSpeed != 1 {
		if c.ClockSpeed <= 0 || c.ClockEpoch <= 0 {
			return nil, fmt.Errorf("--clock-speed needs a positive speed and --clock-epoch (unix ms)")
		}
		base = clock.NewScaledAt(time.UnixMilli(c.ClockEpoch), c.ClockSpeed)
	}
	if c.ClockOffset == 0 {
		return base, nil
	}
	if c.ClockOffset > MaxClockOffset || c.ClockOffset < -MaxClockOffset {
		return nil, fmt.Errorf("--clock-offset %s is more than %s either way", c.ClockOffset, MaxClockOffset)
	}
	return clock.NewSkewed(base, c.ClockOffset), nil
}

// BrokerList is --brokers split at commas; at least one.
func (c *Common) BrokerList() ([]string, error) {
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Kafka brokers: set --brokers or FALLBACK_BROKERS")
	}
	return out, nil
}

// Logger logs to stderr at --log-level, as text or JSON lines
// (--log-format). Check refuses an unknown level or format; without Check
// they are info and text.
func (c *Common) Logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// RedisClient connects to a single server, or to a cluster when the URL
// lists more nodes with addr= parameters, with the TLS and password flags.
func (c *Common) RedisClient() (redis.UniversalClient, error) {
	if c.RedisURL == "" {
		return nil, fmt.Errorf("no Redis: set --redis or FALLBACK_REDIS_URL")
	}
	r := c.Redis
	r.URL = c.RedisURL
	return r.Client()
}

// TombstoneRetention is --tombstone-retention, or when it is 0 the least
// that CheckRequestAge accepts: closed flows are the larger part of Redis's
// memory at a steady rate, so they are kept no longer than duplicates need.
func (c *Common) TombstoneRetention() time.Duration {
	if c.Tombstone > 0 || c.MaxRequestAge <= 0 {
		return c.Tombstone // 0: the state store's default
	}
	return c.MaxRequestAge + max(c.DeadlineGrace, 0)
}

// ProviderIndexTTL is how long a provider message id resolves to its
// attempt: as long as the longest flow can stay open (every step at the
// longest delay), then as long as its tombstone, so that a DLR naming only
// the provider's id finds its flow whenever the flow is still known.
func (c *Common) ProviderIndexTTL() time.Duration {
	tombstone := c.TombstoneRetention()
	if tombstone == 0 {
		tombstone = statestore.DefaultTombstoneTTL
	}
	l := flow.DefaultLimits()
	return c.inWallTime(time.Duration(l.MaxSteps)*time.Duration(l.MaxDelaySeconds)*time.Second + tombstone)
}

// inWallTime is a flow-time duration as Redis counts it (a key's TTL runs
// on Redis's own clock): under --clock-speed 10 an hour of retention is six
// minutes, so a sped-up test world keeps what a real one would, no more.
func (c *Common) inWallTime(d time.Duration) time.Duration {
	if c.ClockSpeed > 0 && c.ClockSpeed != 1 {
		return max(time.Duration(float64(d)/c.ClockSpeed), time.Millisecond)
	}
	return d
}

// Shards is --redis-shards, or when it is 0 the default for client: 16 on
// a single server, where each shard costs a script call per batch and a
// read per sweep, and ClusterShards on a cluster, where 16 hash tags leave
// masters idle (docs/redis-shards.md).
func (c *Common) Shards(client redis.UniversalClient) int {
	if c.RedisShards > 0 {
		return c.RedisShards
	}
	if _, ok := client.(*redis.ClusterClient); ok {
		return ClusterShards
	}
	return statestore.DefaultShards
}

// ClusterShards is the default shard count on a Redis Cluster: 64 hash tags
// fall 21, 22 and 21 into three masters' equal slot ranges (7 to 14 on six
// masters, 4 to 10 on nine).
const ClusterShards = 64

// Store is the flow state store on client, with --redis-prefix,
// --redis-shards, the tombstone retention and --redis-wait-replicas. With
// --redis-wait-replicas auto a command of the processor's settings
// (GroupProcessor) must ResolveWaitReplicas first; the other commands
// change no flow state and wait for no replica.
func (c *Common) Store(client redis.UniversalClient) (*statestore.Store, error) {
	cfg := c.storeConfig(client)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if c.WaitReplicas == WaitReplicasAuto && c.groups&GroupProcessor != 0 {
		return nil, errors.New("--redis-wait-replicas auto is not resolved yet (ResolveWaitReplicas)")
	}
	return statestore.New(client, cfg), nil
}

func (c *Common) storeConfig(client redis.UniversalClient) statestore.Config {
	// A detail window as long as the tombstone's keeps closed flows whole:
	// they expire before it ends (a short --max-request-age, say).
	var detail time.Duration
	if c.ClosedDetail > 0 && c.ClosedDetail < c.tombstoneTTL() {
		detail = c.inWallTime(c.ClosedDetail)
	}
	return statestore.Config{Prefix: c.RedisPrefix, Shards: c.Shards(client), TombstoneTTL: c.inWallTime(c.tombstoneTTL()),
		ClosedDetailTTL: detail, WaitReplicas: max(c.WaitReplicas, 0), WaitTimeout: c.WaitTimeout, Logger: c.Logger()}
}
