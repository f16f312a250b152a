package statestore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestApplyCreateThenConflict(t *testing.T) {
	e := newEnv(t, Config{})
	res := mustApply(t, e.s, Change{RequestID: "r1", State: []byte("one")})
	if !res[0].Applied || res[0].Version != 1 {
		t.Fatalf("create: %+v", res[0])
	}
	res = mustApply(t, e.s, Change{RequestID: "r1", State: []byte("again")})
	r := res[0]
	if r.Applied {
		t.Fatal("second create applied")
	}
	if !r.Current.Exists || r.Current.Version != 1 || string(r.Current.State) != "one" || r.Current.RequestID != "r1" {
		t.Fatalf("conflict current: %+v", r.Current)
	}
	if got := mustLoad(t, e.s, "r1"); string(got.State) != "one" || got.Version != 1 {
		t.Fatalf("state changed by a conflict: %+v", got)
	}
}

func TestApplyCASChain(t *testing.T) {
	e := newEnv(t, Config{})
	v := int64(0)
	for i := range 3 {
		v = mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: fmt.Appendf(nil, "s%d", i)})
		if v != int64(i+1) {
			t.Fatalf("version %d, want %d", v, i+1)
		}
	}
	got := mustLoad(t, e.s, "r1")
	if !got.Exists || got.Version != 3 || string(got.State) != "s2" {
		t.Fatalf("load: %+v", got)
	}
}

func TestApplyConflictReturnsCurrent(t *testing.T) {
	e := newEnv(t, Config{})
	// Expecting a version of a flow that does not exist.
	r := mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: 5, State: []byte("x")})[0]
	if r.Applied || r.Current.Exists || r.Current.Version != 0 || r.Current.State != nil {
		t.Fatalf("missing flow: %+v", r)
	}
	mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a")})
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: 1, State: []byte("b")})
	// A stale writer (computed from v1) loses and gets v2 back.
	r = mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: 1, State: []byte("stale"),
		Deadline: t0, Outbox: [][]byte{[]byte("o")}, OutboxRetryAt: t0})[0]
	if r.Applied || r.Current.Version != 2 || string(r.Current.State) != "b" {
		t.Fatalf("stale writer: %+v", r)
	}
	// ...and wrote nothing else either.
	if _, ok := e.deadlineOf(t, "r1"); ok {
		t.Fatal("conflict set a deadline")
	}
	if _, ok := e.owedAt(t, "r1", 3); ok {
		t.Fatal("conflict wrote the outbox")
	}
}

func TestApplyBatchMixed(t *testing.T) {
	e := newEnv(t, Config{})
	mustApplied(t, e.s, Change{RequestID: "b", State: []byte("b1")})
	res := mustApply(t, e.s,
		Change{RequestID: "a", State: []byte("a1")},
		Change{RequestID: "b", State: []byte("b-dup")}, // conflict
		Change{RequestID: "c", State: []byte("c1")},
	)
	if !res[0].Applied || res[1].Applied || !res[2].Applied {
		t.Fatalf("results: %+v", res)
	}
	if string(res[1].Current.State) != "b1" {
		t.Fatalf("conflict current: %+v", res[1].Current)
	}
}

func TestLoadOrderMissingAndBinary(t *testing.T) {
	e := newEnv(t, Config{})
	blob := []byte{0, ':', 0xff, '\n', '{', '}', 0, 1, 2}
	mustApplied(t, e.s, Change{RequestID: "x", State: blob})
	mustApplied(t, e.s, Change{RequestID: "z", State: []byte{}})
	snaps, err := e.s.Load(ctxT(t), []string{"z", "missing", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(snaps); !slices.Equal(got, []string{"z", "missing", "x"}) {
		t.Fatalf("order: %v", got)
	}
	if !snaps[0].Exists || len(snaps[0].State) != 0 {
		t.Fatalf("empty state: %+v", snaps[0])
	}
	if snaps[1].Exists || snaps[1].Version != 0 {
		t.Fatalf("missing: %+v", snaps[1])
	}
	if !snaps[2].Exists || !bytes.Equal(snaps[2].State, blob) {
		t.Fatalf("binary state: %q", snaps[2].State)
	}
	if snaps, err := e.s.Load(ctxT(t), nil); err != nil || snaps != nil {
		t.Fatalf("empty load: %v %v", snaps, err)
	}
}

func TestDeadlineSetMovedRemoved(t *testing.T) {
	e := newEnv(t, Config{})
	v := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Deadline: t0.Add(5 * time.Second)})
	if at, ok := e.deadlineOf(t, "r1"); !ok || !at.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("set: %v %v", at, ok)
	}
	v = mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: []byte("b"), Deadline: t0.Add(30 * time.Second)})
	if at, ok := e.deadlineOf(t, "r1"); !ok || !at.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("moved: %v %v", at, ok)
	}
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: []byte("c")})
	if _, ok := e.deadlineOf(t, "r1"); ok {
		t.Fatal("zero deadline did not remove it")
	}
	if n, err := e.s.PendingDeadlines(ctxT(t)); err != nil || n != 0 {
		t.Fatalf("pending: %d %v", n, err)
	}
}

