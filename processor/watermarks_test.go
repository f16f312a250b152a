package processor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// TestWatermarksMoveOnlyWhenCaughtUp: a partition's watermark moves to the
// time of a check only when the group has committed everything published
// to it. An empty partition is caught up; one with records the group has
// not committed holds, however long it has been quiet; committing them
// releases it.
func TestWatermarksMoveOnlyWhenCaughtUp(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "req", "dlr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	store := statestore.New(rc, statestore.Config{Prefix: "t"})
	clock := clocktest.NewManual(t0())
	adm := kadm.NewClient(cl)
	w := newWatermarks(adm, store, "g", "req", "dlr", clock, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.assign(map[string][]int32{"dlr": {0, 1}}, true)

	dlr1 := statestore.PartitionRef{Topic: "dlr", Partition: 1}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "dlr", Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	check := func() (time.Time, statestore.PartitionRef) {
		t.Helper()
		if err := w.checkCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		low, at, err := w.Low(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return low, at
	}

	if low, at := check(); !low.IsZero() || at != dlr1 {
		t.Fatalf("with an uncommitted record on dlr/1: low %v at %v, want zero at dlr/1", low, at)
	}
	if got := w.DLRBacklog(); got != 1 {
		t.Fatalf("DLR backlog %d, want 1", got)
	}
	marks, err := store.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []statestore.PartitionRef{{Topic: "req", Partition: 0}, {Topic: "req", Partition: 1}, {Topic: "dlr", Partition: 0}} {
		if !marks[p].Equal(t0()) {
			t.Errorf("empty partition %v: watermark %v, want %v", p, marks[p], t0())
		}
	}

	clock.Advance(time.Hour) // quiet for an hour: still not read
	if low, _ := check(); !low.IsZero() {
		t.Fatalf("an unread partition moved to %v by being quiet", low)
	}

	if err := adm.CommitAllOffsets(ctx, "g", kadm.Offsets{"dlr": {1: {Topic: "dlr", Partition: 1, At: 1}}}); err != nil {
		t.Fatal(err)
	}
	if low, _ := check(); !low.Equal(t0().Add(time.Hour)) {
		t.Fatalf("after the commit: low %v, want %v", low, t0().Add(time.Hour))
	}
	if got := w.DLRBacklog(); got != 0 {
		t.Fatalf("DLR backlog %d after the commit, want 0", got)
	}
}

// TestWatermarksAppliedUseRecordTimes: a durable batch moves each
// partition's watermark to its last record's timestamp, on the clock the
// deadlines use, and never back.
func TestWatermarksAppliedUseRecordTimes(t *testing.T) {
	ctx := context.Background()
	epoch := t0()
	w, store := redisWatermarks(t, clock.NewScaledAt(epoch, 10))

	err := w.Applied(ctx, []*kgo.Record{
		{Topic: "dlr", Partition: 0, Offset: 1, Timestamp: epoch.Add(time.Second)},
		{Topic: "dlr", Partition: 0, Offset: 2, Timestamp: epoch.Add(2 * time.Second)},
		{Topic: "req", Partition: 3, Offset: 9, Timestamp: epoch.Add(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Applied(ctx, []*kgo.Record{{Topic: "req", Partition: 3, Offset: 5, Timestamp: epoch}}) // a stale writer
	if err != nil {
		t.Fatal(err)
	}
	marks, err := store.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[statestore.PartitionRef]time.Time{
		{Topic: "dlr", Partition: 0}: epoch.Add(20 * time.Second), // 2 s of wall time at x10
		{Topic: "req", Partition: 3}: epoch.Add(10 * time.Second),
	}
	for p, at := range want {
		if !marks[p].Equal(at) {
			t.Errorf("%v: watermark %v, want %v", p, marks[p], at)
		}
	}
}

// TestSweeperCutoff: a deadline fires once the lowest watermark passes it
// by the grace, or once it has waited the maximum hold.
func TestSweeperCutoff(t *testing.T) {
	s := &Sweeper{grace: 250 * time.Millisecond, maxHold: time.Minute}
	now := t0()
	cases := []struct {
		name string
		low  time.Time
		want time.Time
	}{
		{"inputs read past now", now.Add(time.Second), now},
		{"inputs read to now", now, now.Add(-250 * time.Millisecond)},
		{"inputs 10 s behind", now.Add(-10 * time.Second), now.Add(-10*time.Second - 250*time.Millisecond)},
		{"inputs 2 min behind: the hold bounds it", now.Add(-2 * time.Minute), now.Add(-time.Minute)},
		{"a partition never read", time.Time{}, now.Add(-time.Minute)},
	}
	for _, c := range cases {
		if got := s.cutoff(now, c.low); !got.Equal(c.want) {
			t.Errorf("%s: cutoff %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRequestsPausedWhileDLRsWait: the consumer stops fetching requests
// while more DLRs than the threshold wait on its partitions, and resumes
// only once the backlog is below a quarter of it.
func TestRequestsPausedWhileDLRsWait(t *testing.T) {
	c, cl, w := pausingConsumer(t, time.Second)
	ctx := context.Background()

	steps := []struct {
		backlog int64
		paused  bool
	}{
		{0, false}, {1000, false}, {1001, true}, {400, true}, {251, true}, {250, false}, {900, false}, {5000, true},
	}
	for _, s := range steps {
		w.mu.Lock()
		w.dlrBacklog = s.backlog
		w.mu.Unlock()
		c.prioritiseDLRs(ctx)
		paused := cl.PauseFetchTopics() // with no topics: lists the paused ones
		if got := len(paused) == 1 && paused[0] == "req"; got != s.paused || c.requestsPaused != s.paused {
			t.Fatalf("DLR backlog %d: paused topics %v, want requests paused %v", s.backlog, paused, s.paused)
		}
	}
}

// pausingConsumer is a Consumer on kfake topics "req" and "dlr" that pauses
// requests above 1000 waiting DLRs, with watermarks checked every interval.
func pausingConsumer(t *testing.T, interval time.Duration) (*Consumer, *kgo.Client, *Watermarks) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "req", "dlr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("req", "dlr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := newWatermarks(nil, nil, "g", "req", "dlr", clocktest.NewManual(t0()), interval, log)
	c := &Consumer{client: cl, watermarks: w, dlrBacklogPause: 1000, topics: topics.Names{Requests: "req", DLR: "dlr"}, log: log, metrics: newMetrics(nil)}
	return c, cl, w
}

// TestKnownLowIsTheLowestWatermarkSeen: without asking Redis, the lowest
// watermark this instance knows over every input partition; zero while one
// partition has none known (an input then waits rather than trust it).
func TestKnownLowIsTheLowestWatermarkSeen(t *testing.T) {
	ctx := context.Background()
	epoch := t0()
	w, _ := redisWatermarks(t, clock.NewScaledAt(epoch, 1))
	w.partitions = []statestore.PartitionRef{{Topic: "req", Partition: 0}, {Topic: "dlr", Partition: 0}, {Topic: "dlr", Partition: 1}}
	if got := (*Watermarks)(nil).KnownLow(); !got.IsZero() {
		t.Fatalf("no watermarks: %v", got)
	}
	apply := func(topic string, p int32, at time.Duration) {
		t.Helper()
		if err := w.Applied(ctx, []*kgo.Record{{Topic: topic, Partition: p, Timestamp: epoch.Add(at)}}); err != nil {
			t.Fatal(err)
		}
	}
	apply("dlr", 0, 5*time.Second)
	apply("req", 0, 3*time.Second)
	if got := w.KnownLow(); !got.IsZero() {
		t.Fatalf("dlr/1 unknown, known low %v, want zero", got)
	}
	apply("dlr", 1, 4*time.Second)
	if got := w.KnownLow(); !got.Equal(epoch.Add(3 * time.Second)) {
		t.Fatalf("known low %v, want req/0's %v", got, epoch.Add(3*time.Second))
	}
}

// redisWatermarks is a Watermarks of topics "req" and "dlr" on a fresh
// miniredis, and its store.
func redisWatermarks(t *testing.T, clk clock.Clock) (*Watermarks, *statestore.Store) {
	t.Helper()
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	store := statestore.New(rc, statestore.Config{Prefix: "t"})
	return newWatermarks(nil, store, "g", "req", "dlr", clk, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))), store
}
