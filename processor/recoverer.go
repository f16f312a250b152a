package processor

import (
	"context"
	"log/slog"
	"time"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/statestore"
)

// Recoverer re-emits outputs that a transition owes Kafka but that nobody
// acknowledged within the lease: the instance that wrote them died between
// the state write and the produce, or its produce failed for good. Outputs
// are replayed byte for byte, so consumers see the same attempt and event
// ids and can drop the repeat.
type Recoverer struct {
	engine    *engine
	deliverer *deliverer
	clock     clock.Clock
	lease     time.Duration
	batch     int
	log       *slog.Logger
	metrics   *metrics
}

// Run checks for owed outputs every half lease until ctx ends.
func (r *Recoverer) Run(ctx context.Context) error { return r.run(ctx, ctx) }

// run starts rounds until stop ends, and runs each under ctx (work, which
// outlives stop by the shutdown timeout).
func (r *Recoverer) run(stop, ctx context.Context) error {
	pause := errorPause{}
	for stop.Err() == nil && ctx.Err() == nil {
		n, err := r.recover(ctx)
		switch {
		case err != nil:
			if stop.Err() != nil {
				return nil
			}
			r.log.Warn("outbox recovery failed; retrying", "err", err)
			pause.wait(stop)
			continue
		case n > 0:
			r.log.Info("re-emitted owed outputs", "flows", n)
			continue
		}
		pause.reset()
		select {
		case <-stop.Done():
		case <-r.clock.At(r.clock.Now().Add(r.lease / 2)):
		}
	}
	return nil
}

func (r *Recoverer) recover(ctx context.Context) (int, error) {
	owed, err := r.engine.claimOwed(ctx, r.clock.Now(), r.lease, r.batch)
	if err != nil || len(owed) == 0 {
		return 0, err
	}
	var res batchResult
	for _, o := range owed {
		for _, e := range o.Entries {
			rec, err := unmarshalRecord(e.Data)
			if err != nil {
				r.log.Error("dropping unreadable outbox entry", "request_id", o.RequestID, "version", e.Version, "err", err)
				continue
			}
			res.records = append(res.records, rec)
		}
		res.acks = append(res.acks, statestore.OutboxAck{RequestID: o.RequestID, Versions: entryVersions(o.Entries)})
	}
	r.metrics.outboxReplayed.Add(ctx, int64(len(res.records)))
	return len(owed), r.deliverer.deliver(ctx, res)
}
