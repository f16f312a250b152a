// Package statestore keeps versioned, opaque per-flow state in Redis, with
// the flows' deadlines in sorted sets and the outputs each change owes to
// Kafka (an outbox). It knows nothing about flows: the processor encodes the
// state blob and decides deadlines and outputs.
//
// Every change is applied by a Lua script, guarded by the flow's version
// (compare-and-set), so concurrent writers never both win and nothing is
// read-modified-written from Go. All keys of a flow carry the hash tag of
// its shard, so the same code runs on a single Redis and on Redis Cluster;
// one script call carries all the changes of a batch that fall in one shard.
//
// Key layout (shard = crc32(request_id) mod Shards):
//
//	<prefix>{<shard>}:f:<request_id>  hash v (version), s (state)
//	<prefix>{<shard>}:dl              zset request_id -> due unix ms
//	<prefix>{<shard>}:o:<request_id>  list "<version>:<bytes>" owed to Kafka
//	<prefix>{<shard>}:ob              zset request_id -> retry-at unix ms
//	<prefix>:pm:{<provider_msg_id>}   string -> attempt id, with TTL
//
// Retention: a closed flow stays as a tombstone for TombstoneTTL. Its
// outbox list never gets a TTL: it is the only record of outputs still owed
// (typically the flow's closing event) and disappears when they are acked;
// an expiry there would lose them if Kafka were down longer than the TTL.
package statestore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
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
)

// Config names the keys and the retention. Shards must not change while
// flows are in flight: it decides which keys a request id maps to.
type Config struct {
	Prefix       string        // key prefix, default "fb"; must not contain '{' or '}'
	Shards       int           // number of deadline/outbox sorted sets, default 16
	TombstoneTTL time.Duration // how long a closed flow is kept, default 24h
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
	case c.Shards < 1:
		return fmt.Errorf("statestore: shards must be at least 1, got %d", c.Shards)
	case c.TombstoneTTL < time.Millisecond:
		return fmt.Errorf("statestore: tombstone TTL must be at least 1ms, got %s", c.TombstoneTTL)
	}
	return nil
}

// Store is safe for concurrent use.
type Store struct {
	c   redis.UniversalClient
	cfg Config

	// Per-shard key parts, built once: the hot paths only append the id.
	flowPrefix   []string // <prefix>{<shard>}:f:
	outboxPrefix []string // <prefix>{<shard>}:o:
	dlKey        []string // <prefix>{<shard>}:dl
	obKey        []string // <prefix>{<shard>}:ob
	pmPrefix     string   // <prefix>:pm:{
	tombstoneMS  int64
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
		c:            c,
		cfg:          cfg,
		flowPrefix:   make([]string, cfg.Shards),
		outboxPrefix: make([]string, cfg.Shards),
		dlKey:        make([]string, cfg.Shards),
		obKey:        make([]string, cfg.Shards),
		pmPrefix:     cfg.Prefix + ":pm:{",
		tombstoneMS:  cfg.TombstoneTTL.Milliseconds(),
	}
	for i := range cfg.Shards {
		tag := cfg.Prefix + "{" + strconv.Itoa(i) + "}"
		s.flowPrefix[i] = tag + ":f:"
		s.outboxPrefix[i] = tag + ":o:"
		s.dlKey[i] = tag + ":dl"
		s.obKey[i] = tag + ":ob"
	}
	return s
}

// Shard returns the shard (hash tag) a request id belongs to.
func (s *Store) Shard(requestID string) int {
	return int(crc32.ChecksumIEEE([]byte(requestID)) % uint32(s.cfg.Shards))
}

// Shards returns the number of shards.
func (s *Store) Shards() int { return s.cfg.Shards }

// Config returns the configuration in use, defaults applied.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) flowKey(id string) string   { return s.flowPrefix[s.Shard(id)] + id }
func (s *Store) outboxKey(id string) string { return s.outboxPrefix[s.Shard(id)] + id }
func (s *Store) pmKey(providerID string) string {
	return s.pmPrefix + providerID + "}"
}

// Snapshot is a flow's stored state.
type Snapshot struct {
	RequestID string
	Exists    bool
	Version   int64 // 0 when the flow does not exist
	State     []byte
	Due       time.Time // the deadline that was due; set only by ClaimDue
}

