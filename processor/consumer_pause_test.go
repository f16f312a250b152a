package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPausedPollLooksAgain: while requests are paused, a poll with nothing
// to read returns after one watermark interval, so the consumer looks at the
// DLR backlog again and resumes. Waiting for a record instead hung a bench
// run for the whole --max-deadline-hold: the DLRs were all read, requests
// paused, and the deadlines held until the requests were read.
func TestPausedPollLooksAgain(t *testing.T) {
	c, _, w := pausingConsumer(t, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w.mu.Lock()
	w.dlrBacklog = 5000
	w.mu.Unlock()
	c.prioritiseDLRs(ctx)
	if !c.requestsPaused {
		t.Fatal("requests not paused with a backlog of 5000 DLRs")
	}
	// The backlog drains; nothing is left to read on either topic.
	w.mu.Lock()
	w.dlrBacklog = 0
	w.mu.Unlock()
	done := make(chan kgo.Fetches, 1)
	go func() { done <- c.poll(ctx) }()
	select {
	case f := <-done:
		if len(f.Records()) != 0 {
			t.Fatalf("records from empty topics: %v", f.Records())
		}
		if err := f.Err0(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("paused poll ended with %v, want its own deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a paused poll with nothing to read waits for a record: requests would stay paused")
	}
	c.client.AllowRebalance()
	c.prioritiseDLRs(ctx)
	if c.requestsPaused {
		t.Fatal("requests still paused after the backlog drained")
	}
}
