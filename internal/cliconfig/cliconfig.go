// Package cliconfig is the setup prologue the fallback commands share: the
// settings of every command that talks to Kafka or Redis (brokers, Redis URL
// and key prefix, group, topics, TLS, SASL and passwords, clock speed and
// epoch, log level ...), their flags and FALLBACK_* variables with the
// documented defaults (docs/configuration.md), and the clients, store, clock
// and logger made from them. cmd/fallback and cmd/fallback-bench both
// register it on their flag sets; package clients turns the connection
// settings into client options.
package cliconfig

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
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
	LogLevel        string
	ClockSpeed      float64
	ClockEpoch      int64

	// TLS, SASL and passwords (security.go).
	Kafka clients.Kafka
	Redis clients.Redis // URL comes from RedisURL
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "fallback: ignoring %s=%q: not an integer\n", name, v)
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		fmt.Fprintf(os.Stderr, "fallback: ignoring %s=%q: not a boolean\n", name, v)
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "fallback: ignoring %s=%q: not a duration\n", name, v)
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		fmt.Fprintf(os.Stderr, "fallback: ignoring %s=%q: not a number\n", name, v)
	}
	return def
}

// Register adds the shared flags to fs, each defaulting to its FALLBACK_*
// variable.
func (c *Common) Register(fs *flag.FlagSet) {
	d := topics.DefaultNames()
	fs.StringVar(&c.Brokers, "brokers", env("FALLBACK_BROKERS", ""), "Kafka seed brokers, comma-separated (env FALLBACK_BROKERS)")
	fs.StringVar(&c.RedisURL, "redis", env("FALLBACK_REDIS_URL", ""), "Redis URL redis://[user:pass@]host:port/db, rediss:// for TLS, ?addr=host:port&addr=... for a cluster (env FALLBACK_REDIS_URL)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", env("FALLBACK_REDIS_PREFIX", statestore.DefaultPrefix), "prefix of every Redis key (env FALLBACK_REDIS_PREFIX)")
	fs.StringVar(&c.Group, "group", env("FALLBACK_GROUP", "fallback"), "Kafka consumer group (env FALLBACK_GROUP)")
	fs.StringVar(&c.InstanceID, "instance-id", env("FALLBACK_INSTANCE_ID", ""), "static group membership: an instance restarted with the same id gets its partitions back at once instead of after the session timeout; unique per instance, empty for dynamic membership (env FALLBACK_INSTANCE_ID)")
	fs.StringVar(&c.Names.Requests, "topic-requests", env("FALLBACK_TOPIC_REQUESTS", d.Requests), "requests topic (env FALLBACK_TOPIC_REQUESTS)")
	fs.StringVar(&c.Names.DLR, "topic-dlr", env("FALLBACK_TOPIC_DLR", d.DLR), "delivery reports topic (env FALLBACK_TOPIC_DLR)")
	fs.StringVar(&c.Names.SendsPrefix, "topic-sends-prefix", env("FALLBACK_TOPIC_SENDS_PREFIX", d.SendsPrefix), "send commands go to this prefix + channel (env FALLBACK_TOPIC_SENDS_PREFIX)")
	fs.StringVar(&c.Names.Events, "topic-events", env("FALLBACK_TOPIC_EVENTS", d.Events), "analytics events topic (env FALLBACK_TOPIC_EVENTS)")
	fs.StringVar(&c.Names.DLQ, "topic-dlq", env("FALLBACK_TOPIC_DLQ", d.DLQ), "dead-letter topic (env FALLBACK_TOPIC_DLQ)")
	fs.StringVar(&c.Names.Flows, "topic-flows", env("FALLBACK_TOPIC_FLOWS", d.Flows), "stored flow definitions, compacted (env FALLBACK_TOPIC_FLOWS)")
	fs.IntVar(&c.Partitions, "partitions", envInt("FALLBACK_PARTITIONS", 12), "partitions of created topics (env FALLBACK_PARTITIONS)")
	fs.IntVar(&c.Replication, "replication", envInt("FALLBACK_REPLICATION", -1), "replication factor of created topics, -1 for the broker default (env FALLBACK_REPLICATION)")
	fs.BoolVar(&c.CreateTopics, "create-topics", envBool("FALLBACK_CREATE_TOPICS", true), "create missing topics at start (env FALLBACK_CREATE_TOPICS)")
	fs.DurationVar(&c.Tombstone, "tombstone-retention", envDuration("FALLBACK_TOMBSTONE_RETENTION", statestore.DefaultTombstoneTTL), "how long a closed flow is remembered (env FALLBACK_TOMBSTONE_RETENTION)")
	fs.DurationVar(&c.MaxRequestAge, "max-request-age", envDuration("FALLBACK_MAX_REQUEST_AGE", time.Hour), "a send read more than this after its requested_at (or record timestamp) is rejected as expired and nothing is sent; --tombstone-retention must be at least this plus --deadline-grace (env FALLBACK_MAX_REQUEST_AGE)")
	fs.DurationVar(&c.DeadlineGrace, "deadline-grace", envDuration("FALLBACK_DEADLINE_GRACE", processor.DefaultDeadlineGrace), "how far the brokers' and producers' clocks may disagree with the processor's: a deadline fires once every input partition is read this much past it, and a request dated further in the future is rejected; 0 for none (env FALLBACK_DEADLINE_GRACE)")
	fs.DurationVar(&c.MaxDeadlineHold, "max-deadline-hold", envDuration("FALLBACK_MAX_DEADLINE_HOLD", processor.DefaultMaxDeadlineHold), "the longest a due deadline waits for an input partition that is not read past it (owner dead, rebalance, Kafka down); past it the deadline fires anyway and its events carry deadline_forced (env FALLBACK_MAX_DEADLINE_HOLD)")
	fs.DurationVar(&c.ClaimLease, "claim-lease", envDuration("FALLBACK_CLAIM_LEASE", 10*time.Second), "how long a claimed deadline or owed output waits before another instance retries it (env FALLBACK_CLAIM_LEASE)")
	fs.StringVar(&c.LogLevel, "log-level", env("FALLBACK_LOG_LEVEL", "info"), "debug, info, warn or error (env FALLBACK_LOG_LEVEL)")
	fs.Float64Var(&c.ClockSpeed, "clock-speed", envFloat("FALLBACK_CLOCK_SPEED", 1), "testing only: run flow time this many times faster than wall time; every instance sharing a Redis needs the same speed and epoch (env FALLBACK_CLOCK_SPEED)")
	fs.Int64Var(&c.ClockEpoch, "clock-epoch", int64(envInt("FALLBACK_CLOCK_EPOCH", 0)), "testing only: unix ms at which the sped-up clock equals wall time (env FALLBACK_CLOCK_EPOCH)")
	c.registerSecurity(fs)
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
	tombstone := c.Tombstone
	if tombstone == 0 {
		tombstone = statestore.DefaultTombstoneTTL
	}
	if need := c.MaxRequestAge + c.DeadlineGrace; tombstone < need {
		return fmt.Errorf("--tombstone-retention (FALLBACK_TOMBSTONE_RETENTION) %s is shorter than --max-request-age (FALLBACK_MAX_REQUEST_AGE) %s plus --deadline-grace %s: "+
			"a closed flow must be remembered as long as a duplicate of its request can still be accepted, or the duplicate sends again; "+
			"raise --tombstone-retention to at least %s or lower --max-request-age", c.Tombstone, c.MaxRequestAge, c.DeadlineGrace, need)
	}
	return nil
}

// Clock is the wall clock unless a test asked for a faster one.
func (c *Common) Clock() (clock.Clock, error) {
	if c.ClockSpeed == 1 {
		return clock.Real{}, nil
	}
	if c.ClockSpeed <= 0 || c.ClockEpoch <= 0 {
		return nil, fmt.Errorf("--clock-speed needs a positive speed and --clock-epoch (unix ms)")
	}
	return clock.NewScaledAt(time.UnixMilli(c.ClockEpoch), c.ClockSpeed), nil
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

// Logger logs text to stderr at --log-level (info if it does not parse).
func (c *Common) Logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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

// Store is the flow state store on client, with --redis-prefix and
// --tombstone-retention.
func (c *Common) Store(client redis.UniversalClient) (*statestore.Store, error) {
	cfg := statestore.Config{Prefix: c.RedisPrefix, TombstoneTTL: c.Tombstone}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return statestore.New(client, cfg), nil
}
