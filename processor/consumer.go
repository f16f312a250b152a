package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/processor/prices"
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
	wire      *wireFormat // plain Avro or, with a schema registry, either format
	validator flow.Validator
	defs      definitions
	prices    *prices.Table // nil: none
	topics    topics.Names
	clock     clock.Clock
	// onDeadline is told the earliest deadline each batch wrote, so that
	// the sweeper wakes for it (Sweeper.Notify).
	onDeadline func(time.Time)
	watermarks *Watermarks
	grace      time.Duration // how far record timestamps may disagree with the clock
	// While more DLRs than dlrBacklogPause wait on this instance's
	// partitions, requests are paused (requestsPaused).
	dlrBacklogPause int64
	requestsPaused  bool
	maxPoll         int
	// batchFill is how long a poll that found fewer than fillTarget records
	// waits for more before the batch runs (Config.BatchFill).
	batchFill time.Duration
	indexTTL  time.Duration
	indexed   indexMemo // provider-id index entries written lately
	log       *slog.Logger
	metrics   *metrics
}

// Run polls until ctx ends.
func (c *Consumer) Run(ctx context.Context) error { return c.run(ctx, ctx) }

// run polls until stop ends, and runs each batch to its commit under work:
// a batch in hand when stop ends is finished (work outlives stop by the
// shutdown timeout); one polled as stop ended is handed back uncommitted.
func (c *Consumer) run(stop, ctx context.Context) error {
	// With BlockRebalanceOnPoll the client cannot leave the group on close
	// while a poll's rebalance block is still held.
	defer c.client.AllowRebalance()
	for {
		fetches := c.fill(stop, c.poll(stop))
		if stop.Err() != nil || ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("consumer: kafka client closed")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) { // poll's bounded wait while requests are paused
				return
			}
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
		if stop.Err() != nil {
			return nil
		}
		c.prioritiseDLRs(ctx)
	}
}

// poll waits for the next records. While requests are paused it waits at
// most one watermark interval (how often the DLR backlog is listed), then
// returns empty so that prioritiseDLRs looks at the backlog again. Waiting
// for a record instead can wait for good: once the DLRs are all read, none
// may come, because the deadlines hold until the unread requests are read
// past them and no send goes out that a DLR would answer. Only
// --max-deadline-hold ended that (measured: 5 minutes with nothing sent, at
// 2,000 requests/s).
func (c *Consumer) poll(ctx context.Context) kgo.Fetches {
	if !c.requestsPaused {
		return c.client.PollRecords(ctx, c.maxPoll)
	}
	pctx, cancel := context.WithTimeout(ctx, c.watermarks.interval)
	defer cancel()
	return c.client.PollRecords(pctx, c.maxPoll)
}

// fill tops up a small batch: it polls again until the batch holds
// fillTarget records or batchFill has passed since the first poll returned.
// An idle input costs nothing (the first poll returned nothing), and a busy
// one already fills its batches; in between, at a steady moderate rate, a
// batch would otherwise carry a handful of records and pay a Redis script
// call per shard and a produce round trip for each handful (issue 20).
func (c *Consumer) fill(ctx context.Context, fetches kgo.Fetches) kgo.Fetches {
	n := fetches.NumRecords()
	if c.batchFill <= 0 || n == 0 || n >= c.fillTarget() {
		return fetches
	}
	fctx, cancel := context.WithTimeout(ctx, c.batchFill)
	defer cancel()
	for n < c.fillTarget() {
		more := c.client.PollRecords(fctx, c.maxPoll-n)
		fetches = append(fetches, more...)
		// No record: the window ended, the client closed or a fetch failed
		// (run logs it). The batch runs with what it has; polling again at
		// once would spin.
		if more.NumRecords() == 0 {
			break
		}
		n += more.NumRecords()
	}
	return fetches
}

// fillTarget is the batch size at which fill stops waiting: a quarter of
// maxPoll, past which the fixed costs of a batch are already small.
func (c *Consumer) fillTarget() int { return max(c.maxPoll/4, 1) }

