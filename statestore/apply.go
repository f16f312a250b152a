package statestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// applyScript is the only way a flow changes: for each flow, a
// compare-and-set on the version that writes the record, the deadline and
// the owed outputs at once. One call carries the changes of one shard
// (every key shares the shard's hash tag), so a batch costs one script call
// per shard instead of one per flow, and the shard-wide writes (deadlines,
// outbox, records that stay persistent) are one multi-member command each
// per call. Each flow is still all-or-nothing and independent of the others
// in the call; a request id may appear at most once per call.
//
// KEYS[1] deadline sorted set   <prefix>{<shard>}:dl
// KEYS[2] owed sorted set       <prefix>{<shard>}:ob
// KEYS[3] outbox hash           <prefix>{<shard>}:ox
// KEYS[4] closed set            <prefix>{<shard>}:cl (closedflows.go)
// KEYS[5] compact bucket hash   <prefix>{<shard>}:cm
// KEYS[5+i] flow record         <prefix>{<shard>}:f:<id>   (flow i = 1, 2, ...)
// ARGV[1] tombstone TTL in ms (used by changes that close their flow)
// ARGV[2] "1" when closed flows are compacted: a close adds the flow to
// the closed set at Redis's time, unless it is there already
// ARGV[3] the compact key prefix  <prefix>{<shard>}:cf:
// then 9 values per flow, in KEYS order:
//
//	request id (the member of the deadline set)
//	expected version; "0" means the flow must not exist; "c<v>" that it
//	  has no record and its compact entry is at version v (FromCompact):
//	  the entry is then rewritten where it is, no record written
//	new version (expected+1)
//	state blob
//	deadline in unix ms, "" to remove the flow from the deadline set
//	"1" when the change closes the flow
//	outbox retry-at in unix ms, "" when the change owes no outputs
//	the owed outputs (one opaque blob)
//	the request id's fingerprint, "" when closed flows are not compacted
//
// Returns one item per flow: {1, older version, older outputs, ...} when
// applied, or on a version conflict {0, current} where current is the
// record, {compact entry}, or false, so the caller recomputes without
// another round trip. A flow moved to its compact entry since it was read
// conflicts with that entry, never with nothing (a duplicate request would
// start its flow again). The older outputs are what the flow still owed
// from earlier versions (looked up only when the change
// owes something too): the caller produces them first, so that a flow's
// outputs reach Kafka in the order of its versions even when an earlier
// writer has not produced its own yet.
var applyScript = redis.NewScript(bulkLua + recordLua + compactLua + `
local n = #KEYS - 5
local out, owedOf, lookups, inPlace = {}, {}, {}, {}
for i = 1, n do
  local a = 4 + (i - 1) * 9
  local rec = record(KEYS[5 + i])
  local want = ARGV[a + 1]
  local fromCompact = string.sub(want, 1, 1) == 'c'
  if fromCompact then want = string.sub(want, 2) end
  local cur, owed = '0', ''
  if rec then
    cur, owed = parse(rec)
    if fromCompact then cur = false end
  elseif want ~= '0' then
    local entry, key = false, nil
    if ARGV[a + 8] ~= '' then entry, key = compactEntry(KEYS[5], ARGV[3], ARGV[a + 8]) end
    cur = false
    if entry and fromCompact then
      local v, o = parse(entry)
      if v == want then cur, owed, inPlace[i] = want, o, key end
    end
    if not cur then rec = entry and {entry} end
  end
  if cur ~= want then
    out[i] = {0, rec or false}
  else
    owedOf[i] = owed
    if ARGV[a + 6] ~= '' then
      for v in string.gmatch(owed, '[^,]+') do
        lookups[#lookups + 1] = ARGV[a] .. ':' .. v
      end
    end
  end
end
local found = {}
for s = 1, #lookups, 4000 do
  local e = math.min(s + 3999, #lookups)
  local vals = redis.call('HMGET', KEYS[3], unpack(lookups, s, e))
  for j = s, e do
    if vals[j - s + 1] then found[lookups[j]] = vals[j - s + 1] end
  end
end
local mset, dlAdd, dlRem, oxSet, obAdd = {}, {}, {}, {}, {}
local now
for i = 1, n do
  if owedOf[i] then
    local a = 4 + (i - 1) * 9
    local id, new = ARGV[a], ARGV[a + 2]
    local head, res = new, {1}
    if ARGV[a + 6] ~= '' then
      for v in string.gmatch(owedOf[i], '[^,]+') do
        local d = found[id .. ':' .. v]
        if d then
          head = head .. ',' .. v
          res[#res + 1] = v
          res[#res + 1] = d
        end
      end
      head = head .. ',' .. new
      oxSet[#oxSet + 1] = id .. ':' .. new
      oxSet[#oxSet + 1] = ARGV[a + 7]
      obAdd[#obAdd + 1] = ARGV[a + 6]
      obAdd[#obAdd + 1] = id .. ':' .. new
    elseif owedOf[i] ~= '' then
      head = head .. ',' .. owedOf[i]
    end
    local rec = head .. '|' .. ARGV[a + 3]
    if inPlace[i] then
      -- A compact flow stays compact: its entry changes where it is and
      -- expires with its bucket.
      redis.call('HSET', inPlace[i], ARGV[a + 8], rec)
      dlRem[#dlRem + 1] = id
    elseif ARGV[a + 5] == '1' then
      redis.call('SET', KEYS[5 + i], rec, 'PX', ARGV[1])
      dlRem[#dlRem + 1] = id
      if ARGV[2] == '1' then
        if not now then
          local t = redis.call('TIME')
          now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
        end
        redis.call('ZADD', KEYS[4], 'NX', now, id)
      end
    else
      mset[#mset + 1] = KEYS[5 + i]
      mset[#mset + 1] = rec
      if ARGV[a + 4] == '' then
        dlRem[#dlRem + 1] = id
      else
        dlAdd[#dlAdd + 1] = ARGV[a + 4]
        dlAdd[#dlAdd + 1] = id
      end
    end
    out[i] = res
  end
end
bulk('MSET', nil, mset)
bulk('ZADD', KEYS[1], dlAdd)
bulk('ZREM', KEYS[1], dlRem)
bulk('HSET', KEYS[3], oxSet)
bulk('ZADD', KEYS[2], obAdd)
return out
`)

