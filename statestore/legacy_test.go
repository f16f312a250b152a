package statestore

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// writeLegacy writes a flow the way the layout before string records did:
// a hash {v, s}, a deadline member when it is active, and for owed outputs
// a list plus an owed-set member keyed by the request id alone.
func (e *testEnv) writeLegacy(tb testing.TB, id string, version int64, state string, active, owes bool) {
	tb.Helper()
	ctx := ctxT(tb)
	sh := e.s.Shard(id)
	if err := e.rdb.HSet(ctx, e.s.flowKey(id), "v", strconv.FormatInt(version, 10), "s", state).Err(); err != nil {
		tb.Fatal(err)
	}
	if active {
		e.rdb.ZAdd(ctx, e.s.dlKey[sh], redisZ(t0, id))
	}
	if owes {
		e.rdb.ZAdd(ctx, e.s.obKey[sh], redisZ(t0, id))
	}
}

func TestLegacyFlowsFound(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	// The new layout alone: nothing found.
	mustApplied(t, e.s, Change{RequestID: "new", State: []byte("s"), Deadline: t0, Outbox: [][]byte{[]byte("o")}, OutboxRetryAt: t0})
	if n, err := e.s.LegacyFlows(ctx); err != nil || n != 0 {
		t.Fatalf("new layout only: %d %v", n, err)
	}
	// An old tombstone (no deadline, nothing owed) is not a flow in flight.
	e.writeLegacy(t, "old-closed", 3, "tomb", false, false)
	if n, err := e.s.LegacyFlows(ctx); err != nil || n != 0 {
		t.Fatalf("old tombstone: %d %v", n, err)
	}
	e.writeLegacy(t, "old-active", 1, "active", true, false)
	if n, err := e.s.LegacyFlows(ctx); err != nil || n != 1 {
		t.Fatalf("old active flow: %d %v, want 1", n, err)
	}
	e.writeLegacy(t, "old-owing", 2, "closed", false, true)
	if n, err := e.s.LegacyFlows(ctx); err != nil || n != 2 {
		t.Fatalf("old owing flow: %d %v, want 2", n, err)
	}
}

// An old flow's record is read by the compare-and-set: a duplicate of its
// request conflicts with it (and sees its state), and the next write
// replaces the hash with a string record.
func TestLegacyRecordReadAndReplaced(t *testing.T) {
	e := newEnv(t, Config{TombstoneTTL: time.Hour})
	e.writeLegacy(t, "old", 4, "tomb", false, false)
	r := mustApply(t, e.s, Change{RequestID: "old", State: []byte("dup")})[0]
	if r.Applied || r.Current.Version != 4 || string(r.Current.State) != "tomb" {
		t.Fatalf("duplicate of an old flow: %+v", r)
	}
	v := mustApplied(t, e.s, Change{RequestID: "old", ExpectVersion: 4, State: []byte("tomb2"), Closed: true})
	if got := mustLoad(t, e.s, "old"); !got.Exists || got.Version != v || string(got.State) != "tomb2" {
		t.Fatalf("after the write: %+v", got)
	}
	if typ := e.rdb.Type(ctxT(t), e.s.flowKey("old")).Val(); typ != "string" {
		t.Fatalf("record is a %s after its write", typ)
	}
}

func redisZ(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}
