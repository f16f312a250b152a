package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverInfo is what the bench reads from INFO on a real Redis.
type serverInfo struct {
	usedMemory int64
	memClients int64            // mem_clients_normal: normal clients' buffers, part of used_memory
	memAOF     int64            // mem_aof_buffer: the AOF buffer, part of used_memory
	lazyFree   int64            // objects still being freed in the background
	cpuMain    float64          // seconds of CPU of the main thread (user+sys)
	calls      map[string]int64 // commandstats: calls per command
}

// readInfo returns INFO memory and commandstats; ok is false where the
// server does not report them (miniredis). On a cluster it is the sum over
// the masters (the replicas' own work is not counted).
func readInfo(ctx context.Context, rdb redis.UniversalClient) (serverInfo, bool) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		text, err := rdb.Info(ctx, "memory", "commandstats", "cpu").Result()
		if err != nil {
			return serverInfo{calls: map[string]int64{}}, false
		}
		return parseInfo(text)
	}
	var mu sync.Mutex
	sum, all := serverInfo{calls: map[string]int64{}}, true
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		text, err := node.Info(ctx, "memory", "commandstats", "cpu").Result()
		if err != nil {
			return err
		}
		info, hasMemory := parseInfo(text)
		mu.Lock()
		defer mu.Unlock()
		sum.add(info)
		all = all && hasMemory
		return nil
	})
	return sum, err == nil && all
}

// add adds o's counters and memory to i.
func (i *serverInfo) add(o serverInfo) {
	i.usedMemory += o.usedMemory
	i.memClients += o.memClients
	i.memAOF += o.memAOF
	i.lazyFree += o.lazyFree
	i.cpuMain += o.cpuMain
	for name, n := range o.calls {
		i.calls[name] += n
	}
}

// parseInfo reads the fields of serverInfo from INFO's text; hasMemory is
// false without used_memory.
func parseInfo(text string) (info serverInfo, hasMemory bool) {
	info.calls = map[string]int64{}
	ints := map[string]*int64{"used_memory": &info.usedMemory, "mem_clients_normal": &info.memClients,
		"mem_aof_buffer": &info.memAOF, "lazyfree_pending_objects": &info.lazyFree}
	for line := range strings.SplitSeq(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if name, v, found := strings.Cut(line, ":"); found {
			if p := ints[name]; p != nil {
				*p, _ = strconv.ParseInt(v, 10, 64)
				hasMemory = hasMemory || name == "used_memory"
				continue
			}
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
	return info, hasMemory
}

// dataMemory is used_memory without the clients' and the AOF buffers,
// which follow the connections and the write traffic of the moment, not
// what is stored.
func (a serverInfo) dataMemory() int64 { return a.usedMemory - a.memClients - a.memAOF }

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

// settledInfo reads INFO once Redis has settled: nothing left to free in
// the background (settle) and dataMemory within 4 KiB over 250 ms, for at
// most 10 s. hasMemory is false where Redis reports no memory (miniredis);
// stable is false when the 10 s ran out first (the last reading is
// returned).
func settledInfo(ctx context.Context, rdb redis.UniversalClient) (info serverInfo, hasMemory, stable bool) {
	settle(ctx, rdb)
	prev, hasMemory := readInfo(ctx, rdb)
	if !hasMemory {
		return prev, false, false
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return prev, true, false
		case <-time.After(250 * time.Millisecond):
		}
		cur, ok := readInfo(ctx, rdb)
		if !ok {
			return prev, true, false
		}
		if d := cur.dataMemory() - prev.dataMemory(); cur.lazyFree == 0 && d <= 4096 && d >= -4096 {
			return cur, true, true
		}
		prev = cur
	}
	return prev, true, false
}

// waitNothingOwed waits (at most limit) until no shard of the state store
// owes outputs to Kafka: its owed sorted set <prefix>{<shard>}:ob and owed
// hash <prefix>{<shard>}:ox are gone (Redis deletes an emptied set or hash;
// a layout without :ox has none). One EXISTS per key, so it runs on Redis
// Cluster too.
func waitNothingOwed(ctx context.Context, rdb redis.UniversalClient, prefix string, shards int, limit time.Duration) bool {
	keys := make([]string, 0, 2*shards)
	for s := range shards {
		tag := prefix + "{" + strconv.Itoa(s) + "}"
		keys = append(keys, tag+":ob", tag+":ox")
	}
	deadline := time.Now().Add(limit)
	for {
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Exists(ctx, k)
			}
			return nil
		})
		owed := err != nil
		for _, c := range cmds {
			if n, err := c.(*redis.IntCmd).Result(); err != nil || n > 0 {
				owed = true
				break
			}
		}
		if !owed {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// keyMemory counts the keys matching a SCAN pattern and sums their MEMORY
// USAGE with SAMPLES 0 (exact: the value, the key name and the keyspace
// entry, not the expiry entry). A key SCAN returns twice counts once; one
// gone by the time it is measured (expired) counts not at all.
func keyMemory(ctx context.Context, rdb redis.UniversalClient, match string) (keys, bytes int64, err error) {
	seen := map[uint64]struct{}{}
	seed := maphash.MakeSeed()
	var cursor uint64
	for {
		batch, next, err := rdb.Scan(ctx, cursor, match, 5000).Result()
		if err != nil {
			return 0, 0, err
		}
		batch = slices.DeleteFunc(batch, func(k string) bool {
			h := maphash.String(seed, k)
			_, dup := seen[h]
			seen[h] = struct{}{}
			return dup
		})
		if len(batch) > 0 {
			pipe := rdb.Pipeline()
			cmds := make([]*redis.IntCmd, len(batch))
			for i, k := range batch {
				cmds[i] = pipe.MemoryUsage(ctx, k, 0)
			}
			_, _ = pipe.Exec(ctx) // each command's error is looked at below
			for _, c := range cmds {
				n, err := c.Result()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					return 0, 0, fmt.Errorf("MEMORY USAGE: %w", err)
				}
				keys++
				bytes += n
			}
		}
		if next == 0 {
			return keys, bytes, nil
		}
		cursor = next
	}
}