// Load reads the flows in one pipeline; results are in input order. A
// missing (or expired) flow is Exists=false, Version 0, not an error.
func (s *Store) Load(ctx context.Context, requestIDs []string) ([]Snapshot, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(requestIDs))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range requestIDs {
			cmds[i] = p.HMGet(ctx, s.flowKey(id), "v", "s")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("statestore: load: %w", err)
	}
	out := make([]Snapshot, len(requestIDs))
	for i, id := range requestIDs {
		vals, err := cmds[i].Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("statestore: load %q: %w", id, err)
		}
		out[i].RequestID = id
		if len(vals) != 2 || vals[0] == nil {
			continue
		}
		if out[i].Version, err = parseVersion(vals[0]); err != nil {
			return nil, fmt.Errorf("statestore: load %q: %w", id, err)
		}
		out[i].Exists = true
		out[i].State = toBytes(vals[1])
	}
	return out, nil
}

// Change is one compare-and-set write of a flow.
type Change struct {
	RequestID string
	// ExpectVersion is the version the change was computed from; 0 means
	// the flow must not exist yet.
	ExpectVersion int64
	State         []byte
	// Deadline is when the flow's timer fires; zero removes the flow from
	// the deadline set. Ignored when Closed.
	Deadline time.Time
	// Closed keeps the state as a tombstone that expires after
	// TombstoneTTL and removes the deadline. A change that is not Closed
	// makes the flow key persistent again.
	Closed bool
	// Outbox holds the outputs this change owes to Kafka, stored with the
	// new version until acked.
	Outbox [][]byte
	// OutboxRetryAt is when a recoverer may re-emit Outbox if it was never
	// acked. Required when Outbox is not empty. If the flow already owes
	// older outputs with an earlier retry-at, the earlier one is kept.
	OutboxRetryAt time.Time
}

// ApplyResult is the outcome of one Change.
type ApplyResult struct {
	Applied bool
	Version int64 // the new version when Applied
	// Current is the stored state when not Applied (version conflict), so
	// the caller can recompute without reading again.
	Current Snapshot
	// Owed, when Applied with outbox entries, are the outputs the flow
	// still owed from earlier versions, oldest first. Produce them before
	// this change's own so the flow's outputs keep their order; then ack
	// from version 0.
	Owed []OutboxEntry
}

// Apply runs the compare-and-set of every change: one script call per shard
// touched, all in one pipeline. Results are in input order. A version
// conflict is a result, not an error; an error means some changes may or may
// not have been applied (reload and recompute: the versions tell).
func (s *Store) Apply(ctx context.Context, changes []Change) ([]ApplyResult, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	byShard := map[int][]int{} // shard -> indexes into changes, in input order
	var order []int
	for i := range changes {
		ch := &changes[i]
		if err := s.checkChange(ch); err != nil {
			return nil, fmt.Errorf("statestore: apply: %w", err)
		}
		sh := s.Shard(ch.RequestID)
		if _, ok := byShard[sh]; !ok {
			order = append(order, sh)
		}
		byShard[sh] = append(byShard[sh], i)
	}
	calls := make([]scriptCall, len(order))
	for c, sh := range order {
		idx := byShard[sh]
		keys := make([]string, 2, 2+2*len(idx))
		keys[0], keys[1] = s.dlKey[sh], s.obKey[sh]
		args := make([]any, 1, 1+9*len(idx))
		args[0] = s.tombstoneMS
		for _, i := range idx {
			ch := &changes[i]
			keys = append(keys, s.flowPrefix[sh]+ch.RequestID, s.outboxPrefix[sh]+ch.RequestID)
			var deadline any = ""
			if !ch.Closed && !ch.Deadline.IsZero() {
				deadline = ch.Deadline.UnixMilli()
			}
			closed := "0"
			if ch.Closed {
				closed = "1"
			}
			var retryAt int64
			if len(ch.Outbox) > 0 {
				retryAt = ch.OutboxRetryAt.UnixMilli()
			}
			args = append(args, ch.RequestID, ch.ExpectVersion, ch.ExpectVersion+1, nonNil(ch.State),
				deadline, closed, retryAt, len(ch.Outbox))
			for _, e := range ch.Outbox {
				args = append(args, nonNil(e))
			}
		}
		calls[c] = scriptCall{script: applyScript, keys: keys, args: args}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: apply: %w", err)
	}
	out := make([]ApplyResult, len(changes))
	for c, sh := range order {
		idx := byShard[sh]
		vals, err := calls[c].cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("statestore: apply: %w", err)
		}
		if len(vals) != len(idx) {
			return nil, fmt.Errorf("statestore: apply: %d results for %d changes", len(vals), len(idx))
		}
		for j, i := range idx {
			r, err := parseApply(vals[j])
			if err != nil {
				return nil, fmt.Errorf("statestore: apply %q: %w", changes[i].RequestID, err)
			}
			r.Current.RequestID = changes[i].RequestID
			out[i] = r
		}
	}
	return out, nil
}