// prioritiseDLRs stops reading requests while a DLR backlog waits on this
// instance's partitions, and resumes once it is mostly drained: a DLR
// decides whether a fallback is paid for, a request only starts a flow. The
// hysteresis (pause above the threshold, resume below a quarter of it) keeps
// a steady load from flapping.
func (c *Consumer) prioritiseDLRs(ctx context.Context) {
	backlog := c.watermarks.DLRBacklog()
	switch {
	case !c.requestsPaused && backlog > c.dlrBacklogPause:
		c.client.PauseFetchTopics(c.topics.Requests)
		c.requestsPaused = true
		c.metrics.requestsPaused.Add(ctx, 1)
		c.log.Info("reading requests paused: DLRs first", "dlr_backlog", backlog)
	case c.requestsPaused && backlog <= c.dlrBacklogPause/4:
		c.client.ResumeFetchTopics(c.topics.Requests)
		c.requestsPaused = false
		c.log.Info("reading requests resumed", "dlr_backlog", backlog)
	}
}

// handle runs one poll's records to the end; it only returns an error when
// ctx ended, since every failure of Redis or Kafka is retried.
func (c *Consumer) handle(ctx context.Context, records []*kgo.Record) error {
	c.metrics.records.Add(ctx, int64(len(records)))
	c.metrics.batchSize.Record(ctx, int64(len(records)), metric.WithAttributes(attribute.String("source", "consumer")))
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
		c.onDeadline(res.earliest)
	}
	// The records are applied and their outputs durable: deadlines behind
	// them may fire. That does not wait for the commit (a record read again
	// is recognised and changes nothing), which takes a round trip off every
	// deadline's lateness. A failure here only holds deadlines until the
	// next batch or caught-up check.
	if err := c.watermarks.Applied(ctx, records); err != nil && ctx.Err() == nil {
		c.log.Warn("watermarks not advanced", "err", err)
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
func (c *Consumer) apply(ctx context.Context, records []*kgo.Record) (_ batchResult, err error) {
	now := c.clock.Now()
	b := batchBuilder{c: c, now: now, readPast: c.readPast(), requestsReadPast: c.requestsReadPast(), works: map[string]*flowWork{}}
	defer func() { endRequestSpans(b.spans, err) }()
	// DLRs that name only a provider message id are resolved first, all at
	// once, so that every record then applies in offset order: a later
	// record of the same partition must never apply before an earlier one,
	// or the earlier one looks like a redelivery and is dropped.
	reports, err := b.decodeReports(ctx, records)
	if err != nil {
		return batchResult{}, err
	}
	if err := b.resolveProviderIDs(ctx, reports); err != nil {
		return batchResult{}, err
	}
	for i, r := range records {
		switch r.Topic {
		case c.topics.Requests:
			if err := b.addRequest(ctx, r); err != nil {
				return batchResult{}, err
			}
		case c.topics.DLR:
			if rep, ok := reports[i]; ok {
				b.addResolved(r, rep)
			}
		}
	}
	if index := c.indexed.toWrite(b.index, now, c.indexTTL); len(index) > 0 {
		done := c.metrics.redisTimer(ctx, "index_provider_ids")
		err := c.engine.indexProviderIDs(ctx, index, c.indexTTL)
		done()
		if err != nil {
			return batchResult{}, fmt.Errorf("index provider message ids: %w", err)
		}
		c.indexed.wrote(index, now)
	}
	if len(b.order) > 0 {
		done := c.metrics.redisTimer(ctx, "load")
		snaps, err := c.engine.load(ctx, b.order)
		done()
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
		works[i].inputs = inPublicationOrder(works[i].inputs)
	}
	res, err := c.engine.run(ctx, works, now)
	if err != nil {
		return batchResult{}, err
	}
	res.records = append(b.direct, res.records...)
	// The events written without a flow, counted once the batch went through.
	for _, ev := range b.directEvents {
		c.metrics.observeEvent(ctx, ev)
		if ev.Type == flow.EventRequestRejected {
			c.metrics.rejections.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", b.rejectCodes[0])))
			b.rejectCodes = b.rejectCodes[1:]
		}
	}
	return res, nil
}

// batchBuilder collects one poll's inputs per flow, in offset order per
// partition (apply then merges a flow's partitions: inPublicationOrder).
type batchBuilder struct {
	c        *Consumer
	now      time.Time
	readPast time.Time // flow.Report.ReadPast of every input of the batch
	// requestsReadPast is flow.Report.RequestsReadPast of every DLR of the
	// batch, shared by them.
	requestsReadPast map[int32]time.Time
	works            map[string]*flowWork
	order            []string
	direct           []*kgo.Record // dead letters and events that touch no flow
	// directEvents are the events in direct, and rejectCodes the reason
	// codes of the REQUEST_REJECTED among them, in order, for the metrics.
	directEvents []schemas.FlowEvent
	rejectCodes  []string
	index        map[string]string // provider message id -> attempt id, learnt from this batch
	spans        []trace.Span      // of the accepted requests, ended with the batch
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
	b.direct = append(b.direct, b.c.engine.deadLetter(r, err, b.now))
}

func (b *batchBuilder) event(r *kgo.Record, ev schemas.FlowEvent) bool {
	ev.EventID, ev.OccurredAt = positionEventID(r, 0), b.now
	rec, err := b.c.engine.event(ev)
	if err != nil {
		b.c.log.Error("encode event", "err", err)
		return false
	}
	b.direct = append(b.direct, rec)
	b.directEvents = append(b.directEvents, ev)
	return true
}

func position(src flow.Source, r *kgo.Record) flow.Position {
	return flow.Position{Source: src, Partition: r.Partition, Offset: r.Offset}
}

// addRequest adds a send or cancel, or its rejection. It fails only when
// the flow table could not be brought up to date for a request naming an
// unknown flow; the batch is then tried again rather than the request
// rejected for a definition that may exist.
func (b *batchBuilder) addRequest(ctx context.Context, r *kgo.Record) error {
	// A producer built before a compatible schema change writes the older
	// schema; the registry's schema id, its fingerprint header, or the
	// bytes say which.
	req, bad, err := decodeInput(ctx, b.c.wire, b.c.codecs.SendRequest, r)
	if err != nil {
		return fmt.Errorf("decode %s: %w", b.c.codecs.SendRequest.Name(), err)
	}
	if bad != nil {
		b.deadLetter(r, fmt.Errorf("decode %s: %w", b.c.codecs.SendRequest.Name(), bad))
		return nil
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
			return nil
		}
		b.add(req.RequestID, input{in: flow.Cancel{Pos: position(flow.SourceRequests, r), RequestID: req.RequestID,
			PublishedAt: b.c.publishedAt(r), ReadPast: b.readPast}, src: r})
		return nil
	}
	start, rej := b.c.validator.ValidateSend(req, b.c.defs)
	if rej != nil && refreshable(rej.Code) {
		refreshed, err := b.c.refreshDefinitions(ctx, r)
		if err != nil {
			return fmt.Errorf("request %s: %v, so far: %w", req.RequestID, rej, err)
		}
		if refreshed {
			start, rej = b.c.validator.ValidateSend(req, b.c.defs)
		}
	}
	if rej == nil {
		rej = b.c.validator.ValidateKey(r.Key, req.RequestID)
	}
	if rej == nil {
		// Stale or replayed (a new group, an offset reset): nothing is sent.
		start.RequestedAt, rej = b.c.validator.ValidateTime(req, b.c.recordTime(r), b.now)
	}
	if rej != nil {
		b.reject(r, req.RequestID, rej)
		return nil
	}
	for _, w := range start.Warnings {
		b.c.metrics.catalogWarnings.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", w.Code)))
		b.c.log.Warn("catalog check failed, flow started anyway (--catalog=warn)", "request_id", clipText(req.RequestID, 128),
			"reason", w.Code, "field", w.Field, "detail", w.Detail)
	}
	start.Pos = position(flow.SourceRequests, r)
	// Priced once, at the start: the flow's bill does not change with a
	// table replaced while it runs, whichever instance applies its inputs.
	start.Steps = b.c.prices.PriceSteps(start.Recipient, start.Steps)
	// A flow with an auto step keeps its recipient's country: a delivery
	// after its close is still an observed latency (docs/auto-delay.md).
	start.Country = autodelay.CountryOf(start.Recipient, start.Steps)
	span, tp, ts := startRequestSpan(b.c.engine.tracer, r, req.RequestID)
	start.TraceParent, start.TraceState = tp, ts
	b.spans = append(b.spans, span)
	b.add(req.RequestID, input{in: start, src: r})
	return nil
}

