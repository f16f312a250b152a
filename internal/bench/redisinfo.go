package bench

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverInfo is what the bench reads from INFO on a real Redis.
type serverInfo struct {
	usedMemory int64
	lazyFree   int64            // objects still being freed in the background
	cpuMain    float64          // seconds of CPU of the main thread (user+sys)
	calls      map[string]int64 // commandstats: calls per command
}

// readInfo returns INFO memory and commandstats; ok is false where the
// server does not report them (miniredis).
func readInfo(ctx context.Context, rdb redis.UniversalClient) (serverInfo, bool) {
	info := serverInfo{calls: map[string]int64{}}
	text, err := rdb.Info(ctx, "memory", "commandstats", "cpu").Result()
	if err != nil {
		return info, false
	}
	found := false
	for line := range strings.SplitSeq(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, "lazyfree_pending_objects:"); ok {
			info.lazyFree, _ = strconv.ParseInt(v, 10, 64)
			continue
		}
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			info.usedMemory, _ = strconv.ParseInt(v, 10, 64)
			found = true
			continue
		}
		for _, f := range []string{"used_cpu_user_main_thread:", "used_cpu_sys_main_thread:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				x, _ := strconv.ParseFloat(v, 64)
				info.cpuMain += x
			}
		}
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				info.calls[name] = n
			}
		}
	}
	return info, found
}

func (a serverInfo) callsSince(b serverInfo) (total int64, per map[string]int64) {
	per = map[string]int64{}
	for name, n := range a.calls {
		if d := n - b.calls[name]; d > 0 {
			per[name] = d
			total += d
		}
	}
	return total, per
}

// CommandCounter is a go-redis hook counting the commands a client sends
// (each command of a pipeline counts): the client side of
// redis_commands_per_flow, which works on miniredis too.
type CommandCounter struct{ n atomic.Int64 }

func (c *CommandCounter) Count() int64 { return c.n.Load() }

func (c *CommandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// settle waits (up to a minute) until Redis has no objects left to free in
// the background, so a used_memory delta is not blurred by an earlier run's
// deletes.
func settle(ctx context.Context, rdb redis.UniversalClient) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if info, ok := readInfo(ctx, rdb); !ok || info.lazyFree == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
