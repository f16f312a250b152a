package processor

import (
	"maps"
	"testing"
	"time"
)

func TestIndexMemo(t *testing.T) {
	m := indexMemo{max: 3}
	t0 := time.UnixMilli(1_700_000_000_000)
	ttl := time.Hour
	batch := map[string]string{"p1": "r1/0", "p2": "r2/0"}
	if got := m.toWrite(batch, t0, ttl); !maps.Equal(got, batch) {
		t.Fatalf("first sight: %v", got)
	}
	m.wrote(batch, t0)
	// Written and fresh: skipped. A new id, or the same id for another
	// attempt, is written.
	got := m.toWrite(map[string]string{"p1": "r1/0", "p2": "r9/0", "p3": "r3/0"}, t0.Add(ttl/2-time.Millisecond), ttl)
	if want := map[string]string{"p2": "r9/0", "p3": "r3/0"}; !maps.Equal(got, want) {
		t.Fatalf("fresh: %v, want %v", got, want)
	}
	// Half the TTL gone: written again, so that Redis never lacks an entry
	// the memo claims.
	if got := m.toWrite(map[string]string{"p1": "r1/0"}, t0.Add(ttl/2), ttl); len(got) != 1 {
		t.Fatalf("half the TTL gone: %v", got)
	}
	// Bounded: past max the memo starts over, and writes again.
	m.wrote(map[string]string{"p3": "r3/0", "p4": "r4/0"}, t0)
	if len(m.written) > m.max {
		t.Fatalf("memo holds %d entries, max %d", len(m.written), m.max)
	}
	if got := m.toWrite(map[string]string{"p1": "r1/0"}, t0, ttl); len(got) != 1 {
		t.Fatalf("forgotten entry not written: %v", got)
	}
}
