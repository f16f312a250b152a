package statestore

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks run on miniredis unless FALLBACK_REDIS_URL names a real Redis;
// miniredis numbers measure the client side and the scripts' logic, not a
// server.

// BenchmarkApply measures the compare-and-set; the wait=1 cases (each
// master's calls end with WAIT 1, Config.WaitReplicas) need a Redis with
// a replica per master: a master with a replica (FALLBACK_REDIS_URL) or the
// cluster of scripts/services-up.sh --cluster (FALLBACK_REDIS_CLUSTER_URL),
// where they show what --redis-wait-replicas costs.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct{ batch, wait int }{{1, 0}, {100, 0}, {1, 1}, {100, 1}} {
		batch := bc.batch
		b.Run(fmt.Sprintf("batch=%d/wait=%d", batch, bc.wait), func(b *testing.B) {
			e := newEnv(b, Config{WaitReplicas: bc.wait})
			if bc.wait > 0 {
				if r, err := DetectReplicas(ctxT(b), e.rdb); err != nil || r.Fewest < bc.wait {
					b.Skipf("needs %d replica(s) per master (%+v, %v): set %s or %s", bc.wait, r, err, realRedisEnv, clusterEnv)
				}
			}
			state := bytes.Repeat([]byte("s"), 256)
			changes := make([]Change, batch)
			for i := range changes {
				changes[i] = Change{RequestID: fmt.Sprintf("bench-%d", i), State: state}
			}
			ctx := ctxT(b)
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range changes {
					changes[i].Deadline = t0.Add(time.Duration(n) * time.Second)
				}
				res, err := e.s.Apply(ctx, changes)
				if err != nil {
					b.Fatal(err)
				}
				for i, r := range res {
					if !r.Applied {
						b.Fatalf("conflict on %s", changes[i].RequestID)
					}
					changes[i].ExpectVersion = r.Version
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "changes/s")
			if e.s.ReplicaShortfalls() > 0 {
				b.Fatalf("%d calls short of a replica", e.s.ReplicaShortfalls())
			}
		})
	}
}

// The processor's cycle per batch: apply with owed outputs, then ack them.
func BenchmarkApplyOutboxAck(b *testing.B) {
	const batch = 100
	e := newEnv(b, Config{})
	state := bytes.Repeat([]byte("s"), 256)
	out := [][]byte{bytes.Repeat([]byte("o"), 200), bytes.Repeat([]byte("e"), 200)}
	changes := make([]Change, batch)
	acks := make([]OutboxAck, batch)
	for i := range changes {
		changes[i] = Change{RequestID: fmt.Sprintf("bench-%d", i), State: state, Deadline: t0, Outbox: out, OutboxRetryAt: t0}
	}
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := e.s.Apply(ctx, changes)
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range res {
			if !r.Applied {
				b.Fatalf("conflict on %s", changes[i].RequestID)
			}
			changes[i].ExpectVersion = r.Version
			acks[i] = OutboxAck{RequestID: changes[i].RequestID, Versions: []int64{r.Version}}
		}
		if err := e.s.AckOutbox(ctx, acks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "changes/s")
}

