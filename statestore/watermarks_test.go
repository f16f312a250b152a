package statestore

import (
	"testing"
	"time"
)

// Watermarks only move forward, each partition on its own, several in one
// call.
func TestWatermarksOnlyForward(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	a, b, c := PartitionRef{"dlr", 0}, PartitionRef{"dlr", 1}, PartitionRef{"my/topic", 12}
	if err := e.s.AdvanceWatermarks(ctx, map[PartitionRef]time.Time{a: t0, b: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	// a moves on, b would move back (kept), c is new.
	if err := e.s.AdvanceWatermarks(ctx, map[PartitionRef]time.Time{a: t0.Add(2 * time.Second), b: t0, c: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[PartitionRef]time.Time{a: t0.Add(2 * time.Second), b: t0.Add(time.Second), c: t0.Add(time.Minute)}
	if len(got) != len(want) {
		t.Fatalf("watermarks %v, want %v", got, want)
	}
	for p, w := range want {
		if !got[p].Equal(w) {
			t.Fatalf("%v: %v, want %v", p, got[p], w)
		}
	}
	// Nothing to raise: a no-op, not an error.
	if err := e.s.AdvanceWatermarks(ctx, map[PartitionRef]time.Time{b: t0}); err != nil {
		t.Fatal(err)
	}
}
