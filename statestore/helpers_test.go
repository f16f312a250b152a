package statestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// testEnv is a Store on miniredis, or on the real Redis named by
// FALLBACK_REDIS_URL (or the Redis Cluster named by FALLBACK_REDIS_CLUSTER_URL)
// with a random prefix whose keys are deleted at cleanup.
type testEnv struct {
	s   *Store
	rdb redis.UniversalClient
	mr  *miniredis.Miniredis // nil on real Redis
}

const (
	realRedisEnv = "FALLBACK_REDIS_URL"
	// clusterEnv names a Redis Cluster, e.g.
	// redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002
	clusterEnv = "FALLBACK_REDIS_CLUSTER_URL"
)

func newEnv(tb testing.TB, cfg Config) *testEnv {
	tb.Helper()
	var rdb redis.UniversalClient
	if url := os.Getenv(clusterEnv); url != "" {
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			tb.Fatalf("parse %s: %v", clusterEnv, err)
		}
		rdb = redis.NewClusterClient(opt)
	} else if url := os.Getenv(realRedisEnv); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			tb.Fatalf("parse %s: %v", realRedisEnv, err)
		}
		rdb = redis.NewClient(opt)
	}
	if rdb != nil {
		cfg.Prefix = "fbtest" + randHex(tb, 6)
		prefix := cfg.Prefix
		tb.Cleanup(func() {
			deletePrefix(tb, rdb, prefix)
			_ = rdb.Close()
		})
		return &testEnv{s: New(rdb, cfg), rdb: rdb}
	}
	mr := miniredis.RunT(tb)
	rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	tb.Cleanup(func() { _ = rdb.Close() })
	return &testEnv{s: New(rdb, cfg), rdb: rdb, mr: mr}
}

func (e *testEnv) real() bool { return e.mr == nil }

func (e *testEnv) cluster() bool {
	_, ok := e.rdb.(*redis.ClusterClient)
	return ok
}

func randHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func deletePrefix(tb testing.TB, rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// SCAN sees one node only.
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			deletePrefix(tb, node, prefix)
			return nil
		})
		return
	}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			tb.Logf("cleanup scan %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			// UNLINK per key: on a cluster the keys are in different slots.
			pipe := rdb.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				tb.Logf("cleanup unlink: %v", err)
			}
		}
		if next == 0 {
			return
		}
		cursor = next
	}
}

// hashTag returns the part of key Redis Cluster hashes: the content of the
// first {...} when it is not empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

var t0 = time.UnixMilli(1_700_000_000_000)

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func mustApply(tb testing.TB, s *Store, chs ...Change) []ApplyResult {
	tb.Helper()
	res, err := s.Apply(ctxT(tb), chs)
	if err != nil {
		tb.Fatalf("apply: %v", err)
	}
	return res
}

func mustApplied(tb testing.TB, s *Store, ch Change) int64 {
	tb.Helper()
	r := mustApply(tb, s, ch)[0]
	if !r.Applied {
		tb.Fatalf("apply %s expect v%d: conflict, current v%d", ch.RequestID, ch.ExpectVersion, r.Current.Version)
	}
	return r.Version
}

func mustLoad(tb testing.TB, s *Store, id string) Snapshot {
	tb.Helper()
	snaps, err := s.Load(ctxT(tb), []string{id})
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	return snaps[0]
}

// deadlineOf returns the flow's score in the deadline set.
func (e *testEnv) deadlineOf(tb testing.TB, id string) (time.Time, bool) {
	tb.Helper()
	score, err := e.rdb.ZScore(ctxT(tb), e.s.dlKey[e.s.Shard(id)], id).Result()
	if err == redis.Nil {
		return time.Time{}, false
	}
	if err != nil {
		tb.Fatalf("zscore: %v", err)
	}
	return time.UnixMilli(int64(score)), true
}

// owedAt returns the retry-at of a flow version's owed outputs.
func (e *testEnv) owedAt(tb testing.TB, id string, version int64) (time.Time, bool) {
	tb.Helper()
	score, err := e.rdb.ZScore(ctxT(tb), e.s.obKey[e.s.Shard(id)], owedField(id, version)).Result()
	if err == redis.Nil {
		return time.Time{}, false
	}
	if err != nil {
		tb.Fatalf("zscore: %v", err)
	}
	return time.UnixMilli(int64(score)), true
}

// owedVersions lists the flow's versions with outputs in the outbox hash,
// and checks that the owed set lists the same ones.
func (e *testEnv) owedVersions(tb testing.TB, id string) []int64 {
	tb.Helper()
	ctx := ctxT(tb)
	sh := e.s.Shard(id)
	fields, err := e.rdb.HKeys(ctx, e.s.oxKey[sh]).Result()
	if err != nil {
		tb.Fatalf("hkeys: %v", err)
	}
	var out []int64
	for _, f := range fields {
		if fid, v, ok := parseOwedField(f); ok && fid == id {
			out = append(out, v)
			if _, ok := e.owedAt(tb, id, v); !ok {
				tb.Fatalf("%s v%d owed but not in the owed set", id, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

func ids(snaps []Snapshot) []string {
	out := make([]string, len(snaps))
	for i, s := range snaps {
		out[i] = s.RequestID
	}
	return out
}
