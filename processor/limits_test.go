package processor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// countingStore is a StateStore that records which request ids (and
// provider ids) reach it, and otherwise behaves as an empty store.
type countingStore struct {
	mu      sync.Mutex
	calls   int
	touched map[string]int
}

func (s *countingStore) touch(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.touched == nil {
		s.touched = map[string]int{}
	}
	for _, id := range ids {
		s.touched[id]++
	}
}

func (s *countingStore) Load(_ context.Context, ids []string) ([]statestore.Snapshot, error) {
	s.touch(ids...)
	out := make([]statestore.Snapshot, len(ids))
	for i, id := range ids {
		out[i] = statestore.Snapshot{RequestID: id}
	}
	return out, nil
}

func (s *countingStore) Apply(_ context.Context, changes []statestore.Change) ([]statestore.ApplyResult, error) {
	out := make([]statestore.ApplyResult, len(changes))
	for i, c := range changes {
		s.touch(c.RequestID)
		out[i] = statestore.ApplyResult{Applied: true, Version: c.ExpectVersion + 1}
	}
	return out, nil
}

func (s *countingStore) AckOutbox(context.Context, []statestore.OutboxAck) error {
	s.touch()
	return nil
}
func (s *countingStore) ClaimDueShards(context.Context, []int, time.Time, time.Duration, int) ([]statestore.Snapshot, error) {
	s.touch()
	return nil, nil
}
func (s *countingStore) DueByShard(context.Context) ([]time.Time, error) {
	s.touch()
	return nil, nil
}
func (s *countingStore) ClaimOwed(context.Context, time.Time, time.Duration, int) ([]statestore.OwedOutputs, error) {
	s.touch()
	return nil, nil
}
func (s *countingStore) Shards() int { return 1 }
func (s *countingStore) ListClosed(context.Context, int, int) ([]statestore.ClosedFlow, error) {
	return nil, nil // keeps closed flows whole
}
func (s *countingStore) CompactClosed(context.Context, int, []statestore.CompactMove) (int, error) {
	return 0, nil
}
func (s *countingStore) MoveProviderEntries(context.Context, int, int) (int, error) { return 0, nil }
func (s *countingStore) IndexProviderIDs(_ context.Context, refs []statestore.ProviderRef, _ time.Duration) error {
	for _, r := range refs {
		s.touch(r.ProviderID, r.AttemptID)
	}
	return nil
}
func (s *countingStore) ResolveProviderIDs(_ context.Context, ids []string) (map[string]string, error) {
	s.touch(ids...)
	return map[string]string{}, nil
}

func (s *countingStore) AdvanceWatermarks(context.Context, map[statestore.PartitionRef]time.Time) error {
	s.touch()
	return nil
}
func (s *countingStore) Watermarks(context.Context) (map[statestore.PartitionRef]time.Time, error) {
	s.touch()
	return nil, nil
}

func (s *countingStore) reset() (calls int, touched map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, touched = s.calls, s.touched
	s.calls, s.touched = 0, nil
	return calls, touched
}

// testConsumer is a Consumer without Kafka: apply() runs a batch against store.
func testConsumer(t *testing.T, store StateStore) (*Consumer, topics.Names) {
	t.Helper()
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	names := topics.DefaultNames()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := newMetrics(nil)
	eng := &engine{store: store, enc: &encoder{codecs: codecs, topics: names}, channels: flow.DefaultChannels(),
		lease: 10 * time.Second, log: log, metrics: m}
	return &Consumer{engine: eng, codecs: codecs, topics: names, clock: clocktest.NewManual(t0()), log: log, metrics: m,
		validator: flow.Validator{Channels: flow.DefaultChannels(), Limits: flow.DefaultLimits()}}, names
}

// redisConsumer is testConsumer on a fresh miniredis store.
func redisConsumer(t *testing.T) (*Consumer, topics.Names, *statestore.Store) {
	t.Helper()
	_, store := miniredisStore(t, statestore.Config{Prefix: "t"})
	c, names := testConsumer(t, store)
	return c, names, store
}

// miniredisStore is a store of cfg on a fresh miniredis.
func miniredisStore(t *testing.T, cfg statestore.Config) (*miniredis.Miniredis, *statestore.Store) {
	t.Helper()
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	return mr, statestore.New(rc, cfg)
}

