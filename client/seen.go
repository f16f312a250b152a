package client

// seen remembers recent ids, to drop repeats: between size/2 and size of
// the last ones. It keeps two generations of sets and drops the older when
// the newer is full, which bounds memory like an LRU without a list to
// maintain per id; an id seen again is carried into the newer generation,
// so an id that keeps coming back is kept. A size of 0 remembers nothing.
// Not safe for concurrent use.
type seen struct {
	cur, old map[string]struct{}
	half     int
}

func newSeen(size int) *seen {
	half := max(size/2, 1)
	if size <= 0 {
		half = 0
	}
	return &seen{cur: map[string]struct{}{}, old: map[string]struct{}{}, half: half}
}

// has reports whether id was seen among the recent ids.
func (s *seen) has(id string) bool {
	if _, ok := s.cur[id]; ok {
		return true
	}
	if _, ok := s.old[id]; ok {
		s.add(id)
		return true
	}
	return false
}

// add remembers id.
func (s *seen) add(id string) {
	if s.half == 0 {
		return
	}
	if len(s.cur) >= s.half {
		s.old, s.cur = s.cur, make(map[string]struct{}, s.half)
	}
	s.cur[id] = struct{}{}
}