// refreshable reports whether a rejection may only mean that the config
// table has not read a change yet: a flow, sender or template stored, or
// made usable (published, enabled, approved), just before the request.
func refreshable(code string) bool {
	switch code {
	case flow.RejectUnknownFlow, flow.RejectNotPublished, flow.RejectSenderUnknown, flow.RejectSenderDisabled,
		flow.RejectTemplateUnknown, flow.RejectTemplateNotApproved:
		return true
	}
	return false
}

// definitions is the config table as the consumer uses it (ConfigTable).
type definitions interface {
	flow.Definitions
	Refresh(ctx context.Context) error
	FreshSince() time.Time
}

// flowRefreshTimeout bounds the wait for the config table to read its
// topics to their end; past it the batch fails and is tried again.
const flowRefreshTimeout = 10 * time.Second

// refreshDefinitions brings the config table up to date for a request that
// names a flow (or a sender, or a template) it does not hold, or not as
// usable, and reports whether it did. The request may have been published
// right after its flow was stored, and read before the table's follower
// fetched the definition. A request published before
// the last refresh began (less the clock-skew grace) needs none: its flow,
// stored before it, is in the table already. So a stream of requests naming
// a flow that does not exist costs one refresh per batch at most.
func (c *Consumer) refreshDefinitions(ctx context.Context, r *kgo.Record) (bool, error) {
	if c.defs == nil {
		return false, nil
	}
	if !r.Timestamp.IsZero() && r.Timestamp.Before(c.defs.FreshSince().Add(-c.grace)) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, flowRefreshTimeout)
	defer cancel()
	if err := c.defs.Refresh(ctx); err != nil {
		return false, err
	}
	c.metrics.tableRefreshes.Add(ctx, 1)
	return true, nil
}

