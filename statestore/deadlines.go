package statestore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimDueScript takes up to limit due deadlines of one shard and leases
// them: their score moves to the lease end, so no other instance claims them
// until then, and if this claimer dies they come due again by themselves.
// The records come back with the claim, so firing a flow reads it once.
//
// KEYS[1] deadline sorted set   <prefix>{<shard>}:dl
// ARGV[1] now in unix ms
// ARGV[2] lease end in unix ms
// ARGV[3] limit (at most maxBulk)
// ARGV[4] flow key prefix of the shard  <prefix>{<shard>}:f:
//
// Returns a flat array, three items per claimed flow: request id, due score
// before the claim, record. Members whose record is gone are removed and
// not returned.
//
// The records' keys are built from the prefix in ARGV rather than declared
// in KEYS, because they are only known after the ZRANGEBYSCORE. They carry
// the same hash tag as KEYS[1], so they are in the same slot and Redis
// Cluster accepts them (asynq relies on the same property).
var claimDueScript = redis.NewScript(bulkLua + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', '0', ARGV[3])
if #due == 0 then return {} end
local keys = {}
for i = 1, #due, 2 do keys[#keys + 1] = ARGV[4] .. due[i] end
local recs = redis.call('MGET', unpack(keys))
local out, lease, gone = {}, {}, {}
for j, rec in ipairs(recs) do
  local id = due[2 * j - 1]
  if rec then
    lease[#lease + 1] = ARGV[2]
    lease[#lease + 1] = id
    out[#out + 1] = id
    out[#out + 1] = due[2 * j]
    out[#out + 1] = rec
  else
    gone[#gone + 1] = id
  end
end
bulk('ZADD', KEYS[1], lease)
bulk('ZREM', KEYS[1], gone)
return out
`)

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
	return s.ClaimDueShards(ctx, nil, now, lease, limitPerShard)
}

// ClaimDueShards is ClaimDue over the given shards (nil: every shard) in
// one pipeline, with limit per shard. A sweeper that knows which shards
// have a deadline due (DueByShard) claims only those: each shard claimed
// is a script call, whether or not anything is due in it.
func (s *Store) ClaimDueShards(ctx context.Context, shards []int, now time.Time, lease time.Duration, limitPerShard int) ([]Snapshot, error) {
	if shards == nil {
		shards = make([]int, s.cfg.Shards)
		for i := range shards {
			shards[i] = i
		}
	}
	for _, sh := range shards {
		if sh < 0 || sh >= s.cfg.Shards {
			return nil, fmt.Errorf("statestore: claim due: shard %d out of range [0,%d)", sh, s.cfg.Shards)
		}
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
		if len(vals)%3 != 0 {
			return nil, fmt.Errorf("statestore: claim due: unexpected reply length %d", len(vals))
		}
		for j := 0; j < len(vals); j += 3 {
			id := toString(vals[j])
			due, err := parseScore(vals[j+1])
			if err != nil {
				return nil, fmt.Errorf("statestore: claim due %q: %w", id, err)
			}
			snap, err := parseSnapshot(id, vals[j+2])
			if err != nil {
				return nil, fmt.Errorf("statestore: claim due %q: %w", id, err)
			}
			snap.Due = due
			out = append(out, snap)
		}
	}
	return out, nil
}

// NextDue returns the earliest deadline over all shards (leased ones count
// at their lease end), and false when there is none.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	due, err := s.DueByShard(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	next := Earliest(due)
	return next, !next.IsZero(), nil
}

// Earliest is the earliest of DueByShard's times, the zero time when no
// shard has a deadline.
func Earliest(due []time.Time) time.Time {
	var next time.Time
	for _, d := range due {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// DueByShard returns each shard's earliest deadline (leased ones count at
// their lease end), the zero time for a shard with none: one ZRANGE per
// shard, in one pipeline.
func (s *Store) DueByShard(ctx context.Context) ([]time.Time, error) {
	cmds := make([]*redis.ZSliceCmd, s.cfg.Shards)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.ZRangeWithScores(ctx, s.dlKey[i], 0, 0)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("statestore: next due: %w", err)
	}
	due := make([]time.Time, len(cmds))
	for i, c := range cmds {
		zs, err := c.Result()
		if err != nil {
			return nil, fmt.Errorf("statestore: next due: %w", err)
		}
		if len(zs) > 0 {
			due[i] = time.UnixMilli(int64(zs[0].Score))
		}
	}
	return due, nil
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