func (s *Store) checkChange(ch *Change) error {
	switch {
	case ch.RequestID == "":
		return errors.New("empty request id")
	case ch.ExpectVersion < 0:
		return fmt.Errorf("%q: negative expected version %d", ch.RequestID, ch.ExpectVersion)
	case len(ch.Outbox) > 0 && ch.OutboxRetryAt.IsZero():
		// A zero retry-at would let a recoverer re-emit the outputs while
		// the writer is still producing them.
		return fmt.Errorf("%q: outbox entries without a retry-at", ch.RequestID)
	}
	return nil
}

func parseApply(reply any) (ApplyResult, error) {
	vals, ok := reply.([]any)
	if !ok || len(vals) < 2 {
		return ApplyResult{}, fmt.Errorf("unexpected reply %v", vals)
	}
	applied, _ := vals[0].(int64)
	v, err := parseVersion(vals[1])
	if err != nil {
		return ApplyResult{}, err
	}
	if applied == 1 {
		r := ApplyResult{Applied: true, Version: v}
		for _, e := range vals[2:] {
			entry, err := parseEntry(e)
			if err != nil {
				return ApplyResult{}, err
			}
			r.Owed = append(r.Owed, entry)
		}
		return r, nil
	}
	r := ApplyResult{Current: Snapshot{Version: v, Exists: v > 0}}
	if len(vals) > 2 {
		r.Current.State = toBytes(vals[2])
	}
	return r, nil
}

// ClaimDue takes up to limit flows of one shard whose deadline is <= now and
// leases them until now+lease: their deadline moves to the lease end, so
// another instance does not fire them meanwhile, and if this caller dies
// before applying a change they come due again (at-least-once). The caller
// fires each with a Change guarded by the returned Version; that change
// sets the next deadline or removes it. Due carries the original deadline.
func (s *Store) ClaimDue(ctx context.Context, shard int, now time.Time, lease time.Duration, limit int) ([]Snapshot, error) {
	if shard < 0 || shard >= s.cfg.Shards {
		return nil, fmt.Errorf("statestore: claim due: shard %d out of range [0,%d)", shard, s.cfg.Shards)
	}
	return s.claimDue(ctx, []int{shard}, now, lease, limit)
}

// ClaimDueAll is ClaimDue over every shard in one pipeline, with limit per
// shard.
func (s *Store) ClaimDueAll(ctx context.Context, now time.Time, lease time.Duration, limitPerShard int) ([]Snapshot, error) {
	shards := make([]int, s.cfg.Shards)
	for i := range shards {
		shards[i] = i
	}
	return s.claimDue(ctx, shards, now, lease, limitPerShard)
}

func (s *Store) claimDue(ctx context.Context, shards []int, now time.Time, lease time.Duration, limit int) ([]Snapshot, error) {
	if err := checkLease(lease, limit); err != nil {
		return nil, fmt.Errorf("statestore: claim due: %w", err)
	}
	nowMS := now.UnixMilli()
	until := nowMS + lease.Milliseconds()
	calls := make([]scriptCall, len(shards))
	for i, sh := range shards {
		calls[i] = scriptCall{
			script: claimDueScript,
			keys:   []string{s.dlKey[sh]},
			args:   []any{nowMS, until, limit, s.flowPrefix[sh]},
		}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: claim due: %w", err)
	}
	var out []Snapshot
	for i := range calls {
		vals, err := calls[i].cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("statestore: claim due: %w", err)
		}
		if len(vals)%4 != 0 {
			return nil, fmt.Errorf("statestore: claim due: unexpected reply length %d", len(vals))
		}
		if out == nil {
			out = make([]Snapshot, 0, len(vals)/4*len(calls))
		}
		for j := 0; j < len(vals); j += 4 {
			id := toString(vals[j])
			due, err := parseScore(vals[j+1])
			if err != nil {
				return nil, fmt.Errorf("statestore: claim due %q: %w", id, err)
			}
			v, err := parseVersion(vals[j+2])
			if err != nil {
				return nil, fmt.Errorf("statestore: claim due %q: %w", id, err)
			}
			out = append(out, Snapshot{
				RequestID: id,
				Exists:    true,
				Version:   v,
				State:     toBytes(vals[j+3]),
				Due:       time.UnixMilli(due),
			})
		}
	}
	return out, nil
}

