package statestore

import (
	"errors"
	"testing"
	"time"
)

func TestCheckShardsRecordsTheFirstCountAndRefusesAnother(t *testing.T) {
	e := newEnv(t, Config{Shards: 24})
	ctx := ctxT(t)
	if err := e.s.CheckShards(ctx); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if err := e.s.CheckShards(ctx); err != nil {
		t.Fatalf("a restart with the same count: %v", err)
	}
	other := New(e.rdb, Config{Prefix: e.s.cfg.Prefix, Shards: 32})
	err := other.CheckShards(ctx)
	var refused *ShardsChangedError
	if !errors.As(err, &refused) || refused.Recorded != 24 || refused.Configured != 32 || refused.Legacy {
		t.Fatalf("another count: %v, want a refusal naming 24 recorded and 32 configured", err)
	}
	// The refusal leaves the recorded count alone.
	if err := e.s.CheckShards(ctx); err != nil {
		t.Fatalf("the first count after a refusal: %v", err)
	}
}

func TestCheckShardsOnALayoutFromBeforeTheSetting(t *testing.T) {
	// A build before the setting wrote 16 shards' keys and no layout key.
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	mustApplied(t, e.s, Change{RequestID: "in-flight", State: []byte("s"), Deadline: t0.Add(time.Minute)})
	if err := e.rdb.Del(ctx, e.s.layoutKey()).Err(); err != nil {
		t.Fatal(err)
	}
	more := New(e.rdb, Config{Prefix: e.s.cfg.Prefix, Shards: 64})
	var refused *ShardsChangedError
	if err := more.CheckShards(ctx); !errors.As(err, &refused) || refused.Recorded != 16 || !refused.Legacy {
		t.Fatalf("64 shards over an earlier build's flows: %v, want a refusal naming 16", err)
	}
	if err := e.s.CheckShards(ctx); err != nil {
		t.Fatalf("16 shards over an earlier build's flows: %v", err)
	}
	if n, err := e.rdb.HGet(ctx, e.s.layoutKey(), "shards").Int(); err != nil || n != 16 {
		t.Fatalf("layout key after the 16-shard start: %d %v", n, err)
	}
}

func TestCheckShardsOnAnEmptyPrefixTakesAnyCount(t *testing.T) {
	e := newEnv(t, Config{Shards: 64})
	if err := e.s.CheckShards(ctxT(t)); err != nil {
		t.Fatalf("64 shards on an empty prefix: %v", err)
	}
}