// ClaimDueAll over 16 shards, 100 due flows each. The lease is 1ms and the
// clock moves 1ms per claim, so every claim takes the same 1600 flows again.
func BenchmarkClaimDue(b *testing.B) {
	const shards, perShard = 16, 100
	e := newEnv(b, Config{Shards: shards})
	state := bytes.Repeat([]byte("s"), 256)
	var changes []Change
	count := make([]int, shards)
	for i := 0; len(changes) < shards*perShard; i++ {
		id := fmt.Sprintf("bench-%d", i)
		if sh := e.s.Shard(id); count[sh] < perShard {
			count[sh]++
			changes = append(changes, Change{RequestID: id, State: state, Deadline: t0})
		}
	}
	ctx := ctxT(b)
	for i := 0; i < len(changes); i += 200 {
		mustApply(b, e.s, changes[i:min(i+200, len(changes))]...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		got, err := e.s.ClaimDueAll(ctx, t0.Add(time.Duration(n)*time.Millisecond), time.Millisecond, perShard)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != shards*perShard {
			b.Fatalf("claimed %d, want %d", len(got), shards*perShard)
		}
	}
	b.ReportMetric(float64(b.N*shards*perShard)/b.Elapsed().Seconds(), "claims/s")
}

// AckOutbox alone: each round applies a change owing two outputs per flow
// (not timed), then acks them (timed), as the processor does after Kafka
// acknowledged a batch.
func BenchmarkAckOutbox(b *testing.B) {
	const batch = 100
	e := newEnv(b, Config{})
	state := bytes.Repeat([]byte("s"), 110)
	out := [][]byte{bytes.Repeat([]byte("o"), 200), bytes.Repeat([]byte("e"), 150)}
	changes := make([]Change, batch)
	acks := make([]OutboxAck, batch)
	for i := range changes {
		changes[i] = Change{RequestID: fmt.Sprintf("bench-%d", i), State: state, Deadline: t0, Outbox: out, OutboxRetryAt: t0}
	}
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		res, err := e.s.Apply(ctx, changes)
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range res {
			changes[i].ExpectVersion = r.Version
			acks[i] = OutboxAck{RequestID: changes[i].RequestID, Versions: []int64{r.Version}}
		}
		b.StartTimer()
		if err := e.s.AckOutbox(ctx, acks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "acks/s")
}

// ClaimOwed over 16 shards, 100 owing flows each, two entries per flow. The
// lease is 1ms and the clock moves 1ms per claim, so every claim takes the
// same flows again (the recoverer's path after a crash).
func BenchmarkClaimOwed(b *testing.B) {
	const shards, perShard = 16, 100
	e := newEnv(b, Config{Shards: shards})
	state := bytes.Repeat([]byte("s"), 110)
	out := [][]byte{bytes.Repeat([]byte("o"), 200), bytes.Repeat([]byte("e"), 150)}
	var changes []Change
	count := make([]int, shards)
	for i := 0; len(changes) < shards*perShard; i++ {
		id := fmt.Sprintf("bench-%d", i)
		if sh := e.s.Shard(id); count[sh] < perShard {
			count[sh]++
			changes = append(changes, Change{RequestID: id, State: state, Deadline: t0, Outbox: out, OutboxRetryAt: t0})
		}
	}
	ctx := ctxT(b)
	for i := 0; i < len(changes); i += 200 {
		mustApply(b, e.s, changes[i:min(i+200, len(changes))]...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		got, err := e.s.ClaimOwed(ctx, t0.Add(time.Duration(n)*time.Millisecond), time.Millisecond, perShard)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != shards*perShard {
			b.Fatalf("claimed %d, want %d", len(got), shards*perShard)
		}
	}
	b.ReportMetric(float64(b.N*shards*perShard)/b.Elapsed().Seconds(), "claims/s")
}

// IndexProviderIDs: a batch's worth of provider message ids (one script per
// id, one pipeline).
func BenchmarkIndexProviderIDs(b *testing.B) {
	const batch = 100
	e := newEnv(b, Config{})
	refs := make([]ProviderRef, 0, batch)
	for i := range batch {
		refs = append(refs, ProviderRef{ProviderID: fmt.Sprintf("wamid.HBgLNDkxNTEyMzQ1Njc4FQIAERgSQjJDN0Y%05d", i),
			AttemptID: fmt.Sprintf("bench-%d/0", i), RequestID: fmt.Sprintf("bench-%d", i)})
	}
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.s.IndexProviderIDs(ctx, refs, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ids/s")
}

// TestMemoryPerFlow measures what an in-flight flow costs in Redis (state
// hash + its deadline entry). Real Redis only: miniredis has no allocator.
func TestMemoryPerFlow(t *testing.T) {
	e := newEnv(t, Config{})
	if !e.real() {
		t.Skip("set " + realRedisEnv + " to measure on a real Redis")
	}
	if e.cluster() {
		t.Skip("INFO memory would cover one node only")
	}
	ctx := ctxT(t)
	usedMemory := func() int64 {
		info := e.rdb.Info(ctx, "memory").Val()
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	for _, size := range []int{48, 256} {
		const flows = 20000
		state := bytes.Repeat([]byte("s"), size)
		before := usedMemory()
		batch := make([]Change, 0, 500)
		for i := range flows {
			batch = append(batch, Change{RequestID: fmt.Sprintf("mem-%d-%08d", size, i), State: state, Deadline: t0.Add(time.Duration(i) * time.Millisecond)})
			if len(batch) == cap(batch) {
				mustApply(t, e.s, batch...)
				batch = batch[:0]
			}
		}
		after := usedMemory()
		one := e.rdb.MemoryUsage(ctx, e.s.flowKey(fmt.Sprintf("mem-%d-%08d", size, 0))).Val()
		t.Logf("state %d B: %d B per in-flight flow (used_memory delta over %d flows); flow hash alone %d B (MEMORY USAGE)",
			size, (after-before)/flows, flows, one)
	}
}

// BenchmarkLoadMiss measures a Load of flows that do not exist (what every
// new request costs): one MGET when closed flows are kept whole, the load
// script probing every live compact bucket when they are compacted. With
// buckets=7 the shard holds the buckets of a steady rate (the tombstone
// TTL over bucketsPerTTL, and the one filling); 13 is what twelve buckets
// per TTL would probe. On a real Redis
// it reports the server's CPU per flow (INFO's used_cpu_user and
// used_cpu_sys delta: run it alone on that server).
func BenchmarkLoadMiss(b *testing.B) {
	for _, bc := range []struct {
		detail  time.Duration
		buckets int
	}{{0, 0}, {time.Minute, 0}, {time.Minute, 7}, {time.Minute, 13}} {
		b.Run(fmt.Sprintf("compact=%v/buckets=%d", bc.detail > 0, bc.buckets), func(b *testing.B) {
			e := newEnv(b, Config{Shards: 1, TombstoneTTL: time.Hour, ClosedDetailTTL: bc.detail})
			ctx := ctxT(b)
			span := e.s.bucketMS()
			now := time.Now().UnixMilli() / span
			for k := range bc.buckets {
				// As CompactClosed leaves a bucket: one generation of 10
				// sub-keys, each with entries.
				bucket := now - int64(k)
				if err := e.rdb.HSet(ctx, e.s.cmKey(0), strconv.FormatInt(bucket, 10), "10").Err(); err != nil {
					b.Fatal(err)
				}
				for sub := range 10 {
					key := e.s.cfPrefix(0) + strconv.FormatInt(bucket, 10) + ":0:" + strconv.Itoa(sub)
					if err := e.rdb.HSet(ctx, key, fingerprint(fmt.Sprintf("old-%d-%d", k, sub)), "3|\x05\x21\x0f\x00").Err(); err != nil {
						b.Fatal(err)
					}
				}
			}
			ids := make([]string, 100) // a batch's new requests in one shard
			cpu0 := redisCPU(b, e)
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range ids {
					ids[i] = "new-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
				}
				snaps, err := e.s.Load(ctx, ids)
				if err != nil || snaps[0].Exists {
					b.Fatalf("load: %v %+v", err, snaps[0])
				}
			}
			b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "flows/s")
			if e.real() {
				b.ReportMetric((redisCPU(b, e)-cpu0).Seconds()*1e6/float64(b.N*len(ids)), "redis-µs/flow")
			}
		})
	}
}

// redisCPU is the server's CPU time so far (INFO cpu), zero on miniredis.
func redisCPU(tb testing.TB, e *testEnv) time.Duration {
	if !e.real() {
		return 0
	}
	info, err := e.rdb.Info(ctxT(tb), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					tb.Fatal(err)
				}
				total += x
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}
