package statestore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The provider-id index maps a provider's message id to the attempt it
// reports on, for DLRs that carry only the provider's id.
//
//	<prefix>:pm:{<provider_msg_id>}       string -> attempt id, with TTL
//	<prefix>{<shard>}:pi:<request_id>     set "<step>:<provider_msg_id>" of a live or
//	                                      detailed flow (with compaction on)
//	<prefix>{<shard>}:pq                  hash provider_msg_id -> "<step>:<close ms>:<request fingerprint>",
//	                                      provider ids of compacted flows still to move
//	<prefix>{<p>}:pcm, :cp:<bucket>:<g>:<k> provider-id entries past the detail window
//	                                      (fingerprint -> shard, step, 4 bytes of the request's),
//	                                      p = crc32(provider_msg_id) mod Shards
//
// An entry of the string index is its own key, hash-tagged by the provider
// id: the id is all a DLR gives, so the entry cannot live in its flow's
// shard. With compaction on (docs/closed-flows.md) the flow's shard also
// lists its provider ids (:pi), so that the compactor, moving the flow,
// queues them (:pq); MoveProviderEntries then writes each as a packed
// entry of about 21 bytes, bucketed by the flow's close time like the
// flow's own compact entry, and deletes its string key. A DLR whose
// provider id has no string key any more resolves through the packed
// entry to a CompactRef: the flow's shard, fingerprint and step.

// ProviderRef is one provider message id and the attempt it reports on.
type ProviderRef struct {
	ProviderID string
	AttemptID  string
	// RequestID and Step are the attempt's flow and step; RequestID is
	// empty when the attempt id names no flow (then only the string index
	// keeps it).
	RequestID string
	Step      int
}

func (s *Store) pmKey(providerID string) string {
	return s.pmPrefix + providerID + "}"
}

// providerShard is the shard a provider id's packed entry lives in.
func (s *Store) providerShard(providerID string) int { return s.hashShard(providerID) }

// indexFlowScript lists provider ids in their flows' shard while each
// flow has a record: a flow already compacted keeps only the string key.
// KEYS[2i-1] flow i's record, KEYS[2i] its :pi set; ARGV[1] the TTL in
// ms, ARGV[1+i] the member "<step>:<provider id>". One call per shard.
var indexFlowScript = redis.NewScript(`
for i = 1, #KEYS / 2 do
  if redis.call('EXISTS', KEYS[2 * i - 1]) == 1 then
    redis.call('SADD', KEYS[2 * i], ARGV[1 + i])
    redis.call('PEXPIRE', KEYS[2 * i], ARGV[1])
  end
end
return 1
`)

// IndexProviderIDs records provider message id -> attempt id, each with the
// TTL (a SET PX per entry, one pipeline), and with compaction on lists
// each in its flow's shard.
func (s *Store) IndexProviderIDs(ctx context.Context, refs []ProviderRef, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("statestore: index provider ids: TTL must be at least 1ms, got %s", ttl)
	}
	for _, r := range refs {
		if r.ProviderID == "" {
			return errors.New("statestore: index provider ids: empty provider message id")
		}
	}
	cmds, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range refs {
			p.Set(ctx, s.pmKey(r.ProviderID), r.AttemptID, ttl)
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
	if err == nil && s.compacting() {
		byShard := map[int]*scriptCall{}
		var calls []scriptCall
		var order []int
		for _, r := range refs {
			if r.RequestID == "" || IsCompactRef(r.RequestID) {
				continue
			}
			sh := s.Shard(r.RequestID)
			c := byShard[sh]
			if c == nil {
				c = &scriptCall{script: indexFlowScript, args: []any{ttl.Milliseconds()}}
				byShard[sh] = c
				order = append(order, sh)
			}
			c.keys = append(c.keys, s.flowPrefix[sh]+r.RequestID, s.piPrefix[sh]+r.RequestID)
			c.args = append(c.args, strconv.Itoa(r.Step)+":"+r.ProviderID)
		}
		for _, sh := range order {
			calls = append(calls, *byShard[sh])
		}
		if len(calls) > 0 {
			err = s.runScripts(ctx, calls)
		}
	}
	if err != nil {
		return fmt.Errorf("statestore: index provider ids: %w", err)
	}
	return nil
}

