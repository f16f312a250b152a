package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// EventConsumer reads fallback.events as a member of a consumer group,
// decodes the events and drops repeated event ids. Members of one group
// share the partitions; each group (one per analytics sink) gets every
// event. Use one goroutine per EventConsumer.
//
// Delivery is at least once. The events of a Poll are committed once the
// caller says it is done with them, by calling Poll again or Commit; Close
// does not commit the last Poll's events, so events a caller got but did
// not finish with come again after a restart or a rebalance. Repeats come
// from there and from the processor, which re-emits an event with the same
// event_id (and the same bytes) when an instance died before it knew Kafka
// had it. The EventConsumer drops a repeat whose event_id it remembers
// (WithDedupeSize), which covers the processor's re-emissions; a sink that
// must never count one twice keys its writes by event_id.
type EventConsumer struct {
	cl      *kgo.Client
	seen    *seen
	maxPoll int
	log     *slog.Logger
	handed  []*kgo.Record // the records of the last Poll, committed on the next one
}

// NewEventConsumer joins group on brokers to read the events topic. A new
// group starts at the oldest event kept (kgo's default; change it with
// WithKafkaOpts(kgo.ConsumeResetOffset(...))).
//
// Options: WithTopics, WithKafkaOpts, WithDedupeSize, WithMaxPollRecords,
// WithLogger.
func NewEventConsumer(brokers []string, group string, opts ...Option) (*EventConsumer, error) {
	o := newOptions(opts)
	cl, err := o.groupClient(brokers, group, o.names.Events)
	if err != nil {
		return nil, err
	}
	return &EventConsumer{cl: cl, seen: newSeen(o.dedupe), maxPoll: o.maxPoll, log: o.logger}, nil
}

// groupClient is a group member reading topics that commits only what the
// caller marked as done (kgo.AutoCommitMarks: marks are committed every 5 s,
// when partitions are revoked and when the client leaves), with rebalances
// held while the caller works on what it polled (kgo.BlockRebalanceOnPoll),
// so that a mark never lands on a partition another member already reads.
func (o *options) groupClient(brokers []string, group string, topics ...string) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("client: no seed brokers")
	}
	if group == "" {
		return nil, errors.New("client: empty consumer group")
	}
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
	}, o.kafkaOpts...)...)
}

// Poll waits for events and returns them in partition order, repeats
// dropped. Calling it says the caller is done with the events of the last
// Poll: they are committed.
//
// Like io.Reader, Poll may return events and an error together: handle the
// events, then look at the error. It is ctx's error when ctx ended,
// kgo.ErrClientClosed after Close, or the fetch errors of some partitions,
// which kgo keeps retrying: Poll again. An event that does not decode (a
// schema newer than this package knows) is logged and skipped.
func (c *EventConsumer) Poll(ctx context.Context) ([]schemas.FlowEvent, error) {
	cs, err := codecs()
	if err != nil {
		return nil, err
	}
	for {
		c.markHanded()
		fetches := c.cl.PollRecords(ctx, c.maxPoll)
		var events []schemas.FlowEvent
		fetches.EachRecord(func(r *kgo.Record) {
			c.handed = append(c.handed, r)
			ev, err := cs.FlowEvent.DecodeFrom(fingerprintOf(r), avroBody(r.Value))
			if err != nil {
				c.log.Error("client: skipping an event that does not decode", "topic", r.Topic,
					"partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if c.seen.has(ev.EventID) {
				return
			}
			c.seen.add(ev.EventID)
			events = append(events, ev)
		})
		err := fetchError(ctx, fetches)
		if len(events) > 0 || err != nil {
			return events, err
		}
		// Only repeats or undecodable records: nothing to give, so they
		// are done with at once.
	}
}

// Commit commits the events Poll returned so far, synchronously. Poll
// commits them on its own (the next Poll marks them, kgo commits the marks
// within 5 s); Commit is for a caller that stops and wants them committed
// now.
func (c *EventConsumer) Commit(ctx context.Context) error {
	c.markHanded()
	return c.cl.CommitMarkedOffsets(ctx)
}

// Close leaves the group, committing what was done with (not the last
// Poll's events, unless Commit was called), and closes the client.
func (c *EventConsumer) Close() {
	c.cl.AllowRebalance() // a held rebalance would keep the leave waiting
	c.cl.Close()
}

// markHanded marks the records of the last Poll as done and lets a held
// rebalance go on.
func (c *EventConsumer) markHanded() {
	if len(c.handed) > 0 {
		c.cl.MarkCommitRecords(c.handed...)
		c.handed = c.handed[:0]
	}
	c.cl.AllowRebalance()
}

// fetchError is why a poll stopped or which partitions failed, nil if none.
func fetchError(ctx context.Context, fetches kgo.Fetches) error {
	if fetches.IsClientClosed() {
		return kgo.ErrClientClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	fetches.EachError(func(topic string, partition int32, err error) {
		errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", topic, partition, err))
	})
	return errors.Join(errs...)
}
