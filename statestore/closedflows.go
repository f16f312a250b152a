package statestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Closed flows past their detail window (docs/closed-flows.md). A flow
// that closes keeps its whole record (the tombstone) for
// Config.ClosedDetailTTL; then the compactor moves it to a compact entry
// that the caller computes (the processor's compact state blob, 4 bytes),
// kept until the tombstone would have expired:
//
//	<prefix>{<shard>}:cl                   zset request_id -> close time (Redis's clock, ms)
//	<prefix>{<shard>}:cm                   hash <bucket> -> sub-keys of each generation ("4,8"),
//	                                       <bucket>:n -> entries, <bucket>:c -> entries of the last generation
//	<prefix>{<shard>}:cf:<bucket>:<g>:<k>  hash fingerprint -> <version>|<compact blob>
//
// A bucket is a span of close times (the tombstone TTL / 6) whose entries
// are spread over as many sub-keys as keep each under a hundred entries,
// so that Redis keeps every one a listpack (hash-max-listpack-entries 128,
// the default): about 18 bytes an entry instead of a key's hundred and
// more. A new bucket is sized for the flows of its span already closed or
// the previous bucket's, whichever is more; when more come (a rising rate,
// the first bucket after a start, a detail window shorter than the span)
// it opens a generation of sub-keys of its own, twice the entries so far,
// so that no sub-key outgrows its listpack. Each sub-key gets one
// PEXPIREAT when created (bucket end + tombstone TTL) and expires whole.
// Load probes the live buckets' generations, newest first, for a flow
// whose record is gone, in the same script call: one HGET each, seven at a
// steady rate.
//
// The fingerprint is the request id's 64-bit FNV-1a hash: two request ids
// share one with probability n / 2^64 among n held (docs/closed-flows.md).

// bucketsPerTTL is how many close-time buckets a tombstone TTL spans: a
// miss (every new request) probes one more than this, about 1.2 µs of
// Redis CPU each (BenchmarkLoadMiss), and an entry outlives its TTL by up
// to a bucket's span (a sixth more memory at most). Twelve buckets cost 15
// µs a new request, six about 9 (docs/closed-flows.md).
const bucketsPerTTL = 6

// entriesPerSubKey is the sub-key fill a bucket is sized for, under
// Redis's default listpack bound of 128 entries.
const entriesPerSubKey = 100