// Change is one compare-and-set write of a flow.
type Change struct {
	RequestID string
	// ExpectVersion is the version the change was computed from; 0 means
	// the flow must not exist yet.
	ExpectVersion int64
	// FromCompact says the change was computed from the flow's compact
	// entry (Snapshot.Compacted): its record must not exist, and the entry
	// is rewritten in place at ExpectVersion+1 (State is then the compact
	// blob), so that the flow's versions, and the event ids made of them,
	// never repeat, and a flow reached by its request id and one reached
	// by a provider id alone (CompactRef) read the same entry.
	FromCompact bool
	State       []byte
	// Deadline is when the flow's timer fires; zero removes the flow from
	// the deadline set. Ignored when Closed.
	Deadline time.Time
	// Closed keeps the state as a tombstone that expires after
	// TombstoneTTL and removes the deadline. A change that is not Closed
	// makes the flow record persistent again.
	Closed bool
	// Outbox holds the outputs this change owes to Kafka, stored with the
	// new version until acked.
	Outbox [][]byte
	// OutboxRetryAt is when a recoverer may re-emit Outbox if it was never
	// acked. Required when Outbox is not empty.
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
	// this change's own so the flow's outputs keep their order, then ack
	// their versions with this change's.
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
	seen := make(map[string]bool, len(changes))
	for i := range changes {
		ch := &changes[i]
		if err := checkChange(ch); err != nil {
			return nil, fmt.Errorf("statestore: apply: %w", err)
		}
		if seen[ch.RequestID] {
			// The script reads every record before it writes any.
			return nil, fmt.Errorf("statestore: apply: %q changed twice in one call", ch.RequestID)
		}
		seen[ch.RequestID] = true
	}
	groups := groupByShard(s, changes, func(ch Change) string { return ch.RequestID })
	calls := make([]scriptCall, len(groups.shards))
	for c, sh := range groups.shards {
		idx := groups.members[sh]
		keys := make([]string, 5, 5+len(idx))
		keys[0], keys[1], keys[2], keys[3], keys[4] = s.dlKey[sh], s.obKey[sh], s.oxKey[sh], s.clKey(sh), s.cmKey(sh)
		args := make([]any, 3, 3+9*len(idx))
		args[0], args[1], args[2] = s.tombstoneMS, "0", s.cfPrefix(sh)
		if s.compacting() {
			args[1] = "1"
		}
		for _, i := range idx {
			ch := &changes[i]
			keys = append(keys, s.flowPrefix[sh]+ch.RequestID)
			var deadline any = ""
			if !ch.Closed && !ch.Deadline.IsZero() {
				deadline = ch.Deadline.UnixMilli()
			}
			closed := "0"
			if ch.Closed {
				closed = "1"
			}
			var retryAt any = ""
			var outputs []byte
			if len(ch.Outbox) > 0 {
				retryAt = ch.OutboxRetryAt.UnixMilli()
				outputs = packOutputs(ch.Outbox)
			}
			var expect any = ch.ExpectVersion
			if ch.FromCompact {
				expect = "c" + strconv.FormatInt(ch.ExpectVersion, 10)
			}
			fp := ""
			if s.compacting() {
				fp = flowFingerprint(ch.RequestID)
			}
			args = append(args, ch.RequestID, expect, ch.ExpectVersion+1, nonNil(ch.State),
				deadline, closed, retryAt, nonNil(outputs), fp)
		}
		calls[c] = scriptCall{script: applyScript, keys: keys, args: args}
	}
	if err := s.runScripts(ctx, calls); err != nil {
		return nil, fmt.Errorf("statestore: apply: %w", err)
	}
	out := make([]ApplyResult, len(changes))
	for c, sh := range groups.shards {
		idx := groups.members[sh]
		vals, err := calls[c].cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("statestore: apply: %w", err)
		}
		if len(vals) != len(idx) {
			return nil, fmt.Errorf("statestore: apply: %d results for %d changes", len(vals), len(idx))
		}
		for j, i := range idx {
			r, err := parseApply(&changes[i], vals[j])
			if err != nil {
				return nil, fmt.Errorf("statestore: apply %q: %w", changes[i].RequestID, err)
			}
			out[i] = r
		}
	}
	return out, nil
}

