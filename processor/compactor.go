package processor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// ClosedFlowStore is what the compactor needs of the state store: the
// closed flows past their detail window, and the move of each to its
// compact entry (statestore/closedflows.go).
type ClosedFlowStore interface {
	Shards() int
	ListClosed(ctx context.Context, shard, limit int) ([]statestore.ClosedFlow, error)
	CompactClosed(ctx context.Context, shard int, moves []statestore.CompactMove) (int, error)
	MoveProviderEntries(ctx context.Context, shard, limit int) (int, error)
}

// Compactor cuts closed flows down to their compact form once their detail
// window has passed (docs/closed-flows.md): 4 bytes that still refuse a
// duplicate request, discard a late DLR and report a late delivery of
// another channel once. Every instance runs one over every shard: a move is
// fenced by the record's version, so two instances moving one flow move it
// once, and the work is a few script calls a round.
type Compactor struct {
	store    ClosedFlowStore
	interval time.Duration // wall time between rounds
	batch    int           // flows a script call moves, at most
	log      *slog.Logger
	metrics  *metrics
}

// compactInterval is the wall time between the compactor's rounds: a
// round is a script call per shard, and a flow waits at most this past its
// detail window.
const compactInterval = time.Second

// newCompactor is the compactor of store. A store that keeps closed
// flows whole lists none, so its rounds cost nothing.
func newCompactor(store ClosedFlowStore, batch int, log *slog.Logger, m *metrics) *Compactor {
	return &Compactor{store: store, interval: compactInterval, batch: max(batch, 1), log: log, metrics: m}
}

// run starts a round every interval until stop ends; each runs under ctx.
func (c *Compactor) run(stop, ctx context.Context) error {
	pause := errorPause{}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for stop.Err() == nil && ctx.Err() == nil {
		if n, err := c.round(ctx); err != nil {
			if stop.Err() != nil {
				return nil
			}
			c.log.Warn("compacting closed flows failed; retrying", "err", err)
			pause.wait(stop)
			continue
		} else if n > 0 {
			c.log.Debug("compacted closed flows", "flows", n)
		}
		pause.reset()
		select {
		case <-stop.Done():
		case <-t.C:
		}
	}
	return nil
}

// round moves every closed flow whose detail window is over, shard by
// shard, and returns how many moved.
func (c *Compactor) round(ctx context.Context) (int, error) {
	total := 0
	for shard := range c.store.Shards() {
		for {
			n, full, err := c.compactShard(ctx, shard)
			total += n
			if err != nil {
				return total, err
			}
			if !full {
				break
			}
		}
		// The provider ids of the flows just moved: a full batch may
		// leave more.
		for {
			n, err := c.store.MoveProviderEntries(ctx, shard, c.batch)
			c.metrics.providerIDsCompacted.Add(ctx, int64(n))
			if err != nil {
				return total, err
			}
			if n < c.batch {
				break
			}
		}
	}
	return total, nil
}

// compactShard moves one batch of shard's closed flows; full says the
// claim was full, so there may be more.
func (c *Compactor) compactShard(ctx context.Context, shard int) (moved int, full bool, err error) {
	flows, err := c.store.ListClosed(ctx, shard, c.batch)
	if err != nil || len(flows) == 0 {
		return 0, false, err
	}
	moves := make([]statestore.CompactMove, 0, len(flows))
	for _, f := range flows {
		m := statestore.CompactMove{RequestID: f.RequestID, Version: f.Version, ClosedAtMS: f.ClosedAtMS}
		if f.Exists {
			blob, err := compactBlob(f.Snapshot)
			if err != nil {
				// Left whole: its record still answers for it until it
				// expires (a nil Compact only takes it off the list).
				c.log.Error("closed flow left uncompacted", "request_id", f.RequestID, "err", err)
			}
			m.Compact = blob
		}
		moves = append(moves, m)
	}
	n, err := c.store.CompactClosed(ctx, shard, moves)
	c.metrics.flowsCompacted.Add(ctx, int64(n))
	// A claim full of flows written since their claim would list them
	// again at once: only a claim that moved something asks for more.
	return n, len(flows) == c.batch && n > 0, err
}

// compactBlob is the compact state blob of a closed flow's record.
func compactBlob(snap statestore.Snapshot) ([]byte, error) {
	st, err := flow.Decode(snap.RequestID, snap.State)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	cmp, ok := st.Compact()
	if !ok {
		return nil, fmt.Errorf("compact: the flow is not closed with an outcome (closed %v, outcome %q)", st.Closed, st.Outcome)
	}
	return cmp.AppendBlob(nil), nil
}
