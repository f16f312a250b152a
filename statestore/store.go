// Package statestore keeps versioned, opaque per-flow state in Redis, with
// the flows' deadlines in sorted sets and the outputs each change owes to
// Kafka (an outbox). It knows nothing about flows: the processor encodes the
// state blob and decides deadlines and outputs.
//
// Every change is applied by a Lua script, guarded by the flow's version
// (compare-and-set), so concurrent writers never both win and nothing is
// read-modified-written from Go. All keys of a flow carry the hash tag of
// its shard, so the same code runs on a single Redis and on Redis Cluster;
// one script call carries all the changes of a batch that fall in one
// shard, and writes each shard-wide structure (deadlines, outbox) with one
// multi-member command per call.
//
// Key layout (shard = crc32(request_id) mod Shards):
//
//	<prefix>{<shard>}:f:<request_id>  string: the flow record (record.go)
//	<prefix>{<shard>}:dl              zset request_id -> due unix ms (active flows)
//	<prefix>{<shard>}:ox              hash "<request_id>:<version>" -> outputs owed to Kafka
//	<prefix>{<shard>}:ob              zset "<request_id>:<version>" -> retry-at unix ms
//	<prefix>{<shard>}:cl              zset request_id -> close time (closed flows still whole)
//	<prefix>{<shard>}:cm, :cf:*       compact entries of closed flows (closedflows.go)
//	<prefix>:pm:{<provider_msg_id>}   string -> attempt id, with TTL
//	<prefix>{<shard>}:pi:*, :pq, :pcm, :cp:*  provider ids of compacted flows (providerindex.go)
//	<prefix>:layout                   hash shards -> the shard count (layout.go)
//
// Files by concern: record.go (the flow record and reply parsing), apply.go
// (the compare-and-set), deadlines.go (claiming due flows), outbox.go (owed
// outputs), providerindex.go, watermarks.go.
//
// Retention: a closed flow stays as a tombstone for TombstoneTTL (with
// ClosedDetailTTL, whole for that long, then as a compact entry). Its owed
// outputs never get a TTL: they are the only record of outputs still owed
// (typically the flow's closing event) and disappear when they are acked;
// an expiry there would lose them if Kafka were down longer than the TTL.
package statestore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultPrefix       = "fb"
	DefaultShards       = 16
	DefaultTombstoneTTL = 24 * time.Hour
	DefaultWaitTimeout  = 100 * time.Millisecond
)

// MaxShards bounds Config.Shards: past it a batch would make more script
// calls than it has flows, and the sweeper more reads per round than it
// finds deadlines.
const MaxShards = 1024

// maxBulk bounds the members of one multi-member command a script issues
// (and so the flows of one claim): Lua's unpack fails past about 8,000
// values.
const maxBulk = 4000

// Config names the keys and the retention. Shards must not change while
// flows are in flight: it decides which keys a request id maps to.
type Config struct {
	Prefix string // key prefix, default "fb"; must not contain '{' or '}'
	// Shards is the number of deadline and outbox sets, and the most script
	// calls one batch makes. More shards spread a Redis Cluster's load over
	// more slots; fewer put more flows in each call (less per-call cost on a
	// single Redis). Default 16. It is fixed for a prefix once flows are
	// written: CheckShards refuses another (layout.go).
	Shards int
	// TombstoneTTL is how long a closed flow is remembered: a duplicate
	// request or a late DLR within it is recognised. It must cover the
	// processor's maximum request age plus its deadline grace (the
	// processor's wiring derives it so). Default 24h.
	TombstoneTTL time.Duration
	// ClosedDetailTTL, when above 0, is how long a closed flow keeps its
	// whole record; then the compactor (ListClosed, CompactClosed) may
	// replace it by a compact entry of a few bytes, kept for the rest of
	// TombstoneTTL (closedflows.go). Every close then also costs a ZADD,
	// and a flow not found (every new request) one HGET per live compact
	// bucket, seven at a steady rate, in the load's script call (about 9 µs
	// of Redis CPU, BenchmarkLoadMiss). It must be shorter than
	// TombstoneTTL. Default 0: closed flows keep their record to the end.
	ClosedDetailTTL time.Duration
	// WaitReplicas, when above 0, makes every script call (every state
	// change, claim and watermark advance) wait until that many replicas
	// of its master have its writes (WAIT), so that a failover does not
	// lose a change whose outputs and offsets go on to Kafka. The cost is
	// a replication round trip per call; replicas.go has the trade-off.
	// Default 0: Redis's asynchronous replication.
	WaitReplicas int
	// WaitTimeout bounds each WAIT. A master whose replicas do not answer
	// in time is written to without waiting for a while, and each such
	// call counts in ReplicaShortfalls. Default 100ms.
	WaitTimeout time.Duration
	// Logger gets a warning when a master's replicas fall short (at most
	// one per master per pause). Nil: no log.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	return c
}