func TestClosedTombstone(t *testing.T) {
	ttl := 10 * time.Minute
	e := newEnv(t, Config{TombstoneTTL: ttl})
	ctx := ctxT(t)
	v := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("open"), Deadline: t0})
	if pttl := e.rdb.PTTL(ctx, e.s.flowKey("r1")).Val(); pttl >= 0 {
		t.Fatalf("open flow has a TTL: %v", pttl)
	}
	v = mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: []byte("closed"),
		Deadline: t0.Add(time.Hour), // ignored: closed wins
		Closed:   true, Outbox: [][]byte{[]byte("final")}, OutboxRetryAt: t0})
	if _, ok := e.deadlineOf(t, "r1"); ok {
		t.Fatal("closed flow kept its deadline")
	}
	pttl := e.rdb.PTTL(ctx, e.s.flowKey("r1")).Val()
	if pttl <= 0 || pttl > ttl {
		t.Fatalf("tombstone TTL %v, want (0, %v]", pttl, ttl)
	}
	// The owed outputs outlive the tombstone: no TTL on the outbox.
	if pttl := e.rdb.PTTL(ctx, e.s.oxKey[e.s.Shard("r1")]).Val(); pttl != -1 {
		t.Fatalf("outbox TTL %v, want none (-1)", pttl)
	}
	// A late write that closes again (e.g. recording a discarded DLR)
	// keeps it a tombstone.
	v = mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: []byte("closed2"), Closed: true})
	if got := mustLoad(t, e.s, "r1"); !got.Exists || string(got.State) != "closed2" || got.Version != v {
		t.Fatalf("tombstone: %+v", got)
	}
	if e.real() {
		t.Log("real Redis: expiry itself not waited for")
		return
	}
	e.mr.FastForward(ttl + time.Millisecond)
	if got := mustLoad(t, e.s, "r1"); got.Exists {
		t.Fatalf("tombstone did not expire: %+v", got)
	}
	owed, err := e.s.ClaimOwed(ctx, t0.Add(time.Second), time.Minute, 10)
	if err != nil || len(owed) != 1 || len(owed[0].Entries) != 1 {
		t.Fatalf("outbox lost with the tombstone: %+v %v", owed, err)
	}
}

func TestNotClosedPersists(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	v := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Closed: true})
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v, State: []byte("b")})
	if pttl := e.rdb.PTTL(ctx, e.s.flowKey("r1")).Val(); pttl != -1 {
		t.Fatalf("TTL %v after a not-closed change, want none", pttl)
	}
}

