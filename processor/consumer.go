package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Consumer reads send requests and DLRs in a consumer group and runs them
// through the engine, one poll at a time: decode, load state, apply, produce,
// clear the outbox, commit. Offsets are committed only after Redis has the
// new state and Kafka has acknowledged the outputs.
type Consumer struct {
	client    *kgo.Client
	engine    *engine
	deliverer *deliverer
	codecs    *schemas.Codecs
	validator flow.Validator
	defs      flow.Definitions
	topics    topics.Names
	clock     Clock
	sweeper   *Sweeper
	maxPoll   int
	indexTTL  time.Duration
	log       *slog.Logger
	metrics   *metrics
}

// Run polls until ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	// With BlockRebalanceOnPoll the client cannot leave the group on close
	// while a poll's rebalance block is still held.
	defer c.client.AllowRebalance()
	for {
		fetches := c.client.PollRecords(ctx, c.maxPoll)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("consumer: kafka client closed")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			c.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		records := fetches.Records()
		if len(records) > 0 {
			if err := c.handle(ctx, records); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		c.client.AllowRebalance()
	}
}

// handle runs one poll's records to the end; it only returns an error when
// ctx ended, since every failure of Redis or Kafka is retried.
func (c *Consumer) handle(ctx context.Context, records []*kgo.Record) error {
	c.metrics.records.Add(ctx, int64(len(records)))
	var res batchResult
	err := retry(ctx, c.log, "apply batch", 0, func() error {
		var err error
		res, err = c.apply(ctx, records)
		return err
	})
	if err != nil {
		return err
	}
	if err := c.deliverer.deliver(ctx, res); err != nil {
		return err
	}
	if !res.earliest.IsZero() {
		c.sweeper.Notify(res.earliest)
	}
	// A failed commit only means these records come again; the flows
	// recognise them by offset and do not apply them twice.
	if err := retry(ctx, c.log, "commit offsets", ackAttempts, func() error { return c.client.CommitRecords(ctx, records...) }); err != nil && ctx.Err() == nil {
		c.log.Warn("offsets not committed; the records will be redelivered and recognised", "err", err)
	}
	return ctx.Err()
}

// apply decodes the records, groups them by flow and runs the engine. It is
// safe to run again after a failure: flows that took a record remember it.
func (c *Consumer) apply(ctx context.Context, records []*kgo.Record) (batchResult, error) {
	now := c.clock.Now()
	b := batchBuilder{c: c, now: now, works: map[string]*flowWork{}}
	for _, r := range records {
		switch r.Topic {
		case c.topics.Requests:
			b.addRequest(r)
		case c.topics.DLR:
			b.addReport(r)
		}
	}
	if err := b.resolveProviderIDs(ctx); err != nil {
		return batchResult{}, err
	}
	if len(b.index) > 0 {
		if err := c.engine.store.IndexProviderIDs(ctx, b.index, c.indexTTL); err != nil {
			return batchResult{}, fmt.Errorf("index provider message ids: %w", err)
		}
	}
	if len(b.order) > 0 {
		snaps, err := c.engine.store.Load(ctx, b.order)
		if err != nil {
			return batchResult{}, fmt.Errorf("load flows: %w", err)
		}
		for i, id := range b.order {
			b.works[id].snap = snaps[i]
		}
	}
	works := make([]*flowWork, len(b.order))
	for i, id := range b.order {
		works[i] = b.works[id]
	}
	res, err := c.engine.run(ctx, works, now)
	if err != nil {
		return batchResult{}, err
	}
	res.records = append(b.direct, res.records...)
	return res, nil
}

// batchBuilder collects one poll's inputs per flow, in offset order.
type batchBuilder struct {
	c      *Consumer
	now    time.Time
	works  map[string]*flowWork
	order  []string
	direct []*kgo.Record // dead letters and events that touch no flow
	index  map[string]string
	byPMID []pendingReport // reports that name only a provider message id
}

type pendingReport struct {
	rec *kgo.Record
	rep schemas.DeliveryReport
}

func (b *batchBuilder) add(requestID string, in input) {
	w, ok := b.works[requestID]
	if !ok {
		w = &flowWork{requestID: requestID}
		b.works[requestID] = w
		b.order = append(b.order, requestID)
	}
	w.inputs = append(w.inputs, in)
}

