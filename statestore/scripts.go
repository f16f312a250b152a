package statestore

import "github.com/redis/go-redis/v9"

// Every number a script compares or writes (versions, scores, TTLs) is
// formatted by Go and passed as an ARGV string. Lua numbers are doubles and
// Redis versions differ in how they print them back (1.7e+12 vs
// 1700000000000); keeping arithmetic out of Lua keeps the keys byte-identical
// whatever the server.
//
// Scripts that scan a shard (claimDue, claimOwed) build the per-flow key
// names from a prefix in ARGV instead of declaring them in KEYS, because
// they are not known before the ZRANGEBYSCORE. Those keys carry the same
// hash tag as KEYS[1], so they are in the same slot and Redis Cluster
// accepts them (asynq relies on the same property).

// applyScript is the only way a flow changes: for each flow, a
// compare-and-set on the version that writes the state, the deadline and the
// owed outputs at once. One call carries the changes of one shard (every key
// shares the shard's hash tag), so a batch costs one script call per shard
// instead of one per flow: the per-call cost of EVALSHA, not the work inside,
// was most of Redis's time. Each flow is still all-or-nothing and
// independent of the others in the call.
//
// KEYS[1] deadline sorted set   <prefix>{<shard>}:dl
// KEYS[2] owed sorted set       <prefix>{<shard>}:ob
// KEYS[1+2i] flow hash          <prefix>{<shard>}:f:<id>   (flow i = 1, 2, ...)
// KEYS[2+2i] outbox list        <prefix>{<shard>}:o:<id>
// ARGV[1] tombstone TTL in ms (used by changes that close their flow)
// then per flow, in KEYS order:
//
//	request id (the member in both sorted sets)
//	expected version; "0" means the flow must not exist
//	new version (expected+1)
//	state blob
//	deadline in unix ms, "" to remove the flow from the deadline set
//	"1" when the change closes the flow
//	outbox retry-at in unix ms (used when there are entries)
//	n, the number of outbox entries, then the n entries, stored as
//	"<new version>:<bytes>"
//
// Returns one item per flow: {1, new version, older entries...} when
// applied, or {0, current version, current state or false} on a version
// conflict, so the caller recomputes without another round trip. The older
// entries are what the flow still owed before this change (only returned
// when the change owes something too): the caller produces them first, so
// that a flow's outputs reach Kafka in the order of its versions even when
// an earlier writer has not produced its own yet.
var applyScript = redis.NewScript(`
local out = {}
local a = 2
for i = 1, (#KEYS - 2) / 2 do
  local fk, ok = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local id, expect, new = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local n = tonumber(ARGV[a + 7])
  local first = a + 8
  local cur = redis.call('HGET', fk, 'v')
  if not cur then cur = '0' end
  if cur ~= expect then
    out[i] = {0, cur, redis.call('HGET', fk, 's')}
  else
    redis.call('HSET', fk, 'v', new, 's', ARGV[a + 3])
    if ARGV[a + 5] == '1' then
      redis.call('PEXPIRE', fk, ARGV[1])
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('PERSIST', fk)
      if ARGV[a + 4] == '' then
        redis.call('ZREM', KEYS[1], id)
      else
        redis.call('ZADD', KEYS[1], ARGV[a + 4], id)
      end
    end
    local older = {}
    if n > 0 then
      older = redis.call('LRANGE', ok, '0', '-1')
      for j = first, first + n - 1 do
        redis.call('RPUSH', ok, new .. ':' .. ARGV[j])
      end
      local at = redis.call('ZSCORE', KEYS[2], id)
      if (not at) or tonumber(at) > tonumber(ARGV[a + 6]) then
        redis.call('ZADD', KEYS[2], ARGV[a + 6], id)
      end
    end
    out[i] = {1, new, unpack(older)}
  end
  a = first + n
end
return out
`)

// claimDueScript takes up to limit due deadlines of one shard and leases
// them: their score moves to the lease end, so no other instance claims them
// until then, and if this claimer dies they come due again by themselves.
//
// KEYS[1] deadline sorted set   <prefix>{<shard>}:dl
// ARGV[1] now in unix ms
// ARGV[2] lease end in unix ms
// ARGV[3] limit
// ARGV[4] flow key prefix of the shard  <prefix>{<shard>}:f:
//
// Returns a flat array, four items per claimed flow: request id, due score
// before the claim, version, state. Members whose flow key is gone are
// removed and not returned.
var claimDueScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', '0', ARGV[3])
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  local f = redis.call('HMGET', ARGV[4] .. id, 'v', 's')
  if f[1] then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = due[i + 1]
    out[#out + 1] = f[1]
    out[#out + 1] = f[2] or ''
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// claimOwedScript takes up to limit flows of one shard whose owed outputs
// are past their retry-at and leases them like claimDueScript does.
//
// KEYS[1] owed sorted set       <prefix>{<shard>}:ob
// ARGV[1] now in unix ms
// ARGV[2] lease end in unix ms
// ARGV[3] limit
// ARGV[4] outbox key prefix of the shard  <prefix>{<shard>}:o:
//
// Returns a flat array per claimed flow: request id, entry count n, then the
// n entries ("<version>:<bytes>", oldest first). Members with an empty list
// are removed and not returned.
var claimOwedScript = redis.NewScript(`
local owed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[3])
local out = {}
for _, id in ipairs(owed) do
  local entries = redis.call('LRANGE', ARGV[4] .. id, '0', '-1')
  if #entries == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = #entries
    for _, e in ipairs(entries) do
      out[#out + 1] = e
    end
  end
end
return out
`)

// ackOutboxScript drops, for each flow of one shard, the owed entries whose
// version is in [from, upto] and forgets the flow in the owed set once
// nothing is left. Entries are in version order (Apply appends under the
// version guard), so the acked ones are one contiguous run. Acking twice is
// a no-op. Like applyScript, one call carries one shard's flows.
//
// KEYS[1] owed sorted set       <prefix>{<shard>}:ob
// KEYS[1+i] outbox list         <prefix>{<shard>}:o:<id>   (flow i = 1, 2, ...)
// ARGV[3i-2] request id of flow i
// ARGV[3i-1] lowest version to drop ("0": from the head)
// ARGV[3i]   highest version to drop
//
// Returns the number of entries each flow still owes.
var ackOutboxScript = redis.NewScript(`
local res = {}
for i = 1, #KEYS - 1 do
  local key = KEYS[i + 1]
  local id = ARGV[3 * i - 2]
  local from = tonumber(ARGV[3 * i - 1])
  local upto = tonumber(ARGV[3 * i])
  local entries = redis.call('LRANGE', key, '0', '-1')
  local keep = {}
  local first = 0
  local dropped = 0
  for j, e in ipairs(entries) do
    local sep = string.find(e, ':', 1, true)
    local v = sep and tonumber(string.sub(e, 1, sep - 1))
    if v and v >= from and v <= upto then
      if first == 0 then first = j end
      dropped = dropped + 1
    else
      keep[#keep + 1] = e
    end
  end
  if #keep == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
  elseif dropped > 0 then
    if first == 1 then
      redis.call('LTRIM', key, dropped, '-1')
    else
      redis.call('DEL', key)
      for _, e in ipairs(keep) do
        redis.call('RPUSH', key, e)
      end
    end
  end
  res[i] = #keep
end
return res
`)
