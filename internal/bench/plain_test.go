package bench

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func miniRedis(t *testing.T) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

// One batch of the plain loop leaves each flow closed: its state a
// tombstone with the processor's TTL, its deadline gone, after 11 commands
// per flow and one ZRANGEBYSCORE for the batch.
func TestPlainBatchClosesEveryFlow(t *testing.T) {
	mr, rdb := miniRedis(t)
	var values [4][]byte
	for i := range values {
		values[i] = make([]byte, plainValueBytes)
		values[i][0] = byte('0' + i)
	}
	p := plainLoop{rdb: rdb, tag: "plt{0}", values: &values}
	ids := []string{plainID(0), plainID(1), plainID(123456)}
	for _, id := range ids {
		if len(id) != 13 {
			t.Fatalf("id %q is %d bytes, want 13", id, len(id))
		}
	}
	sent, err := p.batch(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(11*len(ids) + 1); sent != want {
		t.Errorf("%d commands, want %d", sent, want)
	}
	if mr.Exists("plt{0}:dl") {
		t.Errorf("deadlines left: %v", mr.Keys())
	}
	for _, id := range ids {
		k := p.flowKey(id)
		if v, err := mr.Get(k); err != nil || v != string(values[3]) {
			t.Errorf("%s = %.8q (%v), want the closing state", k, v, err)
		}
		if ttl := mr.TTL(k); ttl != plainTombstone {
			t.Errorf("%s TTL %s, want %s", k, ttl, plainTombstone)
		}
	}
}

// The whole ceiling counts its commands and removes every key it wrote.
func TestRedisPlainCeiling(t *testing.T) {
	mr, rdb := miniRedis(t)
	mr.Set("other", "kept")
	const flows, conns, depth = 100, 3, 16
	got, err := redisPlainCeiling(context.Background(), rdb, "plt", flows, conns, depth)
	if err != nil {
		t.Fatal(err)
	}
	// 34, 34 and 32 flows: 3, 3 and 2 batches, one ZRANGEBYSCORE each.
	if want := float64(11*flows+8) / flows; got.commandsPerFlow != want {
		t.Errorf("%g commands per flow, want %g", got.commandsPerFlow, want)
	}
	if got.flowsPerSec <= 0 {
		t.Errorf("%g flows/s", got.flowsPerSec)
	}
	if keys := mr.Keys(); len(keys) != 1 || keys[0] != "other" {
		t.Errorf("keys left: %v", keys)
	}
}

func TestParseInfo(t *testing.T) {
	text := "# Memory\r\nused_memory:1234567\r\nused_memory_human:1.18M\r\nmem_clients_normal:20504\r\n" +
		"mem_aof_buffer:8\r\nlazyfree_pending_objects:3\r\n# CPU\r\nused_cpu_sys_main_thread:1.5\r\n" +
		"used_cpu_user_main_thread:2.25\r\n# Commandstats\r\ncmdstat_get:calls=42,usec=10,usec_per_call=0.24\r\n" +
		"cmdstat_evalsha:calls=7,usec=100,usec_per_call=14.29\r\n"
	info, ok := parseInfo(text)
	if !ok || info.usedMemory != 1234567 || info.memClients != 20504 || info.memAOF != 8 || info.lazyFree != 3 {
		t.Errorf("memory: %+v, %v", info, ok)
	}
	if info.dataMemory() != 1234567-20504-8 {
		t.Errorf("dataMemory %d", info.dataMemory())
	}
	if info.cpuMain != 3.75 || info.calls["get"] != 42 || info.calls["evalsha"] != 7 {
		t.Errorf("cpu %g, calls %v", info.cpuMain, info.calls)
	}
	if _, ok := parseInfo("# Clients\r\nconnected_clients:1\r\n"); ok {
		t.Error("no used_memory, but ok")
	}
}

// waitNothingOwed waits for both owed structures of every shard, whatever
// their type, and gives up at its limit.
func TestWaitNothingOwed(t *testing.T) {
	mr, rdb := miniRedis(t)
	ctx := context.Background()
	if !waitNothingOwed(ctx, rdb, "pfx", 4, time.Second) {
		t.Fatal("nothing is owed, but it waited")
	}
	for _, k := range []string{"pfx{3}:ob", "pfx{2}:ox"} {
		mr.Set(k, "x")
		if waitNothingOwed(ctx, rdb, "pfx", 4, 200*time.Millisecond) {
			t.Errorf("%s is there, but nothing owed", k)
		}
		go func() { time.Sleep(100 * time.Millisecond); mr.Del(k) }()
		if !waitNothingOwed(ctx, rdb, "pfx", 4, 5*time.Second) {
			t.Errorf("%s was removed, but still owed", k)
		}
	}
}
