package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/fallbackd/fallback/processor/autodelay"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// StateStore is what the processor needs from the state store.
type StateStore interface {
	Load(ctx context.Context, requestIDs []string) ([]statestore.Snapshot, error)
	Apply(ctx context.Context, changes []statestore.Change) ([]statestore.ApplyResult, error)
	AckOutbox(ctx context.Context, acks []statestore.OutboxAck) error
	// ClaimDueShards claims in the given shards (nil: all), DueByShard
	// says which have a deadline due (the zero time: none).
	ClaimDueShards(ctx context.Context, shards []int, now time.Time, lease time.Duration, limitPerShard int) ([]statestore.Snapshot, error)
	DueByShard(ctx context.Context) ([]time.Time, error)
	ClaimOwed(ctx context.Context, now time.Time, lease time.Duration, limitPerShard int) ([]statestore.OwedOutputs, error)
	IndexProviderIDs(ctx context.Context, refs []statestore.ProviderRef, ttl time.Duration) error
	ResolveProviderIDs(ctx context.Context, ids []string) (map[string]string, error)
	WatermarkStore
	ClosedFlowStore
}

// Publisher produces records and returns once Kafka acknowledged every one.
type Publisher interface {
	Publish(ctx context.Context, records []*kgo.Record) error
}

// maxConflictRounds bounds how often one batch recomputes flows whose
// version moved under it. Each round means another writer won a race; many
// in a row means something is wrong, and the batch is retried whole.
const maxConflictRounds = 16

// input is one event for a flow, with the Kafka record it came from (nil for
// the sweeper's deadline inputs).
type input struct {
	in     flow.Input
	report *schemas.DeliveryReport // set when in is a flow.Report still to be normalised
	src    *kgo.Record
}

// flowWork is everything one batch does to one flow.
type flowWork struct {
	requestID string
	snap      statestore.Snapshot
	state     *flow.State // snap decoded, when the caller already did (the sweeper); nil otherwise
	inputs    []input
	sweep     bool // inputs come from the sweeper
}

// batchResult is what a batch owes Kafka and the outbox acks to send once
// Kafka has acknowledged it.
type batchResult struct {
	records  []*kgo.Record
	acks     []statestore.OutboxAck
	earliest time.Time // earliest new deadline, to wake the sweeper
}

// engine runs the state machine over a batch of flows and writes the results
// to the state store with compare-and-set, recomputing the flows that lost a
// race. It is shared by the consumer and the sweeper.
type engine struct {
	store    StateStore
	enc      *encoder
	channels flow.Channels
	lease    time.Duration
	log      *slog.Logger
	metrics  *metrics
	tracer   trace.Tracer // spans of applied changes (tracing.go)
	// events says which of the flows' events are written (--events). An
	// event not written still counts in the metrics and keeps its index in
	// the event ids, so a mode switched between restarts keeps ids stable.
	events flow.Events
	// delays learns the send-to-delivery latencies of the flows this
	// engine applies and chooses auto delays from them; nil: auto steps
	// run on their fallback delay and nothing is learnt.
	delays *autodelay.Estimator
}

// The state-store and encoding calls of the workers (consumer, sweeper,
// recoverer) go through the engine, so that it alone holds the store, the
// encoder and their timings.

func (e *engine) load(ctx context.Context, requestIDs []string) ([]statestore.Snapshot, error) {
	return e.store.Load(ctx, requestIDs)
}

// indexProviderIDs records provider message id -> attempt id, with each
// attempt's flow and step when the attempt id names one.
func (e *engine) indexProviderIDs(ctx context.Context, refs map[string]string, ttl time.Duration) error {
	out := make([]statestore.ProviderRef, 0, len(refs))
	for pid, attempt := range refs {
		r := statestore.ProviderRef{ProviderID: pid, AttemptID: attempt}
		if id, step, ok := flow.ParseAttemptID(attempt); ok && !statestore.IsCompactRef(id) {
			r.RequestID, r.Step = id, step
		}
		out = append(out, r)
	}
	return e.store.IndexProviderIDs(ctx, out, ttl)
}

func (e *engine) resolveProviderIDs(ctx context.Context, ids []string) (map[string]string, error) {
	return e.store.ResolveProviderIDs(ctx, ids)
}

func (e *engine) claimDue(ctx context.Context, shards []int, cutoff time.Time, lease time.Duration, limitPerShard int) ([]statestore.Snapshot, error) {
	return e.store.ClaimDueShards(ctx, shards, cutoff, lease, limitPerShard)
}

func (e *engine) dueByShard(ctx context.Context) ([]time.Time, error) {
	return e.store.DueByShard(ctx)
}

func (e *engine) claimOwed(ctx context.Context, now time.Time, lease time.Duration, limitPerShard int) ([]statestore.OwedOutputs, error) {
	return e.store.ClaimOwed(ctx, now, lease, limitPerShard)
}