// fingerprint is the request id's compact entry field: its 64-bit
// FNV-1a hash, big-endian. Written out rather than with hash/fnv, which
// would copy the id to hash it: every change and every load of a shard
// with compaction on computes one.
func fingerprint(requestID string) string {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(requestID); i++ {
		h = (h ^ uint64(requestID[i])) * prime64
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return string(b[:])
}

func (s *Store) compacting() bool { return s.cfg.ClosedDetailTTL > 0 }

// bucketMS is the span of close times of one bucket, in ms.
func (s *Store) bucketMS() int64 { return max(s.tombstoneMS/bucketsPerTTL, 1) }

// compactLua is prepended to the scripts that look for a flow's compact
// entry: compactEntry(cm, prefix, fp) is the entry ("<version>|<blob>",
// or "<version>,<owed versions>|<blob>" once changed in place) of
// fingerprint fp in the shard whose bucket hash is cm and compact key
// prefix is prefix, and the key holding it; or false. It probes every live
// bucket's generations, newest first, reading the bucket hash once per
// call (per bucket hash: the request and provider-id entries have one
// each).
const compactLua = `
local compactBuckets = {}
local function compactEntry(cm, prefix, fp)
  local buckets = compactBuckets[cm]
  if not buckets then
    buckets = {}
    local m = redis.call('HGETALL', cm)
    for j = 1, #m, 2 do
      if not string.find(m[j], ':', 1, true) then
        local b, g = tonumber(m[j]), 0
        for s in string.gmatch(m[j + 1], '[^,]+') do
          buckets[#buckets + 1] = {b, g, tonumber(s)}
          g = g + 1
        end
      end
    end
    table.sort(buckets, function(x, y) return x[1] > y[1] or (x[1] == y[1] and x[2] > y[2]) end)
    compactBuckets[cm] = buckets
  end
  local x = ((string.byte(fp, 1) * 256 + string.byte(fp, 2)) * 256 + string.byte(fp, 3)) * 256 + string.byte(fp, 4)
  for _, b in ipairs(buckets) do
    local key = prefix .. string.format('%d:%d:%d', b[1], b[2], x % b[3])
    local v = redis.call('HGET', key, fp)
    if v then return v, key end
  end
  return false
end
`

// packLua is prepended to the scripts that write packed entries (a
// flow's compact entry, a provider id's):
//   - pack(cm, prefix, b, field, value, span, ttl, fill, cl) writes field
//     in bucket b of bucket hash cm (keys prefix..."<b>:<g>:<k>"),
//     creating the sub-key with its PEXPIREAT (bucket end + ttl). cl, or
//     nil, is the sorted set by close time of the flows still to move,
//     which sizes a new bucket.
//   - flushPlaced() writes back the counters of the buckets pack wrote
//     to: call it once, after the last pack.
//   - forgetExpired(cm, span, ttl, now) drops the buckets whose sub-keys
//     have all expired from cm.
//   - redisNow() is Redis's clock in ms.
const packLua = `
local function redisNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- place is the generation and sub-key count an entry of bucket b goes to,
-- counting it. A bucket's counters are read once per call and written
-- back by flushPlaced.
local placed = {}
local function place(cm, b, span, fill, cl)
  local k = cm .. '|' .. b
  local p = placed[k]
  if not p then
    local f = string.format('%d', b)
    local v = redis.call('HMGET', cm, f, f .. ':n', f .. ':c')
    p = {cm = cm, f = f, gens = v[1], total = tonumber(v[2]) or 0, inLast = tonumber(v[3]) or 0}
    if not p.gens then
      -- A new bucket: sized for the flows closed in its span still waiting
      -- (all of them, when the detail window is at least the span), or for
      -- the previous bucket's entries, whichever is more.
      local waiting = 0
      if cl then
        waiting = redis.call('ZCOUNT', cl, string.format('%d', b * span), string.format('(%d', (b + 1) * span))
      end
      local prev = tonumber(redis.call('HGET', cm, string.format('%d:n', b - 1))) or 0
      p.gens = string.format('%d', math.max(1, math.ceil(math.max(waiting, prev) / fill)))
      p.total, p.inLast = 0, 0
    end
    p.g, p.subs = -1, 0
    for s in string.gmatch(p.gens, '[^,]+') do
      p.g, p.subs = p.g + 1, tonumber(s)
    end
    placed[k] = p
  end
  p.total, p.inLast = p.total + 1, p.inLast + 1
  if p.inLast > p.subs * fill then
    -- The last generation is full: a new one for twice the entries so far.
    p.subs = math.max(1, math.ceil(2 * p.total / fill))
    p.g = p.g + 1
    p.gens = p.gens .. ',' .. string.format('%d', p.subs)
    p.inLast = 1
  end
  return p.g, p.subs
end
local function flushPlaced()
  for _, p in pairs(placed) do
    redis.call('HSET', p.cm, p.f, p.gens, p.f .. ':n', p.total, p.f .. ':c', p.inLast)
  end
end
local packCreated = {}
local function pack(cm, prefix, b, field, value, span, ttl, fill, cl)
  local x = ((string.byte(field, 1) * 256 + string.byte(field, 2)) * 256 + string.byte(field, 3)) * 256 + string.byte(field, 4)
  local g, subs = place(cm, b, span, fill, cl)
  local key = prefix .. string.format('%d:%d:%d', b, g, x % subs)
  redis.call('HSET', key, field, value)
  if not packCreated[key] then
    packCreated[key] = true
    if redis.call('PTTL', key) == -1 then
      redis.call('PEXPIREAT', key, string.format('%d', (b + 1) * span + ttl))
    end
  end
end
local function forgetExpired(cm, span, ttl, now)
  local m = redis.call('HGETALL', cm)
  for j = 1, #m, 2 do
    local b = tonumber(string.match(m[j], '^(%d+)'))
    if b and (b + 1) * span + ttl < now then
      redis.call('HDEL', cm, m[j])
    end
  end
end
`

// loadCompactScript finds each flow's record or, failing that, its
// compact entry. KEYS[1] is the shard's bucket hash (:cm), KEYS[1+i] flow
// i's record; ARGV[1] the shard's compact key prefix
// (<prefix>{<shard>}:cf:), ARGV[1+i] flow i's fingerprint. Returns, per
// flow, its record (a string), {compact entry} (a one-item array), or
// false.
var loadCompactScript = redis.NewScript(compactLua + `
local vals = redis.call('MGET', unpack(KEYS, 2))
for i = 2, #KEYS do
  if not vals[i - 1] then
    local entry = compactEntry(KEYS[1], ARGV[1], ARGV[i])
    if entry then vals[i - 1] = {entry} end
  end
end
return vals
`)

// ClosedFlow is a flow whose detail window is over, as ListClosed read it.
type ClosedFlow struct {
	Snapshot         // Exists false when its record already expired
	ClosedAtMS int64 // its close time on Redis's clock
}

// listClosedScript lists the flows of a shard whose detail window is over.
// KEYS[1] the shard's closed set (:cl); ARGV[1] the detail window in ms,
// ARGV[2] the most to list, ARGV[3] the shard's flow key prefix. Returns
// {id, close ms, record or false, ...}. It writes nothing.
var listClosedScript = redis.NewScript(recordLua + `
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', cutoff), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for j = 1, #ids, 2 do
  out[#out + 1] = ids[j]
  out[#out + 1] = ids[j + 1]
  out[#out + 1] = record(ARGV[3] .. ids[j])
end
return out
`)

// ListClosed lists up to limit flows of shard whose detail window is over
// (closed at least Config.ClosedDetailTTL ago on Redis's clock), oldest
// first, with their records. Nothing is leased: CompactClosed is fenced by
// each record's version, so two instances moving the same flow do it once.
func (s *Store) ListClosed(ctx context.Context, shard, limit int) ([]ClosedFlow, error) {
	if !s.compacting() {
		return nil, nil
	}
	if limit < 1 || limit > maxBulk {
		return nil, fmt.Errorf("statestore: list closed flows: limit must be in 1..%d, got %d", maxBulk, limit)
	}
	calls := []scriptCall{{script: listClosedScript, keys: []string{s.clKey(shard)},
		args: []any{s.cfg.ClosedDetailTTL.Milliseconds(), limit, s.flowPrefix[shard]}}}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: list closed flows: %w", err)
	}
	vals, err := calls[0].cmd.Slice()
	if err != nil {
		return nil, fmt.Errorf("statestore: list closed flows: %w", err)
	}
	if len(vals)%3 != 0 {
		return nil, fmt.Errorf("statestore: list closed flows: unexpected reply of %d items", len(vals))
	}
	out := make([]ClosedFlow, 0, len(vals)/3)
	for j := 0; j < len(vals); j += 3 {
		id := toString(vals[j])
		at, err := parseScore(vals[j+1])
		if err != nil {
			return nil, fmt.Errorf("statestore: list closed flows: %w", err)
		}
		snap, err := parseSnapshot(id, vals[j+2])
		if err != nil {
			return nil, fmt.Errorf("statestore: list closed flow %q: %w", id, err)
		}
		out = append(out, ClosedFlow{Snapshot: snap, ClosedAtMS: at.UnixMilli()})
	}
	return out, nil
}