func (b *batchBuilder) deadLetter(r *kgo.Record, err error) {
	b.c.metrics.deadLetters.Add(context.Background(), 1)
	b.c.log.Warn("dead letter", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
	b.direct = append(b.direct, b.c.engine.enc.deadLetter(r, err, b.now))
}

func (b *batchBuilder) event(r *kgo.Record, ev schemas.FlowEvent) {
	ev.EventID, ev.OccurredAt = positionEventID(r, 0), b.now
	rec, err := b.c.engine.enc.event(ev)
	if err != nil {
		b.c.log.Error("encode event", "err", err)
		return
	}
	b.direct = append(b.direct, rec)
}

func position(src flow.Source, r *kgo.Record) flow.Position {
	return flow.Position{Source: src, Partition: r.Partition, Offset: r.Offset}
}

func (b *batchBuilder) addRequest(r *kgo.Record) {
	req, err := b.c.codecs.SendRequest.Decode(r.Value)
	if err != nil {
		b.deadLetter(r, fmt.Errorf("decode %s: %w", b.c.codecs.SendRequest.Name(), err))
		return
	}
	if req.Kind == "" { // Avro defaults apply only to readers that resolve schemas
		req.Kind = schemas.KindSend
	}
	if req.Kind == schemas.KindCancel {
		rej := b.c.validator.ValidateCancel(req)
		if rej == nil {
			rej = b.c.validator.ValidateKey(r.Key, req.RequestID)
		}
		if rej != nil {
			b.reject(r, req.RequestID, rej)
			return
		}
		b.add(req.RequestID, input{in: flow.Cancel{Pos: position(flow.SourceRequests, r), RequestID: req.RequestID}, src: r})
		return
	}
	start, rej := b.c.validator.ValidateSend(req, b.c.defs)
	if rej == nil {
		rej = b.c.validator.ValidateKey(r.Key, req.RequestID)
	}
	if rej != nil {
		b.reject(r, req.RequestID, rej)
		return
	}
	start.Pos = position(flow.SourceRequests, r)
	b.add(req.RequestID, input{in: start, src: r, trace: traceHeaders(r)})
}

func (b *batchBuilder) reject(r *kgo.Record, requestID string, rej *flow.Rejection) {
	// The request id may be what is wrong: the event carries at most the
	// longest valid one, so that it stays small (its key is the id too).
	requestID = clipText(requestID, b.c.validator.Limits.MaxRequestIDBytes)
	b.event(r, schemas.FlowEvent{RequestID: requestID, Type: flow.EventRequestRejected, Reason: rej.Error()})
	b.c.log.Info("request rejected", "request_id", requestID, "reason", rej.Code, "field", rej.Field)
	b.c.metrics.deadLetters.Add(context.Background(), 1)
	b.direct = append(b.direct, b.c.engine.enc.deadLetter(r, rej, b.now))
}

func (b *batchBuilder) addReport(r *kgo.Record) {
	rep, err := b.c.codecs.DeliveryReport.Decode(r.Value)
	if err != nil {
		b.deadLetter(r, fmt.Errorf("decode %s: %w", b.c.codecs.DeliveryReport.Name(), err))
		return
	}
	if rej := b.c.validator.ValidateReport(rep); rej != nil {
		b.deadLetter(r, fmt.Errorf("delivery report: %w", rej))
		return
	}
	switch {
	case rep.AttemptID == "" && rep.ProviderMessageID == "":
		b.deadLetter(r, errors.New("delivery report has neither attempt_id nor provider_message_id"))
	case rep.AttemptID == "":
		b.byPMID = append(b.byPMID, pendingReport{r, rep})
	default:
		if rep.ProviderMessageID != "" {
			if b.index == nil {
				b.index = map[string]string{}
			}
			b.index[rep.ProviderMessageID] = rep.AttemptID
		}
		b.addResolved(r, rep)
	}
}

func (b *batchBuilder) resolveProviderIDs(ctx context.Context) error {
	if len(b.byPMID) == 0 {
		return nil
	}
	ids := make([]string, 0, len(b.byPMID))
	for _, p := range b.byPMID {
		ids = append(ids, p.rep.ProviderMessageID)
	}
	found, err := b.c.engine.store.ResolveProviderIDs(ctx, ids)
	if err != nil {
		return fmt.Errorf("resolve provider message ids: %w", err)
	}
	for _, p := range b.byPMID {
		// An id indexed earlier in this same batch counts too.
		attempt := b.index[p.rep.ProviderMessageID]
		if attempt == "" {
			attempt = found[p.rep.ProviderMessageID]
		}
		p.rep.AttemptID = attempt
		b.addResolved(p.rec, p.rep)
	}
	b.byPMID = nil
	return nil
}

func (b *batchBuilder) addResolved(r *kgo.Record, rep schemas.DeliveryReport) {
	requestID, step, ok := flow.ParseAttemptID(rep.AttemptID)
	if !ok || len(requestID) > b.c.validator.Limits.MaxRequestIDBytes { // no such flow can exist
		b.event(r, schemas.FlowEvent{Type: flow.EventDLRDiscarded, Reason: flow.DiscardUnknownAttempt,
			AttemptID: rep.AttemptID, Channel: rep.Channel, Status: rep.Status})
		return
	}
	in := flow.Report{Pos: position(flow.SourceDLR, r), RequestID: requestID, AttemptID: rep.AttemptID,
		Channel: rep.Channel, Step: step, Status: rep.Status, ErrorCode: rep.ErrorCode, ReportedAt: rep.ReportedAt}
	b.add(requestID, input{in: in, report: &rep, src: r})
}

// maxTraceHeaderBytes bounds a copied trace header (W3C: traceparent is 55
// characters, tracestate at most 512).
const maxTraceHeaderBytes = 512

// traceHeaders carries the request's W3C trace context onto its sends, so a
// provider adapter's spans join the platform's trace. It copies the first
// header of each field, and none larger than maxTraceHeaderBytes: the sends
// and their outbox entries in Redis must not grow with what a request
// carries in its headers.
func traceHeaders(r *kgo.Record) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, field := range (propagation.TraceContext{}).Fields() {
		for _, h := range r.Headers {
			if h.Key == field {
				if len(h.Value) <= maxTraceHeaderBytes {
					out = append(out, h)
				}
				break
			}
		}
	}
	return out
}
