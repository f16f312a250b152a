package statestore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Input watermarks: for each partition of the input topics, how far in time
// the processors have read it (every record published before the watermark
// is applied and durable). They live in one hash shared by all instances,
//
//	<prefix>{wm}:watermarks  hash "<topic>/<partition>" -> unix ms
//
// and only ever move forward: an instance that lost a partition in a
// rebalance and writes late cannot move it back, and what it writes was
// true when it read it.

// advanceWatermarksScript raises each given watermark to the given value,
// leaving those already further on untouched: one HMGET and at most one
// HSET, whatever the number of partitions (a batch usually moves several).
//
// KEYS[1] watermark hash   <prefix>{wm}:watermarks
// ARGV    pairs: field ("<topic>/<partition>"), unix ms
var advanceWatermarksScript = redis.NewScript(`
local fields = {}
for i = 1, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
local cur = redis.call('HMGET', KEYS[1], unpack(fields))
local raise = {}
for j, f in ipairs(fields) do
  local v = ARGV[2 * j]
  if not cur[j] or tonumber(cur[j]) < tonumber(v) then
    raise[#raise + 1] = f
    raise[#raise + 1] = v
  end
end
if #raise > 0 then redis.call('HSET', KEYS[1], unpack(raise)) end
return 0
`)

// PartitionRef names one partition of a topic.
type PartitionRef struct {
	Topic     string
	Partition int32
}

func (p PartitionRef) field() string { return p.String() }

// String is "topic/partition", as the watermarks hash names it.
func (p PartitionRef) String() string { return p.Topic + "/" + strconv.Itoa(int(p.Partition)) }

func (s *Store) watermarkKey() string { return s.cfg.Prefix + "{wm}:watermarks" }

// AdvanceWatermarks raises the watermarks of the given partitions to the
// given times (unless they are already further on), in one atomic step.
func (s *Store) AdvanceWatermarks(ctx context.Context, marks map[PartitionRef]time.Time) error {
	if len(marks) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(marks))
	for p, t := range marks {
		args = append(args, p.field(), strconv.FormatInt(t.UnixMilli(), 10))
	}
	calls := []scriptCall{{script: advanceWatermarksScript, keys: []string{s.watermarkKey()}, args: args}}
	if err := s.runScripts(ctx, calls); err != nil {
		return fmt.Errorf("statestore: advance watermarks: %w", err)
	}
	return nil
}

// Watermarks returns every partition's watermark. A partition never read
// has none.
func (s *Store) Watermarks(ctx context.Context) (map[PartitionRef]time.Time, error) {
	raw, err := s.c.HGetAll(ctx, s.watermarkKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("statestore: read watermarks: %w", err)
	}
	out := make(map[PartitionRef]time.Time, len(raw))
	for field, v := range raw {
		ref, ok := parsePartitionRef(field)
		ms, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("statestore: read watermarks: bad entry %q = %q", field, v)
		}
		out[ref] = time.UnixMilli(ms)
	}
	return out, nil
}

func parsePartitionRef(field string) (PartitionRef, bool) {
	for i := len(field) - 1; i > 0; i-- {
		if field[i] == '/' {
			n, err := strconv.ParseInt(field[i+1:], 10, 32)
			if err != nil || n < 0 {
				return PartitionRef{}, false
			}
			return PartitionRef{Topic: field[:i], Partition: int32(n)}, true
		}
	}
	return PartitionRef{}, false
}
