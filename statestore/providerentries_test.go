package statestore

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProviderIDsOfACompactedFlowResolveToItsCompactEntry: a flow's
// provider ids follow it past its detail window. The move queues them,
// MoveProviderEntries packs them and drops their string keys, and a
// provider id alone then resolves to an attempt of the flow's CompactRef,
// which loads and changes the same compact entry as the request id.
func TestProviderIDsOfACompactedFlowResolveToItsCompactEntry(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s, ctx := e.s, ctxT(t)
	id := "pay-" + randHex(t, 4)
	shard := s.Shard(id)
	v := mustApplied(t, s, Change{RequestID: id, State: []byte("open"), Deadline: time.Now().Add(time.Hour)})
	refs := []ProviderRef{{ProviderID: "wamid:" + id, AttemptID: id + "/0", RequestID: id, Step: 0},
		{ProviderID: "sms{" + id + "}", AttemptID: id + "/1", RequestID: id, Step: 1}}
	if err := s.IndexProviderIDs(ctx, refs, time.Hour); err != nil {
		t.Fatal(err)
	}
	closeFlow(t, s, id, v, "closed")
	e.pass(2 * detail)
	if _, moved := compactShard(t, s, shard, fixedCompact("cp")); moved != 1 {
		t.Fatalf("moved %d flows, want 1", moved)
	}
	if n := e.rdb.Exists(ctx, s.piPrefix[shard]+id).Val(); n != 0 {
		t.Fatal("the flow's provider-id set outlived its move")
	}
	// Queued, not moved yet: the string keys still answer.
	got, err := s.ResolveProviderIDs(ctx, []string{refs[0].ProviderID})
	if err != nil || got[refs[0].ProviderID] != id+"/0" {
		t.Fatalf("resolved %v, %v before the provider entries moved; want the attempt id", got, err)
	}

	for range 2 { // a second round finds the queue empty
		if _, err := s.MoveProviderEntries(ctx, shard, 100); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range refs {
		if n := e.rdb.Exists(ctx, s.pmKey(r.ProviderID)).Val(); n != 0 {
			t.Fatalf("string key of %q still there after the move", r.ProviderID)
		}
	}
	if n := e.rdb.HLen(ctx, s.pqKey[shard]).Val(); n != 0 {
		t.Fatalf("%d provider ids still queued", n)
	}
	got, err = s.ResolveProviderIDs(ctx, []string{refs[0].ProviderID, refs[1].ProviderID, "never-sent"})
	if err != nil || len(got) != 2 {
		t.Fatalf("resolved %v, %v; want both provider ids", got, err)
	}
	if e.real() && !e.cluster() {
		ps := s.providerShard(refs[0].ProviderID)
		keys := e.rdb.Keys(ctx, s.cpPrefix[ps]+"*").Val()
		if len(keys) == 0 {
			t.Fatal("no packed provider entry")
		}
		for _, k := range keys {
			if enc := e.rdb.ObjectEncoding(ctx, k).Val(); enc != "listpack" {
				t.Fatalf("%s is a %s, want a listpack", k, enc)
			}
		}
	}
	ref, step, ok := strings.Cut(got[refs[1].ProviderID], "/")
	if !ok || step != "1" || !IsCompactRef(ref) || IsCompactRef(id) {
		t.Fatalf("resolved %q, want step 1 of a CompactRef", got[refs[1].ProviderID])
	}
	if s.Shard(ref) != shard {
		t.Fatalf("the CompactRef names shard %d, the flow is in %d", s.Shard(ref), shard)
	}
	snap := mustLoad(t, s, ref)
	if !snap.Compacted || snap.Version != 2 || string(snap.State) != "cp" {
		t.Fatalf("loaded %+v by CompactRef, want the compact entry at version 2", snap)
	}

	// A change through the CompactRef is the flow's: the request id sees
	// it, and a writer that read the entry by request id before conflicts.
	if v := mustApplied(t, s, Change{RequestID: ref, ExpectVersion: 2, FromCompact: true, State: []byte("cq"), Closed: true}); v != 3 {
		t.Fatalf("written through the CompactRef at version %d", v)
	}
	if snap := mustLoad(t, s, id); snap.Version != 3 || string(snap.State) != "cq" {
		t.Fatalf("the request id loads %+v, want the change made through its CompactRef", snap)
	}
	r := mustApply(t, s, Change{RequestID: id, ExpectVersion: 2, FromCompact: true, State: []byte("stale"), Closed: true})[0]
	if r.Applied || r.Current.Version != 3 {
		t.Fatalf("a stale write by request id: %+v", r)
	}
	if e.rdb.Exists(ctx, s.flowPrefix[shard]+ref).Val() != 0 {
		t.Fatal("a record was written under the CompactRef")
	}
}

// TestMovingProviderEntriesAgainChangesNothing: the move's steps are each
// safe to repeat, so a crash between writing the packed entries and
// clearing the queue (or two instances moving the same queue) leaves every
// provider id resolving to its flow, with nothing lost.
func TestMovingProviderEntriesAgainChangesNothing(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := compactEnv(t, detail)
	s, ctx := e.s, ctxT(t)
	id := "again-" + randHex(t, 4)
	shard := s.Shard(id)
	v := mustApplied(t, s, Change{RequestID: id, State: []byte("open"), Deadline: time.Now().Add(time.Hour)})
	ref := ProviderRef{ProviderID: "sms-" + id, AttemptID: id + "/0", RequestID: id}
	if err := s.IndexProviderIDs(ctx, []ProviderRef{ref}, time.Hour); err != nil {
		t.Fatal(err)
	}
	closeFlow(t, s, id, v, "closed")
	e.pass(2 * detail)
	compactShard(t, s, shard, fixedCompact("cz"))
	queued := e.rdb.HGetAll(ctx, s.pqKey[shard]).Val()
	if len(queued) != 1 {
		t.Fatalf("queued %v, want the flow's provider id", queued)
	}
	if _, err := s.MoveProviderEntries(ctx, shard, 100); err != nil {
		t.Fatal(err)
	}
	// As if the first mover died before its last step: the queue and the
	// string key are back.
	e.rdb.HSet(ctx, s.pqKey[shard], queued)
	e.rdb.Set(ctx, s.pmKey(ref.ProviderID), ref.AttemptID, time.Hour)
	if got, _ := s.ResolveProviderIDs(ctx, []string{ref.ProviderID}); got[ref.ProviderID] != id+"/0" {
		t.Fatalf("resolved %v with the string key back", got)
	}
	if n, err := s.MoveProviderEntries(ctx, shard, 100); err != nil || n != 1 {
		t.Fatalf("moved %d, %v the second time; want 1", n, err)
	}
	got, err := s.ResolveProviderIDs(ctx, []string{ref.ProviderID})
	if err != nil || len(got) != 1 {
		t.Fatalf("resolved %v, %v", got, err)
	}
	cref, _, _ := strings.Cut(got[ref.ProviderID], "/")
	if snap := mustLoad(t, s, cref); !snap.Compacted || string(snap.State) != "cz" {
		t.Fatalf("loaded %+v, want the flow's compact entry", snap)
	}

	// A provider id first reported after the move gets no list entry:
	// its string key alone keeps it (a record is never written again).
	late := ProviderRef{ProviderID: "late-" + id, AttemptID: id + "/1", RequestID: id, Step: 1}
	if err := s.IndexProviderIDs(ctx, []ProviderRef{late}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if e.rdb.Exists(ctx, s.piPrefix[shard]+id).Val() != 0 {
		t.Fatal("a provider id of a compacted flow was listed for a move that will not come")
	}
}

func TestCompactRefRoundTrips(t *testing.T) {
	fp := fingerprint("r-1")
	ref := compactRef(7, fp)
	sh, got, ok := parseCompactRef(ref)
	if !ok || sh != 7 || got != fp || flowFingerprint(ref) != fp || flowFingerprint("r-1") != fp {
		t.Fatalf("parsed %q as %d %x %v", ref, sh, got, ok)
	}
	for _, bad := range []string{"r-1", "\x00", "\x007", "\x00x:0011223344556677", "\x001:00112233"} {
		if _, _, ok := parseCompactRef(bad); ok {
			t.Fatalf("%q parsed as a CompactRef", bad)
		}
	}
}

// TestAProviderEntryMatchingTwoFlowsResolvesToNone: a packed provider
// entry keeps 32 bits of its flow's fingerprint. When two compact entries
// of the shard share them, the provider id resolves to nothing (an
// unknown attempt) rather than to either flow: a late delivery may go
// unreported, none is invented.
func TestAProviderEntryMatchingTwoFlowsResolvesToNone(t *testing.T) {
	const detail = 40 * time.Millisecond
	e := newEnv(t, Config{Shards: 1, TombstoneTTL: time.Hour, ClosedDetailTTL: detail})
	if e.mr != nil {
		e.mr.SetTime(time.Now())
	}
	s, ctx := e.s, ctxT(t)
	a, b := prefixTwins(t)
	for _, id := range []string{a, b} {
		v := mustApplied(t, s, Change{RequestID: id, State: []byte("open"), Deadline: time.Now().Add(time.Hour)})
		ref := ProviderRef{ProviderID: "pid-" + id, AttemptID: id + "/0", RequestID: id}
		if err := s.IndexProviderIDs(ctx, []ProviderRef{ref}, time.Hour); err != nil {
			t.Fatal(err)
		}
		closeFlow(t, s, id, v, "closed")
	}
	e.pass(2 * detail)
	if _, moved := compactShard(t, s, 0, fixedCompact("cx")); moved != 2 {
		t.Fatalf("moved %d, want both flows", moved)
	}
	if _, err := s.MoveProviderEntries(ctx, 0, 100); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResolveProviderIDs(ctx, []string{"pid-" + a, "pid-" + b})
	if err != nil || len(got) != 0 {
		t.Fatalf("resolved %v, %v; want nothing for two flows sharing 32 bits of fingerprint", got, err)
	}
}

// prefixTwins finds two request ids whose fingerprints share their first
// providerPrefixBytes bytes (a birthday search: about 2^16 ids).
func prefixTwins(t *testing.T) (string, string) {
	seen := map[string]string{}
	for i := range 1 << 22 {
		id := "twin-" + strconv.Itoa(i)
		p := fingerprint(id)[:providerPrefixBytes]
		if other, ok := seen[p]; ok {
			return other, id
		}
		seen[p] = id
	}
	t.Fatal("no two ids share a fingerprint prefix")
	return "", ""
}

// TestMovingProviderEntriesDrainsABigQueue: the queue of a busy shard is a
// hash bigger than a listpack, whose fields go as they move; calls take
// batches until none is left.
func TestMovingProviderEntriesDrainsABigQueue(t *testing.T) {
	const detail, flows, batch = 40 * time.Millisecond, 600, 50
	e := newEnv(t, Config{Shards: 1, TombstoneTTL: time.Hour, ClosedDetailTTL: detail})
	if e.mr != nil {
		e.mr.SetTime(time.Now())
	}
	s, ctx := e.s, ctxT(t)
	var refs []ProviderRef
	for i := range flows {
		id := "q-" + strconv.Itoa(i)
		v := mustApplied(t, s, Change{RequestID: id, State: []byte("open"), Deadline: time.Now().Add(time.Hour)})
		refs = append(refs, ProviderRef{ProviderID: "pid-" + id, AttemptID: id + "/0", RequestID: id})
		closeFlow(t, s, id, v, "closed")
	}
	if err := s.IndexProviderIDs(ctx, refs, time.Hour); err != nil {
		t.Fatal(err)
	}
	// IndexProviderIDs lists an id only while its flow has a record: the
	// flows closed above still have theirs.
	e.pass(2 * detail)
	moved := 0
	for {
		_, n := compactShard(t, s, 0, fixedCompact("cq"))
		if n == 0 {
			break
		}
		moved += n
	}
	if moved != flows {
		t.Fatalf("moved %d flows, want %d", moved, flows)
	}
	total := 0
	for calls := 0; ; calls++ {
		n, err := s.MoveProviderEntries(ctx, 0, batch)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			break
		}
		if calls > 2*flows/batch {
			t.Fatalf("still moving after %d calls", calls)
		}
	}
	if left, err := s.ProviderIDsWaiting(ctx); err != nil || left != 0 || total != flows {
		t.Fatalf("moved %d of %d, %d left (%v)", total, flows, left, err)
	}
}