// CompactMove replaces a closed flow's record by its compact entry.
type CompactMove struct {
	RequestID string
	// Version is the record's version as claimed: a flow written since is
	// left for a later round.
	Version int64
	// Compact is what the flow keeps (the caller's blob, opaque here).
	// Nil: the flow only leaves the closed set, its record (if any) kept
	// until it expires (a record the caller cannot compact).
	Compact    []byte
	ClosedAtMS int64
}

// compactScript moves closed flows of one shard to their compact entries.
// KEYS[1] the closed set (:cl), KEYS[2] the bucket hash (:cm), KEYS[3] the
// outbox (:ox), KEYS[4] the provider ids to move (:pq), KEYS[4+i] flow i's
// record. ARGV[1] the compact key prefix, ARGV[2] the bucket span in ms,
// ARGV[3] the tombstone TTL in ms, ARGV[4] entries a sub-key is sized
// for, ARGV[5] the flows' provider-id set prefix (:pi:); then 5 values per
// flow: request id, version as claimed, fingerprint, compact blob ("":
// only leave the closed set), close time in ms. A record written since its
// claim, or whose outputs are still in the outbox (the versions its header
// names that were not acked), stays: a later round moves it. A flow moved
// queues its provider ids for MoveProviderEntries. Returns how many moved.
var compactScript = redis.NewScript(recordLua + packLua + `
local now = redisNow()
local span, ttl, fill = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local moved = 0
local function owes(id, owed)
  for v in string.gmatch(owed, '[^,]+') do
    if redis.call('HEXISTS', KEYS[3], id .. ':' .. v) == 1 then return true end
  end
  return false
end
for i = 1, #KEYS - 4 do
  local a = 6 + (i - 1) * 5
  local rec = record(KEYS[4 + i])
  if not rec or ARGV[a + 3] == '' then
    -- Its provider ids keep their string keys, which resolve to a record
    -- kept whole or to nothing.
    redis.call('DEL', ARGV[5] .. ARGV[a])
    redis.call('ZREM', KEYS[1], ARGV[a])
  else
    local v, owed = parse(rec)
    if v == ARGV[a + 1] and not owes(ARGV[a], owed) then
      local fp = ARGV[a + 2]
      pack(KEYS[2], ARGV[1], math.floor(tonumber(ARGV[a + 4]) / span), fp, v .. '|' .. ARGV[a + 3], span, ttl, fill, KEYS[1])
      redis.call('DEL', KEYS[4 + i])
      redis.call('ZREM', KEYS[1], ARGV[a])
      local pi = ARGV[5] .. ARGV[a]
      for _, m in ipairs(redis.call('SMEMBERS', pi)) do
        local c = string.find(m, ':', 1, true)
        if c then
          redis.call('HSET', KEYS[4], string.sub(m, c + 1), string.sub(m, 1, c - 1) .. ':' .. ARGV[a + 4] .. ':' .. fp)
        end
      end
      redis.call('DEL', pi)
      moved = moved + 1
    end
  end
end
flushPlaced()
forgetExpired(KEYS[2], span, ttl, now)
return moved
`)

