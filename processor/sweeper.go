package processor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
)

// Sweeper fires step deadlines: it claims the due ones from Redis, runs the
// state machine's DeadlineElapsed on each, and sends the next step or closes
// the flow. It sleeps until the next due deadline rather than polling on a
// coarse interval, and is woken early when this instance writes an earlier
// deadline.
//
// The decision to fire is made in one place, claimAndFire, so the planned
// lag-aware rule (SPEC section 7: do not fire while the DLR input lags behind
// the deadline) is an addition there, not a rewrite.
type Sweeper struct {
	engine    *engine
	deliverer *deliverer
	clock     Clock
	lease     time.Duration
	batch     int           // deadlines claimed per shard per round
	maxIdle   time.Duration // longest sleep in clock time, so deadlines written by other instances are seen
	log       *slog.Logger
	metrics   *metrics

	mu     sync.Mutex
	target time.Time // when the sweeper plans to wake next
	wake   chan struct{}

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

func newSweeper(e *engine, d *deliverer, clock Clock, lease time.Duration, batch int, maxIdle time.Duration, log *slog.Logger, m *metrics) *Sweeper {
	return &Sweeper{engine: e, deliverer: d, clock: clock, lease: lease, batch: batch, maxIdle: maxIdle,
		log: log, metrics: m, wake: make(chan struct{}, 1), deliveries: make(chan struct{}, maxDeliveries)}
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
func (s *Sweeper) Run(ctx context.Context) error {
	defer s.inFlight.Wait()
	pause := errorPause{}
	for ctx.Err() == nil {
		full, err := s.claimAndFire(ctx)
		switch {
		case err != nil:
			s.log.Warn("sweep failed; retrying", "err", err)
			pause.wait(ctx)
		case full: // more are due right now
			pause.reset()
		default:
			pause.reset()
			s.sleep(ctx)
		}
	}
	return nil
}

// claimAndFire fires every deadline due now. It reports whether a shard
// returned a full batch (more may be waiting).
func (s *Sweeper) claimAndFire(ctx context.Context) (bool, error) {
	now := s.clock.Now()
	claimed, err := s.engine.store.ClaimDueAll(ctx, now, s.lease, s.batch)
	if err != nil || len(claimed) == 0 {
		return false, err
	}
	s.metrics.deadlinesFired.Add(ctx, int64(len(claimed)))
	works := make([]*flowWork, 0, len(claimed))
	for _, snap := range claimed {
		st, err := decodeSnapshot(snap)
		if err != nil || st == nil {
			s.log.Error("claimed flow unreadable", "request_id", snap.RequestID, "err", err)
			continue
		}
		works = append(works, &flowWork{requestID: snap.RequestID, snap: snap, sweep: true,
			inputs: []input{{in: flow.DeadlineElapsed{Step: st.Current}}}})
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

func (s *Sweeper) sleep(ctx context.Context) {
	now := s.clock.Now()
	wait := s.maxIdle
	if next, ok, err := s.engine.store.NextDue(ctx); err == nil && ok {
		wait = min(max(next.Sub(now), 0), s.maxIdle)
	}
	s.mu.Lock()
	s.target = now.Add(wait)
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-s.clock.At(now.Add(wait)):
	case <-s.wake:
	}
}