// Validate reports a configuration New would refuse, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case strings.ContainsAny(c.Prefix, "{}"):
		// A brace in the prefix would become the hash tag and put all
		// shards in one slot (or split a flow's keys across slots).
		return fmt.Errorf("statestore: prefix %q must not contain '{' or '}'", c.Prefix)
	case c.Shards < 1 || c.Shards > MaxShards:
		return fmt.Errorf("statestore: shards must be from 1 to %d, got %d", MaxShards, c.Shards)
	case c.TombstoneTTL < time.Millisecond:
		return fmt.Errorf("statestore: tombstone TTL must be at least 1ms, got %s", c.TombstoneTTL)
	case c.ClosedDetailTTL < 0:
		return fmt.Errorf("statestore: closed detail TTL must not be negative, got %s", c.ClosedDetailTTL)
	case c.ClosedDetailTTL > 0 && c.ClosedDetailTTL >= c.TombstoneTTL:
		return fmt.Errorf("statestore: closed detail TTL %s must be shorter than the tombstone TTL %s", c.ClosedDetailTTL, c.TombstoneTTL)
	case c.WaitReplicas < 0:
		return fmt.Errorf("statestore: wait replicas must not be negative, got %d", c.WaitReplicas)
	case c.WaitTimeout < time.Millisecond:
		// WAIT's timeout 0 means forever: never let a rounding make it so.
		return fmt.Errorf("statestore: wait timeout must be at least 1ms, got %s", c.WaitTimeout)
	}
	return nil
}

// Store is safe for concurrent use.
type Store struct {
	c   redis.UniversalClient
	cfg Config

	// Per-shard key parts, built once: the hot paths only append the id.
	flowPrefix  []string // <prefix>{<shard>}:f:
	dlKey       []string // <prefix>{<shard>}:dl
	oxKey       []string // <prefix>{<shard>}:ox
	obKey       []string // <prefix>{<shard>}:ob
	clKeys      []string // <prefix>{<shard>}:cl
	cmKeys      []string // <prefix>{<shard>}:cm
	cfPrefixes  []string // <prefix>{<shard>}:cf:
	pmPrefix    string   // <prefix>:pm:{
	piPrefix    []string // <prefix>{<shard>}:pi:
	pqKey       []string // <prefix>{<shard>}:pq
	pcmKey      []string // <prefix>{<shard>}:pcm
	cpPrefix    []string // <prefix>{<shard>}:cp:
	tombstoneMS int64

	replicas replicaWaits // replicas.go
}

// New returns a Store on c. It panics if cfg does not pass Validate: the
// configuration is fixed at start-up and a wrong one is a programming or
// deployment error, not a runtime condition.
func New(c redis.UniversalClient, cfg Config) *Store {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	s := &Store{
		c:           c,
		cfg:         cfg,
		flowPrefix:  make([]string, cfg.Shards),
		dlKey:       make([]string, cfg.Shards),
		oxKey:       make([]string, cfg.Shards),
		obKey:       make([]string, cfg.Shards),
		clKeys:      make([]string, cfg.Shards),
		cmKeys:      make([]string, cfg.Shards),
		cfPrefixes:  make([]string, cfg.Shards),
		pmPrefix:    cfg.Prefix + ":pm:{",
		piPrefix:    make([]string, cfg.Shards),
		pqKey:       make([]string, cfg.Shards),
		pcmKey:      make([]string, cfg.Shards),
		cpPrefix:    make([]string, cfg.Shards),
		tombstoneMS: cfg.TombstoneTTL.Milliseconds(),
	}
	for i := range cfg.Shards {
		tag := cfg.Prefix + "{" + strconv.Itoa(i) + "}"
		s.flowPrefix[i] = tag + ":f:"
		s.dlKey[i] = tag + ":dl"
		s.oxKey[i] = tag + ":ox"
		s.obKey[i] = tag + ":ob"
		s.clKeys[i] = tag + ":cl"
		s.cmKeys[i] = tag + ":cm"
		s.cfPrefixes[i] = tag + ":cf:"
		s.piPrefix[i] = tag + ":pi:"
		s.pqKey[i] = tag + ":pq"
		s.pcmKey[i] = tag + ":pcm"
		s.cpPrefix[i] = tag + ":cp:"
	}
	return s
}

// Shard returns the shard (hash tag) a request id belongs to, or the
// shard a CompactRef names.
func (s *Store) Shard(requestID string) int {
	if sh, _, ok := parseCompactRef(requestID); ok && sh < s.cfg.Shards {
		return sh
	}
	return s.hashShard(requestID)
}

// hashShard is the shard an id hashes to: crc32 mod Shards. A request id
// and a provider id (providerShard) share it.
func (s *Store) hashShard(id string) int {
	return int(crc32.ChecksumIEEE([]byte(id)) % uint32(s.cfg.Shards))
}

// Shards returns the number of shards.
func (s *Store) Shards() int { return s.cfg.Shards }

// Config returns the configuration in use, defaults applied.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) flowKey(id string) string { return s.flowPrefix[s.Shard(id)] + id }

