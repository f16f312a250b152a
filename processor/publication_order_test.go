package processor

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestInPublicationOrderKeepsEachPartitionsOffsetOrder: inputs merge by
// timestamp across partitions, but a partition's records never overtake
// each other, even when their timestamps (CreateTime on a topic someone
// else made) go backwards.
func TestInPublicationOrderKeepsEachPartitionsOffsetOrder(t *testing.T) {
	at := func(s int) time.Time { return t0().Add(time.Duration(s) * time.Second) }
	rec := func(topic string, p int32, off int64, s int) input {
		return input{src: &kgo.Record{Topic: topic, Partition: p, Offset: off, Timestamp: at(s)}}
	}
	name := func(ins []input) []string {
		var out []string
		for _, in := range ins {
			out = append(out, fmt.Sprintf("%s%d@%d", in.src.Topic, in.src.Partition, in.src.Offset))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []input
		want []string
	}{
		{"one partition stays as read, timestamps aside",
			[]input{rec("d", 0, 1, 9), rec("d", 0, 2, 3)}, []string{"d0@1", "d0@2"}},
		{"two partitions merge by time",
			[]input{rec("d", 0, 1, 2), rec("d", 0, 2, 5), rec("d", 1, 7, 1), rec("d", 1, 8, 4)},
			[]string{"d1@7", "d0@1", "d1@8", "d0@2"}},
		{"a partition's backwards timestamp holds its later records behind it",
			[]input{rec("d", 0, 1, 6), rec("d", 0, 2, 1), rec("d", 1, 3, 4)},
			[]string{"d1@3", "d0@1", "d0@2"}},
		{"ties keep the order read; topics are partitions of their own",
			[]input{rec("r", 0, 1, 2), rec("d", 0, 1, 2), rec("d", 0, 2, 1)},
			[]string{"r0@1", "d0@1", "d0@2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := name(inPublicationOrder(tc.in)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
