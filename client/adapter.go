package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// Adapter is the Kafka side of a provider adapter: Run hands it the sends
// of its channels, Report publishes the provider's delivery reports.
//
// A send may come twice with the same attempt id: the processor re-emits
// one when an instance died before it knew Kafka had it, and Run gives a
// send again after a restart or a rebalance if it had not committed it. Run
// drops a repeated attempt id it remembers (WithDedupeSize); a provider
// request keyed by the attempt id (most providers take a client reference
// and refuse a second use of it) makes a repeat harmless everywhere.
type Adapter struct {
	brokers  []string
	group    string
	sends    []string // the topics Run reads
	o        *options
	producer *kgo.Client // Report's
}

// NewAdapter makes an adapter for channels (e.g. "sms"), whose Run reads
// fallback.sends.<channel> as a member of group: the instances of one
// adapter share a group and the partitions. Report needs no Run, so a
// process that only receives the provider's webhooks can publish the DLRs
// without joining the group.
//
// Options: WithTopics, WithKafkaOpts, WithDedupeSize, WithMaxPollRecords,
// WithLogger, WithValidator (its Limits bound the report fields).
func NewAdapter(brokers []string, group string, channels []string, opts ...Option) (*Adapter, error) {
	if len(channels) == 0 {
		return nil, errors.New("client: NewAdapter: no channels")
	}
	if group == "" {
		return nil, errors.New("client: NewAdapter: empty consumer group")
	}
	if len(brokers) == 0 {
		return nil, errors.New("client: NewAdapter: no seed brokers")
	}
	if _, err := codecs(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	sends := make([]string, len(channels))
	for i, c := range channels {
		sends[i] = o.names.Sends(c)
	}
	// kgo's producer defaults: acks from all in-sync replicas, idempotent.
	producer, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, o.kafkaOpts...)...)
	if err != nil {
		return nil, err
	}
	return &Adapter{brokers: brokers, group: group, sends: sends, o: o, producer: producer}, nil
}

// Run joins the group and calls handle with each send, one at a time, in
// partition order, until ctx ends (Run returns nil) or handle fails (Run
// returns its error). It leaves the group when it returns, committing the
// sends handle returned nil for; the send it failed and those after it
// come again to the next Run, in this process or another.
//
// handle gets Run's ctx. It should call the provider, and Report the
// outcome when the provider answers at once; a send the provider refuses is
// a failure DLR (Report with the provider's status), not an error. Return an
// error only for what should stop the adapter (the provider unreachable),
// so that the send is not committed. A send that does not decode is logged
// and skipped.
func (a *Adapter) Run(ctx context.Context, handle func(context.Context, schemas.ChannelSend) error) error {
	cs, err := codecs()
	if err != nil {
		return err
	}
	cl, err := a.o.groupClient(a.brokers, a.group, a.sends...)
	if err != nil {
		return err
	}
	defer func() {
		cl.AllowRebalance() // a held rebalance would keep the leave waiting
		cl.Close()          // leaves the group: commits the marks
	}()
	seen := newSeen(a.o.dedupe)
	for {
		fetches := cl.PollRecords(ctx, a.o.maxPoll)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			a.o.logger.Warn("client: fetch sends (retried)", "topic", topic, "partition", partition, "err", err)
		})
		for _, r := range fetches.Records() {
			if ctx.Err() != nil {
				return nil
			}
			s, err := cs.ChannelSend.DecodeFrom(fingerprintOf(r), avroBody(r.Value))
			switch {
			case err != nil:
				a.o.logger.Error("client: skipping a send that does not decode", "topic", r.Topic,
					"partition", r.Partition, "offset", r.Offset, "err", err)
			case seen.has(s.AttemptID):
				// a repeat: handled already
			default:
				if err := handle(ctx, s); err != nil {
					if ctx.Err() != nil {
						return nil // stopped while handling: the send comes again
					}
					return fmt.Errorf("send %s: %w", s.AttemptID, err)
				}
				seen.add(s.AttemptID)
			}
			cl.MarkCommitRecords(r)
		}
		cl.AllowRebalance()
	}
}

// Report publishes a delivery report to the DLR topic, synchronously: nil
// means Kafka has it. Set AttemptID to the send's AttemptID (providers echo
// it as their client reference), and ProviderMessageID when the provider
// gave one: the processor then resolves later reports that carry only the
// provider's id. The record is keyed by the attempt id, which keeps the
// reports of one attempt in order on one partition, or by the provider's id
// when the report has no attempt id. A report the processor would
// dead-letter is refused and not published: one with neither id, or with a
// field over the processor's limits (a *flow.Rejection naming the field).
// Safe for concurrent use.
func (a *Adapter) Report(ctx context.Context, rep schemas.DeliveryReport) error {
	if rej := a.o.validator.ValidateReport(rep); rej != nil {
		return rej
	}
	key := rep.AttemptID
	if key == "" {
		key = rep.ProviderMessageID
	}
	if key == "" {
		return errNoAttempt
	}
	cs, err := codecs()
	if err != nil {
		return err
	}
	v, err := cs.DeliveryReport.Encode(rep)
	if err != nil {
		return fmt.Errorf("encode report %s: %w", key, err)
	}
	rec := &kgo.Record{Topic: a.o.names.DLR, Key: []byte(key), Value: v,
		Headers: schemaHeaders(cs.DeliveryReport.Name(), cs.DeliveryReport.Fingerprint())}
	if err := a.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("publish report %s: %w", key, err)
	}
	return nil
}

// errNoAttempt is the processor's words for the report it cannot place.
var errNoAttempt = errors.New("delivery report has neither attempt_id nor provider_message_id")

// Close closes the Report client. Run closes its own when it returns.
func (a *Adapter) Close() { a.producer.Close() }