// Snapshot is a flow's stored state.
type Snapshot struct {
	RequestID string
	Exists    bool
	Version   int64 // 0 when the flow does not exist
	State     []byte
	Due       time.Time // the deadline that was due; set only by ClaimDue
	// Compacted is a closed flow past its detail window: State is its
	// compact entry, Version the record's when it was moved (a change of
	// it says FromCompact).
	Compacted bool
}

// Load reads the flows, one MGET per shard, all in one pipeline; results
// are in input order. A missing (or expired) flow is Exists=false, Version
// 0, not an error.
func (s *Store) Load(ctx context.Context, requestIDs []string) ([]Snapshot, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	byShard := groupByShard(s, requestIDs, func(id string) string { return id })
	if s.compacting() {
		return s.loadOrCompact(ctx, requestIDs, byShard)
	}
	cmds := make([]*redis.SliceCmd, len(byShard.shards))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for c, sh := range byShard.shards {
			idx := byShard.members[sh]
			keys := make([]string, len(idx))
			for j, i := range idx {
				keys[j] = s.flowPrefix[sh] + requestIDs[i]
			}
			cmds[c] = p.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("statestore: load: %w", err)
	}
	out := make([]Snapshot, len(requestIDs))
	for c, sh := range byShard.shards {
		vals, err := cmds[c].Result()
		if err != nil {
			return nil, fmt.Errorf("statestore: load: %w", err)
		}
		for j, i := range byShard.members[sh] {
			id := requestIDs[i]
			if out[i], err = parseSnapshot(id, vals[j]); err != nil {
				return nil, fmt.Errorf("statestore: load %q: %w", id, err)
			}
		}
	}
	return out, nil
}

// shardGroups is a batch split by shard: the shards in first-seen order
// and, for each, the indexes of its items in input order.
type shardGroups struct {
	shards  []int
	members map[int][]int
}

func groupByShard[T any](s *Store, items []T, id func(T) string) shardGroups {
	g := shardGroups{members: map[int][]int{}}
	for i, it := range items {
		sh := s.Shard(id(it))
		if _, ok := g.members[sh]; !ok {
			g.shards = append(g.shards, sh)
		}
		g.members[sh] = append(g.members[sh], i)
	}
	return g
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("statestore: ping: %w", err)
	}
	return nil
}

func checkLease(lease time.Duration, limit int) error {
	if lease < time.Millisecond {
		return fmt.Errorf("lease must be at least 1ms, got %s", lease)
	}
	if limit < 1 || limit > maxBulk {
		return fmt.Errorf("limit must be in 1..%d, got %d", maxBulk, limit)
	}
	return nil
}

// scriptCall is one script invocation in a pipeline; cmd holds its reply.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// runScripts sends all calls as EVALSHA in one pipeline, then re-sends as
// EVAL (which also caches the script) those the server did not know, in a
// second pipeline. Script.Run cannot do this inside a pipeline: the NOSCRIPT
// reply only arrives at Exec, after Run has returned. Re-sending only the
// NOSCRIPT ones is safe because such a script did not run at all. With
// WaitReplicas, each master's calls go in a pipeline of their own that ends
// with a WAIT (replicas.go).
//
// It returns the first per-call error; replies are in calls[i].cmd.
func (s *Store) runScripts(ctx context.Context, calls []scriptCall) error {
	if s.cfg.WaitReplicas > 0 {
		return s.runScriptsReplicated(ctx, calls)
	}
	runPipelined(ctx, s.c, calls, nil)
	return firstCallError(calls)
}

// runPipelined runs calls on c as runScripts describes; a wait, when not
// nil, is added to the end of each pipeline that writes.
func runPipelined(ctx context.Context, c redis.Cmdable, calls []scriptCall, wait func(redis.Pipeliner) *redis.IntCmd) []*redis.IntCmd {
	var waits []*redis.IntCmd
	_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range calls {
			c := &calls[i]
			c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
		}
		if wait != nil {
			waits = append(waits, wait(p))
		}
		return nil
	})
	var retry []int
	for i := range calls {
		if redis.HasErrorPrefix(calls[i].cmd.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range retry {
				c := &calls[i]
				c.cmd = c.script.Eval(ctx, p, c.keys, c.args...)
			}
			if wait != nil {
				waits = append(waits, wait(p))
			}
			return nil
		})
	}
	return waits
}

func firstCallError(calls []scriptCall) error {
	for i := range calls {
		if err := calls[i].cmd.Err(); err != nil {
			return err
		}
	}
	return nil
}

// bulkLua is prepended to the scripts that write many members of one key:
// bulk(cmd, key, args) issues cmd (on key, unless key is nil) with args in
// chunks of at most maxBulk values (an even number, so score/member and
// field/value pairs stay together), or not at all when args is empty.
const bulkLua = `
local function bulk(cmd, key, args)
  local n = #args
  for s = 1, n, 4000 do
    local e = math.min(s + 3999, n)
    if key then
      redis.call(cmd, key, unpack(args, s, e))
    else
      redis.call(cmd, unpack(args, s, e))
    end
  end
end
`