// CompactClosed moves closed flows of one shard, as ListClosed listed
// them, to their compact entries, in one script call; it returns how many
// moved (a flow written since its claim, or still owing outputs, stays in
// the closed set for a later round).
func (s *Store) CompactClosed(ctx context.Context, shard int, moves []CompactMove) (int, error) {
	if len(moves) == 0 {
		return 0, nil
	}
	if len(moves) > maxBulk {
		return 0, fmt.Errorf("statestore: compact closed flows: %d in one call, at most %d", len(moves), maxBulk)
	}
	keys := make([]string, 4, 4+len(moves))
	keys[0], keys[1], keys[2], keys[3] = s.clKey(shard), s.cmKey(shard), s.oxKey[shard], s.pqKey[shard]
	args := make([]any, 5, 5+5*len(moves))
	args[0], args[1], args[2], args[3], args[4] = s.cfPrefix(shard), s.bucketMS(), s.tombstoneMS, entriesPerSubKey, s.piPrefix[shard]
	for _, m := range moves {
		if s.Shard(m.RequestID) != shard {
			return 0, fmt.Errorf("statestore: compact closed flows: %q is not in shard %d", m.RequestID, shard)
		}
		keys = append(keys, s.flowPrefix[shard]+m.RequestID)
		args = append(args, m.RequestID, m.Version, fingerprint(m.RequestID), nonNil(m.Compact), m.ClosedAtMS)
	}
	calls := []scriptCall{{script: compactScript, keys: keys, args: args}}
	if err := s.runScripts(ctx, calls); err != nil {
		return 0, fmt.Errorf("statestore: compact closed flows: %w", err)
	}
	n, err := calls[0].cmd.Int()
	if err != nil {
		return 0, fmt.Errorf("statestore: compact closed flows: %w", err)
	}
	return n, nil
}

