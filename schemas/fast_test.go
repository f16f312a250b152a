package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fast encoders (fast.go) must write what the goavro path (toNative,
// BinaryFromNative, validate) writes, and refuse what it refuses. The
// reference is Codec.appendGoavro; Codec.Append takes the fast path.

// sortMapEntries returns b, one encoded value of n, with the entries of
// every map sorted by key in a single block: the order the fast path writes.
// goavro's order is Go's random map order (TestGoavroMapOrder), so its bytes
// for a map of two or more entries are compared after this. Everything else
// is copied byte for byte (array counts are rewritten, but goavro writes
// them minimal, in one block, as the fast path does).
func sortMapEntries(n *node, b []byte) ([]byte, error) {
	s := scanner{b: b}
	out, err := appendSorted(&s, n, nil)
	if err != nil {
		return nil, err
	}
	if s.pos != len(b) {
		return nil, fmt.Errorf("%w: %d bytes", ErrTrailingBytes, len(b)-s.pos)
	}
	return out, nil
}

func appendSorted(s *scanner, n *node, out []byte) ([]byte, error) {
	var err error
	switch n.kind {
	case kRecord:
		for _, f := range n.fields {
			if out, err = appendSorted(s, f.typ, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	case kUnion:
		start := s.pos
		i, err := s.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, fmt.Errorf("%w: union branch %d", ErrMalformed, i)
		}
		return appendSorted(s, n.branches[i], append(out, s.b[start:s.pos]...))
	case kArray, kMap:
		type entry struct {
			key  string
			item []byte // the key's encoding (maps), then the value's
		}
		var entries []entry
		for {
			count, err := s.blockCount()
			if err != nil {
				return nil, err
			}
			if count == 0 {
				break
			}
			for ; count > 0; count-- {
				var e entry
				if n.kind == kMap {
					start := s.pos
					if err := s.bytes(true); err != nil {
						return nil, err
					}
					e.item = append(e.item, s.b[start:s.pos]...)
					var ks scanner
					ks.b = s.b[start:s.pos]
					l, _ := ks.long()
					e.key = string(ks.b[ks.pos : ks.pos+int(l)])
				}
				if e.item, err = appendSorted(s, n.elem, e.item); err != nil {
					return nil, err
				}
				entries = append(entries, e)
			}
		}
		if n.kind == kMap {
			slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		}
		if len(entries) > 0 {
			w := writer{buf: out}
			w.long(int64(len(entries)))
			out = w.buf
		}
		for _, e := range entries {
			out = append(out, e.item...)
		}
		return append(out, 0), nil
	default:
		start := s.pos
		if err := s.value(n); err != nil {
			return nil, err
		}
		return append(out, s.b[start:s.pos]...), nil
	}
}

// Which values have a map of two or more entries (compared after sorting).
func multiMapFlowEvent(v FlowEvent) bool {
	return len(v.Metadata) > 1 || len(v.WastedMicros) > 1 ||
		v.Summary != nil && (len(v.Summary.CostMicros) > 1 || len(v.Summary.WastedMicros) > 1)
}
func multiMapChannelSend(v ChannelSend) bool { return len(v.Params) > 1 }
func multiMapDeadLetter(DeadLetter) bool     { return false }

// checkFast compares the fast path with the goavro path on v. It returns
// the fast path's error, nil when both accepted v.
func checkFast[T any](t *testing.T, c *Codec[T], v T, multiMap bool) error {
	t.Helper()
	if c.fast == nil && c.Name() != Namespace+".DeadLetter" {
		// DeadLetter lost its fast encoder in issue 22; its checks here
		// (against goavro) still hold for hamba's path, which writes it now.
		t.Fatalf("%s has no fast encoder", c.Name())
	}
	want, wantErr := c.appendGoavro(nil, v)
	got, gotErr := c.Append(nil, v)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("goavro err = %v, fast err = %v\nvalue %+v", wantErr, gotErr, v)
	}
	prefix := []byte("prefix")
	withPrefix, prefixErr := c.Append(prefix[:len(prefix):len(prefix)], v)
	if (prefixErr == nil) != (gotErr == nil) {
		t.Fatalf("Append with a prefix: err = %v, without: %v", prefixErr, gotErr)
	}
	if wantErr != nil {
		for _, class := range []error{ErrMalformed, ErrTooLarge, ErrTruncated, ErrTrailingBytes} {
			if errors.Is(wantErr, class) != errors.Is(gotErr, class) {
				t.Fatalf("error classes differ:\ngoavro %v\n  fast %v", wantErr, gotErr)
			}
		}
		if !strings.HasPrefix(gotErr.Error(), "schemas: encode "+c.Name()+": ") {
			t.Fatalf("fast error %q does not name the record", gotErr)
		}
		if string(withPrefix) != "prefix" {
			t.Fatalf("Append(prefix, bad) = %q, want the prefix unchanged", withPrefix)
		}
		return gotErr
	}
	if !bytes.Equal(withPrefix[:len(prefix)], prefix) || !bytes.Equal(withPrefix[len(prefix):], got) {
		t.Fatalf("Append with a prefix wrote % x, without % x", withPrefix, got)
	}
	// What validate would check after goavro, checked here on every fast
	// encoding (the fast path does not run it).
	if err := validate(c.shape, got); err != nil {
		t.Fatalf("fast encoding fails validation: %v\n% x", err, got)
	}
	if _, err := c.Decode(got); err != nil {
		t.Fatalf("fast encoding does not decode: %v\n% x", err, got)
	}
	// The capacity estimate is an upper bound: Encode allocates once.
	var room int
	switch v := any(v).(type) {
	case FlowEvent:
		room = roomFlowEvent(&v)
	case ChannelSend:
		room = roomChannelSend(&v)
	default: // DeadLetter: hamba's path, no estimate
		room = len(got)
	}
	if len(got) > room {
		t.Fatalf("encoding of %d bytes, estimated at most %d", len(got), room)
	}
	if multiMap {
		sorted, err := sortMapEntries(c.shape, want)
		if err != nil {
			t.Fatalf("sort goavro's map entries: %v", err)
		}
		want = sorted
		if again, err := sortMapEntries(c.shape, got); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("fast path's map entries are not sorted (%v):\n% x\n% x", err, got, again)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast and goavro bytes differ (maps sorted: %v):\n  fast % x\ngoavro % x\nvalue %+v", multiMap, got, want, v)
	}
	return nil
}

// TestGoavroMapOrder: goavro writes map entries in Go's random iteration
// order, so two encodings of the same value differ; the fast path writes
// one order, the keys sorted.
func TestGoavroMapOrder(t *testing.T) {
	c := testCodecs(t).FlowEvent
	v := FlowEvent{Metadata: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}}
	goavroOutputs := map[string]bool{}
	fastOutputs := map[string]bool{}
	for range 200 {
		b, err := c.appendGoavro(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		goavroOutputs[string(b)] = true
		f, err := c.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		fastOutputs[string(f)] = true
	}
	if len(goavroOutputs) < 2 {
		t.Errorf("goavro wrote one order in 200 encodings: the fast path could match its bytes exactly")
	}
	if len(fastOutputs) != 1 {
		t.Fatalf("fast path wrote %d different encodings of one value", len(fastOutputs))
	}
	// metadata: count 4, a to d in order, end of map; deadline_forced
	// false; flow_id and flow_version null; wasted_micros empty.
	tail := concat(long(4), str("a"), str("1"), str("b"), str("2"), str("c"), str("3"), str("d"), str("4"), long(0), []byte{0},
		union(0), union(0), long(0), union(0), union(0))
	for f := range fastOutputs {
		if !bytes.HasSuffix([]byte(f), tail) {
			t.Fatalf("fast path's metadata is not sorted: % x", f)
		}
	}
}

// TestFastEncodersAttached: the records the processor writes for every flow
// take the fast path, the others hamba's (DeadLetter too since issue 22).
func TestFastEncodersAttached(t *testing.T) {
	cs := testCodecs(t)
	if cs.FlowEvent.fast == nil || cs.ChannelSend.fast == nil {
		t.Fatal("a fast encoder is missing")
	}
	if cs.SendRequest.fast != nil || cs.FlowSummary.fast != nil || cs.StepSummary.fast != nil ||
		cs.Step.fast != nil || cs.DeliveryReport.fast != nil || cs.FlowDefinition.fast != nil ||
		cs.Sender.fast != nil || cs.Template.fast != nil || cs.DeadLetter.fast != nil {
		t.Fatal("a record without a fast encoder claims one")
	}
}

// TestFastLayoutGuard: a schema whose layout is not what the fast encoder
// writes (a field added, moved or retyped) makes New fail instead of
// writing wrong bytes.
func TestFastLayoutGuard(t *testing.T) {
	cs := testCodecs(t)
	guard := func(shape *node, record string) []error {
		c := *cs.FlowEvent
		c.fast, c.shape = nil, shape
		var errs []error
		withFast(&errs, &c, record, appendFlowEvent)
		if (c.fast == nil) != (len(errs) == 1) {
			t.Fatalf("withFast attached %v with errors %v", c.fast != nil, errs)
		}
		return errs
	}
	if errs := guard(cs.FlowEvent.shape, "FlowEvent"); len(errs) != 0 {
		t.Fatalf("the real schema is refused: %v", errs)
	}
	if layoutOf(cs.ChannelSend.shape) != fastLayouts["ChannelSend"] {
		t.Fatal("a real schema does not have its fast layout")
	}
	// The previous FlowEvent schemas (version 2: no flow_id, flow_version;
	// version 1: no metadata, deadline_forced either), and another record's
	// schema.
	if len(cs.FlowEvent.previous) != 4 {
		t.Fatalf("%d previous FlowEvent schemas, want 4", len(cs.FlowEvent.previous))
	}
	for _, shape := range []*node{cs.FlowEvent.previous[0].shape, cs.FlowEvent.previous[1].shape,
		cs.FlowEvent.previous[2].shape, cs.FlowEvent.previous[3].shape, cs.ChannelSend.shape} {
		if errs := guard(shape, "FlowEvent"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "FlowEvent.avsc") {
			t.Fatalf("a wrong layout is accepted: %v", errs)
		}
	}
	// The previous ChannelSend schema (no template_params,
	// template_language, provider_template_id) under its own encoder.
	c := *cs.ChannelSend
	c.fast, c.shape = nil, cs.ChannelSend.previous[0].shape
	var errs []error
	withFast(&errs, &c, "ChannelSend", appendChannelSend)
	if c.fast != nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), "ChannelSend.avsc") {
		t.Fatalf("ChannelSend version 1 is accepted by its fast encoder: %v", errs)
	}
}

