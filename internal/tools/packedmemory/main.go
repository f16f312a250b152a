// Command packedmemory measures what a closed flow would cost in Redis in
// the packed layout docs/closed-flows.md proposes: fingerprints as fields of
// listpack hashes of about 100 entries, one PEXPIRE per hash. It writes to
// the Redis at -redis after FLUSHALL: give it a server of its own.
//
//	redis-server --port 46999 --save '' --appendonly no --daemonize yes
//	go run ./internal/tools/packedmemory -redis 127.0.0.1:46999
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

func used(ctx context.Context, c *redis.Client) int64 {
	s := c.Info(ctx, "memory").Val()
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// put writes n entries of fieldLen/valLen bytes into hashes of perKey
// entries, keys named like the design's, each with a PEXPIREAT.
func put(ctx context.Context, c *redis.Client, kind string, n, perKey, valLen int) {
	subs := (n + perKey - 1) / perKey
	p := c.Pipeline()
	buf := make([]byte, 8)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(buf, rand.Uint64())
		fp := rand.Uint64()
		sub := int(fp % uint64(subs))
		sh := sub % 16
		key := fmt.Sprintf("fallback{%d}:%s:29533120:%d", sh, kind, sub)
		val := make([]byte, valLen)
		for j := range val {
			val[j] = byte(rand.Uint32())
		}
		p.HSet(ctx, key, string(buf), string(val))
		if p.Len() >= 1000 {
			p.Exec(ctx)
		}
	}
	p.Exec(ctx)
	for sub := 0; sub < subs; sub++ {
		p.PExpire(ctx, fmt.Sprintf("fallback{%d}:%s:29533120:%d", sub%16, kind, sub), 3600_000_000)
		if p.Len() >= 1000 {
			p.Exec(ctx)
		}
	}
	p.Exec(ctx)
}

func main() {
	ctx := context.Background()
	addr := flag.String("redis", "", "host:port of a Redis this tool may FLUSHALL")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "packedmemory: -redis host:port of a Redis of its own is required (it is flushed)")
		os.Exit(2)
	}
	c := redis.NewClient(&redis.Options{Addr: *addr})
	for _, tc := range []struct {
		kind         string
		n, per, vlen int
	}{
		{"cf", 1_000_000, 100, 3},  // request fingerprint -> flow.Compact (outcome and steps sent, closing step, delivered bitmap)
		{"cp", 2_000_000, 100, 11}, // provider-id fingerprint -> request fp, shard, step
		{"cr", 2_000_000, 100, 6},  // provider-id fingerprint -> 32 bits of the request fp, shard, step
		{"cq", 2_000_000, 100, 3},  // provider-id fingerprint -> shard, step (no request fp)
	} {
		c.FlushAll(ctx)
		before := used(ctx, c)
		put(ctx, c, tc.kind, tc.n, tc.per, tc.vlen)
		after := used(ctx, c)
		enc := c.ObjectEncoding(ctx, fmt.Sprintf("fallback{0}:%s:29533120:0", tc.kind)).Val()
		fmt.Printf("%s: %d entries, %d per key, %d-byte values: %.1f B/entry (encoding %s)\n", tc.kind, tc.n, tc.per, tc.vlen, float64(after-before)/float64(tc.n), enc)
	}
}