// ClosedWaiting is how many closed flows keep their whole record, detail
// window over or not (the closed sets' sizes).
func (s *Store) ClosedWaiting(ctx context.Context) (int64, error) {
	if !s.compacting() {
		return 0, nil
	}
	keys := make([]string, s.cfg.Shards)
	for i := range keys {
		keys[i] = s.clKey(i)
	}
	n, err := s.sumZCard(ctx, keys)
	if err != nil {
		return 0, fmt.Errorf("statestore: count closed flows: %w", err)
	}
	return n, nil
}

// ProviderIDsWaiting is how many provider ids of compacted flows are
// queued for MoveProviderEntries (the :pq hashes' sizes).
func (s *Store) ProviderIDsWaiting(ctx context.Context) (int64, error) {
	if !s.compacting() {
		return 0, nil
	}
	cmds := make([]*redis.IntCmd, s.cfg.Shards)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.HLen(ctx, s.pqKey[i])
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("statestore: count queued provider ids: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

func (s *Store) clKey(shard int) string    { return s.clKeys[shard] }
func (s *Store) cmKey(shard int) string    { return s.cmKeys[shard] }
func (s *Store) cfPrefix(shard int) string { return s.cfPrefixes[shard] }

// parseLoaded reads one item of loadCompactScript's reply.
func parseLoaded(id string, v any) (Snapshot, error) {
	if a, ok := v.([]any); ok {
		if len(a) != 1 {
			return Snapshot{}, errors.New("unexpected compact entry reply")
		}
		version, blob, err := parseRecord(toBytes(a[0]))
		if err != nil {
			return Snapshot{}, fmt.Errorf("compact entry: %w", err)
		}
		// A change of it writes a record that must not exist
		// (Change.FromCompact), kept whole until the next move.
		return Snapshot{RequestID: id, Exists: true, Version: version, State: blob, Compacted: true}, nil
	}
	return parseSnapshot(id, v)
}

// loadOrCompact is Load when closed flows are compacted: one script call
// per shard that falls back to the compact entries for a flow whose record
// is gone.
func (s *Store) loadOrCompact(ctx context.Context, requestIDs []string, byShard shardGroups) ([]Snapshot, error) {
	calls := make([]scriptCall, len(byShard.shards))
	for c, sh := range byShard.shards {
		idx := byShard.members[sh]
		keys := make([]string, 1, 1+len(idx))
		keys[0] = s.cmKey(sh)
		args := make([]any, 1, 1+len(idx))
		args[0] = s.cfPrefix(sh)
		for _, i := range idx {
			keys = append(keys, s.flowPrefix[sh]+requestIDs[i])
			args = append(args, flowFingerprint(requestIDs[i]))
		}
		calls[c] = scriptCall{script: loadCompactScript, keys: keys, args: args}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: load: %w", err)
	}
	out := make([]Snapshot, len(requestIDs))
	for c, sh := range byShard.shards {
		vals, err := calls[c].cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("statestore: load: %w", err)
		}
		if len(vals) != len(byShard.members[sh]) {
			return nil, fmt.Errorf("statestore: load: %d results for %d flows", len(vals), len(byShard.members[sh]))
		}
		for j, i := range byShard.members[sh] {
			if out[i], err = parseLoaded(requestIDs[i], vals[j]); err != nil {
				return nil, fmt.Errorf("statestore: load %q: %w", requestIDs[i], err)
			}
		}
	}
	return out, nil
}