func TestClaimDue(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	mustApplied(t, e.s, Change{RequestID: "early", State: []byte("e"), Deadline: t0})
	mustApplied(t, e.s, Change{RequestID: "mid", State: []byte("m"), Deadline: t0.Add(10 * time.Second)})
	mustApplied(t, e.s, Change{RequestID: "late", State: []byte("l"), Deadline: t0.Add(time.Minute)})
	lease := 30 * time.Second

	now := t0.Add(15 * time.Second)
	got, err := e.s.ClaimDueAll(ctx, now, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Snapshot) int { return a.Due.Compare(b.Due) })
	if g := ids(got); !slices.Equal(g, []string{"early", "mid"}) {
		t.Fatalf("claimed %v", g)
	}
	if !got[0].Due.Equal(t0) || !got[1].Due.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("due times %v %v", got[0].Due, got[1].Due)
	}
	if got[0].Version != 1 || string(got[0].State) != "e" || !got[0].Exists {
		t.Fatalf("snapshot %+v", got[0])
	}
	if at, _ := e.deadlineOf(t, "early"); !at.Equal(now.Add(lease)) {
		t.Fatalf("lease score %v, want %v", at, now.Add(lease))
	}

	// Another instance before the lease runs out gets nothing.
	if again, err := e.s.ClaimDueAll(ctx, now.Add(lease-time.Millisecond), lease, 100); err != nil || len(again) != 0 {
		t.Fatalf("claimed during the lease: %v %v", ids(again), err)
	}
	// The claimer died: after the lease the deadlines fire again, with the
	// lease end as their due time.
	after := now.Add(lease)
	again, err := e.s.ClaimDueAll(ctx, after, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(again); len(g) != 2 || !slices.Contains(g, "early") || !slices.Contains(g, "mid") {
		t.Fatalf("re-fired %v", g)
	}
	if !again[0].Due.Equal(after) {
		t.Fatalf("re-fired due %v, want %v", again[0].Due, after)
	}
}

func TestClaimDueLimitAndShard(t *testing.T) {
	e := newEnv(t, Config{Shards: 1})
	ctx := ctxT(t)
	for i := range 5 {
		mustApplied(t, e.s, Change{RequestID: fmt.Sprint("r", i), State: []byte("s"), Deadline: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	got, err := e.s.ClaimDue(ctx, 0, t0.Add(time.Second), time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); !slices.Equal(g, []string{"r0", "r1"}) {
		t.Fatalf("limit 2 claimed %v (want the earliest)", g)
	}
	got, err = e.s.ClaimDue(ctx, 0, t0.Add(time.Second), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); !slices.Equal(g, []string{"r2", "r3", "r4"}) {
		t.Fatalf("then %v", g)
	}
	if _, err := e.s.ClaimDue(ctx, 1, t0, time.Minute, 10); err == nil {
		t.Fatal("shard out of range accepted")
	}
	if _, err := e.s.ClaimDue(ctx, 0, t0, 0, 10); err == nil {
		t.Fatal("zero lease accepted")
	}
	if _, err := e.s.ClaimDue(ctx, 0, t0, time.Second, 0); err == nil {
		t.Fatal("zero limit accepted")
	}
}

func TestClaimedThenClosedNotReturned(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Deadline: t0})
	got, err := e.s.ClaimDueAll(ctx, t0, time.Second, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", ids(got), err)
	}
	// The sweeper fires it: the last step expired, the flow closes.
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: got[0].Version, State: []byte("closed"), Closed: true})
	if again, err := e.s.ClaimDueAll(ctx, t0.Add(time.Hour), time.Second, 10); err != nil || len(again) != 0 {
		t.Fatalf("closed flow claimed: %v %v", ids(again), err)
	}
	// A stale claimer firing the same deadline again is fenced.
	r := mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: got[0].Version, State: []byte("dup")})[0]
	if r.Applied {
		t.Fatal("stale claimer applied")
	}
}

func TestClaimDueDropsGoneFlows(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	mustApplied(t, e.s, Change{RequestID: "gone", State: []byte("a"), Deadline: t0})
	e.rdb.Del(ctx, e.s.flowKey("gone"))
	got, err := e.s.ClaimDueAll(ctx, t0, time.Second, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("claimed %v %v", ids(got), err)
	}
	if _, ok := e.deadlineOf(t, "gone"); ok {
		t.Fatal("orphan deadline kept")
	}
}

