package integration

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// TestHostileInputs runs a table of malformed and hostile records through
// the processor, all in one batch, interleaved on the same partitions with
// valid flows. Every hostile record goes to the dead-letter topic with an
// error saying what was wrong, or is discarded with a reason event; the
// processor keeps running; and the valid flows around them get their sends
// and close normally. docs/bad-input.md describes the table.
//
// How "one batch" is arranged: the flows the DLR rows report on are started
// by a first instance, which is then stopped; the whole table is produced
// (valid flows before and after each row, on the row's partition); then a
// second instance starts and takes it all in its first polls.
func TestHostileInputs(t *testing.T) {
	h := newHarness(t)
	e := newHostileEnv(h)
	rows := hostileRows(e)

	// Stored flow definitions, read at start-up by the flow table.
	e.storeDefinitions()

	// Phase 1: the flows the DLR rows need, and the companions of the DLR rows.
	first := h.start(nil)
	var targets []string
	for _, r := range rows {
		targets = append(targets, r.targets...)
		if r.topic == h.names.DLR {
			targets = append(targets, r.okBefore(), r.okAfter())
		}
	}
	for _, id := range targets {
		h.request(otp(id))
	}
	for _, id := range targets {
		h.waitSend(id + "/0")
	}
	if err := first.stop(); err != nil {
		t.Fatalf("first instance: %v", err)
	}

	// Phase 2: the table, interleaved with valid flows on the same partitions.
	var recs []*kgo.Record
	for i, r := range rows {
		p := int32(i % hostilePartitions)
		on := func(rec *kgo.Record) *kgo.Record { rec.Partition = p; return rec }
		if r.topic == h.names.Requests {
			recs = append(recs, on(e.requestRecord(otp(r.okBefore()))))
		} else {
			recs = append(recs, on(e.dlrRecord(r.okBefore()+"/0", "delivered")))
		}
		for _, rec := range r.records() {
			if rec.Topic == "" {
				rec.Topic = r.topic
			}
			recs = append(recs, on(rec))
		}
		if r.topic == h.names.Requests {
			recs = append(recs, on(e.requestRecord(otp(r.okAfter()))))
		} else {
			recs = append(recs, on(e.dlrRecord(r.okAfter()+"/0", "delivered")))
		}
	}
	if err := e.producer.ProduceSync(h.ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce the table: %v", err)
	}
	t.Logf("%d rows, %d records produced", len(rows), len(recs))

	// Phase 3: one instance takes it all.
	second := h.start(e.record)

	// The valid flows are unaffected: requests get their send and close
	// on its delivery; the DLR rows' flows close on the DLRs around the row.
	for _, r := range rows {
		for _, id := range []string{r.okBefore(), r.okAfter()} {
			if r.topic == h.names.Requests {
				h.waitSend(id + "/0")
				h.status(id+"/0", "delivered")
			}
		}
	}
	for _, r := range rows {
		for _, id := range []string{r.okBefore(), r.okAfter()} {
			if closed := h.waitClosed(id); closed.Outcome != flow.OutcomeDelivered {
				t.Errorf("row %s: valid flow %s closed %s", r.name, id, closed.Outcome)
			}
		}
	}

	// Every row did what it should.
	deadline := time.Now().Add(30 * time.Second)
	pending := slices.Clone(rows)
	for len(pending) > 0 && time.Now().Before(deadline) {
		pending = slices.DeleteFunc(pending, func(r hostileRow) bool { return r.check() == nil })
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range pending {
		t.Errorf("row %s: %v", r.name, r.check())
	}
	h.settle()

	// Nothing else happened: no more dead letters than the rows expect, no
	// send for a request that was refused, the valid flows closed once
	// with one send, and no refused request reached Redis.
	wantDLQ := 0
	for _, r := range rows {
		wantDLQ += r.deadLetters
	}
	if got := len(h.out.deadLetters()); got != wantDLQ {
		t.Errorf("%d dead letters, the rows expect %d", got, wantDLQ)
		for _, dl := range h.out.deadLetters() {
			t.Logf("dead letter %s key %.40q: %.200s", dl.Topic, dl.Key, dl.Error)
		}
	}
	for _, r := range rows {
		for _, id := range []string{r.okBefore(), r.okAfter()} {
			if n := len(h.out.eventsOf(id, flow.EventFlowClosed)); n != 1 {
				t.Errorf("row %s: valid flow %s closed %d times", r.name, id, n)
			}
			if n := len(h.out.sendsOf(id + "/0")); n != 1 {
				t.Errorf("row %s: valid flow %s: %d sends of step 0", r.name, id, n)
			}
			if n := len(h.out.sendsOf(id + "/1")); n != 0 {
				t.Errorf("row %s: valid flow %s fell back", r.name, id)
			}
		}
		for _, id := range r.refused {
			if n := len(h.out.sendsOf(id+"/0")) + len(h.out.eventsOf(id, flow.EventFlowStarted)); n != 0 {
				t.Errorf("row %s: refused request %.40q started or sent", r.name, id)
			}
			if e.touched(id) {
				t.Errorf("row %s: refused request %.40q reached the state store", r.name, id)
			}
		}
	}
	e.checkRedisKeys(rows)

	// The processor is still running and still takes work.
	select {
	case <-second.done:
		t.Fatalf("the processor stopped: %v", second.err)
	default:
	}
	h.request(otp("after-table"))
	h.waitSend("after-table/0")
	e.logBatches(rows)
}

// hostilePartitions is the partition count of the harness's topics.
const hostilePartitions = 3

// hostileRow is one malformed or hostile input.
type hostileRow struct {
	name  string
	topic string // the records go here unless they name a topic
	// targets are flows started before the table, for DLR rows.
	targets []string
	// records are the hostile records, produced in order on the row's partition.
	records func() []*kgo.Record
	// check reports what is still missing or wrong; nil once the row did
	// what it should (it is polled).
	check func() error
	// deadLetters is how many dead letters the row produces.
	deadLetters int
	// refused are request ids that must never start a flow nor reach the
	// state store.
	refused []string
}

func (r hostileRow) okBefore() string { return "ok-" + r.name + "-a" }
func (r hostileRow) okAfter() string  { return "ok-" + r.name + "-b" }

// hostileEnv is the harness plus a producer that picks partitions and may
// send large records, and a recorder of what reached the state store.
type hostileEnv struct {
	h        *harness
	producer *kgo.Client

	mu      sync.Mutex
	loads   [][]string // request ids of each Load call of the second instance
	touches map[string]int
}

func newHostileEnv(h *harness) *hostileEnv {
	p, err := h.target.kafkaClient(kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Room for the records above schemas.MaxRecordBytes (the broker sees
		// them compressed, well under its 1 MiB default).
		kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(p.Close)
	return &hostileEnv{h: h, producer: p, touches: map[string]int{}}
}

func (e *hostileEnv) encodeRequest(req schemas.SendRequest) []byte {
	e.h.t.Helper()
	if req.Kind == "" {
		req.Kind = schemas.KindSend
	}
	v, err := e.h.codecs.SendRequest.Encode(req)
	if err != nil {
		e.h.t.Fatalf("encode %.40q: %v", req.RequestID, err)
	}
	return v
}

func (e *hostileEnv) requestRecord(req schemas.SendRequest) *kgo.Record {
	return &kgo.Record{Topic: e.h.names.Requests, Key: []byte(req.RequestID), Value: e.encodeRequest(req)}
}

func (e *hostileEnv) encodeReport(rep schemas.DeliveryReport) []byte {
	e.h.t.Helper()
	v, err := e.h.codecs.DeliveryReport.Encode(rep)
	if err != nil {
		e.h.t.Fatalf("encode report %.40q: %v", rep.AttemptID, err)
	}
	return v
}

func (e *hostileEnv) reportRecord(rep schemas.DeliveryReport) *kgo.Record {
	key := rep.AttemptID
	if key == "" {
		key = rep.ProviderMessageID
	}
	return &kgo.Record{Topic: e.h.names.DLR, Key: []byte(key), Value: e.encodeReport(rep)}
}

func (e *hostileEnv) dlrRecord(attemptID, status string) *kgo.Record {
	return e.reportRecord(schemas.DeliveryReport{AttemptID: attemptID, Channel: channelOf(attemptID), Status: status})
}

// Stored flow definitions that are not valid flows.
const (
	defOneStep     = "def-one-step"
	defBadDelay    = "def-bad-delay"
	defUndecodable = "def-undecodable"
	defHugeFrom    = "def-huge-from"
)

func (e *hostileEnv) storeDefinitions() {
	h := e.h
	put := func(id string, steps []schemas.Step) {
		v, err := h.codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: id, Version: 1, Steps: steps})
		if err != nil {
			h.t.Fatal(err)
		}
		h.produce(h.names.Flows, id, v)
	}
	put(defOneStep, otp("").Steps[:1])
	steps := otp("").Steps
	steps[0].DelaySeconds = 3
	put(defBadDelay, steps)
	steps = otp("").Steps
	steps[1].From = strings.Repeat("F", 100_000)
	put(defHugeFrom, steps)
	h.produce(h.names.Flows, defUndecodable, []byte("\x02{not avro}"))
}

// record wraps the second instance's state store to see what reaches it.
func (e *hostileEnv) record(s processor.StateStore, _ context.CancelFunc) processor.StateStore {
	return &recordingStore{StateStore: s, e: e}
}

type recordingStore struct {
	processor.StateStore
	e *hostileEnv
}

func (r *recordingStore) touch(ids ...string) {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	for _, id := range ids {
		r.e.touches[id]++
	}
}

func (r *recordingStore) Load(ctx context.Context, ids []string) ([]statestore.Snapshot, error) {
	r.touch(ids...)
	r.e.mu.Lock()
	r.e.loads = append(r.e.loads, slices.Clone(ids))
	r.e.mu.Unlock()
	return r.StateStore.Load(ctx, ids)
}

func (r *recordingStore) Apply(ctx context.Context, changes []statestore.Change) ([]statestore.ApplyResult, error) {
	for _, c := range changes {
		r.touch(c.RequestID)
	}
	return r.StateStore.Apply(ctx, changes)
}

func (r *recordingStore) IndexProviderIDs(ctx context.Context, refs []statestore.ProviderRef, ttl time.Duration) error {
	for _, ref := range refs {
		r.touch(ref.ProviderID, ref.AttemptID)
	}
	return r.StateStore.IndexProviderIDs(ctx, refs, ttl)
}

func (r *recordingStore) ResolveProviderIDs(ctx context.Context, ids []string) (map[string]string, error) {
	r.touch(ids...)
	return r.StateStore.ResolveProviderIDs(ctx, ids)
}

func (e *hostileEnv) touched(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.touches[id] > 0
}

// checkRedisKeys looks at Redis itself: no key names a refused request.
func (e *hostileEnv) checkRedisKeys(rows []hostileRow) {
	h := e.h
	var keys []string
	iter := h.rc.Scan(h.ctx, 0, h.id+"*", 1000).Iterator()
	for iter.Next(h.ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		h.t.Fatalf("scan redis: %v", err)
	}
	// Owed outputs are fields "<request_id>:<version>" of the shards'
	// outbox hashes.
	var owed []string
	for _, k := range keys {
		if strings.HasSuffix(k, ":ox") {
			owed = append(owed, h.rc.HKeys(h.ctx, k).Val()...)
		}
	}
	for _, r := range rows {
		for _, id := range r.refused {
			for _, k := range keys {
				if strings.HasSuffix(k, ":f:"+id) {
					h.t.Errorf("row %s: redis has %.60q", r.name, k)
				}
			}
			for _, f := range owed {
				if strings.HasPrefix(f, id+":") {
					h.t.Errorf("row %s: redis owes outputs %.60q", r.name, f)
				}
			}
		}
	}
}

// logBatches reports how the second instance's batches were made up: the
// table is meant to arrive in one poll, or a few.
func (e *hostileEnv) logBatches(rows []hostileRow) {
	e.mu.Lock()
	defer e.mu.Unlock()
	valid := map[string]bool{}
	for _, r := range rows {
		valid[r.okBefore()], valid[r.okAfter()] = true, true
	}
	mixed := false
	for i, ids := range e.loads {
		nValid := 0
		for _, id := range ids {
			if valid[id] {
				nValid++
			}
		}
		if nValid > 0 && nValid < len(ids) {
			mixed = true
		}
		if i < 5 {
			e.h.t.Logf("batch %d: %d flows loaded, %d of them the valid flows of the table", i, len(ids), nValid)
		}
	}
	if !mixed {
		e.h.t.Errorf("no batch held both valid flows and hostile ones: %d loads", len(e.loads))
	}
}

// Expectations.

type expectation func() error

func all(checks ...expectation) func() error {
	return func() error {
		for _, c := range checks {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
}

// deadLetter expects exactly one dead letter from topic matching match,
// whose error mentions every one of words.
func (e *hostileEnv) deadLetter(topic string, match func(schemas.DeadLetter) bool, words ...string) expectation {
	return func() error {
		var found []schemas.DeadLetter
		for _, dl := range e.h.out.deadLetters() {
			if dl.Topic == topic && match(dl) {
				found = append(found, dl)
			}
		}
		if len(found) != 1 {
			return fmt.Errorf("%d dead letters, want 1", len(found))
		}
		for _, w := range words {
			if !strings.Contains(found[0].Error, w) {
				return fmt.Errorf("dead letter error %.300q does not mention %q", found[0].Error, w)
			}
		}
		return nil
	}
}

func byKey(key string) func(schemas.DeadLetter) bool {
	return func(dl schemas.DeadLetter) bool { return string(dl.Key) == key }
}

func byValue(v []byte) func(schemas.DeadLetter) bool {
	return func(dl schemas.DeadLetter) bool { return dl.Key == nil && bytes.Equal(dl.Value, v) }
}

// rejected expects a REQUEST_REJECTED event naming the code and the field,
// and the request's dead letter (keyed by the record's key).
func (e *hostileEnv) rejected(requestID, key, code, field string) expectation {
	return all(
		e.event(requestID, flow.EventRequestRejected, 1, func(ev schemas.FlowEvent) error {
			if !strings.HasPrefix(ev.Reason, code+": "+field+": ") {
				return fmt.Errorf("reason %.200q, want %s on %s", ev.Reason, code, field)
			}
			return nil
		}),
		e.deadLetter(e.h.names.Requests, byKey(key), code, field),
	)
}

// event expects n events of type typ for requestID, each passing check.
func (e *hostileEnv) event(requestID, typ string, n int, check func(schemas.FlowEvent) error) expectation {
	return func() error {
		evs := e.h.out.eventsOf(requestID, typ)
		if len(evs) != n {
			return fmt.Errorf("%d %s events for %.40q, want %d", len(evs), typ, requestID, n)
		}
		for _, ev := range evs {
			if check != nil {
				if err := check(ev); err != nil {
					return fmt.Errorf("%s of %.40q: %w", typ, requestID, err)
				}
			}
		}
		return nil
	}
}

func reason(want string) func(schemas.FlowEvent) error {
	return func(ev schemas.FlowEvent) error {
		if ev.Reason != want {
			return fmt.Errorf("reason %q, want %q", ev.Reason, want)
		}
		return nil
	}
}

// discarded expects one DLR_DISCARDED event with the reason for the attempt
// id (filed under requestID, "" when the attempt id does not parse).
func (e *hostileEnv) discarded(requestID, attemptID, why string) expectation {
	return func() error {
		n := 0
		for _, ev := range e.h.out.eventsOf(requestID, flow.EventDLRDiscarded) {
			if ev.AttemptID == attemptID {
				if ev.Reason != why {
					return fmt.Errorf("DLR %.40q discarded as %q, want %q", attemptID, ev.Reason, why)
				}
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d DLR_DISCARDED for %.40q, want 1", n, attemptID)
		}
		return nil
	}
}

// stillActive expects the flow neither closed nor fell back.
func (e *hostileEnv) stillActive(id string) expectation {
	return func() error {
		if n := len(e.h.out.eventsOf(id, flow.EventFlowClosed, flow.EventFallbackTriggered)); n != 0 {
			return fmt.Errorf("%s closed or fell back", id)
		}
		return nil
	}
}

func hostileRows(e *hostileEnv) []hostileRow {
	h := e.h
	req, dlr := h.names.Requests, h.names.DLR
	valid := e.encodeRequest(otp("h-truncated"))
	nilKey := func(v []byte) *kgo.Record { return &kgo.Record{Value: v} }
	keyed := func(key string, v []byte) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: v} }
	one := func(recs ...*kgo.Record) func() []*kgo.Record { return func() []*kgo.Record { return recs } }
	with := func(id string, mutate func(*schemas.SendRequest)) *kgo.Record {
		r := otp(id)
		mutate(&r)
		return e.requestRecord(r)
	}
	rejectRow := func(name, id, code, field string, mutate func(*schemas.SendRequest)) hostileRow {
		return hostileRow{name: name, topic: req, records: one(with(id, mutate)),
			check: e.rejected(id, id, code, field), deadLetters: 1, refused: []string{id}}
	}
	maxID := flow.DefaultLimits().MaxRequestIDBytes

	// Invalid UTF-8 cannot be encoded: patch it into a valid encoding.
	badUTF8 := e.encodeRequest(otp("h-utf8"))
	badUTF8 = bytes.Replace(badUTF8, []byte("+4915112345678"), []byte("+49151\xff\xfe345678"), 1)

	hugeParams := map[string]string{}
	for i := range 10_000 {
		hugeParams[fmt.Sprintf("p%05d", i)] = "v"
	}
	hugeID := strings.Repeat("i", 600_000)
	oversized := bytes.Repeat([]byte{'x'}, schemas.MaxRecordBytes+1)

	storm := func() []*kgo.Record {
		var recs []*kgo.Record
		for range 298 {
			recs = append(recs, e.dlrRecord("storm/0", "sent"))
		}
		return append(recs, e.dlrRecord("storm/0", "delivered"), e.dlrRecord("storm/0", "DELIVERED"))
	}
	traced := func() []*kgo.Record {
		rec := e.requestRecord(otp("h-trace"))
		for i := range 100 {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "traceparent",
				Value: fmt.Appendf(nil, "00-4bf92f3577b34da6a3ce929d0e0e%04d-00f067aa0ba902b7-01", i)})
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "tracestate", Value: bytes.Repeat([]byte("k=v,"), 16<<10)})
		return []*kgo.Record{rec}
	}

	return []hostileRow{
		// Undecodable records on the requests topic.
		{name: "truncated-avro", topic: req, records: one(keyed("h-truncated", valid[:len(valid)/2])),
			check: e.deadLetter(req, byKey("h-truncated"), "decode fallbackd.v1.SendRequest", "truncated record"), deadLetters: 1},
		{name: "dlr-on-requests-topic", topic: req, records: one(keyed("h-dlr-on-req", e.encodeReport(schemas.DeliveryReport{AttemptID: "h-dlr-on-req/0", Channel: "sms", Status: "DELIVRD"}))),
			check: e.deadLetter(req, byKey("h-dlr-on-req"), "decode fallbackd.v1.SendRequest"), deadLetters: 1},
		{name: "trailing-bytes", topic: req, records: one(keyed("h-trailing", append(e.encodeRequest(otp("h-trailing")), 0))),
			check: e.deadLetter(req, byKey("h-trailing"), "trailing bytes"), deadLetters: 1, refused: []string{"h-trailing"}},
		{name: "nil-value-request", topic: req, records: one(keyed("h-nil-value", nil)),
			check: e.deadLetter(req, byKey("h-nil-value"), "decode fallbackd.v1.SendRequest", "truncated record"), deadLetters: 1},
		{name: "invalid-utf8-recipient", topic: req, records: one(keyed("h-utf8", badUTF8)),
			check: e.deadLetter(req, byKey("h-utf8"), "recipient", "not valid UTF-8"), deadLetters: 1, refused: []string{"h-utf8"}},
		{name: "over-max-record-bytes", topic: req, records: one(keyed("h-oversized", oversized)),
			check: e.deadLetter(req, byKey("h-oversized"), "record too large", fmt.Sprintf("value truncated from %d bytes", len(oversized))), deadLetters: 1},

		// Decodable requests that break a rule or a limit.
		rejectRow("huge-params-map", "h-params", flow.RejectParams, "params", func(r *schemas.SendRequest) { r.Params = hugeParams }),
		rejectRow("metadata-1mb-value", "h-metadata", flow.RejectMetadata, "metadata[blob]", func(r *schemas.SendRequest) {
			r.Metadata = map[string]string{"blob": strings.Repeat("m", 1_000_000)}
		}),
		rejectRow("negative-delay", "h-neg-delay", flow.RejectDelay, "steps[1].delay_seconds", func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = -30 }),
		rejectRow("enormous-delay", "h-max-delay", flow.RejectDelay, "steps[0].delay_seconds", func(r *schemas.SendRequest) { r.Steps[0].DelaySeconds = math.MaxInt32 }),
		rejectRow("unknown-channel", "h-pigeon", flow.RejectUnknownChannel, "steps[1].channel", func(r *schemas.SendRequest) { r.Steps[1].Channel = "pigeon" }),
		rejectRow("control-chars-request-id", "h-ctl\x00\x1b[2J", flow.RejectRequestID, "request_id", func(r *schemas.SendRequest) {}),
		rejectRow("control-chars-template", "h-ctl-template", flow.RejectTemplate, "steps[0].template", func(r *schemas.SendRequest) { r.Steps[0].Template = "otp\x07\r\n" }),
		{name: "request-id-129-bytes", topic: req, records: one(e.requestRecord(otp(strings.Repeat("r", 129)))),
			// The event carries the id cut to the longest valid one.
			check:       e.rejected(strings.Repeat("r", maxID), strings.Repeat("r", 129), flow.RejectRequestID, "request_id"),
			deadLetters: 1, refused: []string{strings.Repeat("r", 129)}},
		rejectRow("nine-steps", "h-nine-steps", flow.RejectTooManySteps, "steps", func(r *schemas.SendRequest) {
			for len(r.Steps) < 9 {
				r.Steps = append(r.Steps, r.Steps[len(r.Steps)%2])
			}
		}),
		rejectRow("huge-template", "h-huge-template", flow.RejectTooLong, "steps[1].template", func(r *schemas.SendRequest) { r.Steps[1].Template = strings.Repeat("t", 600_000) }),
		rejectRow("huge-sms-category", "h-huge-category", flow.RejectTooLong, "steps[1].template_category", func(r *schemas.SendRequest) {
			r.Steps[1].TemplateCategory = strings.Repeat("c", 300_000)
		}),
		{name: "huge-request-id", topic: req, records: one(e.requestRecord(otp(hugeID))),
			check: all(
				e.event(hugeID[:maxID], flow.EventRequestRejected, 1, func(ev schemas.FlowEvent) error {
					if !strings.HasPrefix(ev.Reason, flow.RejectRequestID+": request_id: ") {
						return fmt.Errorf("reason %.200q", ev.Reason)
					}
					return nil
				}),
				e.deadLetter(req, func(dl schemas.DeadLetter) bool { return strings.HasPrefix(hugeID, string(dl.Key)) && len(dl.Key) > 0 },
					flow.RejectRequestID, "key truncated from 600000 bytes")),
			deadLetters: 1, refused: []string{hugeID, hugeID[:maxID]}},
		{name: "empty-key", topic: req, records: one(keyed("", e.encodeRequest(otp("h-empty-key")))),
			check: all(e.event("h-empty-key", flow.EventRequestRejected, 1, nil),
				e.deadLetter(req, func(dl schemas.DeadLetter) bool { return len(dl.Key) == 0 && len(dl.Value) > 0 }, flow.RejectKey, "key")),
			deadLetters: 1, refused: []string{"h-empty-key"}},
		{name: "nil-key-nil-value", topic: req, records: one(nilKey(nil)),
			check: e.deadLetter(req, byValue(nil), "truncated record"), deadLetters: 1},
		{name: "key-differs-from-request-id", topic: req, records: one(keyed("somebody-else", e.encodeRequest(otp("h-key-differs")))),
			check: e.rejected("h-key-differs", "somebody-else", flow.RejectKey, "key"), deadLetters: 1, refused: []string{"h-key-differs"}},
		{name: "duplicate-id-different-bodies", topic: req, records: func() []*kgo.Record {
			second := otp("h-dup")
			second.Recipient = "+4915199999999"
			second.Steps[0], second.Steps[1] = second.Steps[1], second.Steps[0]
			return []*kgo.Record{e.requestRecord(otp("h-dup")), e.requestRecord(second)}
		}, check: all(
			e.event("h-dup", flow.EventFlowStarted, 1, nil),
			e.event("h-dup", flow.EventRequestDuplicate, 1, reason("flow_active")),
			func() error {
				sends := h.out.sendsOf("h-dup/0")
				if len(sends) != 1 || sends[0].To != "+4915112345678" || sends[0].Channel != "whatsapp" {
					return fmt.Errorf("sends of h-dup/0: %+v, want one to the first body's recipient on whatsapp", sends)
				}
				return nil
			})},
		{name: "cancel-unknown-request", topic: req, records: one(e.requestRecord(schemas.SendRequest{RequestID: "h-cancel-nobody", Kind: schemas.KindCancel})),
			check: e.event("h-cancel-nobody", flow.EventCancelIgnored, 1, reason(flow.IgnoreUnknownRequest))},
		// Accepted: the headers are hostile, not the request. Its send
		// carries the first traceparent only, and no oversized tracestate.
		{name: "trace-header-flood", topic: req, records: traced, check: func() error {
			if sends := h.out.sendsOf("h-trace/0"); len(sends) != 1 {
				return fmt.Errorf("%d sends of h-trace/0", len(sends))
			}
			hs, err := e.sendHeaders("whatsapp", "h-trace/0")
			if err != nil {
				return err
			}
			var trace []string
			for _, hd := range hs {
				if hd.Key == "traceparent" || hd.Key == "tracestate" {
					trace = append(trace, hd.Key+"="+string(hd.Value))
				}
			}
			if want := "traceparent=00-4bf92f3577b34da6a3ce929d0e0e0000-00f067aa0ba902b7-01"; len(trace) != 1 || trace[0] != want {
				return fmt.Errorf("send trace headers %.300q, want only %s", trace, want)
			}
			return nil
		}},

		// Stored flow definitions that are not valid.
		rejectRow("stored-flow-one-step", "h-def-one-step", flow.RejectTooFewSteps, "flow "+defOneStep+": steps", func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, defOneStep }),
		rejectRow("stored-flow-bad-delay", "h-def-bad-delay", flow.RejectDelay, "flow "+defBadDelay+": steps[0].delay_seconds", func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, defBadDelay }),
		rejectRow("stored-flow-huge-from", "h-def-huge-from", flow.RejectTooLong, "flow "+defHugeFrom+": steps[1].from", func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, defHugeFrom }),
		rejectRow("stored-flow-undecodable", "h-def-undecodable", flow.RejectUnknownFlow, "flow_id", func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, defUndecodable }),

		// The DLR topic.
		{name: "request-on-dlr-topic", topic: dlr, records: one(keyed("h-req-on-dlr", e.encodeRequest(otp("h-req-on-dlr")))),
			check: e.deadLetter(dlr, byKey("h-req-on-dlr"), "decode fallbackd.v1.DeliveryReport", "malformed record"), deadLetters: 1},
		{name: "truncated-dlr", topic: dlr, records: one(keyed("h-dlr-truncated", e.encodeReport(schemas.DeliveryReport{AttemptID: "h-dlr-truncated/0", Channel: "sms", Status: "DELIVRD"})[:5])),
			check: e.deadLetter(dlr, byKey("h-dlr-truncated"), "decode fallbackd.v1.DeliveryReport", "truncated record"), deadLetters: 1},
		{name: "nil-value-dlr", topic: dlr, records: one(keyed("h-dlr-nil", nil)),
			check: e.deadLetter(dlr, byKey("h-dlr-nil"), "decode fallbackd.v1.DeliveryReport"), deadLetters: 1},
		{name: "dlr-without-ids", topic: dlr, records: one(keyed("h-dlr-no-ids", e.encodeReport(schemas.DeliveryReport{Channel: "sms", Status: "DELIVRD"}))),
			check: e.deadLetter(dlr, byKey("h-dlr-no-ids"), "neither attempt_id nor provider_message_id"), deadLetters: 1},
		{name: "dlr-storm-one-attempt", topic: dlr, targets: []string{"storm"}, records: storm, check: all(
			// "sent" 298 times: intermediate statuses are reported, not
			// stored, so a repeat is a duplicate when it is read in the same
			// batch as the first and reported again otherwise; every copy is
			// one or the other, and the storm spans few batches.
			// "delivered" closes the flow; "DELIVERED" comes after the close.
			e.stormAbsorbed("storm", "sent", 298),
			func() error {
				closed := 0
				for _, ev := range h.out.eventsOf("storm", flow.EventDLRDiscarded) {
					if ev.Reason == flow.DiscardFlowClosed {
						closed++
					}
				}
				if closed != 1 {
					return fmt.Errorf("%d DLRs of storm discarded after the close, want 1", closed)
				}
				return nil
			},
			e.event("storm", flow.EventFlowClosed, 1, func(ev schemas.FlowEvent) error {
				if ev.Outcome != flow.OutcomeDelivered {
					return fmt.Errorf("outcome %s", ev.Outcome)
				}
				return nil
			}),
			func() error {
				if n := len(h.out.sendsOf("storm/1")); n != 0 {
					return fmt.Errorf("storm fell back")
				}
				return nil
			})},
		{name: "dlr-unknown-attempts", topic: dlr, records: one(
			e.dlrRecord("h-nobody/0", "DELIVRD"),
			e.reportRecord(schemas.DeliveryReport{ProviderMessageID: "pm-nobody", Channel: "whatsapp", Status: "read"})),
			check: all(e.discarded("h-nobody", "h-nobody/0", flow.DiscardUnknownAttempt),
				e.discarded("", "", flow.DiscardUnknownAttempt))},
		{name: "attempt-id-without-step", topic: dlr, targets: []string{"beyond"}, records: one(
			e.dlrRecord("beyond", "delivered"), e.dlrRecord("beyond/", "delivered"), e.dlrRecord("beyond/+0", "delivered")),
			check: all(e.discarded("", "beyond", flow.DiscardUnknownAttempt), e.discarded("", "beyond/", flow.DiscardUnknownAttempt),
				e.discarded("", "beyond/+0", flow.DiscardUnknownAttempt), e.stillActive("beyond"))},
		{name: "attempt-id-negative-step", topic: dlr, records: one(e.dlrRecord("beyond/-1", "delivered")),
			check: all(e.discarded("", "beyond/-1", flow.DiscardUnknownAttempt), e.stillActive("beyond"))},
		{name: "attempt-id-step-beyond-flow", topic: dlr, records: one(
			e.dlrRecord("beyond/1", "delivered"), e.dlrRecord("beyond/7", "delivered"), e.dlrRecord("beyond/99999999999999999999", "delivered")),
			check: all(e.discarded("beyond", "beyond/1", flow.DiscardUnknownAttempt), e.discarded("beyond", "beyond/7", flow.DiscardUnknownAttempt),
				e.discarded("", "beyond/99999999999999999999", flow.DiscardUnknownAttempt), e.stillActive("beyond"))},
		{name: "unknown-dlr-status", topic: dlr, targets: []string{"unknown-status"}, records: one(e.dlrRecord("unknown-status/0", "BANANA-42")),
			check: all(e.event("unknown-status", flow.EventDLRReceived, 1, func(ev schemas.FlowEvent) error {
				if ev.Status != "BANANA-42" || ev.StatusKind != flow.Intermediate.String() {
					return fmt.Errorf("status %q kind %q", ev.Status, ev.StatusKind)
				}
				return nil
			}), e.stillActive("unknown-status"))},
		{name: "dlr-huge-status", topic: dlr, targets: []string{"huge-status"}, records: one(keyed("h-huge-status",
			e.encodeReport(schemas.DeliveryReport{AttemptID: "huge-status/0", Channel: "whatsapp", Status: strings.Repeat("S", 1_000_000)}))),
			check: all(e.deadLetter(dlr, byKey("h-huge-status"), flow.RejectTooLong, "status"), e.stillActive("huge-status"),
				e.event("huge-status", flow.EventDLRReceived, 0, nil)), deadLetters: 1},
		{name: "dlr-huge-attempt-id", topic: dlr, records: one(keyed("h-huge-attempt", e.encodeReport(schemas.DeliveryReport{
			AttemptID: strings.Repeat("a", 600_000) + "/0", ProviderMessageID: strings.Repeat("p", 300_000), Channel: "sms", Status: "DELIVRD"}))),
			check: e.deadLetter(dlr, byKey("h-huge-attempt"), flow.RejectTooLong, "attempt_id"), deadLetters: 1,
			refused: []string{strings.Repeat("a", 600_000), strings.Repeat("p", 300_000)}},
	}
}

