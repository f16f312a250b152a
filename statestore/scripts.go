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

// applyScript is the only way a flow changes: a compare-and-set on the
// version that writes the state, the deadline and the owed outputs at once.
//
// KEYS[1] flow hash             <prefix>{<shard>}:f:<id>
// KEYS[2] deadline sorted set   <prefix>{<shard>}:dl
// KEYS[3] outbox list           <prefix>{<shard>}:o:<id>
// KEYS[4] owed sorted set       <prefix>{<shard>}:ob
// ARGV[1] request id (the member in both sorted sets)
// ARGV[2] expected version; "0" means the flow must not exist
// ARGV[3] new version (ARGV[2]+1)
// ARGV[4] state blob
// ARGV[5] deadline in unix ms, "" to remove the flow from the deadline set
// ARGV[6] "1" when the change closes the flow
// ARGV[7] tombstone TTL in ms (used when ARGV[6] is "1")
// ARGV[8] outbox retry-at in unix ms (used when there are entries)
// ARGV[9..] outbox entries, stored as "<new version>:<bytes>"
//
// Returns {1, new version} when applied, or {0, current version, current
// state or false} on a version conflict, so the caller recomputes without
// another round trip.
var applyScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[2] then
  return {0, cur, redis.call('HGET', KEYS[1], 's')}
end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 's', ARGV[4])
if ARGV[6] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('PERSIST', KEYS[1])
  if ARGV[5] == '' then
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  end
end
if #ARGV > 8 then
  for i = 9, #ARGV do
    redis.call('RPUSH', KEYS[3], ARGV[3] .. ':' .. ARGV[i])
  end
  local at = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if (not at) or tonumber(at) > tonumber(ARGV[8]) then
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1])
  end
end
return {1, ARGV[3]}
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

// ackOutboxScript drops the owed entries whose version is in
// [ARGV[2], ARGV[3]] and forgets the flow in the owed set once nothing is
// left. Entries are in version order (Apply appends under the version
// guard), so the acked ones are one contiguous run. Acking twice is a no-op.
//
// KEYS[1] outbox list           <prefix>{<shard>}:o:<id>
// KEYS[2] owed sorted set       <prefix>{<shard>}:ob
// ARGV[1] request id
// ARGV[2] lowest version to drop ("0": from the head)
// ARGV[3] highest version to drop
//
// Returns the number of entries still owed.
var ackOutboxScript = redis.NewScript(`
local from = tonumber(ARGV[2])
local upto = tonumber(ARGV[3])
local entries = redis.call('LRANGE', KEYS[1], '0', '-1')
local keep = {}
local first = 0
local dropped = 0
for i, e in ipairs(entries) do
  local sep = string.find(e, ':', 1, true)
  local v = sep and tonumber(string.sub(e, 1, sep - 1))
  if v and v >= from and v <= upto then
    if first == 0 then first = i end
    dropped = dropped + 1
  else
    keep[#keep + 1] = e
  end
end
if #keep == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif dropped > 0 then
  if first == 1 then
    redis.call('LTRIM', KEYS[1], dropped, '-1')
  else
    redis.call('DEL', KEYS[1])
    for _, e in ipairs(keep) do
      redis.call('RPUSH', KEYS[1], e)
    end
  end
end
return #keep
`)

// indexProviderScript records which attempt a provider message id belongs
// to, so a DLR that only carries the provider's id can be resolved.
//
// KEYS[1] index key             <prefix>:pm:{<provider message id>}
// ARGV[1] attempt id
// ARGV[2] TTL in ms
//
// Returns 1.
var indexProviderScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)