func TestNextDueAndPending(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	if _, ok, err := e.s.NextDue(ctx); err != nil || ok {
		t.Fatalf("empty: %v %v", ok, err)
	}
	// Spread over several shards so the minimum is taken across them.
	var earliest time.Time
	for i := range 20 {
		at := t0.Add(time.Duration(20-i) * time.Second)
		earliest = at
		mustApplied(t, e.s, Change{RequestID: fmt.Sprint("flow-", i), State: []byte("s"), Deadline: at})
	}
	shards := map[int]bool{}
	for i := range 20 {
		shards[e.s.Shard(fmt.Sprint("flow-", i))] = true
	}
	if len(shards) < 2 {
		t.Fatalf("test flows all in one shard")
	}
	at, ok, err := e.s.NextDue(ctx)
	if err != nil || !ok || !at.Equal(earliest) {
		t.Fatalf("next due %v %v %v, want %v", at, ok, err, earliest)
	}
	if n, err := e.s.PendingDeadlines(ctx); err != nil || n != 20 {
		t.Fatalf("pending %d %v", n, err)
	}
}

func TestOutbox(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	retry := t0.Add(30 * time.Second)
	bin := []byte{'7', ':', 0, 0xfe, ':', '|', ','}
	v1 := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"),
		Outbox: [][]byte{[]byte("send-0"), []byte("event-started")}, OutboxRetryAt: retry})
	r := mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: v1, State: []byte("b"),
		Outbox: [][]byte{bin}, OutboxRetryAt: retry.Add(time.Second)})[0]
	v2 := r.Version
	// v1 was not acked: the writer of v2 gets its outputs to produce first.
	if len(r.Owed) != 2 || r.Owed[0].Version != v1 || string(r.Owed[0].Data) != "send-0" || string(r.Owed[1].Data) != "event-started" {
		t.Fatalf("older owed %+v", r.Owed)
	}
	if at, ok := e.owedAt(t, "r1", v1); !ok || !at.Equal(retry) {
		t.Fatalf("v1 owed at %v %v, want %v", at, ok, retry)
	}
	if n, err := e.s.PendingOutbox(ctx); err != nil || n != 2 {
		t.Fatalf("pending outbox %d %v", n, err)
	}

	// Not yet due for a recoverer.
	if owed, err := e.s.ClaimOwed(ctx, retry.Add(-time.Millisecond), time.Minute, 10); err != nil || len(owed) != 0 {
		t.Fatalf("claimed before retry-at: %+v %v", owed, err)
	}

	// v1 is acked; v2 stays owed.
	for range 2 { // acking twice is a no-op
		if err := e.s.AckOutbox(ctx, []OutboxAck{{RequestID: "r1", Versions: []int64{v1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.owedVersions(t, "r1"); !slices.Equal(got, []int64{v2}) {
		t.Fatalf("owed versions %v, want [%d]", got, v2)
	}

	lease := time.Minute
	now := retry.Add(2 * time.Second)
	owed, err := e.s.ClaimOwed(ctx, now, lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(owed) != 1 || owed[0].RequestID != "r1" || len(owed[0].Entries) != 1 {
		t.Fatalf("owed %+v", owed)
	}
	if en := owed[0].Entries[0]; en.Version != v2 || !bytes.Equal(en.Data, bin) {
		t.Fatalf("entry %+v", en)
	}
	if at, _ := e.owedAt(t, "r1", v2); !at.Equal(now.Add(lease)) {
		t.Fatalf("lease score %v", at)
	}
	if again, err := e.s.ClaimOwed(ctx, now.Add(lease-time.Millisecond), lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed during lease: %+v %v", again, err)
	}
	// The recoverer died: after the lease another one gets them.
	if again, err := e.s.ClaimOwed(ctx, now.Add(lease), lease, 10); err != nil || len(again) != 1 {
		t.Fatalf("not re-claimed after lease: %+v %v", again, err)
	}

	if err := e.s.AckOutbox(ctx, []OutboxAck{{RequestID: "r1", Versions: []int64{v2}}}); err != nil {
		t.Fatal(err)
	}
	if got := e.owedVersions(t, "r1"); len(got) != 0 {
		t.Fatalf("still owed after everything was acked: %v", got)
	}
	if n, err := e.s.PendingOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("pending outbox %d %v", n, err)
	}
	if err := e.s.AckOutbox(ctx, []OutboxAck{{RequestID: "r1", Versions: []int64{v2}}, {RequestID: "never", Versions: []int64{9}}}); err != nil {
		t.Fatalf("ack of nothing: %v", err)
	}
	// A change after everything was acked gets nothing older back.
	if r := mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: v2, State: []byte("c"),
		Outbox: [][]byte{[]byte("c0")}, OutboxRetryAt: retry})[0]; !r.Applied || len(r.Owed) != 0 {
		t.Fatalf("after acks: %+v", r)
	}
}

// The recoverer gets every owed version of a flow, oldest first, each
// version's records in order.
func TestOutboxEntriesListed(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	v1 := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"),
		Outbox: [][]byte{[]byte("a0"), []byte("a1")}, OutboxRetryAt: t0})
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v1, State: []byte("b"),
		Outbox: [][]byte{[]byte("b0")}, OutboxRetryAt: t0})
	owed, err := e.s.ClaimOwed(ctx, t0, time.Minute, 10)
	if err != nil || len(owed) != 1 {
		t.Fatalf("%+v %v", owed, err)
	}
	var got []string
	for _, en := range owed[0].Entries {
		got = append(got, fmt.Sprintf("%d:%s", en.Version, en.Data))
	}
	if want := []string{"1:a0", "1:a1", "2:b0"}; !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
}

