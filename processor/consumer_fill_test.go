package processor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fillTestConsumer is a consumer of "req" with three records already read
// by its first poll, and a producer for more.
func fillTestConsumer(t *testing.T, fill time.Duration) (*Consumer, *kgo.Client, kgo.Fetches) {
	t.Helper()
	c, cl, _ := pausingConsumer(t, 50*time.Millisecond)
	c.maxPoll, c.batchFill = 100, fill
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	produce(t, cl, 0, 3)
	var first kgo.Fetches
	for first.NumRecords() < 3 {
		first = append(first, cl.PollRecords(ctx, 3-first.NumRecords())...)
		if ctx.Err() != nil {
			t.Fatal("the first three records were not read")
		}
	}
	return c, cl, first
}

func produce(t *testing.T, cl *kgo.Client, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		rec := &kgo.Record{Topic: "req", Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Error(err)
		}
	}
}

// TestFillTopsUpASmallBatch: a batch under a quarter of maxPoll polls again
// until it holds that many, in the order they were written, however long
// the fill window (a minute here: the test ends when the records come).
func TestFillTopsUpASmallBatch(t *testing.T) {
	c, cl, first := fillTestConsumer(t, time.Minute)
	go produce(t, cl, 3, 30)
	got := c.fill(context.Background(), first).Records()
	if len(got) < c.fillTarget() {
		t.Fatalf("filled batch holds %d records, want at least %d", len(got), c.fillTarget())
	}
	for i, r := range got {
		if want := fmt.Sprint(i); string(r.Value) != want {
			t.Fatalf("record %d is %q, want %q: out of order", i, r.Value, want)
		}
	}
}

// TestFillWaitsNoLongerThanItsWindow: with nothing more to read, the batch
// runs with what it has once the window passes, and the window's end is
// not reported as a fetch error (run skips context.DeadlineExceeded).
func TestFillWaitsNoLongerThanItsWindow(t *testing.T) {
	c, _, first := fillTestConsumer(t, 50*time.Millisecond)
	f := c.fill(context.Background(), first)
	if n := f.NumRecords(); n != 3 {
		t.Fatalf("batch holds %d records, want the 3 read", n)
	}
	f.EachError(func(_ string, _ int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fill ended with %v, want its own deadline", err)
		}
	})
}

// TestNoFillRunsThePollAsItIs: --batch-fill 0, and a poll that returned
// nothing, are not topped up.
func TestNoFillRunsThePollAsItIs(t *testing.T) {
	c, cl, first := fillTestConsumer(t, 0)
	produce(t, cl, 3, 5)
	if n := c.fill(context.Background(), first).NumRecords(); n != 3 {
		t.Fatalf("batch holds %d records without a fill, want 3", n)
	}
	c.batchFill = time.Minute
	if n := c.fill(context.Background(), nil).NumRecords(); n != 0 {
		t.Fatalf("an empty poll was topped up to %d records", n)
	}
}
