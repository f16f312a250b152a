package processor

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// Sweeper fires step deadlines: it claims the due ones from Redis, runs the
// state machine's DeadlineElapsed on each, and sends the next step or closes
// the flow. It sleeps until the next due deadline rather than polling on a
// coarse interval, and is woken early when this instance writes an earlier
// deadline.
//
// Deadlines are kept in provider time (SPEC §7): a deadline D fires only
// once every input partition's watermark is at or past D plus the grace, so
// a DLR or cancel published before D is applied before D fires. A deadline
// held longer than maxHold fires anyway, and its events say so
// (deadline_forced): a partition nobody reads must not stop every flow.
type Sweeper struct {
	engine    *engine
	deliverer *deliverer
	clock     clock.Clock
	lease     time.Duration
	batch     int           // deadlines claimed per shard per round
	maxIdle   time.Duration // longest sleep in clock time, so deadlines written by other instances are seen
	log       *slog.Logger
	metrics   *metrics

	watermarks  *Watermarks
	grace       time.Duration // how far input timestamps may run behind the deadlines' clock
	maxHold     time.Duration // the longest a due deadline waits for the watermarks
	held        atomic.Bool   // the last round left due deadlines held by the watermarks
	lastHeldLog time.Time     // wall time of the last "held" log line

	// Deadline counts for the gauges, taken at most once per countEvery
	// (wall time) after a round, below and above the round's cutoff.
	lastCutoff time.Time // the cutoff of the last round (Run's goroutine only)
	countedAt  time.Time // wall time of the last count (Run's goroutine only)
	counted    atomic.Bool
	pending    atomic.Int64 // flows with a deadline
	heldCount  atomic.Int64 // deadlines due but later than the last cutoff

	mu     sync.Mutex
	target time.Time // when the sweeper plans to wake next
	wake   chan struct{}

	// due is each shard's earliest deadline as the last sleep saw it (the
	// zero time: none), nil when unknown (Run's goroutine only). A round
	// claims only the shards due by its cutoff: a claim is a script call
	// per shard, and with many shards (a cluster's 64) most have nothing
	// due. A deadline written since, in a shard seen empty, waits for the
	// next sleep's look, one round later.
	due []time.Time

	// Deliveries (produce, wait for Kafka, clear the outbox) run behind the
	// next claim, at most maxDeliveries at a time: a round no longer waits
	// for Kafka's acks before it looks for the deadlines that came due
	// meanwhile, which is most of what made deadlines late. The outbox
	// keeps the outputs safe while they are in flight, as before.
	deliveries chan struct{}
	inFlight   sync.WaitGroup
}

// maxDeliveries bounds the sweeper's rounds whose outputs are not yet
// acknowledged by Kafka; when Kafka stalls, the sweeper stops claiming.
const maxDeliveries = 2

func newSweeper(e *engine, d *deliverer, clk clock.Clock, lease time.Duration, batch int, maxIdle time.Duration,
	wm *Watermarks, grace, maxHold time.Duration, log *slog.Logger, m *metrics) *Sweeper {
	return &Sweeper{engine: e, deliverer: d, clock: clk, lease: lease, batch: batch, maxIdle: maxIdle,
		watermarks: wm, grace: grace, maxHold: maxHold,
		log: log, metrics: m, wake: make(chan struct{}, 1), deliveries: make(chan struct{}, maxDeliveries)}
}

