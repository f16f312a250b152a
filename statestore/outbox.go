package statestore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The outputs a change owes Kafka are one field of the shard's outbox hash,
// "<request_id>:<version>", with the same member in the shard's owed set
// scored by its retry-at. A writer acks exactly the versions it produced
// with a plain HDEL and ZREM (no script: the field names the version, so an
// ack can never drop a newer change's outputs). The outputs of one change
// are packed into the field as uvarint-length-prefixed records.

func packOutputs(outputs [][]byte) []byte {
	n := 0
	for _, o := range outputs {
		n += binary.MaxVarintLen32 + len(o)
	}
	b := make([]byte, 0, n)
	for _, o := range outputs {
		b = binary.AppendUvarint(b, uint64(len(o)))
		b = append(b, o...)
	}
	return b
}

func unpackOutputs(version int64, b []byte) ([]OutboxEntry, error) {
	var out []OutboxEntry
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, fmt.Errorf("bad outbox entry of version %d", version)
		}
		out = append(out, OutboxEntry{Version: version, Data: b[w : w+int(n)]})
		b = b[w+int(n):]
	}
	return out, nil
}

// claimOwedScript takes up to limit owed changes of one shard that are past
// their retry-at and leases them like claimDueScript does.
//
// KEYS[1] owed sorted set       <prefix>{<shard>}:ob
// KEYS[2] outbox hash           <prefix>{<shard>}:ox
// ARGV[1] now in unix ms
// ARGV[2] lease end in unix ms
// ARGV[3] limit (at most maxBulk)
//
// Returns a flat array, two items per claimed change: its field
// ("<request_id>:<version>") and its outputs. Members whose outputs were
// acked meanwhile are removed and not returned.
var claimOwedScript = redis.NewScript(bulkLua + `
local owed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[3])
if #owed == 0 then return {} end
local data = redis.call('HMGET', KEYS[2], unpack(owed))
local out, lease, gone = {}, {}, {}
for j, f in ipairs(owed) do
  if data[j] then
    lease[#lease + 1] = ARGV[2]
    lease[#lease + 1] = f
    out[#out + 1] = f
    out[#out + 1] = data[j]
  else
    gone[#gone + 1] = f
  end
end
bulk('ZADD', KEYS[1], lease)
bulk('ZREM', KEYS[1], gone)
return out
`)

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
// changes whose owed outputs are past their retry-at and leases them until
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
			keys:   []string{s.obKey[i], s.oxKey[i]},
			args:   []any{nowMS, until, limitPerShard},
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
		if len(vals)%2 != 0 {
			return nil, fmt.Errorf("statestore: claim owed: unexpected reply length %d", len(vals))
		}
		byID := map[string]int{} // request id -> index into out
		for j := 0; j < len(vals); j += 2 {
			f := toString(vals[j])
			id, v, ok := parseOwedField(f)
			if !ok {
				return nil, fmt.Errorf("statestore: claim owed: bad field %.40q", f)
			}
			entries, err := unpackOutputs(v, toBytes(vals[j+1]))
			if err != nil {
				return nil, fmt.Errorf("statestore: claim owed %q: %w", id, err)
			}
			k, ok := byID[id]
			if !ok {
				k = len(out)
				byID[id] = k
				out = append(out, OwedOutputs{RequestID: id})
			}
			out[k].Entries = append(out[k].Entries, entries...)
		}
	}
	for i := range out {
		// Stable: the records of one version keep their order.
		slices.SortStableFunc(out[i].Entries, func(a, b OutboxEntry) int { return cmp.Compare(a.Version, b.Version) })
	}
	return out, nil
}

// OutboxAck says which changes of a flow have their outputs in Kafka.
//
// A writer acks exactly the versions it produced: its own, and the older
// ones Apply returned to it. Other older entries may belong to a writer
// that has not produced them yet, or died: only a recoverer that re-emitted
// them may ack those.
type OutboxAck struct {
	RequestID string
	Versions  []int64
}

// AckOutbox drops acked outputs: per shard touched, one HDEL and one ZREM,
// all in one pipeline. Acking again is a no-op.
func (s *Store) AckOutbox(ctx context.Context, acks []OutboxAck) error {
	if len(acks) == 0 {
		return nil
	}
	for _, a := range acks {
		if a.RequestID == "" {
			return errors.New("statestore: ack outbox: empty request id")
		}
	}
	groups := groupByShard(s, acks, func(a OutboxAck) string { return a.RequestID })
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sh := range groups.shards {
			var fields []string
			for _, i := range groups.members[sh] {
				for _, v := range acks[i].Versions {
					fields = append(fields, owedField(acks[i].RequestID, v))
				}
			}
			for lo := 0; lo < len(fields); lo += maxBulk {
				chunk := fields[lo:min(lo+maxBulk, len(fields))]
				members := make([]any, len(chunk))
				for j, f := range chunk {
					members[j] = f
				}
				p.HDel(ctx, s.oxKey[sh], chunk...)
				p.ZRem(ctx, s.obKey[sh], members...)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("statestore: ack outbox: %w", err)
	}
	return nil
}

// PendingOutbox is the number of changes whose outputs are owed and not
// yet acked.
func (s *Store) PendingOutbox(ctx context.Context) (int64, error) {
	n, err := s.sumZCard(ctx, s.obKey)
	if err != nil {
		return 0, fmt.Errorf("statestore: pending outbox: %w", err)
	}
	return n, nil
}
