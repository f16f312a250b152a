package processor

import (
	"slices"
	"testing"
	"time"
)

func TestDueShards(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	cutoff := at(100)
	for _, tc := range []struct {
		name  string
		due   []time.Time
		want  []int
		found bool
	}{
		{"unknown: every shard", nil, nil, true},
		{"none due", []time.Time{{}, at(101), {}}, nil, false},
		{"due at the cutoff and before", []time.Time{at(100), {}, at(5), at(200)}, []int{0, 2}, true},
	} {
		got, found := dueShards(tc.due, cutoff)
		if found != tc.found || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, found, tc.want, tc.found)
		}
	}
}