func checkChange(ch *Change) error {
	switch {
	case ch.RequestID == "":
		return errors.New("empty request id")
	case ch.ExpectVersion < 0:
		return fmt.Errorf("%q: negative expected version %d", ch.RequestID, ch.ExpectVersion)
	case ch.FromCompact && ch.ExpectVersion < 1:
		return fmt.Errorf("%q: a change from a compact entry without its version", ch.RequestID)
	case len(ch.Outbox) > 0 && ch.OutboxRetryAt.IsZero():
		// A zero retry-at would let a recoverer re-emit the outputs while
		// the writer is still producing them.
		return fmt.Errorf("%q: outbox entries without a retry-at", ch.RequestID)
	}
	return nil
}

func parseApply(ch *Change, reply any) (ApplyResult, error) {
	vals, ok := reply.([]any)
	if !ok || len(vals) < 1 {
		return ApplyResult{}, fmt.Errorf("unexpected reply %v", reply)
	}
	if applied, _ := vals[0].(int64); applied != 1 {
		if len(vals) != 2 {
			return ApplyResult{}, fmt.Errorf("unexpected conflict reply %v", vals)
		}
		cur, err := parseLoaded(ch.RequestID, vals[1])
		return ApplyResult{Current: cur}, err
	}
	if len(vals)%2 != 1 {
		return ApplyResult{}, fmt.Errorf("unexpected reply length %d", len(vals))
	}
	r := ApplyResult{Applied: true, Version: ch.ExpectVersion + 1}
	for j := 1; j < len(vals); j += 2 {
		v, err := parseVersion(vals[j])
		if err != nil {
			return ApplyResult{}, err
		}
		entries, err := unpackOutputs(v, toBytes(vals[j+1]))
		if err != nil {
			return ApplyResult{}, err
		}
		r.Owed = append(r.Owed, entries...)
	}
	return r, nil
}

// nonNil keeps a nil blob an empty string on the wire (go-redis writes nil
// []byte as "" too, but being explicit costs nothing).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