// resolveCompactScript finds provider ids' packed entries in one shard.
// KEYS[1] the shard's provider bucket hash (:pcm); ARGV[1] its entry
// prefix (:cp:), ARGV[1+i] provider id i's fingerprint. Returns, per id,
// {entry, bucket} or false.
var resolveCompactScript = redis.NewScript(compactLua + `
local out = {}
for i = 2, #ARGV do
  local v, key = compactEntry(KEYS[1], ARGV[1], ARGV[i])
  out[i - 1] = v and {v, string.match(key, '(%d+):%d+:%d+$')} or false
end
return out
`)

// ResolveProviderIDs returns the attempt ids of the known provider message
// ids; unknown or expired ones are absent from the map. With compaction
// on, an id whose flow was compacted resolves to an attempt of the flow's
// CompactRef (CompactRefAttempt).
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
	var missing []string
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			missing = append(missing, ids[i])
		case err != nil:
			return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
		default:
			out[ids[i]] = v
		}
	}
	if len(missing) > 0 && s.compacting() {
		if err := s.resolveCompact(ctx, missing, out); err != nil {
			return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
		}
	}
	return out, nil
}

// resolveCompact looks ids up in their packed entries, one script call
// per shard, then their flows' compact entries (findCompact), adding what
// it finds to out.
func (s *Store) resolveCompact(ctx context.Context, ids []string, out map[string]string) error {
	groups := map[int][]string{}
	var shards []int
	for _, id := range ids {
		sh := s.providerShard(id)
		if groups[sh] == nil {
			shards = append(shards, sh)
		}
		groups[sh] = append(groups[sh], id)
	}
	calls := make([]scriptCall, len(shards))
	for c, sh := range shards {
		args := make([]any, 1, 1+len(groups[sh]))
		args[0] = s.cpPrefix[sh]
		for _, id := range groups[sh] {
			args = append(args, fingerprint(id))
		}
		calls[c] = scriptCall{script: resolveCompactScript, keys: []string{s.pcmKey[sh]}, args: args}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return err
	}
	var found []string
	var targets []providerTarget
	for c, sh := range shards {
		vals, err := replyItems(&calls[c], len(groups[sh]))
		if err != nil {
			return err
		}
		for j, id := range groups[sh] {
			if pair, ok := vals[j].([]any); ok && len(pair) == 2 {
				t, err := s.parseProviderEntry(toBytes(pair[0]), toString(pair[1]))
				if err != nil {
					return fmt.Errorf("provider id %q: %w", id, err)
				}
				found = append(found, id)
				targets = append(targets, t)
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	return s.findCompact(ctx, found, targets, out)
}

// A CompactRef stands for a compacted flow reached by a provider id alone:
// its request id is not kept, only its shard and fingerprint. It is "\x00"
// (no request id has it: they are printable), the shard, ":" and the
// fingerprint in hex. Load and Apply take it like a request id and reach
// the flow's compact entry; no record is ever written under it.
const compactRefMark = "\x00"

// IsCompactRef says whether id is a CompactRef rather than a request id.
func IsCompactRef(id string) bool { return strings.HasPrefix(id, compactRefMark) }

func compactRef(shard int, fp string) string {
	return compactRefMark + strconv.Itoa(shard) + ":" + hex.EncodeToString([]byte(fp))
}

// parseCompactRef returns a CompactRef's shard and fingerprint.
func parseCompactRef(id string) (shard int, fp string, ok bool) {
	rest, found := strings.CutPrefix(id, compactRefMark)
	if !found {
		return 0, "", false
	}
	sh, h, found := strings.Cut(rest, ":")
	if !found {
		return 0, "", false
	}
	n, err := strconv.Atoi(sh)
	b, herr := hex.DecodeString(h)
	if err != nil || herr != nil || n < 0 || len(b) != 8 {
		return 0, "", false
	}
	return n, string(b), true
}

// flowFingerprint is the fingerprint of a request id or CompactRef.
func flowFingerprint(id string) string {
	if _, fp, ok := parseCompactRef(id); ok {
		return fp
	}
	return fingerprint(id)
}

// providerEntryBytes is a packed provider-id entry's value: the flow's
// shard and step (2 bytes, big-endian: shard*8 + step; MaxShards 1024 and
// at most 8 steps fit) and the first 4 bytes of its fingerprint. The rest
// of the fingerprint is found among the flow's shard's compact entries
// (findCompactScript): 6 bytes instead of 11 make a provider entry about
// 21 bytes instead of 27 (docs/closed-flows.md).
const providerEntryBytes = 6

// providerPrefixBytes is how much of the request fingerprint a provider
// entry keeps.
const providerPrefixBytes = 4

func providerEntry(shard, step int, fp string) string {
	var b [providerEntryBytes]byte
	binary.BigEndian.PutUint16(b[:2], uint16(shard*8+step))
	copy(b[2:], fp[:providerPrefixBytes])
	return string(b[:])
}

// providerTarget is what a packed provider-id entry points at.
type providerTarget struct {
	shard, step int
	prefix      string // the first providerPrefixBytes of the fingerprint
	// bucket is the entry's close-time bucket, which is its flow's too.
	bucket string
}

func (s *Store) parseProviderEntry(v []byte, bucket string) (providerTarget, error) {
	if len(v) != providerEntryBytes {
		return providerTarget{}, fmt.Errorf("packed provider entry of %d bytes, want %d", len(v), providerEntryBytes)
	}
	if _, err := strconv.ParseInt(bucket, 10, 64); err != nil {
		return providerTarget{}, fmt.Errorf("packed provider entry in bucket %q", bucket)
	}
	n := int(binary.BigEndian.Uint16(v[:2]))
	t := providerTarget{shard: n / 8, step: n % 8, prefix: string(v[2:]), bucket: bucket}
	if t.shard >= s.cfg.Shards {
		return providerTarget{}, fmt.Errorf("packed provider entry names shard %d of %d", t.shard, s.cfg.Shards)
	}
	return t, nil
}

// findCompactScript finds compact entries of one shard by the first bytes
// of their fingerprints. KEYS[1] the shard's bucket hash (:cm); ARGV[1]
// its compact key prefix (:cf:), then per entry sought its prefix and its
// bucket. The prefix names the sub-key of each of the bucket's
// generations the entry would be in (as compactEntry). Returns, per
// entry, the whole fingerprint, "" when two entries there share the
// prefix, or false.
var findCompactScript = redis.NewScript(`
local gens = {}
local out = {}
for i = 2, #ARGV, 2 do
  local p, b = ARGV[i], ARGV[i + 1]
  if gens[b] == nil then
    gens[b] = redis.call('HGET', KEYS[1], b) or ''
  end
  local x = ((string.byte(p, 1) * 256 + string.byte(p, 2)) * 256 + string.byte(p, 3)) * 256 + string.byte(p, 4)
  local found, g = false, 0
  for subs in string.gmatch(gens[b], '[^,]+') do
    for _, f in ipairs(redis.call('HKEYS', ARGV[1] .. string.format('%d:%d:%d', tonumber(b), g, x % tonumber(subs)))) do
      if string.sub(f, 1, 4) == p then
        if found then found = '' break end
        found = f
      end
    end
    g = g + 1
  end
  out[#out + 1] = found
end
return out
`)

// findCompact turns packed provider entries into attempts of CompactRefs,
// one script call per flow shard: targets[i] resolves ids[i] into out. A
// prefix that matches two compact entries resolves to nothing (the DLR is
// then an unknown attempt): the error hides a late delivery rather than
// inventing one.
func (s *Store) findCompact(ctx context.Context, ids []string, targets []providerTarget, out map[string]string) error {
	groups := map[int][]int{}
	var shards []int
	for i, t := range targets {
		if groups[t.shard] == nil {
			shards = append(shards, t.shard)
		}
		groups[t.shard] = append(groups[t.shard], i)
	}
	calls := make([]scriptCall, len(shards))
	for c, sh := range shards {
		args := make([]any, 1, 1+len(groups[sh]))
		args[0] = s.cfPrefix(sh)
		for _, i := range groups[sh] {
			args = append(args, targets[i].prefix, targets[i].bucket)
		}
		calls[c] = scriptCall{script: findCompactScript, keys: []string{s.cmKey(sh)}, args: args}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return err
	}
	for c, sh := range shards {
		vals, err := replyItems(&calls[c], len(groups[sh]))
		if err != nil {
			return err
		}
		for j, i := range groups[sh] {
			if fp := toBytes(vals[j]); len(fp) == 8 {
				out[ids[i]] = compactRef(sh, string(fp)) + "/" + strconv.Itoa(targets[i].step)
			}
		}
	}
	return nil
}

// packProviderScript writes provider ids' packed entries in one shard.
// KEYS[1] the shard's provider bucket hash (:pcm); ARGV[1] its entry
// prefix (:cp:), ARGV[2] the bucket span in ms, ARGV[3] the tombstone TTL
// in ms, ARGV[4] entries a sub-key is sized for; then 3 values per entry:
// the provider id's fingerprint, the entry (providerEntry), the flow's
// close time in ms (its bucket: the entry expires with the flow's).
var packProviderScript = redis.NewScript(packLua + `
local span, ttl, fill = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for a = 5, #ARGV, 3 do
  pack(KEYS[1], ARGV[1], math.floor(tonumber(ARGV[a + 2]) / span), ARGV[a], ARGV[a + 1], span, ttl, fill, nil)
end
flushPlaced()
forgetExpired(KEYS[1], span, ttl, redisNow())
return 1
`)

// queuedProvider is one provider id of a compacted flow, as the compactor
// queued it (:pq).
type queuedProvider struct {
	providerID string
	entry      string // providerEntry
	closedMS   int64
}

// MoveProviderEntries moves up to about limit provider ids that
// CompactClosed queued in shard to their packed entries, and deletes their
// string keys; it returns how many moved. Each step can run again: a crash
// between them leaves the queue as it was (the string keys still resolve,
// to the flow's compact entry), and two instances moving the same ids
// write the same entries.
func (s *Store) MoveProviderEntries(ctx context.Context, shard, limit int) (int, error) {
	if !s.compacting() {
		return 0, nil
	}
	// The queue is a hash whose fields go as they move: a scan from the
	// start walks the emptied part of a big one's table first, so it
	// follows the cursor until it has a batch or has seen the whole table.
	var kv []string
	for cursor := uint64(0); ; {
		page, next, err := s.c.HScan(ctx, s.pqKey[shard], cursor, "", int64(limit)).Result()
		if err != nil {
			return 0, fmt.Errorf("statestore: move provider entries: %w", err)
		}
		kv, cursor = append(kv, page...), next
		if cursor == 0 || len(kv) >= 2*limit {
			break
		}
	}
	queued := make([]queuedProvider, 0, len(kv)/2)
	fields := make([]string, 0, len(kv)/2)
	for j := 0; j+1 < len(kv); j += 2 {
		fields = append(fields, kv[j])
		q, err := parseQueuedProvider(shard, kv[j], kv[j+1])
		if err != nil {
			// Not ours to resolve: its string key keeps it until it expires.
			continue
		}
		queued = append(queued, q)
	}
	if len(fields) == 0 {
		return 0, nil
	}
	groups := map[int][]queuedProvider{}
	var shards []int
	for _, q := range queued {
		sh := s.providerShard(q.providerID)
		if groups[sh] == nil {
			shards = append(shards, sh)
		}
		groups[sh] = append(groups[sh], q)
	}
	calls := make([]scriptCall, len(shards))
	for c, sh := range shards {
		args := make([]any, 4, 4+3*len(groups[sh]))
		args[0], args[1], args[2], args[3] = s.cpPrefix[sh], s.bucketMS(), s.tombstoneMS, entriesPerSubKey
		for _, q := range groups[sh] {
			args = append(args, fingerprint(q.providerID), q.entry, q.closedMS)
		}
		calls[c] = scriptCall{script: packProviderScript, keys: []string{s.pcmKey[sh]}, args: args}
	}
	if len(calls) > 0 {
		if err := s.runScripts(ctx, calls); err != nil {
			return 0, fmt.Errorf("statestore: move provider entries: %w", err)
		}
	}
	// Only once the packed entries are written (and replicated, with
	// WaitReplicas) do the string keys go, then the queue's fields.
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, q := range queued {
			p.Del(ctx, s.pmKey(q.providerID))
		}
		return nil
	})
	if err == nil {
		err = s.c.HDel(ctx, s.pqKey[shard], fields...).Err()
	}
	if err != nil {
		return 0, fmt.Errorf("statestore: move provider entries: %w", err)
	}
	return len(queued), nil
}

// parseQueuedProvider reads a queue field: provider id -> "<step>:<close
// ms>:<fingerprint>" of a flow of shard.
func parseQueuedProvider(shard int, providerID, v string) (queuedProvider, error) {
	step, rest, ok := strings.Cut(v, ":")
	closed, fp, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(step)
	ms, err2 := strconv.ParseInt(closed, 10, 64)
	if !ok || !ok2 || err != nil || err2 != nil || n < 0 || n > 7 || len(fp) != 8 {
		return queuedProvider{}, fmt.Errorf("bad queued provider id %q", providerID)
	}
	return queuedProvider{providerID: providerID, entry: providerEntry(shard, n, fp), closedMS: ms}, nil
}

// replyItems is a script call's reply: one item per provider id it was
// given.
func replyItems(c *scriptCall, want int) ([]any, error) {
	vals, err := c.cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) != want {
		return nil, fmt.Errorf("%d results for %d provider ids", len(vals), want)
	}
	return vals, nil
}
