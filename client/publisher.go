package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// Publisher publishes send and cancel requests to the requests topic.
// It is safe for concurrent use.
type Publisher struct {
	cl        *kgo.Client
	topic     string
	now       func() time.Time
	validator flow.Validator
}

// NewPublisher publishes with cl, which it owns from now on (Close closes
// it). Build cl with kgo.NewClient(kgo.SeedBrokers(...), plus TLS and SASL
// options) and keep kgo's producer defaults:
//
//   - acks from all in-sync replicas (required: with fewer, a broker that
//     acknowledged and then died may lose a request Send reported as
//     published; NewPublisher refuses such a client);
//   - idempotent writes: a retried produce request cannot duplicate the
//     record, and a failed Send was not published. Without them (for lack of
//     the IDEMPOTENT_WRITE ACL on old brokers) a Send that timed out may
//     still have landed, which is harmless: sending a request_id again is a
//     REQUEST_DUPLICATE, cancelling again a CANCEL_IGNORED;
//   - the default partitioner, which puts the records of one key on one
//     partition: the processor relies on a cancel being read after the send
//     it cancels.
//
// Options: WithTopics, WithClock, WithValidator.
func NewPublisher(cl *kgo.Client, opts ...Option) (*Publisher, error) {
	if cl == nil {
		return nil, errors.New("client: NewPublisher: nil *kgo.Client")
	}
	if acks, ok := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); ok && acks != kgo.AllISRAcks() {
		return nil, errors.New("client: NewPublisher: the client must require acks from all in-sync replicas (kgo.AllISRAcks, the default)")
	}
	if _, err := codecs(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	return &Publisher{cl: cl, topic: o.names.Requests, now: o.now, validator: o.validator}, nil
}

// Send validates req at the Publisher's clock (Validate) and publishes it
// synchronously: nil means Kafka has it on all in-sync replicas, an error
// means it was not published (see NewPublisher for the exception without
// idempotent writes). An invalid request returns a *flow.Rejection naming
// the field, and nothing is published. Retrying a failed Send is safe: the
// processor starts at most one flow per request_id.
//
// An empty Kind is a send. Leave RequestedAt zero to have the record's
// timestamp count, or set it to when the request was made; ExpiresAt bounds
// how late the flow may still start.
func (p *Publisher) Send(ctx context.Context, req schemas.SendRequest) error {
	if req.Kind == "" {
		req.Kind = schemas.KindSend
	}
	if err := Validate(p.validator, req, p.now()); err != nil {
		return err
	}
	rec, err := RequestRecord(p.topic, req)
	if err != nil {
		return err
	}
	if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("publish %s %s: %w", req.Kind, req.RequestID, err)
	}
	return nil
}

// Cancel publishes a cancel of the flow of requestID, as Send does. A cancel
// only stops a flow the processor knows and that is still running: one that
// comes too late, or for an unknown request_id, is a CANCEL_IGNORED event,
// not an error here.
func (p *Publisher) Cancel(ctx context.Context, requestID string) error {
	// requested_at says when the cancel was made; the processor does not use
	// it, but someone reading the topic does.
	return p.Send(ctx, schemas.SendRequest{RequestID: requestID, Kind: schemas.KindCancel, RequestedAt: p.now()})
}

// Close flushes nothing (Send is synchronous) and closes the client.
func (p *Publisher) Close() { p.cl.Close() }

// Validate checks req as the processor will when it reads it at now, with
// v's rules (DefaultValidator for `fallback run`'s defaults): request_id,
// kind, recipient, params, metadata, steps, sizes, and times (the record's
// timestamp is taken to be now). The error is the processor's own
// *flow.Rejection (errors.As), whose Code is the REQUEST_REJECTED reason and
// whose Field names the field, e.g. "recipient_malformed: recipient: is not
// an E.164 number (+ and 7 to 15 digits)".
//
// A send naming a stored flow (flow_id) is checked for everything but the
// flow's steps: the stored definitions are the processor's, read from the
// flows topic, and an unknown flow_id comes back as REQUEST_REJECTED
// (flow_id_unknown) on fallback.events.
func Validate(v flow.Validator, req schemas.SendRequest, now time.Time) error {
	var rej *flow.Rejection
	switch req.Kind {
	case schemas.KindCancel:
		rej = v.ValidateCancel(req)
	default: // "" is a send, as for the processor; another kind is refused here
		if req.Kind == "" {
			req.Kind = schemas.KindSend
		}
		_, rej = v.ValidateSend(req, nil)
		if rej != nil && rej.Code == flow.RejectUnknownFlow {
			// ValidateSend looks the flow up last, after every other check
			// passed: without definitions, that is all this side can say.
			rej = nil
		}
		if rej == nil {
			_, rej = v.ValidateTime(req, now, now)
		}
	}
	if rej != nil { // not `return rej`: a nil *Rejection is a non-nil error
		return rej
	}
	return nil
}

// RequestRecord is the record Send publishes for req, without validating it:
// for callers that produce on their own (asynchronously, in a transaction).
// Validate the request first. The key is the request_id, which puts a
// cancel on the partition of its send, and the headers name the schema.
func RequestRecord(topic string, req schemas.SendRequest) (*kgo.Record, error) {
	cs, err := codecs()
	if err != nil {
		return nil, err
	}
	v, err := cs.SendRequest.Encode(req)
	if err != nil {
		return nil, fmt.Errorf("encode request %s: %w", req.RequestID, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(req.RequestID), Value: v,
		Headers: schemaHeaders(cs.SendRequest.Name(), cs.SendRequest.Fingerprint())}, nil
}