// Wake makes a sweeper that holds deadlines look again now: the watermarks
// moved.
func (s *Sweeper) Wake() {
	if !s.held.Load() {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Notify tells the sweeper a deadline at t was written; it wakes if t is
// earlier than its planned wake-up.
func (s *Sweeper) Notify(t time.Time) {
	s.mu.Lock()
	early := s.target.IsZero() || t.Before(s.target)
	s.mu.Unlock()
	if early {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error { return s.run(ctx, ctx) }

// run starts rounds until stop ends, and runs each round and its
// deliveries under ctx (work, which outlives stop by the shutdown timeout):
// it returns once the deliveries in flight are done.
func (s *Sweeper) run(stop, ctx context.Context) error {
	defer s.inFlight.Wait()
	pause := errorPause{}
	for stop.Err() == nil && ctx.Err() == nil {
		full, err := s.claimAndFire(ctx)
		if err == nil {
			s.count(ctx)
		}
		switch {
		case err != nil:
			if stop.Err() != nil {
				return nil
			}
			s.log.Warn("sweep failed; retrying", "err", err)
			pause.wait(stop)
		case full: // more are due right now
			pause.reset()
		default:
			pause.reset()
			s.sleep(stop)
		}
	}
	return nil
}

// claimAndFire fires every deadline due now. It reports whether a shard
// returned a full batch (more may be waiting).
func (s *Sweeper) claimAndFire(ctx context.Context) (bool, error) {
	now := s.clock.Now()
	low, lowAt, err := s.watermarks.Low(ctx)
	if err != nil {
		return false, err
	}
	cutoff := s.cutoff(now, low)
	s.lastCutoff = cutoff
	shards, found := dueShards(s.due, cutoff)
	if !found {
		return false, nil
	}
	done := s.metrics.redisTimer(ctx, "claim_due")
	claimed, err := s.engine.claimDue(ctx, shards, cutoff, s.lease, s.batch)
	done()
	// Claimed shards moved on (their deadlines went to the lease end or
	// were fired): the next round claims all, unless a sleep looks first.
	s.due = nil
	if err != nil || len(claimed) == 0 {
		return false, err
	}
	s.metrics.deadlinesFired.Add(ctx, int64(len(claimed)))
	s.metrics.batchSize.Record(ctx, int64(len(claimed)), metric.WithAttributes(attribute.String("source", "sweeper")))
	works := make([]*flowWork, 0, len(claimed))
	forced := 0
	for _, snap := range claimed {
		st, err := decodeSnapshot(snap)
		if err != nil || st == nil {
			s.log.Error("claimed flow unreadable", "request_id", snap.RequestID, "err", err)
			continue
		}
		// Lateness on the deadlines' clock. A claim taken over from a dead
		// instance fires again, and is counted again: it is late again.
		// A claim for the inputs the flow holds (State.DueTime) may come
		// before its deadline, which is not late then. It is forced when
		// what it applies first was not read past by every partition.
		in := flow.DeadlineElapsed{Step: st.Current, ReadPast: cutoff, Forced: st.DueTime().Add(s.grace).After(low)}
		if d := st.DeadlineTime(); !d.After(cutoff) {
			s.metrics.deadlineLateness.Record(ctx, max(now.Sub(d), 0).Seconds())
		}
		if in.Forced {
			forced++
		}
		works = append(works, &flowWork{requestID: snap.RequestID, snap: snap, state: st, sweep: true, inputs: []input{{in: in}}})
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // what let these deadlines fire
		ids := make([]string, len(works))
		for i, w := range works {
			ids[i] = w.requestID
		}
		s.log.Debug("deadlines fired", "cutoff", cutoff.UnixMilli(), "now", now.UnixMilli(), "low_watermark", low.UnixMilli(),
			"low_partition", lowAt.String(), "request_ids", strings.Join(ids, " "))
	}
	if forced > 0 {
		s.metrics.deadlinesForced.Add(ctx, int64(forced))
		s.log.Warn("deadlines fired before the input was read past them: held longer than the maximum hold",
			"deadlines", forced, "max_hold", s.maxHold, "lagging_partition", lowAt.Topic, "partition", lowAt.Partition,
			"watermark", low, "lag", now.Sub(low))
	}
	res, err := s.engine.run(ctx, works, now)
	if err != nil {
		// The claims keep their lease: the deadlines fire again after it.
		return false, err
	}
	select {
	case s.deliveries <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err() // the outputs stay owed; the recoverer re-emits them
	}
	s.inFlight.Add(1)
	go func() {
		defer s.inFlight.Done()
		defer func() { <-s.deliveries }()
		// deliver retries until Kafka takes the outputs or ctx ends; on the
		// latter they stay owed in the outbox for the recoverer.
		if err := s.deliverer.deliver(ctx, res); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep outputs not delivered; the recoverer will re-emit them", "err", err)
		}
	}()
	return len(claimed) >= s.batch, nil
}

// cutoff is the latest deadline that may fire now: one every input was read
// past (plus the grace), or one held for longer than maxHold.
func (s *Sweeper) cutoff(now, low time.Time) time.Time {
	cutoff := now
	if byWatermark := low.Add(-s.grace); byWatermark.Before(cutoff) {
		cutoff = byWatermark
	}
	if heldTooLong := now.Add(-s.maxHold); heldTooLong.After(cutoff) {
		cutoff = heldTooLong
	}
	return cutoff
}

func (s *Sweeper) sleep(ctx context.Context) {
	now := s.clock.Now()
	wait := s.maxIdle
	var recheck <-chan time.Time // wall time: watermarks move with reading, not with the clock
	held := false
	defer func() { s.held.Store(false) }()
	next, ok, err := s.lookDue(ctx)
	if err == nil && ok {
		wait = min(max(next.Sub(now), 0), s.maxIdle)
		if !next.After(now) {
			// Due but not claimed: held by the watermarks. No input can be
			// read past next+grace before that time comes; after it, ask for
			// a caught-up check, and look again when the watermarks move or
			// after a short while.
			if ready := next.Add(s.grace); now.Before(ready) {
				wait = ready.Sub(now)
			} else {
				held = true // woken when the watermarks move
				s.logHeld(ctx, now, next)
				s.watermarks.Poke()
				wait = s.maxIdle
				recheck = time.After(s.watermarks.interval)
			}
		}
	}
	s.held.Store(held)
	s.mu.Lock()
	s.target = now.Add(wait)
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-s.clock.At(now.Add(wait)):
	case <-recheck:
	case <-s.wake:
	}
}

// lookDue reads each shard's earliest deadline into s.due and returns the
// earliest of all (ok false when there is none).
func (s *Sweeper) lookDue(ctx context.Context) (next time.Time, ok bool, err error) {
	if s.due, err = s.engine.dueByShard(ctx); err != nil {
		return time.Time{}, false, err
	}
	next = statestore.Earliest(s.due)
	return next, !next.IsZero(), nil
}

// dueShards lists the shards with a deadline at or before cutoff, and
// whether there is any; with no knowledge (due nil) it is nil, every shard.
func dueShards(due []time.Time, cutoff time.Time) (shards []int, found bool) {
	if due == nil {
		return nil, true
	}
	for i, d := range due {
		if !d.IsZero() && !d.After(cutoff) {
			shards = append(shards, i)
		}
	}
	return shards, len(shards) > 0
}

// countEvery spaces out the deadline counts of the gauges (wall time):
// one pipeline of two commands per shard.
const countEvery = time.Second

// count refreshes the deadline counts of the gauges, at most once per
// countEvery: the flows with a deadline, and those due now but later than
// the cutoff of the round just run, which the watermarks (and the grace)
// hold back.
func (s *Sweeper) count(ctx context.Context) {
	if time.Since(s.countedAt) < countEvery || s.lastCutoff.IsZero() {
		return
	}
	s.countedAt = time.Now()
	pending, held, ok, err := s.engine.deadlineCounts(ctx, s.lastCutoff, s.clock.Now())
	if !ok || err != nil {
		return // the gauges keep the last counts; the next round tries again
	}
	s.pending.Store(pending)
	s.heldCount.Store(held)
	s.counted.Store(true)
}

// deadlineCounts are the last counts, and whether there is one yet.
func (s *Sweeper) deadlineCounts() (pending, held int64, ok bool) {
	return s.pending.Load(), s.heldCount.Load(), s.counted.Load()
}

// heldLogEvery spaces out the log line about held deadlines (wall time).
const heldLogEvery = 10 * time.Second

func (s *Sweeper) logHeld(ctx context.Context, now, next time.Time) {
	if time.Since(s.lastHeldLog) < heldLogEvery || now.Sub(next) < s.grace+time.Second {
		return // a short hold is the normal case: the grace, a batch in flight
	}
	s.lastHeldLog = time.Now()
	low, at, err := s.watermarks.Low(ctx)
	if err != nil {
		return
	}
	s.log.Info("deadlines held: an input partition is not read past them yet",
		"oldest_due", next, "held_for", now.Sub(next), "lagging_topic", at.Topic, "partition", at.Partition,
		"watermark", low, "max_hold", s.maxHold)
}