// An ack drops exactly the versions it names: the outputs of other
// versions, in particular of a writer that has not produced them yet, stay
// owed for it or the recoverer.
func TestOutboxExactVersionAck(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	v1 := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Outbox: [][]byte{[]byte("x")}, OutboxRetryAt: t0})
	v2 := mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v1, State: []byte("b"), Outbox: [][]byte{[]byte("y")}, OutboxRetryAt: t0})
	v3 := mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v2, State: []byte("c"), Outbox: [][]byte{[]byte("z")}, OutboxRetryAt: t0})
	// Middle, then tail, then head.
	for _, step := range []struct {
		v    int64
		left []int64
	}{{v2, []int64{v1, v3}}, {v3, []int64{v1}}, {v1, nil}} {
		if err := e.s.AckOutbox(ctx, []OutboxAck{{RequestID: "r1", Versions: []int64{step.v}}}); err != nil {
			t.Fatal(err)
		}
		if got := e.owedVersions(t, "r1"); !slices.Equal(got, step.left) {
			t.Fatalf("after ack v%d: %v, want %v", step.v, got, step.left)
		}
	}
}

// Older owed outputs are looked up through the record's list: acked ones
// drop out of it, and a change without outputs carries the list forward.
func TestOlderOwedThroughRecord(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	v1 := mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Outbox: [][]byte{[]byte("x")}, OutboxRetryAt: t0})
	v2 := mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: v1, State: []byte("b"), Outbox: [][]byte{[]byte("y")}, OutboxRetryAt: t0})
	if err := e.s.AckOutbox(ctx, []OutboxAck{{RequestID: "r1", Versions: []int64{v2}}}); err != nil {
		t.Fatal(err)
	}
	// No outputs: nothing is looked up or returned, v1 stays listed.
	r := mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: v2, State: []byte("c"), Deadline: t0})[0]
	if !r.Applied || len(r.Owed) != 0 {
		t.Fatalf("change without outputs: %+v", r)
	}
	r = mustApply(t, e.s, Change{RequestID: "r1", ExpectVersion: r.Version, State: []byte("d"), Outbox: [][]byte{[]byte("w")}, OutboxRetryAt: t0})[0]
	if !r.Applied || len(r.Owed) != 1 || r.Owed[0].Version != v1 || string(r.Owed[0].Data) != "x" {
		t.Fatalf("v1 still owed, got %+v", r)
	}
	rec := e.rdb.Get(ctx, e.s.flowKey("r1")).Val()
	if want := fmt.Sprintf("%d,%d,%d|d", r.Version, v1, r.Version); rec != want {
		t.Fatalf("record %q, want %q", rec, want)
	}
}