// NextDue returns the earliest deadline over all shards (leased ones count
// at their lease end), and false when there is none.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	cmds := make([]*redis.ZSliceCmd, s.cfg.Shards)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.ZRangeWithScores(ctx, s.dlKey[i], 0, 0)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("statestore: next due: %w", err)
	}
	var min float64
	found := false
	for _, c := range cmds {
		zs, err := c.Result()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("statestore: next due: %w", err)
		}
		if len(zs) > 0 && (!found || zs[0].Score < min) {
			min, found = zs[0].Score, true
		}
	}
	if !found {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(min)), true, nil
}

// PendingDeadlines is the number of flows in the deadline sets (including
// leased ones): the flows in flight.
func (s *Store) PendingDeadlines(ctx context.Context) (int64, error) {
	n, err := s.sumZCard(ctx, s.dlKey)
	if err != nil {
		return 0, fmt.Errorf("statestore: pending deadlines: %w", err)
	}
	return n, nil
}

// DeadlineCounts is, in one pipeline, the number of flows in the deadline
// sets (PendingDeadlines) and how many of them are due in (after, upTo]:
// due by upTo but later than the last claim's cutoff after, so held back
// (leased deadlines sit at their lease end and are not due).
func (s *Store) DeadlineCounts(ctx context.Context, after, upTo time.Time) (pending, due int64, err error) {
	cards := make([]*redis.IntCmd, s.cfg.Shards)
	counts := make([]*redis.IntCmd, s.cfg.Shards)
	minScore := "(" + strconv.FormatInt(after.UnixMilli(), 10)
	maxScore := strconv.FormatInt(upTo.UnixMilli(), 10)
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range s.dlKey {
			cards[i] = p.ZCard(ctx, k)
			counts[i] = p.ZCount(ctx, k, minScore, maxScore)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("statestore: deadline counts: %w", err)
	}
	for i := range cards {
		pending += cards[i].Val()
		due += counts[i].Val()
	}
	return pending, due, nil
}

// PendingOutbox is the number of flows that owe outputs not yet acked.
func (s *Store) PendingOutbox(ctx context.Context) (int64, error) {
	n, err := s.sumZCard(ctx, s.obKey)
	if err != nil {
		return 0, fmt.Errorf("statestore: pending outbox: %w", err)
	}
	return n, nil
}

