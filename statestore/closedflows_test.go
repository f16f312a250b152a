package statestore

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"
)

// compactEnv is a store that compacts closed flows after detail, on a
// tombstone TTL of an hour.
func compactEnv(tb testing.TB, detail time.Duration) *testEnv {
	tb.Helper()
	e := newEnv(tb, Config{TombstoneTTL: time.Hour, ClosedDetailTTL: detail})
	if e.mr != nil {
		e.mr.SetTime(time.Now())
	}
	return e
}

// pass lets d go by on the store's Redis clock: miniredis's is set, a real
// one's runs.
func (e *testEnv) pass(d time.Duration) {
	if e.mr != nil {
		e.mr.SetTime(time.Now().Add(d))
		e.mr.FastForward(d)
		return
	}
	time.Sleep(d)
}

// closeFlow writes a closed flow (version 1 when new).
func closeFlow(tb testing.TB, s *Store, id string, expect int64, blob string) int64 {
	tb.Helper()
	return mustApplied(tb, s, Change{RequestID: id, ExpectVersion: expect, State: []byte(blob), Closed: true})
}

// compactShard moves every flow of shard whose detail window is over,
// with the blob compactOf gives, and returns how many moved.
func compactShard(tb testing.TB, s *Store, shard int, compactOf func(ClosedFlow) []byte) (claimed, moved int) {
	tb.Helper()
	flows, err := s.ListClosed(ctxT(tb), shard, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	moves := make([]CompactMove, 0, len(flows))
	for _, f := range flows {
		m := CompactMove{RequestID: f.RequestID, Version: f.Version, ClosedAtMS: f.ClosedAtMS}
		if f.Exists {
			m.Compact = compactOf(f)
		}
		moves = append(moves, m)
	}
	n, err := s.CompactClosed(ctxT(tb), shard, moves)
	if err != nil {
		tb.Fatal(err)
	}
	return len(flows), n
}

func fixedCompact(blob string) func(ClosedFlow) []byte {
	return func(ClosedFlow) []byte { return []byte(blob) }
}

// TestClosedFlowMovesToItsCompactEntry: a closed flow keeps its record for
// the detail window, then its compact entry stands for it: Load returns
// it with the record's version, and a change of it rewrites the entry in
// place at the next version (event ids are made of versions: none
// repeats), writing no record and owing its outputs like a record would.
func TestClosedFlowMovesToItsCompactEntry(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s, shard := e.s, e.s.Shard("a")
	closeFlow(t, s, "a", 0, "closed-a")

	if claimed, _ := compactShard(t, s, shard, fixedCompact("ca")); claimed != 0 {
		t.Fatalf("claimed %d flows inside their detail window", claimed)
	}
	e.pass(2 * detail)
	flows, err := s.ListClosed(ctxT(t), shard, 10)
	if err != nil || len(flows) != 1 || flows[0].RequestID != "a" || flows[0].Version != 1 || string(flows[0].State) != "closed-a" {
		t.Fatalf("claimed %+v, %v; want flow a at version 1", flows, err)
	}
	if claimed, moved := compactShard(t, s, shard, fixedCompact("ca")); claimed != 1 || moved != 1 {
		t.Fatalf("claimed %d, moved %d; want 1 and 1", claimed, moved)
	}
	if n := e.rdb.Exists(ctxT(t), s.flowKey("a")).Val(); n != 0 {
		t.Fatal("the record is still there after the move")
	}
	snap := mustLoad(t, s, "a")
	if !snap.Exists || !snap.Compacted || snap.Version != 1 || string(snap.State) != "ca" {
		t.Fatalf("loaded %+v, want the compact entry at version 1", snap)
	}
	if claimed, _ := compactShard(t, s, shard, fixedCompact("ca")); claimed != 0 {
		t.Fatalf("claimed %d flows after the move", claimed)
	}

	// A late input changes it: the entry, in place, at version 2; a second
	// writer that read the compact entry too loses the compare-and-set.
	fromCompact := Change{RequestID: "a", ExpectVersion: 1, FromCompact: true, State: []byte("cb"), Closed: true,
		Outbox: [][]byte{[]byte("late event")}, OutboxRetryAt: time.Now().Add(time.Minute)}
	if v := mustApplied(t, s, fromCompact); v != 2 {
		t.Fatalf("written from the compact entry at version %d, want 2", v)
	}
	if r := mustApply(t, s, fromCompact)[0]; r.Applied || !r.Current.Compacted || r.Current.Version != 2 {
		t.Fatalf("a second write from the same compact entry: %+v", r)
	}
	if n := e.rdb.Exists(ctxT(t), s.flowKey("a")).Val(); n != 0 {
		t.Fatal("a change of a compact flow wrote its record")
	}
	if snap := mustLoad(t, s, "a"); !snap.Compacted || snap.Version != 2 || string(snap.State) != "cb" {
		t.Fatalf("loaded %+v after the change, want the compact entry at version 2", snap)
	}
	if !e.rdb.HExists(ctxT(t), s.oxKey[shard], "a:2").Val() {
		t.Fatal("the change's outputs are not in the outbox")
	}
	// The next change finds them still owed and returns them first.
	next := Change{RequestID: "a", ExpectVersion: 2, FromCompact: true, State: []byte("cc"), Closed: true,
		Outbox: [][]byte{[]byte("another")}, OutboxRetryAt: time.Now().Add(time.Minute)}
	if r := mustApply(t, s, next)[0]; !r.Applied || r.Version != 3 || len(r.Owed) != 1 || r.Owed[0].Version != 2 {
		t.Fatalf("a change after an unacked one: %+v, want version 3 returning version 2's outputs", r)
	}
	if claimed, _ := compactShard(t, s, shard, fixedCompact("cd")); claimed != 0 {
		t.Fatalf("claimed %d flows changed in place", claimed)
	}

	// A flow never written is still not found.
	if snap := mustLoad(t, s, "never"); snap.Exists {
		t.Fatalf("a flow never written loads as %+v", snap)
	}
}

// TestCompactMoveIsFencedByVersion: a flow written between its claim and
// its move stays whole; one that still owes outputs waits for their ack.
func TestCompactMoveIsFencedByVersion(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s, shard := e.s, e.s.Shard("b")
	closeFlow(t, s, "b", 0, "v1")
	e.pass(2 * detail)
	flows, err := s.ListClosed(ctxT(t), shard, 10)
	if err != nil || len(flows) != 1 {
		t.Fatalf("claimed %+v, %v", flows, err)
	}
	closeFlow(t, s, "b", 1, "v2") // a late DLR rewrote it meanwhile
	n, err := s.CompactClosed(ctxT(t), shard, []CompactMove{{RequestID: "b", Version: 1, Compact: []byte("old"), ClosedAtMS: flows[0].ClosedAtMS}})
	if err != nil || n != 0 {
		t.Fatalf("moved %d (%v) a flow written since its claim", n, err)
	}
	if snap := mustLoad(t, s, "b"); snap.Compacted || string(snap.State) != "v2" {
		t.Fatalf("loaded %+v, want the record v2", snap)
	}
	// Its close time is the first close: the next round moves it.
	if _, moved := compactShard(t, s, shard, fixedCompact("new")); moved != 1 {
		t.Fatalf("moved %d, want 1", moved)
	}

	owing := "owes"
	mustApplied(t, s, Change{RequestID: owing, State: []byte("x"), Closed: true, Outbox: [][]byte{[]byte("event")},
		OutboxRetryAt: time.Now().Add(time.Minute)})
	e.pass(4 * detail)
	if _, moved := compactShard(t, s, s.Shard(owing), fixedCompact("c")); moved != 0 {
		t.Fatal("moved a flow that still owes outputs")
	}
	if err := s.AckOutbox(ctxT(t), []OutboxAck{{RequestID: owing, Versions: []int64{1}}}); err != nil {
		t.Fatal(err)
	}
	// Acked: its record still names version 1 (acks do not rewrite
	// records), but the outbox no longer has it.
	if _, moved := compactShard(t, s, s.Shard(owing), fixedCompact("c")); moved != 1 {
		t.Fatal("an acked flow was not moved")
	}
}

// TestCompactBucketsStayListpacks: a shard's closed flows spread over
// sub-keys of under 128 entries each (Redis's default listpack bound),
// each with an expiry, and every flow loads from its entry: also when the
// bucket was sized for a first few flows and many more came (waves of 20,
// then 180, then 1,800 within one bucket's span).
func TestCompactBucketsStayListpacks(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s := e.s
	const flows = 2000
	moved, n := 0, 0
	for _, wave := range []int{20, 180, 1800} {
		for range wave {
			closeFlow(t, s, fmt.Sprintf("f%d", n), 0, "closed")
			n++
		}
		e.pass(2 * detail)
		for shard := range s.Shards() {
			_, m := compactShard(t, s, shard, func(f ClosedFlow) []byte { return []byte("c" + f.RequestID) })
			moved += m
		}
	}
	if moved != flows {
		t.Fatalf("moved %d of %d", moved, flows)
	}
	keys, subKeys := 0, 0
	for shard := range s.Shards() {
		var cursor uint64
		for {
			batch, next, err := e.rdb.Scan(ctxT(t), cursor, s.cfPrefix(shard)+"*", 1000).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range batch {
				subKeys++
				if n := e.rdb.HLen(ctxT(t), k).Val(); n > 128 {
					t.Fatalf("%s holds %d entries, past the listpack bound", k, n)
				}
				if ttl := e.rdb.PTTL(ctxT(t), k).Val(); ttl <= 0 || ttl > time.Hour+time.Hour/bucketsPerTTL {
					t.Fatalf("%s expires in %s, want within the TTL and a bucket", k, ttl)
				}
				if e.real() {
					if enc := e.rdb.ObjectEncoding(ctxT(t), k).Val(); enc != "listpack" && enc != "ziplist" {
						t.Fatalf("%s is encoded %s", k, enc)
					}
				}
				keys += int(e.rdb.HLen(ctxT(t), k).Val())
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	if keys != flows || subKeys < flows/128 {
		t.Fatalf("%d entries in %d sub-keys for %d flows", keys, subKeys, flows)
	}
	for i := 0; i < flows; i += 97 {
		id := fmt.Sprintf("f%d", i)
		if snap := mustLoad(t, s, id); !snap.Compacted || string(snap.State) != "c"+id {
			t.Fatalf("%s loads as %+v", id, snap)
		}
	}
}

// TestNoCompactionByDefault: without a detail window nothing is indexed
// and closed flows keep their records.
func TestNoCompactionByDefault(t *testing.T) {
	e := newEnv(t, Config{TombstoneTTL: time.Hour})
	closeFlow(t, e.s, "a", 0, "closed")
	if n := e.rdb.Exists(ctxT(t), e.s.clKey(e.s.Shard("a"))).Val(); n != 0 {
		t.Fatal("a closed set was written without compaction")
	}
	if flows, err := e.s.ListClosed(ctxT(t), 0, 10); err != nil || len(flows) != 0 {
		t.Fatalf("claimed %v, %v", flows, err)
	}
	err := Config{TombstoneTTL: time.Hour, ClosedDetailTTL: time.Hour}.Validate()
	if err == nil || !strings.Contains(err.Error(), "shorter than the tombstone TTL") {
		t.Fatalf("a detail window as long as the tombstone: %v", err)
	}
}

// TestAChangeReadBeforeTheMoveConflictsWithTheCompactEntry: a writer that
// read a flow's record before the compactor moved it conflicts with the
// compact entry, never with nothing (it would start a duplicate request's
// flow again); one that read a compact entry changed since conflicts with
// the newer one (its version would repeat an event id).
func TestAChangeReadBeforeTheMoveConflictsWithTheCompactEntry(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s, shard := e.s, e.s.Shard("m")
	closeFlow(t, s, "m", 0, "whole")
	e.pass(2 * detail)
	if _, moved := compactShard(t, s, shard, fixedCompact("c1")); moved != 1 {
		t.Fatal("not moved")
	}
	// Read at version 1 before the move, written after it.
	r := mustApply(t, s, Change{RequestID: "m", ExpectVersion: 1, State: []byte("late"), Closed: true})[0]
	if r.Applied || !r.Current.Exists || !r.Current.Compacted || r.Current.Version != 1 || string(r.Current.State) != "c1" {
		t.Fatalf("a write from the record moved since: %+v", r)
	}

	// Two writers read the compact entry at version 1; the first writes;
	// the second conflicts with what it wrote.
	first := Change{RequestID: "m", ExpectVersion: 1, FromCompact: true, State: []byte("c2"), Closed: true}
	if v := mustApplied(t, s, first); v != 2 {
		t.Fatalf("first at version %d", v)
	}
	second := Change{RequestID: "m", ExpectVersion: 1, FromCompact: true, State: []byte("second"), Closed: true}
	r = mustApply(t, s, second)[0]
	if r.Applied || !r.Current.Compacted || r.Current.Version != 2 || string(r.Current.State) != "c2" {
		t.Fatalf("a write from a compact entry changed since: %+v", r)
	}
	// From the current entry it applies, at version 3.
	second.ExpectVersion = 2
	if v := mustApplied(t, s, second); v != 3 {
		t.Fatalf("second at version %d", v)
	}
}

// TestFingerprintIsFNV1a: the hand-written hash is hash/fnv's FNV-1a, so
// an entry written by one build is found by another.
func TestFingerprintIsFNV1a(t *testing.T) {
	for _, id := range []string{"", "r1", "order-2026-12-07/42", "ünïcödé"} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(id))
		var want [8]byte
		binary.BigEndian.PutUint64(want[:], h.Sum64())
		if got := fingerprint(id); got != string(want[:]) {
			t.Errorf("fingerprint(%q) = %x, want %x", id, got, want)
		}
	}
}