func TestProviderIndex(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	ttl := time.Hour
	refs := []ProviderRef{{ProviderID: "wamid.HBgL{x}", AttemptID: "r1/0", RequestID: "r1", Step: 0},
		{ProviderID: "sms-123", AttemptID: "r1/1", RequestID: "r1", Step: 1}}
	if err := e.s.IndexProviderIDs(ctx, refs, ttl); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ResolveProviderIDs(ctx, []string{"sms-123", "unknown", "wamid.HBgL{x}"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["sms-123"] != "r1/1" || got["wamid.HBgL{x}"] != "r1/0" {
		t.Fatalf("resolved %v", got)
	}
	if pttl := e.rdb.PTTL(ctx, e.s.pmKey("sms-123")).Val(); pttl <= 0 || pttl > ttl {
		t.Fatalf("index TTL %v", pttl)
	}
	if err := e.s.IndexProviderIDs(ctx, refs, 0); err == nil {
		t.Fatal("zero TTL accepted")
	}
	if e.real() {
		return
	}
	e.mr.FastForward(ttl)
	if got, err := e.s.ResolveProviderIDs(ctx, []string{"sms-123"}); err != nil || len(got) != 0 {
		t.Fatalf("after expiry %v %v", got, err)
	}
}

func TestKeysShareHashTag(t *testing.T) {
	e := newEnv(t, Config{Prefix: "fb", Shards: 16})
	if e.real() {
		// The prefix is random on real Redis; the layout is what matters.
		e = &testEnv{s: New(e.rdb, Config{Prefix: "fb"})}
	}
	s := e.s
	seen := map[string]bool{}
	for i := range 200 {
		id := fmt.Sprintf("req-%d", i)
		sh := s.Shard(id)
		keys := []string{s.flowKey(id), s.oxKey[sh], s.dlKey[sh], s.obKey[sh]}
		tag := hashTag(keys[0])
		if tag != fmt.Sprint(sh) {
			t.Fatalf("%s: tag %q, want shard %d", keys[0], tag, sh)
		}
		for _, k := range keys[1:] {
			if hashTag(k) != tag {
				t.Fatalf("%s and %s do not share a hash tag", keys[0], k)
			}
		}
		seen[tag] = true
	}
	if len(seen) != 16 {
		t.Fatalf("200 ids used %d of 16 shards", len(seen))
	}
	if k := s.flowKey("r1"); k != fmt.Sprintf("fb{%d}:f:r1", s.Shard("r1")) {
		t.Fatalf("flow key %q", k)
	}
	// Ids with braces must not change the tag (the shard's tag comes first).
	if hashTag(s.flowKey("{evil}")) != fmt.Sprint(s.Shard("{evil}")) {
		t.Fatal("braces in the request id changed the tag")
	}
	if k := s.pmKey("abc"); k != "fb:pm:{abc}" || hashTag(k) != "abc" {
		t.Fatalf("pm key %q", k)
	}
}

func TestConfig(t *testing.T) {
	s := New(nil, Config{})
	if c := s.Config(); c.Prefix != "fb" || c.Shards != 16 || c.TombstoneTTL != 24*time.Hour || s.Shards() != 16 {
		t.Fatalf("defaults %+v", c)
	}
	for _, bad := range []Config{{Prefix: "a{b"}, {Shards: -1}, {TombstoneTTL: -time.Second}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New with a bad config did not panic")
		}
	}()
	New(nil, Config{Prefix: "}"})
}

func TestApplyValidation(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	for _, ch := range []Change{
		{},
		{RequestID: "r", ExpectVersion: -1},
		{RequestID: "r", Outbox: [][]byte{[]byte("x")}},
	} {
		if _, err := e.s.Apply(ctx, []Change{ch}); err == nil {
			t.Errorf("%+v accepted", ch)
		}
	}
	if res, err := e.s.Apply(ctx, nil); err != nil || res != nil {
		t.Fatalf("empty apply %v %v", res, err)
	}
}

// The script cache is empty after a Redis restart or failover: EVALSHA
// fails with NOSCRIPT and the store must fall back to EVAL.
func TestScriptCacheFlushed(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	mustApplied(t, e.s, Change{RequestID: "r1", State: []byte("a"), Deadline: t0})
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := applyScript.EvalSha(ctx, e.rdb, []string{"x"}).Err(); !redis.HasErrorPrefix(err, "NOSCRIPT") {
		t.Fatalf("after SCRIPT FLUSH EVALSHA returned %v, want NOSCRIPT", err)
	}
	mustApplied(t, e.s, Change{RequestID: "r1", ExpectVersion: 1, State: []byte("b"), Deadline: t0})
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ClaimDueAll(ctx, t0, time.Second, 10)
	if err != nil || len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("claim after flush: %+v %v", got, err)
	}
}