// applyForEvents runs records through c as one batch, acks the outputs
// (as if produced) and returns the events among them.
func applyForEvents(t *testing.T, c *Consumer, store *statestore.Store, records ...*kgo.Record) []schemas.FlowEvent {
	t.Helper()
	ctx := context.Background()
	res, err := c.apply(ctx, records)
	if err != nil {
		t.Fatal(err)
	}
	var events []schemas.FlowEvent
	for _, r := range res.records {
		if r.Topic != c.topics.Events {
			continue
		}
		ev, err := c.codecs.FlowEvent.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	if err := store.AckOutbox(ctx, res.acks); err != nil {
		t.Fatal(err)
	}
	return events
}

func limitRequest(id string) schemas.SendRequest {
	return schemas.SendRequest{RequestID: id, Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		}}
}

// kafkaMaxRecord is what the processor's producer accepts by default
// (kgo's ProducerBatchMaxBytes, Kafka's old max.message.bytes default).
const kafkaMaxRecord = 1_000_012

func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// TestLimitsCheckedBeforeRedis: a request or DLR over a documented limit is
// refused before the state store is touched at all, goes to the dead-letter
// topic (requests: with a REQUEST_REJECTED event naming the code), and
// every output stays well inside what Kafka accepts. A request exactly at
// every limit is accepted.
func TestLimitsCheckedBeforeRedis(t *testing.T) {
	store := &countingStore{}
	c, names := testConsumer(t, store)
	lim := flow.DefaultLimits()
	encode := func(req schemas.SendRequest) []byte {
		v, err := c.codecs.SendRequest.Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	request := func(mutate func(*schemas.SendRequest)) func(id string) *kgo.Record {
		return func(id string) *kgo.Record {
			req := limitRequest(id)
			mutate(&req)
			return &kgo.Record{Topic: names.Requests, Key: []byte(req.RequestID), Value: encode(req)}
		}
	}
	report := func(rep schemas.DeliveryReport) func(string) *kgo.Record {
		return func(string) *kgo.Record {
			v, err := c.codecs.DeliveryReport.Encode(rep)
			if err != nil {
				t.Fatal(err)
			}
			return &kgo.Record{Topic: names.DLR, Key: []byte(rep.AttemptID), Value: v}
		}
	}
	params := func(n, valueBytes int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", valueBytes)
		}
		return m
	}
	long := func(n int) string { return strings.Repeat("x", n) }

	cases := []struct {
		name string
		rec  func(id string) *kgo.Record
		code string // "" when the record only goes to the dead-letter topic
	}{
		{"too many steps", request(func(r *schemas.SendRequest) {
			for len(r.Steps) <= lim.MaxSteps {
				r.Steps = append(r.Steps, r.Steps[1])
			}
		}), flow.RejectTooManySteps},
		{"too few steps", request(func(r *schemas.SendRequest) { r.Steps = r.Steps[:1] }), flow.RejectTooFewSteps},
		{"delay over max", request(func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = lim.MaxDelaySeconds + 1 }), flow.RejectDelay},
		{"delay under min", request(func(r *schemas.SendRequest) { r.Steps[0].DelaySeconds = lim.MinDelaySeconds - 1 }), flow.RejectDelay},
		{"too many params", request(func(r *schemas.SendRequest) { r.Params = params(lim.MaxEntries+1, 1) }), flow.RejectParams},
		{"param value too long", request(func(r *schemas.SendRequest) { r.Params = params(1, lim.MaxValueBytes+1) }), flow.RejectParams},
		{"params map too large", request(func(r *schemas.SendRequest) { r.Params = params(5, 1000) }), flow.RejectParams},
		{"param key too long", request(func(r *schemas.SendRequest) { r.Params = map[string]string{long(lim.MaxKeyBytes + 1): "v"} }), flow.RejectParams},
		{"1 MB metadata value", request(func(r *schemas.SendRequest) { r.Metadata = map[string]string{"m": long(1_000_000)} }), flow.RejectMetadata},
		{"request id too long", request(func(r *schemas.SendRequest) { r.RequestID = long(lim.MaxRequestIDBytes + 1) }), flow.RejectRequestID},
		{"600 KB request id", request(func(r *schemas.SendRequest) { r.RequestID = long(600_000) }), flow.RejectRequestID},
		{"template too long", request(func(r *schemas.SendRequest) { r.Steps[1].Template = long(lim.MaxFieldBytes + 1) }), flow.RejectTooLong},
		{"from too long", request(func(r *schemas.SendRequest) { r.Steps[0].From = long(lim.MaxFieldBytes + 1) }), flow.RejectTooLong},
		{"sms category too long", request(func(r *schemas.SendRequest) { r.Steps[1].TemplateCategory = long(lim.MaxFieldBytes + 1) }), flow.RejectTooLong},
		{"flow id too long", request(func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, long(lim.MaxFieldBytes+1) }), flow.RejectTooLong},
		{"key is not the request id", func(id string) *kgo.Record {
			r := request(func(*schemas.SendRequest) {})(id)
			r.Key = []byte("other")
			return r
		}, flow.RejectKey},
		{"cancel keyed elsewhere", func(id string) *kgo.Record {
			return &kgo.Record{Topic: names.Requests, Value: encode(schemas.SendRequest{RequestID: id, Kind: schemas.KindCancel})}
		}, flow.RejectKey},
		{"record over MaxRecordBytes", func(id string) *kgo.Record {
			return &kgo.Record{Topic: names.Requests, Key: []byte(id), Value: bytes.Repeat([]byte{'x'}, schemas.MaxRecordBytes+1)}
		}, ""},
		{"DLR status too long", report(schemas.DeliveryReport{AttemptID: "lim/0", Channel: "sms", Status: long(lim.MaxFieldBytes + 1)}), ""},
		{"DLR 1 MB status", report(schemas.DeliveryReport{AttemptID: "lim/0", Channel: "sms", Status: long(1_000_000)}), ""},
		{"DLR attempt id too long", report(schemas.DeliveryReport{AttemptID: long(lim.MaxFieldBytes) + "/0", Channel: "sms", Status: "DELIVRD"}), ""},
		{"DLR provider id too long", report(schemas.DeliveryReport{AttemptID: "lim/0", ProviderMessageID: long(lim.MaxFieldBytes + 1), Channel: "sms", Status: "DELIVRD"}), ""},
		{"DLR error code too long", report(schemas.DeliveryReport{AttemptID: "lim/0", Channel: "sms", Status: "UNDELIV", ErrorCode: long(lim.MaxFieldBytes + 1)}), ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("lim-%d", i)
			rec := tc.rec(id)
			rec.Partition, rec.Offset = 0, int64(i)
			res, err := c.apply(context.Background(), []*kgo.Record{rec})
			if err != nil {
				t.Fatal(err)
			}
			if calls, touched := store.reset(); calls != 0 {
				t.Fatalf("the state store was called %d times (%d ids)", calls, len(touched))
			}
			var dead, rejected int
			for _, out := range res.records {
				if n := recordSize(out); n >= kafkaMaxRecord {
					t.Fatalf("output to %s of %d bytes: Kafka would refuse it", out.Topic, n)
				}
				switch out.Topic {
				case names.DLQ:
					dead++
					dl, err := c.codecs.DeadLetter.Decode(out.Value)
					if err != nil {
						t.Fatal(err)
					}
					if tc.code != "" && !strings.Contains(dl.Error, tc.code) {
						t.Fatalf("dead letter error %.200q does not name %s", dl.Error, tc.code)
					}
				case names.Events:
					ev, err := c.codecs.FlowEvent.Decode(out.Value)
					if err != nil {
						t.Fatal(err)
					}
					if ev.Type != flow.EventRequestRejected || !strings.HasPrefix(ev.Reason, tc.code+": ") {
						t.Fatalf("event %s %.200q, want REQUEST_REJECTED %s", ev.Type, ev.Reason, tc.code)
					}
					if len(ev.RequestID) > lim.MaxRequestIDBytes {
						t.Fatalf("rejection event carries a request id of %d bytes", len(ev.RequestID))
					}
					rejected++
				default:
					t.Fatalf("output to %s", out.Topic)
				}
			}
			wantRejected := 0
			if tc.code != "" {
				wantRejected = 1
			}
			if dead != 1 || rejected != wantRejected {
				t.Fatalf("%d dead letters and %d rejections, want 1 and %d", dead, rejected, wantRejected)
			}
		})
	}

	// A DLR for an attempt whose request id no flow can have is an unknown
	// attempt, reported without a look in Redis.
	t.Run("DLR for an impossible request id", func(t *testing.T) {
		rec := report(schemas.DeliveryReport{AttemptID: long(lim.MaxRequestIDBytes+1) + "/0", Channel: "sms", Status: "DELIVRD"})("")
		res, err := c.apply(context.Background(), []*kgo.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		if calls, _ := store.reset(); calls != 0 || len(res.records) != 1 || res.records[0].Topic != names.Events {
			t.Fatalf("%d store calls, %d outputs", calls, len(res.records))
		}
	})

	// At every limit: accepted, and it reaches the store.
	t.Run("at the limits", func(t *testing.T) {
		id := long(lim.MaxRequestIDBytes)
		req := limitRequest(id)
		for len(req.Steps) < lim.MaxSteps {
			req.Steps = append(req.Steps, req.Steps[len(req.Steps)%2])
		}
		req.Steps[0].DelaySeconds, req.Steps[1].DelaySeconds = lim.MinDelaySeconds, lim.MaxDelaySeconds
		req.Steps[1].Template, req.Steps[1].From = long(lim.MaxFieldBytes), long(lim.MaxFieldBytes)
		// 4 entries of 3 + 1021 bytes: 4,096 bytes in all.
		req.Params = params(lim.MaxMapBytes/(lim.MaxValueBytes), lim.MaxValueBytes-3)
		req.Metadata = params(lim.MaxEntries, 1)
		rec := &kgo.Record{Topic: names.Requests, Key: []byte(id), Value: encode(req)}
		res, err := c.apply(context.Background(), []*kgo.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		calls, touched := store.reset()
		if calls == 0 || touched[id] != 2 { // Load and Apply
			t.Fatalf("a request at the limits did not reach the store: %d calls", calls)
		}
		for _, out := range res.records {
			if out.Topic == names.DLQ {
				dl, _ := c.codecs.DeadLetter.Decode(out.Value)
				t.Fatalf("a request at the limits was refused: %s", dl.Error)
			}
		}
	})
}

// TestLimitsBoundDeadLetters: whatever the source record, its dead letter
// is valid, decodable and small enough for Kafka: key, value and error are
// cut, and the error says so.
func TestLimitsBoundDeadLetters(t *testing.T) {
	c, names := testConsumer(t, &countingStore{})
	src := &kgo.Record{Topic: names.Requests, Partition: 2, Offset: 7,
		Key: bytes.Repeat([]byte{0xff}, 2<<20), Value: bytes.Repeat([]byte{0xfe}, 2<<20)}
	cause := fmt.Errorf("hostile: %s", strings.Repeat("\xff\x00é", 100_000))
	out := c.engine.enc.deadLetter(src, cause, t0())
	if n := recordSize(out); n >= kafkaMaxRecord {
		t.Fatalf("dead letter of %d bytes", n)
	}
	dl, err := c.codecs.DeadLetter.Decode(out.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dl.Key, out.Key) || len(dl.Key) != maxDeadKey || len(dl.Value) != maxDeadValue {
		t.Fatalf("key %d bytes (record key %d), value %d bytes", len(dl.Key), len(out.Key), len(dl.Value))
	}
	if !utf8.ValidString(dl.Error) || len(dl.Error) > maxDeadError+200 ||
		!strings.Contains(dl.Error, "key truncated from 2097152 bytes") || !strings.Contains(dl.Error, "value truncated from 2097152 bytes") {
		t.Fatalf("error (%d bytes) %.100q ... %.200q", len(dl.Error), dl.Error, dl.Error[max(0, len(dl.Error)-200):])
	}
	if dl.Topic != src.Topic || dl.Partition != 2 || dl.Offset != 7 {
		t.Fatalf("dead letter lost the source position: %+v", dl)
	}
}

// TestLimitsBoundTraceHeaders: a request's trace headers are copied to its
// sends at most once per field and only when of a sane size, so the send's
// outbox entry stays small and readable by the recoverer.
func TestLimitsBoundTraceHeaders(t *testing.T) {
	r := &kgo.Record{}
	for i := range 100 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "traceparent", Value: fmt.Appendf(nil, "00-%032d-%016d-01", i, i)})
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "tracestate", Value: bytes.Repeat([]byte("a"), maxTraceHeaderBytes+1)})
	got := traceHeaders(r)
	if len(got) != 1 || got[0].Key != "traceparent" || string(got[0].Value) != fmt.Sprintf("00-%032d-%016d-01", 0, 0) {
		t.Fatalf("trace headers %q", got)
	}
	c, _ := testConsumer(t, &countingStore{})
	send, err := c.engine.enc.send(schemas.ChannelSend{AttemptID: "r/0", RequestID: "r", Channel: "sms", From: "A", To: "+4915112345678",
		Template: "t", Reason: "initial", Deadline: t0(), SentAt: t0()}, traceHeaders(r))
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalRecord(marshalRecord(send))
	if err != nil || len(back.Headers) != len(send.Headers) {
		t.Fatalf("outbox entry of the send does not read back: %v", err)
	}
}
