package processor

import (
	"context"
	"log/slog"
)

// deliverer hands a batch's outputs to Kafka, then clears them from the
// outbox. Consumer, Sweeper and Recoverer all end a batch this way.
type deliverer struct {
	pub   Publisher
	store StateStore
	log   *slog.Logger
}

// ackAttempts bounds the outbox clean-up: once Kafka has the outputs, a
// failed ack costs at worst a repeated output (same ids), so it does not
// hold the pipeline for long.
const ackAttempts = 5

func (d *deliverer) deliver(ctx context.Context, res batchResult) error {
	records := res.records
	err := retry(ctx, d.log, "produce outputs", 0, func() error {
		err := d.pub.Publish(ctx, records)
		records = remaining(records, err)
		return err
	})
	if err != nil {
		return err
	}
	if len(res.acks) == 0 {
		return nil
	}
	if err := retry(ctx, d.log, "ack outbox", ackAttempts, func() error { return d.store.AckOutbox(ctx, res.acks) }); err != nil {
		if ctx.Err() != nil {
			return err
		}
		d.log.Error("outbox not cleared; the recoverer will re-emit these outputs", "flows", len(res.acks), "err", err)
	}
	return nil
}