// reasons expects events of type typ for requestID with these counts per reason.
// stormAbsorbed checks that n copies of an intermediate status came out as
// at least one DLR_RECEIVED and otherwise duplicates, one DLR_RECEIVED at
// most per batch (the collector's batches are not known here: at most 10),
// and that exactly one other status was received.
func (e *hostileEnv) stormAbsorbed(requestID, status string, n int) expectation {
	return func() error {
		received, others := 0, 0
		for _, ev := range e.h.out.eventsOf(requestID, flow.EventDLRReceived) {
			if ev.Status == status {
				received++
			} else {
				others++
			}
		}
		dups := 0
		for _, ev := range e.h.out.eventsOf(requestID, flow.EventDLRDiscarded) {
			if ev.Reason == flow.DiscardDuplicate && ev.Status == status {
				dups++
			}
		}
		if received < 1 || received > 10 || received+dups != n || others != 1 {
			return fmt.Errorf("%d copies of %q: %d received, %d duplicates, %d other statuses received; want 1 to 10 received, the rest duplicates, 1 other",
				n, status, received, dups, others)
		}
		return nil
	}
}

func (e *hostileEnv) reasons(requestID, typ string, want map[string]int) expectation {
	return func() error {
		got := map[string]int{}
		for _, ev := range e.h.out.eventsOf(requestID, typ) {
			got[ev.Reason]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("%s of %s by reason: %v, want %v", typ, requestID, got, want)
		}
		return nil
	}
}

// sendHeaders reads the headers of the first send of an attempt straight
// from its topic (the collector keeps only the values).
func (e *hostileEnv) sendHeaders(channel, attemptID string) ([]kgo.RecordHeader, error) {
	h := e.h
	cl, err := h.target.kafkaClient(kgo.ConsumeTopics(h.names.Sends(channel)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no send %s on %s", attemptID, h.names.Sends(channel))
		}
		var found []kgo.RecordHeader
		fetches.EachRecord(func(r *kgo.Record) {
			if found == nil && string(r.Key) == attemptID {
				found = append([]kgo.RecordHeader{}, r.Headers...)
			}
		})
		if found != nil {
			return found, nil
		}
	}
}