func (s *Store) sumZCard(ctx context.Context, keys []string) (int64, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZCard(ctx, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// OutboxEntry is one owed output and the flow version that wrote it.
type OutboxEntry struct {
	Version int64
	Data    []byte
}

// OwedOutputs are the outputs a flow still owes, oldest first.
type OwedOutputs struct {
	RequestID string
	Entries   []OutboxEntry
}

// ClaimOwed takes, from every shard (one pipeline), up to limitPerShard
// flows whose owed outputs are past their retry-at and leases them until
// now+lease, so that one recoverer re-emits them at a time and another
// takes over if it dies. Ack what was re-emitted with AckOutbox.
func (s *Store) ClaimOwed(ctx context.Context, now time.Time, lease time.Duration, limitPerShard int) ([]OwedOutputs, error) {
	if err := checkLease(lease, limitPerShard); err != nil {
		return nil, fmt.Errorf("statestore: claim owed: %w", err)
	}
	nowMS := now.UnixMilli()
	until := nowMS + lease.Milliseconds()
	calls := make([]scriptCall, s.cfg.Shards)
	for i := range calls {
		calls[i] = scriptCall{
			script: claimOwedScript,
			keys:   []string{s.obKey[i]},
			args:   []any{nowMS, until, limitPerShard, s.outboxPrefix[i]},
		}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: claim owed: %w", err)
	}
	var out []OwedOutputs
	for i := range calls {
		vals, err := calls[i].cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("statestore: claim owed: %w", err)
		}
		for j := 0; j < len(vals); {
			if j+2 > len(vals) {
				return nil, errors.New("statestore: claim owed: truncated reply")
			}
			id := toString(vals[j])
			n, ok := vals[j+1].(int64)
			if !ok || n < 0 || j+2+int(n) > len(vals) {
				return nil, fmt.Errorf("statestore: claim owed %q: bad entry count %v", id, vals[j+1])
			}
			o := OwedOutputs{RequestID: id, Entries: make([]OutboxEntry, n)}
			for k := range o.Entries {
				e, err := parseEntry(vals[j+2+k])
				if err != nil {
					return nil, fmt.Errorf("statestore: claim owed %q: %w", id, err)
				}
				o.Entries[k] = e
			}
			out = append(out, o)
			j += 2 + int(n)
		}
	}
	return out, nil
}

// OutboxAck says which owed outputs of a flow reached Kafka: those with
// FromVersion <= version <= UpToVersion. FromVersion 0 means from the oldest.
//
// A writer should ack exactly the version it produced (FromVersion =
// UpToVersion = its new version): older entries may belong to a writer that
// died before producing them, and only a recoverer that re-emitted them
// (everything up to the last version it got from ClaimOwed) may ack those.
type OutboxAck struct {
	RequestID   string
	FromVersion int64
	UpToVersion int64
}

// AckOutbox drops acked outputs, one script call per shard touched, in one
// pipeline; a flow that owes nothing more leaves the owed set. Acking again
// is a no-op.
func (s *Store) AckOutbox(ctx context.Context, acks []OutboxAck) error {
	if len(acks) == 0 {
		return nil
	}
	byShard := map[int]int{} // shard -> index into calls
	var calls []scriptCall
	for _, a := range acks {
		if a.RequestID == "" {
			return errors.New("statestore: ack outbox: empty request id")
		}
		sh := s.Shard(a.RequestID)
		c, ok := byShard[sh]
		if !ok {
			c = len(calls)
			byShard[sh] = c
			calls = append(calls, scriptCall{script: ackOutboxScript, keys: []string{s.obKey[sh]}})
		}
		calls[c].keys = append(calls[c].keys, s.outboxPrefix[sh]+a.RequestID)
		calls[c].args = append(calls[c].args, a.RequestID, a.FromVersion, a.UpToVersion)
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return fmt.Errorf("statestore: ack outbox: %w", err)
	}
	return nil
}

// IndexProviderIDs records provider message id -> attempt id, each with the
// TTL (a SET PX per entry, one pipeline).
func (s *Store) IndexProviderIDs(ctx context.Context, refs map[string]string, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("statestore: index provider ids: TTL must be at least 1ms, got %s", ttl)
	}
	for pid := range refs {
		if pid == "" {
			return errors.New("statestore: index provider ids: empty provider message id")
		}
	}
	cmds, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for pid, attempt := range refs {
			p.Set(ctx, s.pmKey(pid), attempt, ttl)
		}
		return nil
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("statestore: index provider ids: %w", err)
	}
	return nil
}

// ResolveProviderIDs returns the attempt ids of the known provider message
// ids; unknown or expired ones are absent from the map.
func (s *Store) ResolveProviderIDs(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// GETs rather than MGET: the keys are in different slots on a cluster.
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.pmKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
	}
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
		default:
			out[ids[i]] = v
		}
	}
	return out, nil
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
	if limit < 1 {
		return fmt.Errorf("limit must be at least 1, got %d", limit)
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
// NOSCRIPT ones is safe because such a script did not run at all.
//
// It returns the first per-call error; replies are in calls[i].cmd.
func (s *Store) runScripts(ctx context.Context, calls []scriptCall) error {
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range calls {
			c := &calls[i]
			c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
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
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range retry {
				c := &calls[i]
				c.cmd = c.script.Eval(ctx, p, c.keys, c.args...)
			}
			return nil
		})
	}
	for i := range calls {
		if err := calls[i].cmd.Err(); err != nil {
			return err
		}
	}
	return nil
}

func toString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case int64:
		return strconv.FormatInt(t, 10)
	}
	return ""
}

func toBytes(v any) []byte {
	switch t := v.(type) {
	case string:
		return []byte(t)
	case []byte:
		return t
	}
	return nil
}

// nonNil keeps a nil blob an empty string on the wire (go-redis writes nil
// []byte as "" too, but being explicit costs nothing).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func parseVersion(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case string:
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad version %q", t)
		}
		return n, nil
	}
	return 0, fmt.Errorf("bad version %v (%T)", v, v)
}

// parseScore accepts the forms servers print scores in ("1700000000000",
// "1.7e+12"); every score this package writes is a whole number of ms.
func parseScore(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case float64:
		return int64(t), nil
	case string:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return 0, fmt.Errorf("bad score %q", t)
		}
		return int64(f), nil
	}
	return 0, fmt.Errorf("bad score %v (%T)", v, v)
}

func parseEntry(v any) (OutboxEntry, error) {
	s := toString(v)
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return OutboxEntry{}, fmt.Errorf("bad outbox entry %.20q", s)
	}
	ver, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("bad outbox entry version %q", s[:i])
	}
	return OutboxEntry{Version: ver, Data: []byte(s[i+1:])}, nil
}