// recordTime is the record's timestamp on the processor's clock (the same
// instant as wall time, except on the sped-up test clock). The manual test
// clock cannot map it and takes it as it is.
func (c *Consumer) recordTime(r *kgo.Record) time.Time {
	if wc, ok := c.clock.(wallClock); ok {
		return wc.FromWall(r.Timestamp)
	}
	return r.Timestamp
}

// readPast is how far every input partition is read, as this instance last
// saw the watermarks, less the clock-skew grace (flow.Report.ReadPast): the
// zero time when unknown.
func (c *Consumer) readPast() time.Time {
	low := c.watermarks.KnownLow()
	if low.IsZero() {
		return low
	}
	return low.Add(-c.grace)
}

// requestsReadPast is how far each requests partition is read, as
// readPast is for all of them (flow.Report.RequestsReadPast): nil when
// unknown.
func (c *Consumer) requestsReadPast() map[int32]time.Time {
	marks := c.watermarks.KnownOf(c.topics.Requests)
	for p, m := range marks {
		if !m.IsZero() {
			marks[p] = m.Add(-c.grace)
		}
	}
	return marks
}

// publishedAt is the latest time on the processor's clock that the record
// was surely published after: its timestamp less the clock-skew grace. Zero
// on the manual test clock, which cannot map a record's timestamp.
func (c *Consumer) publishedAt(r *kgo.Record) time.Time {
	wc, ok := c.clock.(wallClock)
	if !ok || r.Timestamp.IsZero() {
		return time.Time{}
	}
	return wc.FromWall(r.Timestamp).Add(-c.grace)
}

// schemaFingerprint is the record's fallback.schema.fp header, "" without one.
func schemaFingerprint(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderSchemaFingerprint {
			return string(h.Value)
		}
	}
	return ""
}

func (b *batchBuilder) reject(r *kgo.Record, requestID string, rej *flow.Rejection) {
	// The request id may be what is wrong: the event carries at most the
	// longest valid one, so that it stays small (its key is the id too).
	requestID = clipText(requestID, b.c.validator.Limits.MaxRequestIDBytes)
	if b.event(r, schemas.FlowEvent{RequestID: requestID, Type: flow.EventRequestRejected, Reason: rej.Error()}) {
		b.rejectCodes = append(b.rejectCodes, rej.Code)
	}
	b.c.log.Info("request rejected", "request_id", requestID, "reason", rej.Code, "field", rej.Field)
	b.c.metrics.deadLetters.Add(context.Background(), 1)
	b.direct = append(b.direct, b.c.engine.deadLetter(r, rej, b.now))
}