func TestRedisDown(t *testing.T) {
	e := newEnv(t, Config{})
	if e.real() {
		t.Skip("needs miniredis")
	}
	e.mr.Close()
	// The client retries with backoff; a short deadline keeps the test fast.
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	if _, err := e.s.Apply(ctx, []Change{{RequestID: "r1", State: []byte("a")}}); err == nil {
		t.Fatal("apply with Redis down returned no error")
	}
	if _, err := e.s.Load(ctx, []string{"r1"}); err == nil {
		t.Fatal("load with Redis down returned no error")
	}
	if err := e.s.Ping(ctx); err == nil {
		t.Fatal("ping with Redis down returned no error")
	}
}

// Two appliers with the same expected version: exactly one wins, every
// time, and the losers see the winner's version.
func TestConcurrentAppliersOneWins(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	const workers, rounds = 8, 100
	ids := []string{"race-a", "race-b"}
	versions := map[string]int64{}
	for round := range rounds {
		id := ids[round%len(ids)]
		expect := versions[id]
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]ApplyResult, workers)
			errs    = make([]error, workers)
		)
		for w := range workers {
			wg.Go(func() {
				<-start
				res, err := e.s.Apply(ctx, []Change{{RequestID: id, ExpectVersion: expect,
					State: fmt.Appendf(nil, "w%d", w), Deadline: t0.Add(time.Duration(w) * time.Second),
					Outbox: [][]byte{fmt.Appendf(nil, "out-w%d", w)}, OutboxRetryAt: t0}})
				if err == nil {
					results[w] = res[0]
				}
				errs[w] = err
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w := range workers {
			if errs[w] != nil {
				t.Fatalf("round %d worker %d: %v", round, w, errs[w])
			}
			if results[w].Applied {
				if winner >= 0 {
					t.Fatalf("round %d: workers %d and %d both applied v%d", round, winner, w, expect)
				}
				winner = w
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody applied", round)
		}
		for w := range workers {
			if w != winner && (results[w].Current.Version != expect+1 || string(results[w].Current.State) != fmt.Sprintf("w%d", winner)) {
				t.Fatalf("round %d: loser %d saw %+v, winner w%d", round, w, results[w].Current, winner)
			}
		}
		// Only the winner's deadline and outputs were written.
		if at, _ := e.deadlineOf(t, id); !at.Equal(t0.Add(time.Duration(winner) * time.Second)) {
			t.Fatalf("round %d: deadline %v is not the winner's", round, at)
		}
		versions[id] = expect + 1
	}
	for _, id := range ids {
		if n := len(e.owedVersions(t, id)); n != rounds/len(ids) {
			t.Fatalf("%s: %d owed versions, want one per round", id, n)
		}
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t, Config{})
	if err := e.s.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// One call larger than a Lua unpack can take in one go: the scripts write
// in chunks.
func TestApplyAndClaimPastBulkLimit(t *testing.T) {
	e := newEnv(t, Config{Shards: 1})
	ctx := ctxT(t)
	const n = maxBulk + 1500
	changes := make([]Change, n)
	for i := range changes {
		changes[i] = Change{RequestID: fmt.Sprintf("bulk-%05d", i), State: []byte("s"), Deadline: t0,
			Outbox: [][]byte{[]byte("o")}, OutboxRetryAt: t0}
	}
	for i, r := range mustApply(t, e.s, changes...) {
		if !r.Applied {
			t.Fatalf("change %d not applied", i)
		}
	}
	if got, err := e.s.PendingDeadlines(ctx); err != nil || got != n {
		t.Fatalf("pending deadlines %d %v, want %d", got, err, n)
	}
	if got, err := e.s.PendingOutbox(ctx); err != nil || got != n {
		t.Fatalf("pending outbox %d %v, want %d", got, err, n)
	}
	claimed, err := e.s.ClaimDueAll(ctx, t0, time.Minute, maxBulk)
	if err != nil || len(claimed) != maxBulk {
		t.Fatalf("claimed %d %v, want %d", len(claimed), err, maxBulk)
	}
	if _, err := e.s.ClaimDueAll(ctx, t0, time.Minute, maxBulk+1); err == nil {
		t.Fatal("a claim limit past the bulk limit was accepted")
	}
}