// deadlineCounter is a state store that counts deadlines cheaply
// (statestore.Store); with another store the deadline gauges stay empty.
type deadlineCounter interface {
	DeadlineCounts(ctx context.Context, after, upTo time.Time) (pending, due int64, err error)
}

// deadlineCounts are the store's deadline counts (DeadlineCounts); ok is
// false when the store cannot count them.
func (e *engine) deadlineCounts(ctx context.Context, after, upTo time.Time) (pending, due int64, ok bool, err error) {
	dc, ok := e.store.(deadlineCounter)
	if !ok {
		return 0, 0, false, nil
	}
	pending, due, err = dc.DeadlineCounts(ctx, after, upTo)
	return pending, due, true, err
}

// deadLetter is the dead-letter record of a refused input.
func (e *engine) deadLetter(src *kgo.Record, reason error, now time.Time) *kgo.Record {
	return e.enc.deadLetter(src, reason, now)
}

// event is the record of an event that belongs to no flow change (its id
// is set), without trace context.
func (e *engine) event(ev schemas.FlowEvent) (*kgo.Record, error) {
	return e.enc.event(ev, nil)
}

func (e *engine) run(ctx context.Context, works []*flowWork, now time.Time) (batchResult, error) {
	var res batchResult
	pending := works
	for round := 0; len(pending) > 0; round++ {
		if round == maxConflictRounds {
			return res, fmt.Errorf("apply batch: %d flows still conflicting after %d rounds", len(pending), round)
		}
		changes := make([]statestore.Change, 0, len(pending))
		staged := make([][]*kgo.Record, 0, len(pending))
		outs := make([]computed, 0, len(pending))
		changed := make([]*flowWork, 0, len(pending))
		for _, w := range pending {
			change, records, out, ok := e.compute(ctx, w, now, &res)
			if !ok {
				continue
			}
			changes = append(changes, change)
			staged = append(staged, records)
			outs = append(outs, out)
			changed = append(changed, w)
		}
		if len(changes) == 0 {
			break
		}
		done := e.metrics.redisTimer(ctx, "apply")
		results, err := e.store.Apply(ctx, changes)
		done()
		if err != nil {
			return res, fmt.Errorf("apply batch: %w", err)
		}
		pending = pending[:0]
		for i, r := range results {
			w := changed[i]
			if !r.Applied {
				e.metrics.conflicts.Add(ctx, 1)
				w.snap, w.state = r.Current, nil
				pending = append(pending, w)
				continue
			}
			ack := statestore.OutboxAck{RequestID: w.requestID, Versions: []int64{r.Version}}
			if len(r.Owed) > 0 {
				// An earlier writer's outputs are not in Kafka yet (in flight,
				// or that writer died): produce them first, so that this flow's
				// events keep their causal order. Their ids are stable, so a
				// second copy is dropped downstream.
				res.records = append(res.records, e.owedRecords(w.requestID, r.Owed)...)
				ack.Versions = append(entryVersions(r.Owed), r.Version)
			}
			res.records = append(res.records, staged[i]...)
			// Counted once, now that the change is applied: a replay of the
			// same input changes nothing and produces none of these again.
			e.metrics.observeOutputs(ctx, outs[i].sends, outs[i].events)
			e.observeLatencies(outs[i].latencies)
			e.traceOutputs(ctx, outs[i])
			res.acks = append(res.acks, ack)
			if d := changes[i].Deadline; !d.IsZero() && (res.earliest.IsZero() || d.Before(res.earliest)) {
				res.earliest = d
			}
		}
	}
	return res, nil
}

// computed are the outputs of a change, kept to be counted once it is applied.
type computed struct {
	sends     []sendOut
	events    []eventOut
	latencies []latency // deliveries the change records, for the auto delays
}

// latency is an attempt's send-to-delivery time, in provider time.
type latency struct {
	channel, country    string
	sentAt, deliveredAt time.Time
}

// deliveries are the attempts that reported their first delivery between
// the states before and after, with the times the flow recorded (the
// DLR's reported_at): a held input released by the sweeper counts too,
// and a redelivered input, already applied, changes nothing and counts
// nothing. A compacted flow keeps no times.
func deliveries(before, after *flow.State) []latency {
	if after == nil || after.Compacted {
		return nil
	}
	var out []latency
	for k, a := range after.Attempts {
		if !a.Reached() || a.LastStatusAt == 0 || (before != nil && k < len(before.Attempts) && before.Attempts[k].Reached()) {
			continue
		}
		country := after.Country
		if country == "" && before != nil {
			country = before.Country
		}
		// An open flow has its recipient; a closed one only the country
		// it kept for an auto step.
		for _, st := range []*flow.State{after, before} {
			if country == "" && st != nil && st.Recipient != "" {
				country = autodelay.CountryCode(st.Recipient)
			}
		}
		out = append(out, latency{channel: after.Steps[k].Channel, country: country,
			sentAt: time.UnixMilli(a.SentAt), deliveredAt: time.UnixMilli(a.LastStatusAt)})
	}
	return out
}