// raceEnabled is set by race_test.go under -race.
var raceEnabled bool

// TestFastEncodeAllocs: appending to a buffer with room allocates nothing
// (map keys are sorted on the stack); Encode allocates its result once.
func TestFastEncodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	cs := testCodecs(t)
	ev, send, dl := fullFlowEvent(), fullChannelSend(), fullDeadLetter()
	buf := make([]byte, 0, 4096)
	cases := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"FlowEvent.Append", 0, func() { _, _ = cs.FlowEvent.Append(buf[:0], ev) }},
		{"FlowEvent.Encode", 1, func() { _, _ = cs.FlowEvent.Encode(ev) }},
		{"ChannelSend.Append", 0, func() { _, _ = cs.ChannelSend.Append(buf[:0], send) }},
		{"ChannelSend.Encode", 1, func() { _, _ = cs.ChannelSend.Encode(send) }},
		// hamba's path since issue 22: the mirror (it escapes to Marshal)
		// and Marshal's result, which Encode returns as it is.
		{"DeadLetter.Encode", 2, func() { _, _ = cs.DeadLetter.Encode(dl) }},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(100, c.fn); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}

// padTo returns the length of a string field that makes encode's result
// exactly size bytes long (measured with goavro, without the size check).
func padTo[T any](t *testing.T, c *Codec[T], size int, with func(pad string) T) int {
	t.Helper()
	length := func(p int) int {
		native, err := c.toNative(with(strings.Repeat("x", p)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.avroRef().BinaryFromNative(nil, native)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	p := size - length(1)
	for length(p) > size {
		p--
	}
	for length(p) < size {
		p++
	}
	if length(p) != size {
		t.Fatalf("no pad gives %d bytes", size)
	}
	return p
}

func TestFastEncodeTable(t *testing.T) {
	cs := testCodecs(t)
	bad := "ok\xffok"
	far := time.Unix(1<<40, 0) // beyond year 9999 (and beyond int64 nanoseconds)
	farBack := time.Unix(-1<<40, 0)
	preEpoch := time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC) // floors to -1 ms
	zone := time.FixedZone("X", -(13*3600 + 59))
	threeMeta := map[string]string{"tenant": "acme", "campaign": "", "": "empty key"}
	varints := []int32{0, -1, 1, 63, -64, 64, -65, 8191, 8192, math.MaxInt32, math.MinInt32}

	type flowCase struct {
		name    string
		v       FlowEvent
		wantErr error
		field   string // the fast error names it
	}
	summary := func(edit func(*FlowSummary)) *FlowSummary {
		s := fullFlowSummary()
		edit(&s)
		return &s
	}
	flows := []flowCase{
		{name: "zero", v: FlowEvent{}},
		{name: "full", v: fullFlowEvent()},
		{name: "empty summary", v: FlowEvent{Summary: &FlowSummary{}}},
		{name: "summary with empty non-nil steps", v: FlowEvent{Summary: &FlowSummary{Steps: []StepSummary{}}}},
		{name: "summary with three steps", v: FlowEvent{Summary: summary(func(s *FlowSummary) {
			s.Steps = append(s.Steps, StepSummary{Step: math.MinInt32, SentAt: lastInstant})
			s.DeliveredStep, s.TimeToOutcomeMs = nil, math.MinInt64
		})}},
		{name: "time_to_outcome max", v: FlowEvent{Summary: summary(func(s *FlowSummary) { s.TimeToOutcomeMs = math.MaxInt64 })}},
		{name: "metadata nil", v: FlowEvent{Metadata: nil}},
		{name: "metadata empty", v: FlowEvent{Metadata: map[string]string{}}},
		{name: "metadata one entry", v: FlowEvent{Metadata: map[string]string{"k": "v"}}},
		{name: "metadata empty key and value", v: FlowEvent{Metadata: map[string]string{"": ""}}},
		{name: "metadata three entries", v: FlowEvent{Metadata: threeMeta}},
		{name: "metadata keys sharing prefixes", v: FlowEvent{Metadata: map[string]string{"a": "", "ab": "", "a\x00": "", "é": "", "B": ""}}},
		{name: "optional strings all set", v: FlowEvent{Channel: "c", AttemptID: "a", Reason: "r", Outcome: "o", Status: "s", StatusKind: "k"}},
		{name: "unicode", v: FlowEvent{EventID: "Zoë ✓ 日本 🙂", Status: "\u0000", Metadata: map[string]string{"ü": "\U0010FFFF"}}},
		{name: "booleans", v: FlowEvent{Late: true, DeadlineForced: true, Summary: &FlowSummary{MultiChannelDelivery: true, Steps: []StepSummary{{Succeeded: true}}}}},
		{name: "first instant", v: FlowEvent{OccurredAt: firstInstant}},
		{name: "last instant", v: FlowEvent{OccurredAt: lastInstant}},
		{name: "last instant plus 999999ns", v: FlowEvent{OccurredAt: lastInstant.Add(999_999)}},
		{name: "pre-epoch sub-millisecond floors", v: FlowEvent{OccurredAt: preEpoch}},
		{name: "non-UTC zone", v: FlowEvent{OccurredAt: t0.In(zone).Add(123_456)}},
		{name: "monotonic clock reading", v: FlowEvent{OccurredAt: time.Now()}},
		{name: "step_summary optional timestamps", v: FlowEvent{Summary: &FlowSummary{Steps: []StepSummary{
			{LastStatusAt: ptr(lastInstant)}, {LastStatusAt: ptr(firstInstant)}, {LastStatusAt: nil, LastStatus: "x"}}}}},

		// flow_id and flow_version: "" and 0 are null.
		{name: "flow_id and flow_version null", v: FlowEvent{Type: "FLOW_STARTED", FlowID: "", FlowVersion: 0}},
		{name: "flow_id and flow_version set", v: FlowEvent{Type: "FLOW_STARTED", FlowID: "otp-default", FlowVersion: 1}},
		{name: "flow_id without flow_version", v: FlowEvent{FlowID: "otp"}},
		{name: "flow_version without flow_id", v: FlowEvent{FlowVersion: 2}},
		{name: "flow_id unicode and long (2-byte length)", v: FlowEvent{FlowID: "Zoë ✓ 日本 🙂" + strings.Repeat("f", 100)}},
		{name: "flow ref on a closed flow with summary and metadata", v: func() FlowEvent {
			v := fullFlowEvent()
			v.FlowID, v.FlowVersion = "f", math.MaxInt64
			return v
		}()},
		{name: "invalid UTF-8 flow_id", v: FlowEvent{FlowID: bad, FlowVersion: 1}, wantErr: ErrMalformed, field: "flow_id"},
		{name: "surrogate half flow_id", v: FlowEvent{FlowID: "\xed\xa0\x80"}, wantErr: ErrMalformed, field: "flow_id"},
		{name: "invalid UTF-8 metadata and flow_id: the first wins", v: FlowEvent{Metadata: map[string]string{"k": bad}, FlowID: bad},
			wantErr: ErrMalformed, field: "metadata"},
		{name: "bad timestamp and invalid UTF-8 flow_id", v: FlowEvent{FlowID: bad, OccurredAt: far}, wantErr: ErrMalformed, field: "occurred_at"},

		// Costs (FlowEvent 4): a nil cost is null, a 0 cost a value; maps
		// of longs keyed by currency, sorted.
		{name: "step cost unknown, zero and set", v: FlowEvent{Summary: &FlowSummary{Steps: []StepSummary{
			{CostMicros: nil}, {CostMicros: ptr(int64(0)), CostCurrency: "EUR", CostSource: CostFromTable},
			{CostMicros: ptr(int64(math.MaxInt64)), CostCurrency: "USD", CostSource: CostFromDLR, Wasted: true},
			{CostMicros: ptr(int64(math.MinInt64)), CostCurrency: "X"}}}}},
		{name: "summary cost maps one entry", v: FlowEvent{Summary: &FlowSummary{CostMicros: map[string]int64{"EUR": 7_500},
			WastedMicros: map[string]int64{"EUR": 0}, UnpricedSteps: 1}}},
		{name: "summary cost maps three entries", v: FlowEvent{Summary: &FlowSummary{
			CostMicros:   map[string]int64{"USD": -1, "EUR": 64, "": math.MaxInt64},
			WastedMicros: map[string]int64{"b": 8192, "a": math.MinInt64}, UnpricedSteps: math.MaxInt32}}},
		{name: "summary cost maps empty non-nil", v: FlowEvent{Summary: &FlowSummary{CostMicros: map[string]int64{}, WastedMicros: map[string]int64{}}}},
		{name: "wasted_micros one entry", v: FlowEvent{Type: "DLR_DISCARDED", WastedMicros: map[string]int64{"EUR": 7_850}}},
		{name: "wasted_micros two entries", v: FlowEvent{WastedMicros: map[string]int64{"USD": 1, "EUR": 2}}},
		{name: "invalid UTF-8 wasted_micros key", v: FlowEvent{WastedMicros: map[string]int64{"EUR": 1, bad: 2}}, wantErr: ErrMalformed, field: "wasted_micros"},
		{name: "invalid UTF-8 summary cost key", v: FlowEvent{Summary: &FlowSummary{CostMicros: map[string]int64{bad: 1}}}, wantErr: ErrMalformed, field: "summary: cost_micros"},
		{name: "invalid UTF-8 step cost_currency", v: FlowEvent{Summary: summary(func(s *FlowSummary) { s.Steps[0].CostCurrency = bad })},
			wantErr: ErrMalformed, field: "summary: steps: [0]: cost_currency"},

		{name: "invalid UTF-8 event_id", v: FlowEvent{EventID: bad}, wantErr: ErrMalformed, field: "event_id"},
		{name: "invalid UTF-8 optional channel", v: FlowEvent{Channel: bad}, wantErr: ErrMalformed, field: "channel"},
		{name: "invalid UTF-8 status_kind", v: FlowEvent{StatusKind: "\xc3"}, wantErr: ErrMalformed, field: "status_kind"},
		{name: "surrogate half", v: FlowEvent{Type: "\xed\xa0\x80"}, wantErr: ErrMalformed, field: "type"},
		{name: "invalid UTF-8 metadata key", v: FlowEvent{Metadata: map[string]string{"a": "1", bad: "2"}}, wantErr: ErrMalformed, field: "metadata"},
		{name: "invalid UTF-8 metadata value", v: FlowEvent{Metadata: map[string]string{"k": bad}}, wantErr: ErrMalformed, field: "metadata"},
		{name: "invalid UTF-8 summary outcome", v: FlowEvent{Summary: &FlowSummary{Outcome: bad}}, wantErr: ErrMalformed, field: "summary: outcome"},
		{name: "invalid UTF-8 summary step", v: FlowEvent{Summary: summary(func(s *FlowSummary) { s.Steps[1].Channel = bad })}, wantErr: ErrMalformed, field: "summary: steps: [1]: channel"},
		{name: "occurred_at after 9999", v: FlowEvent{OccurredAt: lastInstant.Add(time.Millisecond)}, wantErr: ErrMalformed, field: "occurred_at"},
		{name: "occurred_at before year 1", v: FlowEvent{OccurredAt: firstInstant.Add(-1)}, wantErr: ErrMalformed, field: "occurred_at"},
		{name: "occurred_at far future", v: FlowEvent{OccurredAt: far}, wantErr: ErrMalformed, field: "occurred_at"},
		{name: "occurred_at far past", v: FlowEvent{OccurredAt: farBack}, wantErr: ErrMalformed, field: "occurred_at"},
		{name: "summary closed_at", v: FlowEvent{Summary: summary(func(s *FlowSummary) { s.ClosedAt = far })}, wantErr: ErrMalformed, field: "summary: closed_at"},
		{name: "summary step last_status_at", v: FlowEvent{Summary: summary(func(s *FlowSummary) { s.Steps[0].LastStatusAt = ptr(farBack) })}, wantErr: ErrMalformed, field: "summary: steps[0]: last_status_at"},
		{name: "bad timestamp and invalid UTF-8", v: FlowEvent{EventID: bad, OccurredAt: far}, wantErr: ErrMalformed, field: "occurred_at"},
	}
	for _, s := range varints {
		flows = append(flows, flowCase{name: fmt.Sprintf("step %d", s), v: FlowEvent{Step: ptr(s),
			Summary: &FlowSummary{DeliveredStep: ptr(s), StepsUsed: s, TimeToOutcomeMs: int64(s) << 32, Steps: []StepSummary{{Step: s}}}}})
	}
	// flow_version across the long's varint lengths, 1 to 10 bytes.
	for _, n := range []int64{1, -1, 63, -64, 64, -65, 8191, 8192, 1 << 20, -1 << 27, 1 << 34, 1 << 41, 1 << 48, 1 << 55,
		1 << 62, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64} {
		flows = append(flows, flowCase{name: fmt.Sprintf("flow_version %d", n), v: FlowEvent{FlowID: "f", FlowVersion: n}})
	}
	// The size limit: exactly MaxRecordBytes is accepted, one more byte is
	// not; too large wins over invalid UTF-8 (validate runs after the size
	// check), a bad timestamp over too large (toNative runs first).
	bigEvent := func(pad string) FlowEvent { v := fullFlowEvent(); v.Reason = pad; return v }
	p := padTo(t, cs.FlowEvent, MaxRecordBytes, bigEvent)
	flows = append(flows,
		flowCase{name: "exactly MaxRecordBytes", v: bigEvent(strings.Repeat("x", p))},
		flowCase{name: "MaxRecordBytes plus one", v: bigEvent(strings.Repeat("x", p+1)), wantErr: ErrTooLarge},
		flowCase{name: "too large and invalid UTF-8", v: func() FlowEvent {
			v := bigEvent(strings.Repeat("x", p+100))
			v.Metadata = map[string]string{"k": bad}
			return v
		}(), wantErr: ErrTooLarge},
		flowCase{name: "invalid UTF-8 at exactly MaxRecordBytes", v: func() FlowEvent {
			v := bigEvent(strings.Repeat("x", p-1) + "\xff")
			return v
		}(), wantErr: ErrMalformed, field: "reason"},
		flowCase{name: "too large and bad timestamp", v: func() FlowEvent {
			v := bigEvent(strings.Repeat("x", p+1))
			v.Summary.StartedAt = far
			return v
		}(), wantErr: ErrMalformed, field: "started_at"},
	)
	// The limit reached through flow_id, the last string.
	bigFlowID := func(pad string) FlowEvent { v := fullFlowEvent(); v.FlowID = pad; return v }
	p = padTo(t, cs.FlowEvent, MaxRecordBytes, bigFlowID)
	flows = append(flows,
		flowCase{name: "exactly MaxRecordBytes in flow_id", v: bigFlowID(strings.Repeat("x", p))},
		flowCase{name: "MaxRecordBytes plus one in flow_id", v: bigFlowID(strings.Repeat("x", p+1)), wantErr: ErrTooLarge},
		flowCase{name: "too large and invalid UTF-8 in flow_id", v: bigFlowID(strings.Repeat("x", p) + "\xff"), wantErr: ErrTooLarge},
		flowCase{name: "invalid UTF-8 at exactly MaxRecordBytes in flow_id", v: bigFlowID(strings.Repeat("x", p-1) + "\xff"),
			wantErr: ErrMalformed, field: "flow_id"},
	)
	for _, c := range flows {
		t.Run("FlowEvent/"+c.name, func(t *testing.T) {
			err := checkFast(t, cs.FlowEvent, c.v, multiMapFlowEvent(c.v))
			checkWant(t, err, c.wantErr, c.field)
		})
	}

	type sendCase struct {
		name    string
		v       ChannelSend
		wantErr error
		field   string
	}
	sends := []sendCase{
		{name: "zero", v: ChannelSend{}},
		{name: "full", v: fullChannelSend()},
		{name: "params empty", v: ChannelSend{Params: map[string]string{}}},
		{name: "params three", v: ChannelSend{Params: threeMeta}},
		{name: "params seventeen (beyond the stack buffer)", v: ChannelSend{Params: func() map[string]string {
			m := map[string]string{}
			for i := range 17 {
				m[fmt.Sprint(i)] = strings.Repeat("v", i)
			}
			return m
		}()}},
		{name: "long strings (2-byte and 3-byte lengths)", v: ChannelSend{To: strings.Repeat("9", 200), Template: strings.Repeat("t", 20000)}},
		{name: "edge times", v: ChannelSend{Deadline: lastInstant, SentAt: firstInstant}},
		{name: "template_category empty is null", v: ChannelSend{TemplateCategory: ""}},
		{name: "invalid UTF-8 to", v: ChannelSend{To: bad}, wantErr: ErrMalformed, field: "to"},
		{name: "invalid UTF-8 template_category", v: ChannelSend{TemplateCategory: bad}, wantErr: ErrMalformed, field: "template_category"},
		{name: "invalid UTF-8 params key", v: ChannelSend{Params: map[string]string{"\xc3": "x"}}, wantErr: ErrMalformed, field: "params"},
		{name: "deadline after 9999", v: ChannelSend{Deadline: far}, wantErr: ErrMalformed, field: "deadline"},
		{name: "sent_at before year 1", v: ChannelSend{SentAt: firstInstant.Add(-time.Nanosecond)}, wantErr: ErrMalformed, field: "sent_at"},

		// template_params (an array: written in the slice's order, never
		// sorted), template_language, provider_template_id.
		{name: "template_params nil", v: ChannelSend{TemplateParams: nil}},
		{name: "template_params empty", v: ChannelSend{TemplateParams: []string{}}},
		{name: "template_params one", v: ChannelSend{TemplateParams: []string{"123456"}}},
		{name: "template_params order kept, repeats", v: ChannelSend{TemplateParams: []string{"b", "a", "b", ""}}},
		{name: "template_params empty strings", v: ChannelSend{TemplateParams: []string{"", ""}}},
		{name: "template_params 64 and 65 items (2-byte count)", v: ChannelSend{TemplateParams: make([]string, 65)}},
		{name: "template_params long item (3-byte length)", v: ChannelSend{TemplateParams: []string{"x", strings.Repeat("é", 9000)}}},
		{name: "template_params unicode", v: ChannelSend{TemplateParams: []string{"Zoë ✓ 日本 🙂", "\x00", "\U0010FFFF"}}},
		{name: "template_language and provider_template_id set", v: ChannelSend{TemplateLanguage: "pt_BR", ProviderTemplateID: "1107161234567890123"}},
		{name: "template_language and provider_template_id empty are null", v: ChannelSend{TemplateLanguage: "", ProviderTemplateID: ""}},
		{name: "invalid UTF-8 template_params item", v: ChannelSend{TemplateParams: []string{"ok", bad}}, wantErr: ErrMalformed, field: "template_params: [1]"},
		{name: "surrogate half template_params", v: ChannelSend{TemplateParams: []string{"\xed\xa0\x80"}}, wantErr: ErrMalformed, field: "template_params: [0]"},
		{name: "invalid UTF-8 template_language", v: ChannelSend{TemplateLanguage: "\xc3"}, wantErr: ErrMalformed, field: "template_language"},
		{name: "invalid UTF-8 provider_template_id", v: ChannelSend{ProviderTemplateID: bad}, wantErr: ErrMalformed, field: "provider_template_id"},
		{name: "invalid UTF-8 in params and template_params: the first wins", v: ChannelSend{Params: map[string]string{"k": bad},
			TemplateParams: []string{bad}}, wantErr: ErrMalformed, field: "params"},
		{name: "invalid UTF-8 in two template_params items: the first wins", v: ChannelSend{TemplateParams: []string{"a", "\xff", "\xc3"}},
			wantErr: ErrMalformed, field: "template_params: [1]"},
		{name: "bad timestamp and invalid UTF-8 template_params", v: ChannelSend{TemplateParams: []string{bad}, SentAt: far},
			wantErr: ErrMalformed, field: "sent_at"},
	}
	for _, s := range varints {
		sends = append(sends, sendCase{name: fmt.Sprintf("step %d", s), v: ChannelSend{Step: s}})
	}
	bigSend := func(pad string) ChannelSend { v := fullChannelSend(); v.Template = pad; return v }
	p = padTo(t, cs.ChannelSend, MaxRecordBytes, bigSend)
	sends = append(sends,
		sendCase{name: "exactly MaxRecordBytes", v: bigSend(strings.Repeat("x", p))},
		sendCase{name: "MaxRecordBytes plus one", v: bigSend(strings.Repeat("x", p+1)), wantErr: ErrTooLarge},
		sendCase{name: "too large and invalid UTF-8", v: func() ChannelSend { v := bigSend(strings.Repeat("x", p+100)); v.From = bad; return v }(), wantErr: ErrTooLarge},
		sendCase{name: "too large and invalid UTF-8 in template_params", v: func() ChannelSend {
			v := bigSend(strings.Repeat("x", p+1))
			v.TemplateParams = append(v.TemplateParams, bad)
			return v
		}(), wantErr: ErrTooLarge},
	)
	// The limit reached through template_params.
	bigParams := func(pad string) ChannelSend { v := fullChannelSend(); v.TemplateParams = []string{"a", pad}; return v }
	p = padTo(t, cs.ChannelSend, MaxRecordBytes, bigParams)
	sends = append(sends,
		sendCase{name: "exactly MaxRecordBytes in template_params", v: bigParams(strings.Repeat("x", p))},
		sendCase{name: "MaxRecordBytes plus one in template_params", v: bigParams(strings.Repeat("x", p+1)), wantErr: ErrTooLarge},
		sendCase{name: "invalid UTF-8 at exactly MaxRecordBytes in template_params", v: bigParams(strings.Repeat("x", p-1) + "\xff"),
			wantErr: ErrMalformed, field: "template_params: [1]"},
	)
	for _, c := range sends {
		t.Run("ChannelSend/"+c.name, func(t *testing.T) {
			err := checkFast(t, cs.ChannelSend, c.v, multiMapChannelSend(c.v))
			checkWant(t, err, c.wantErr, c.field)
		})
	}

	type deadCase struct {
		name    string
		v       DeadLetter
		wantErr error
		field   string
	}
	deads := []deadCase{
		{name: "zero", v: DeadLetter{}},
		{name: "full", v: fullDeadLetter()},
		{name: "empty non-nil key and value", v: DeadLetter{Key: []byte{}, Value: []byte{}}},
		{name: "nil key, invalid UTF-8 value (bytes, not a string)", v: DeadLetter{Value: []byte(bad)}},
		{name: "extremes", v: DeadLetter{Partition: math.MinInt32, Offset: math.MinInt64, FailedAt: lastInstant}},
		{name: "extremes 2", v: DeadLetter{Partition: math.MaxInt32, Offset: math.MaxInt64, FailedAt: firstInstant}},
		{name: "invalid UTF-8 error", v: DeadLetter{Error: bad}, wantErr: ErrMalformed, field: "error"},
		{name: "failed_at far", v: DeadLetter{FailedAt: far}, wantErr: ErrMalformed, field: "failed_at"},
	}
	bigDead := func(pad string) DeadLetter { v := fullDeadLetter(); v.Value = []byte(pad); return v }
	p = padTo(t, cs.DeadLetter, MaxDeadLetterBytes, bigDead)
	deads = append(deads,
		deadCase{name: "exactly MaxDeadLetterBytes", v: bigDead(strings.Repeat("x", p))},
		deadCase{name: "MaxDeadLetterBytes plus one", v: bigDead(strings.Repeat("x", p+1)), wantErr: ErrTooLarge},
		deadCase{name: "too large and invalid UTF-8", v: func() DeadLetter { v := bigDead(strings.Repeat("x", p+100)); v.Topic = bad; return v }(), wantErr: ErrTooLarge},
		deadCase{name: "too large and bad timestamp", v: func() DeadLetter { v := bigDead(strings.Repeat("x", p+1)); v.FailedAt = farBack; return v }(), wantErr: ErrMalformed, field: "failed_at"},
	)
	for _, c := range deads {
		t.Run("DeadLetter/"+c.name, func(t *testing.T) {
			err := checkFast(t, cs.DeadLetter, c.v, false)
			checkWant(t, err, c.wantErr, c.field)
		})
	}
}

func checkWant(t *testing.T, err, want error, field string) {
	t.Helper()
	if (err == nil) != (want == nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if field != "" && !strings.Contains(err.Error(), field+": ") && !strings.Contains(err.Error(), field+"[") {
		t.Fatalf("err = %q, want it to name %q", err, field)
	}
}

// fuzzGen builds values from fuzzed fields: ctl bytes choose the shape
// (nil or set, how many entries, which timestamp), strs and nums the
// contents.
type fuzzGen struct {
	ctl  []byte
	strs []string
	nums []int64
	ni   int
}

func (g *fuzzGen) next() byte {
	if len(g.ctl) == 0 {
		return 0
	}
	b := g.ctl[0]
	g.ctl = g.ctl[1:]
	return b
}

func (g *fuzzGen) num() int64 {
	n := g.nums[g.ni%len(g.nums)]
	g.ni++
	return n
}

var fuzzFixedStrings = []string{"", "a", "\xff", "ü", "\xc3", "\xed\xa0\x80", "\x00", strings.Repeat("z", 130), "日本"}

func (g *fuzzGen) str() string {
	b := g.next()
	switch b % 8 {
	case 0:
		return ""
	case 1, 2, 3:
		return g.strs[int(b/8)%len(g.strs)]
	case 4:
		return fuzzFixedStrings[int(b/8)%len(fuzzFixedStrings)]
	case 5: // a prefix, possibly cutting a rune in two
		s := g.strs[int(b/8)%len(g.strs)]
		if len(s) == 0 {
			return s
		}
		return s[:int(g.next())%len(s)]
	case 6:
		return g.strs[0] + g.strs[1]
	default:
		return g.strs[int(b/8)%len(g.strs)] + fuzzFixedStrings[int(g.next())%len(fuzzFixedStrings)]
	}
}

var fuzzInts = []int32{0, -1, 1, 63, 64, -64, -65, 8191, 8192, math.MaxInt32, math.MinInt32}

func (g *fuzzGen) i32() int32 {
	b := g.next()
	if b%2 == 0 {
		return fuzzInts[int(b/2)%len(fuzzInts)]
	}
	return int32(g.num())
}

func (g *fuzzGen) i64() int64 {
	switch g.next() % 4 {
	case 0:
		return math.MaxInt64
	case 1:
		return math.MinInt64
	default:
		return g.num()
	}
}

func (g *fuzzGen) optI32() *int32 {
	if g.next()%3 == 0 {
		return nil
	}
	return ptr(g.i32())
}

func (g *fuzzGen) time() time.Time {
	switch g.next() % 14 {
	case 0:
		return t0
	case 1:
		return firstInstant
	case 2:
		return lastInstant
	case 3:
		return lastInstant.Add(999_999) // same millisecond: valid
	case 4:
		return lastInstant.Add(time.Millisecond)
	case 5:
		return firstInstant.Add(-time.Nanosecond)
	case 6:
		return time.Time{}
	case 7:
		return time.UnixMilli(g.num()) // any millisecond, maybe outside the range
	case 8:
		return time.Unix(0, g.num()) // years 1678 to 2262, sub-millisecond
	case 9:
		return time.Unix(g.num(), g.num()) // any second, beyond int64 milliseconds
	case 10:
		return time.Unix(0, g.num()).In(time.FixedZone("X", int(g.num()%(14*3600))))
	case 11:
		return time.Date(1969, 12, 31, 23, 59, 59, int(uint64(g.num())%1e9), time.UTC) // floors below zero
	case 12:
		return time.Unix(g.num()%(253402300800+62135596800)-62135596800, g.num()) // around the whole range
	default:
		return time.Now()
	}
}

func (g *fuzzGen) optTime() *time.Time {
	if g.next()%3 == 0 {
		return nil
	}
	return ptr(g.time())
}

// strMap: nil, empty, or 1 to 3 entries (fewer when keys repeat).
func (g *fuzzGen) strMap() map[string]string {
	n := int(g.next() % 5)
	if n == 0 {
		return nil
	}
	m := map[string]string{}
	for range n - 1 {
		m[g.str()] = g.str()
	}
	return m
}

// strList: nil, empty, or 1 to 3 items (repeats kept).
func (g *fuzzGen) strList() []string {
	n := int(g.next() % 5)
	if n == 0 {
		return nil
	}
	l := []string{}
	for range n - 1 {
		l = append(l, g.str())
	}
	return l
}

func (g *fuzzGen) bytes() []byte {
	switch g.next() % 3 {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		return []byte(g.str())
	}
}

func (g *fuzzGen) flowEvent() FlowEvent {
	v := FlowEvent{
		EventID: g.str(), RequestID: g.str(), Type: g.str(), Step: g.optI32(),
		Channel: g.str(), AttemptID: g.str(), Reason: g.str(), Outcome: g.str(), Status: g.str(), StatusKind: g.str(),
		Late: g.next()%2 == 1, OccurredAt: g.time(), Metadata: g.strMap(), DeadlineForced: g.next()%2 == 1,
	}
	if g.next()%2 == 1 {
		s := FlowSummary{Outcome: g.str(), DeliveredStep: g.optI32(), StepsUsed: g.i32(),
			RequestedAt: g.time(), StartedAt: g.time(), ClosedAt: g.time(), TimeToOutcomeMs: g.i64(),
			MultiChannelDelivery: g.next()%2 == 1}
		switch n := int(g.next() % 5); n {
		case 0: // nil
		default:
			s.Steps = []StepSummary{}
			for range n - 1 {
				s.Steps = append(s.Steps, StepSummary{Step: g.i32(), Channel: g.str(), AttemptID: g.str(), Reason: g.str(),
					SentAt: g.time(), LastStatus: g.str(), LastStatusAt: g.optTime(), Succeeded: g.next()%2 == 1})
			}
		}
		v.Summary = &s
	}
	// Last, so that the seeds written before the fields keep their
	// FlowEvent.
	v.FlowID, v.FlowVersion = g.str(), g.version()
	return v
}

// version is a flow_version: 0 (null) a third of the time.
func (g *fuzzGen) version() int64 {
	if g.next()%3 == 0 {
		return 0
	}
	return g.i64()
}

func (g *fuzzGen) channelSend() ChannelSend {
	return ChannelSend{AttemptID: g.str(), RequestID: g.str(), Step: g.i32(), Channel: g.str(), From: g.str(), To: g.str(),
		Template: g.str(), TemplateCategory: g.str(), Params: g.strMap(), Reason: g.str(), Deadline: g.time(), SentAt: g.time(),
		TemplateParams: g.strList(), TemplateLanguage: g.str(), ProviderTemplateID: g.str()}
}

func (g *fuzzGen) deadLetter() DeadLetter {
	return DeadLetter{Key: g.bytes(), Value: g.bytes(), Topic: g.str(), Partition: g.i32(), Offset: g.i64(),
		Error: g.str(), FailedAt: g.time()}
}

// FuzzFastEncodeMatchesGoavro: a FlowEvent, a ChannelSend and a DeadLetter
// built from fuzzed fields; the fast path and the goavro path (toNative,
// BinaryFromNative, validate) both refuse them (same error class) or write
// the same bytes (maps of two or more entries compared in sorted order: see
// fast.go), and the fast encoding passes validate and Decode.
func FuzzFastEncodeMatchesGoavro(f *testing.F) {
	cs := testCodecs(f)
	f.Add("req-42", "whatsapp", "Zoë ✓", int64(0), int64(1), []byte{})
	f.Add("", "", "", int64(-1), int64(math.MaxInt64), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add("a", "\xff", "b", int64(math.MinInt64), int64(1<<40), bytes.Repeat([]byte{0xff}, 64))
	// Summary with three steps and three metadata entries.
	f.Add("k1", "k2", "k3", int64(1700000000000), int64(-62135596800001), []byte{
		9, 17, 25, 1, 2, 3, 4, 5, 6, 7, 1, 7, 4, 9, 1, 17, 2, 25, 3, 1,
		1, 9, 1, 2, 7, 8, 9, 7, 1, 4, 9, 17, 25, 1, 2, 3, 7, 1, 1, 1,
		4, 9, 17, 25, 1, 2, 3, 7, 1, 1, 1, 4, 9, 17, 25, 1, 2, 3, 7, 1})
	// Invalid UTF-8 cut in a prefix, non-UTC zone, pre-epoch milliseconds.
	f.Add("ü€𝄞", "x\xc3", "\xed\xa0\x80", int64(-1), int64(253402300799999), []byte{
		5, 3, 5, 2, 13, 1, 10, 11, 12, 7, 4, 4, 12, 60, 3, 2, 1})
	// Extreme times everywhere.
	f.Add("t", "u", "v", int64(253402300800000), int64(-62135596800000), bytes.Repeat([]byte{4, 5, 7, 9, 2, 1, 3}, 20))
	// A zero FlowEvent (17 control bytes), then a ChannelSend with three
	// template_params, a language and a provider id; then the same with
	// invalid UTF-8 in its third template param.
	f.Add("a", "b", "c", int64(1), int64(2), append(make([]byte, 17),
		9, 17, 2, 9, 17, 25, 1, 2, 3, 9, 17, 25, 1, 9, 0, 2, 4, 9, 28, 1, 17, 25))
	f.Add("a", "b", "c", int64(1), int64(2), append(make([]byte, 17),
		9, 17, 2, 9, 17, 25, 1, 2, 0, 9, 1, 1, 4, 12, 1, 44, 17, 25))
	// A FLOW_STARTED naming stored flow "otp" version 7 (15 control bytes
	// before flow_id, the third picking the type); then flow_id "\xff" and version MaxInt64; then a prefix of
	// "ü€" cut inside a rune and version MinInt64.
	f.Add("otp", "FLOW_STARTED", "x", int64(7), int64(0), []byte{0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2})
	f.Add("otp", "b", "c", int64(7), int64(0), append(make([]byte, 15), 20, 1, 0))
	f.Add("ü€", "b", "c", int64(7), int64(0), append(make([]byte, 15), 5, 4, 2, 1))
	f.Fuzz(func(t *testing.T, a, b, c string, n1, n2 int64, ctl []byte) {
		g := &fuzzGen{ctl: ctl, strs: []string{a, b, c}, nums: []int64{n1, n2, n1 ^ n2, -n1}}
		ev := g.flowEvent()
		checkFast(t, cs.FlowEvent, ev, multiMapFlowEvent(ev))
		send := g.channelSend()
		checkFast(t, cs.ChannelSend, send, multiMapChannelSend(send))
		checkFast(t, cs.DeadLetter, g.deadLetter(), false)
	})
}
