package processor

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
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
	if err := d.produce(ctx, res.records); err != nil {
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

// produce publishes records until Kafka has every one. Kafka refuses a
// whole batch when one record in it is too large, so the records of a
// refused batch are tried one by one, and only a record refused on its own
// is dropped: it can never go through, and retrying it would hold every
// flow behind it. Inputs are bounded so that our outputs fit Kafka's
// default limit; this guards against a topic configured below it.
func (d *deliverer) produce(ctx context.Context, records []*kgo.Record) error {
	return retry(ctx, d.log, "produce outputs", 0, func() error {
		sent := len(records)
		err := d.pub.Publish(ctx, records)
		var refused []*kgo.Record
		records, refused = remaining(records, err)
		for _, r := range refused {
			if sent == 1 {
				d.log.Error("output refused by Kafka as too large; dropped", "topic", r.Topic, "key", string(r.Key), "bytes", len(r.Value))
				continue
			}
			if err := d.produce(ctx, []*kgo.Record{r}); err != nil {
				return err
			}
		}
		if len(records) == 0 {
			return nil
		}
		return err
	})
}