// autoDelays are the choices for the flow's auto steps not sent yet, made
// now, before in is applied: the machine uses the one of a step the input
// sends (a start, a failure, a deadline) and stores it, so that the step's
// delay is chosen when it is sent, from what this instance observed until
// then, and never again (an input applied again changes nothing). Nil
// for a flow without such a step, at no cost.
func (e *engine) autoDelays(st *flow.State, in flow.Input, now time.Time) flow.Delays {
	if st == nil {
		if s, ok := in.(flow.Start); ok {
			return e.delays.Delays(s.Steps, 0, s.Country, now)
		}
		return nil
	}
	if st.Closed {
		return nil
	}
	return e.delays.Delays(st.Steps, len(st.Attempts), st.Country, now)
}

func (e *engine) observeLatencies(ls []latency) {
	if e.delays == nil {
		return
	}
	for _, l := range ls {
		if l.country == "" {
			continue // a closed fixed-delay flow: its tombstone has no number
		}
		e.delays.Observe(l.channel, l.country, l.sentAt, l.deliveredAt)
	}
}

// compute runs a flow's inputs through the state machine. When the state
// changed it returns the change to write, with the outputs as its outbox, and
// the same outputs as records to produce once the change is applied. Outputs
// of inputs that changed nothing (duplicates, discards) go straight to res.
func (e *engine) compute(ctx context.Context, w *flowWork, now time.Time, res *batchResult) (statestore.Change, []*kgo.Record, computed, bool) {
	st, err := w.state, error(nil)
	if st == nil {
		st, err = decodeSnapshot(w.snap)
	}
	if err != nil {
		e.log.Error("flow state unreadable; its inputs go to the dead-letter topic", "request_id", w.requestID, "err", err)
		for _, in := range w.inputs {
			if in.src != nil {
				e.metrics.deadLetters.Add(ctx, 1)
				res.records = append(res.records, e.enc.deadLetter(in.src, err, now))
			}
		}
		return statestore.Change{}, nil, computed{}, false
	}

	cur, changedState := st, false
	var sends []sendOut
	var events []eventOut
	for _, in := range w.inputs {
		input := e.normalise(in, cur)
		next, out := flow.ApplyWith(cur, input, now, e.autoDelays(cur, input, now))
		if next != nil && len(next.Held) > heldCount(cur) {
			e.metrics.inputsHeld.Add(ctx, 1)
		}
		// The flow's trace context; a tombstone has dropped it, so the
		// outputs of the change that closed the flow take the one before.
		tr := stateTrace(next)
		if tr == nil {
			tr = stateTrace(cur)
		}
		cur, changedState = next, changedState || out.Changed
		for _, s := range out.Sends {
			sends = append(sends, sendOut{s, tr})
		}
		for i, ev := range out.Events {
			events = append(events, eventOut{ev, in.src, i, tr, out.Changed})
		}
	}

	if !changedState {
		if w.sweep && cur != nil && !cur.Closed {
			// The claim pushed the deadline out by a lease, but the flow is not
			// due yet (another instance's clock runs behind): put it back.
			return e.change(w, cur, nil, now), nil, computed{}, true
		}
		for _, ev := range events {
			e.metrics.observeEvent(ctx, ev.ev)
			if !e.events.Writes(ev.ev.Type) {
				continue
			}
			ev.ev.EventID = positionEventID(ev.src, ev.index)
			unnamed(&ev.ev, w.requestID)
			res.records = append(res.records, e.keep(e.enc.event(ev.ev, ev.trace))...)
		}
		return statestore.Change{}, nil, computed{}, false
	}

	version := w.snap.Version + 1
	records := make([]*kgo.Record, 0, len(sends)+len(events))
	for _, s := range sends {
		records = append(records, e.keep(e.enc.send(s.send, s.trace))...)
	}
	for i, ev := range events {
		if !e.events.Writes(ev.ev.Type) {
			continue
		}
		if ev.changed || ev.src == nil {
			ev.ev.EventID = eventFlowID(w.requestID) + "/v" + strconv.FormatInt(version, 10) + "/" + strconv.Itoa(i)
		} else {
			// An input that changed nothing is not marked applied: read again
			// after a crash, it yields this event again, which must keep its id.
			ev.ev.EventID = positionEventID(ev.src, ev.index)
		}
		if ev.ev.RequestID == "" {
			ev.ev.RequestID = w.requestID
		}
		unnamed(&ev.ev, w.requestID)
		records = append(records, e.keep(e.enc.event(ev.ev, ev.trace))...)
	}
	return e.change(w, cur, records, now), records, computed{sends: sends, events: events, latencies: deliveries(st, cur)}, true
}