// decodeReports decodes and checks the batch's DLRs, by position in
// records. A bad one is dead-lettered and left out. The provider message
// ids the batch pairs with attempt ids go into the index.
func (b *batchBuilder) decodeReports(ctx context.Context, records []*kgo.Record) (map[int]schemas.DeliveryReport, error) {
	reports := map[int]schemas.DeliveryReport{}
	for i, r := range records {
		if r.Topic != b.c.topics.DLR {
			continue
		}
		rep, bad, err := decodeInput(ctx, b.c.wire, b.c.codecs.DeliveryReport, r)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", b.c.codecs.DeliveryReport.Name(), err)
		}
		if bad != nil {
			b.deadLetter(r, fmt.Errorf("decode %s: %w", b.c.codecs.DeliveryReport.Name(), bad))
			continue
		}
		if rej := b.c.validator.ValidateReport(rep); rej != nil {
			b.deadLetter(r, fmt.Errorf("delivery report: %w", rej))
			continue
		}
		switch {
		case rep.AttemptID == "" && rep.ProviderMessageID == "":
			b.deadLetter(r, errors.New("delivery report has neither attempt_id nor provider_message_id"))
			continue
		case rep.AttemptID != "" && rep.ProviderMessageID != "":
			if b.index == nil {
				b.index = map[string]string{}
			}
			b.index[rep.ProviderMessageID] = rep.AttemptID
		}
		reports[i] = rep
	}
	return reports, nil
}

// resolveProviderIDs fills in the attempt id of the reports that name only
// a provider message id: from this batch's own pairs first, then from the
// index in Redis. One that resolves to nothing keeps an empty attempt id
// and is reported as an unknown attempt.
func (b *batchBuilder) resolveProviderIDs(ctx context.Context, reports map[int]schemas.DeliveryReport) error {
	var ids []string
	for _, rep := range reports {
		if rep.AttemptID == "" && b.index[rep.ProviderMessageID] == "" {
			ids = append(ids, rep.ProviderMessageID)
		}
	}
	var found map[string]string
	if len(ids) > 0 {
		var err error
		if found, err = b.c.engine.resolveProviderIDs(ctx, ids); err != nil {
			return fmt.Errorf("resolve provider message ids: %w", err)
		}
	}
	for i, rep := range reports {
		if rep.AttemptID != "" {
			continue
		}
		rep.AttemptID = b.index[rep.ProviderMessageID]
		if rep.AttemptID == "" {
			rep.AttemptID = found[rep.ProviderMessageID]
		}
		reports[i] = rep
	}
	return nil
}

func (b *batchBuilder) addResolved(r *kgo.Record, rep schemas.DeliveryReport) {
	requestID, step, ok := flow.ParseAttemptID(rep.AttemptID)
	if !ok || len(requestID) > b.c.validator.Limits.MaxRequestIDBytes { // no such flow can exist
		b.event(r, schemas.FlowEvent{Type: flow.EventDLRDiscarded, Reason: flow.DiscardUnknownAttempt,
			AttemptID: rep.AttemptID, Channel: rep.Channel, Status: rep.Status})
		return
	}
	price, err := prices.FromReport(rep.PriceMicros, rep.Currency)
	if err != nil {
		// The status still counts: a bad price costs the price, not the DLR.
		b.c.metrics.dlrPricesIgnored.Add(context.Background(), 1)
		b.c.log.Debug("DLR price ignored", "attempt_id", rep.AttemptID, "err", err)
	}
	in := flow.Report{Pos: position(flow.SourceDLR, r), PublishedAt: b.c.publishedAt(r), ReadPast: b.readPast,
		RequestsReadPast: b.requestsReadPast, RequestID: requestID, AttemptID: rep.AttemptID, Channel: rep.Channel, Step: step, Status: rep.Status, ErrorCode: rep.ErrorCode, ReportedAt: rep.ReportedAt,
		Price: price}
	b.add(requestID, input{in: in, report: &rep, src: r})
}

// maxTraceHeaderBytes bounds a copied trace header (W3C: traceparent is 55
// characters, tracestate at most 512).
const maxTraceHeaderBytes = 512

// traceHeaders is the request's W3C trace context, which its flow keeps and
// carries onto every send and event, so a provider adapter's spans join the
// platform's trace. It copies the first header of each field, and none
// larger than maxTraceHeaderBytes: the flow state, the sends and their
// outbox entries in Redis must not grow with what a request carries in its
// headers.
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
