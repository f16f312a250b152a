package processor

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFetchLingerWaitsForAPollsWorth: with a linger, the consumer's fetch
// asks the broker for a poll's worth of bytes and waits up to the linger
// for them; a lone record is then handed over no sooner than the linger
// after the fetch went out. Without one, a fetch takes any record and
// waits at most the long poll.
func TestFetchLingerWaitsForAPollsWorth(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	seeds := kgo.SeedBrokers(cluster.ListenAddrs()...)

	const linger = 200 * time.Millisecond
	for _, tc := range []struct {
		linger            time.Duration
		wantWait, wantMin any
	}{
		{0, consumerFetchMaxWait, int32(1)},
		{linger, linger, int32(lingerMinBytes)},
	} {
		cl, err := kgo.NewClient(seeds, fetchWait(tc.linger), fetchMinBytes(tc.linger))
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.OptValue(kgo.FetchMaxWait); got != tc.wantWait {
			t.Errorf("linger %s: fetch max wait %v, want %v", tc.linger, got, tc.wantWait)
		}
		if got := cl.OptValue(kgo.FetchMinBytes); got != tc.wantMin {
			t.Errorf("linger %s: fetch min bytes %v, want %v", tc.linger, got, tc.wantMin)
		}
		cl.Close()
	}

	producer, err := kgo.NewClient(seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte("one")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The record is there before the consumer starts: its first fetch
	// finds it and, short of the minimum, waits the linger out.
	start := time.Now()
	consumer, err := kgo.NewClient(seeds, kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		fetchWait(linger), fetchMinBytes(linger))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	fs := consumer.PollRecords(ctx, 10)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if n := fs.NumRecords(); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	if took := time.Since(start); took < linger {
		t.Fatalf("a lone record came after %s, before the %s linger", took, linger)
	}
}