func (e *engine) change(w *flowWork, st *flow.State, records []*kgo.Record, now time.Time) statestore.Change {
	blob, err := st.Encode()
	if err != nil { // a State always encodes; keep the invariant loud
		panic(err)
	}
	c := statestore.Change{RequestID: w.requestID, ExpectVersion: w.snap.Version, FromCompact: w.snap.Compacted,
		State: blob, Deadline: st.DueTime(), Closed: st.Closed}
	if len(records) > 0 {
		c.Outbox = make([][]byte, len(records))
		for i, r := range records {
			c.Outbox[i] = marshalRecord(r)
		}
		c.OutboxRetryAt = now.Add(e.lease)
	}
	return c
}

// entryVersions lists the versions of entries (which are in version order)
// once each.
func entryVersions(entries []statestore.OutboxEntry) []int64 {
	var out []int64
	for _, en := range entries {
		if len(out) == 0 || out[len(out)-1] != en.Version {
			out = append(out, en.Version)
		}
	}
	return out
}

func (e *engine) owedRecords(requestID string, owed []statestore.OutboxEntry) []*kgo.Record {
	out := make([]*kgo.Record, 0, len(owed))
	for _, o := range owed {
		rec, err := unmarshalRecord(o.Data)
		if err != nil { // the recoverer reports it when it claims the flow
			e.log.Error("owed output unreadable", "request_id", requestID, "version", o.Version, "err", err)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// keep returns the encoded record, or nothing when encoding failed: that
// only happens on a bug, which is logged rather than allowed to stop every
// flow behind this one.
func (e *engine) keep(r *kgo.Record, err error) []*kgo.Record {
	if err != nil {
		e.log.Error("encode output", "err", err)
		return nil
	}
	return []*kgo.Record{r}
}

// normalise resolves a raw DLR status against the channel of the step it
// reports on (the DLR's own channel field when the flow is unknown).
func (e *engine) normalise(in input, st *flow.State) flow.Input {
	if in.report == nil {
		return in.in
	}
	rep := in.in.(flow.Report)
	channel := in.report.Channel
	if st != nil && rep.Step >= 0 && rep.Step < len(st.Steps) {
		channel = st.Steps[rep.Step].Channel
	}
	kind, known := e.channels.Normalise(channel, rep.Status)
	if !known {
		e.metrics.unknownStatuses.Add(context.Background(), 1)
		e.log.Debug("unknown provider status recorded as intermediate", "request_id", rep.RequestID, "attempt_id", rep.AttemptID, "channel", channel, "status", rep.Status)
	}
	rep.Kind = kind
	return rep
}

type sendOut struct {
	send  schemas.ChannelSend
	trace []kgo.RecordHeader
}

type eventOut struct {
	ev      schemas.FlowEvent
	src     *kgo.Record
	index   int
	trace   []kgo.RecordHeader // the flow's trace context
	changed bool               // the input changed the flow's state
}

// A flow reached by a provider id alone past its detail window is known by
// a statestore.CompactRef, not its request id (docs/closed-flows.md): its
// events name no request and no attempt, like an unknown attempt's, and
// their ids are made of the CompactRef's printable part.

// eventFlowID is what a changed flow's event ids start with.
func eventFlowID(flowID string) string {
	if statestore.IsCompactRef(flowID) {
		return "compact:" + flowID[1:]
	}
	return flowID
}

// unnamed clears the CompactRef from an event of flowID.
func unnamed(ev *schemas.FlowEvent, flowID string) {
	if !statestore.IsCompactRef(flowID) {
		return
	}
	if ev.RequestID == flowID {
		ev.RequestID = ""
	}
	if strings.HasPrefix(ev.AttemptID, flowID) {
		ev.AttemptID = ""
	}
}

// positionEventID identifies an event that changed no state by the record
// that caused it, so a redelivered record yields the same id.
func positionEventID(src *kgo.Record, i int) string {
	if src == nil {
		return "sweep/" + strconv.Itoa(i)
	}
	return src.Topic + "/" + strconv.Itoa(int(src.Partition)) + "/" + strconv.FormatInt(src.Offset, 10) + "/" + strconv.Itoa(i)
}

func decodeSnapshot(s statestore.Snapshot) (*flow.State, error) {
	if !s.Exists {
		return nil, nil
	}
	if len(s.State) == 0 {
		return nil, errors.New("empty state blob")
	}
	return flow.Decode(s.RequestID, s.State)
}

// heldCount is how many inputs a flow holds (flow.State.Held).
func heldCount(st *flow.State) int {
	if st == nil {
		return 0
	}
	return len(st.Held)
}
