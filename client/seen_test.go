package client

import (
	"fmt"
	"testing"
)

// TestSeenKeepsTheLastIDs: the set remembers at least the last size/2 ids
// and never more than size, and an id that comes back is kept.
func TestSeenKeepsTheLastIDs(t *testing.T) {
	const size = 10
	s := newSeen(size)
	id := func(i int) string { return fmt.Sprint("e", i) }
	for i := range 100 {
		if s.has(id(i)) {
			t.Fatalf("%s: seen before it came", id(i))
		}
		s.add(id(i))
		if n := len(s.cur) + len(s.old); n > size {
			t.Fatalf("after %d ids: %d remembered, more than %d", i+1, n, size)
		}
		for j := max(0, i-size/2+1); j <= i; j++ {
			if !s.has(id(j)) {
				t.Fatalf("after %d ids: %s forgotten", i+1, id(j))
			}
		}
	}
	if s.has(id(0)) {
		t.Errorf("e0 still remembered after 100 ids")
	}

	// An id that keeps coming back stays.
	s = newSeen(size)
	s.add("hot")
	for i := range 100 {
		s.add(id(i))
		if !s.has("hot") {
			t.Fatalf("hot forgotten after %d others", i+1)
		}
	}

	// Size 0 remembers nothing.
	s = newSeen(0)
	s.add("x")
	if s.has("x") {
		t.Errorf("size 0 remembered x")
	}
}
