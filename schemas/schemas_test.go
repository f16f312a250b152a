package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

func TestRoundTrip(t *testing.T) {
	cs := testCodecs(t)
	covered := map[string]bool{}
	for _, s := range samples() {
		t.Run(s.label(), func(t *testing.T) {
			b, err := s.encode(cs)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if err := s.decodeEqual(cs, b); err != nil {
				t.Fatalf("decode: %v", err)
			}
		})
		covered[s.info(cs).Name()] = true
	}
	for _, info := range cs.All() {
		if !covered[info.Name()] {
			t.Errorf("no round-trip sample for %s", info.Name())
		}
	}
}

// TestNilAndEmpty pins the Go <-> Avro mapping of "unset" values.
func TestNilAndEmpty(t *testing.T) {
	cs := testCodecs(t)

	// An explicit empty string in an optional field is written as null.
	a, err := cs.DeliveryReport.Encode(DeliveryReport{AttemptID: ""})
	if err != nil {
		t.Fatal(err)
	}
	if a[0] != 0 { // union branch 0 = null
		t.Errorf("optional \"\" not written as null: first byte %d", a[0])
	}

	// Empty required arrays and maps decode to nil.
	b, err := cs.FlowDefinition.Encode(FlowDefinition{Steps: []Step{}})
	if err != nil {
		t.Fatal(err)
	}
	def, err := cs.FlowDefinition.Decode(b)
	if err != nil || def.Steps != nil {
		t.Errorf("empty steps: got %#v, %v; want nil", def.Steps, err)
	}
	c, err := cs.ChannelSend.Encode(ChannelSend{Params: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	send, err := cs.ChannelSend.Decode(c)
	if err != nil || send.Params != nil {
		t.Errorf("empty params: got %#v, %v; want nil", send.Params, err)
	}
	// ... the same for the arrays and maps added since, which encode like
	// nil ones.
	nilSend, err := cs.ChannelSend.Encode(ChannelSend{})
	if err != nil {
		t.Fatal(err)
	}
	c, err = cs.ChannelSend.Encode(ChannelSend{TemplateParams: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if send, err := cs.ChannelSend.Decode(c); err != nil || send.TemplateParams != nil || !bytes.Equal(c, nilSend) {
		t.Errorf("empty template_params: got %#v, %v (bytes equal to nil's: %v); want nil", send.TemplateParams, err, bytes.Equal(c, nilSend))
	}
	emptyStep := Step{Variables: map[string]string{}, FixedText: map[string]string{}, FailureCodes: []string{}}
	for _, st := range []Step{emptyStep, {}} {
		b, err := cs.FlowDefinition.Encode(FlowDefinition{Steps: []Step{st}})
		if err != nil {
			t.Fatal(err)
		}
		def, err := cs.FlowDefinition.Decode(b)
		if err != nil || !reflect.DeepEqual(def.Steps, []Step{{}}) {
			t.Errorf("empty step maps and failure_codes: got %#v, %v; want nil", def.Steps, err)
		}
	}
	// An optional string of the new fields: "" is null.
	b, err = cs.Template.Encode(Template{ProviderTemplateID: "", Sender: ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := concat(str(""), str(""), str(""), str(""), str(""), str(""), union(0), union(0), long(0), str(""), long(minTimestampMillis)); !bytes.Equal(b, want) {
		t.Errorf("zero Template = % x, want % x", b, want)
	}

	// A non-null empty string written by another producer reads as "".
	raw := concat(union(1), str(""), union(0), str("sms"), str("DELIVRD"), union(0), long(0), union(0), union(0))
	dlr, err := cs.DeliveryReport.Decode(raw)
	if err != nil || dlr.AttemptID != "" {
		t.Errorf("got %+v, %v", dlr, err)
	}

	// Decoded timestamps are UTC and truncated to milliseconds.
	local := time.Date(2026, 1, 2, 3, 4, 5, 6_789_999, time.FixedZone("X", 3600))
	d, err := cs.DeliveryReport.Encode(DeliveryReport{ReportedAt: local})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.DeliveryReport.Decode(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := local.Truncate(time.Millisecond).UTC(); !got.ReportedAt.Equal(want) || got.ReportedAt.Location() != time.UTC {
		t.Errorf("reported_at = %v, want %v in UTC", got.ReportedAt, want)
	}
}

func TestAppend(t *testing.T) {
	cs := testCodecs(t)
	v := fullChannelSend()
	prefix := []byte("prefix")
	out, err := cs.ChannelSend.Append(prefix, v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("Append lost the prefix")
	}
	got, err := cs.ChannelSend.Decode(out[len(prefix):])
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// On error dst comes back unchanged.
	bad := v
	bad.To = "\xff"
	out, err = cs.ChannelSend.Append(prefix, bad)
	if err == nil || string(out) != "prefix" {
		t.Fatalf("Append(bad) = %q, %v", out, err)
	}
}

// TestDecodeAliasing: a decoded value must not share memory with the input
// (the processor reuses Kafka record buffers).
func TestDecodeAliasing(t *testing.T) {
	cs := testCodecs(t)
	b, err := cs.DeadLetter.Encode(fullDeadLetter())
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.DeadLetter.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if !reflect.DeepEqual(v, fullDeadLetter()) {
		t.Fatalf("decoded value changed with its input: %+v", v)
	}
}

func TestEncodeRejects(t *testing.T) {
	cs := testCodecs(t)
	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"invalid UTF-8 in a required string", ErrMalformed, func() error {
			_, err := cs.DeliveryReport.Encode(DeliveryReport{Status: "DELIV\xffRD"})
			return err
		}},
		{"invalid UTF-8 in a map key", ErrMalformed, func() error {
			_, err := cs.ChannelSend.Encode(ChannelSend{Params: map[string]string{"\xc3": "x"}})
			return err
		}},
		{"invalid UTF-8 in a nested record", ErrMalformed, func() error {
			_, err := cs.FlowEvent.Encode(FlowEvent{Summary: &FlowSummary{Steps: []StepSummary{{LastStatus: "\xed\xa0\x80"}}}})
			return err
		}},
		{"timestamp after year 9999", ErrMalformed, func() error {
			_, err := cs.DeliveryReport.Encode(DeliveryReport{ReportedAt: lastInstant.Add(time.Millisecond)})
			return err
		}},
		{"timestamp before year 1", ErrMalformed, func() error {
			_, err := cs.StepSummary.Encode(StepSummary{LastStatusAt: ptr(firstInstant.Add(-time.Millisecond))})
			return err
		}},
		{"record above MaxRecordBytes", ErrTooLarge, func() error {
			_, err := cs.SendRequest.Encode(SendRequest{Params: map[string]string{"big": strings.Repeat("x", MaxRecordBytes)}})
			return err
		}},
		{"dead letter above MaxDeadLetterBytes", ErrTooLarge, func() error {
			_, err := cs.DeadLetter.Encode(DeadLetter{Value: make([]byte, MaxDeadLetterBytes)})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(); !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
		})
	}
	// A dead letter wrapping a maximal record still encodes.
	if _, err := cs.DeadLetter.Encode(DeadLetter{Key: make([]byte, 1024), Value: make([]byte, MaxRecordBytes)}); err != nil {
		t.Fatalf("dead letter of a 1 MiB record: %v", err)
	}
}

// ---- hostile input ----

// Avro binary building blocks. encoding/binary's varint is the same zig-zag
// varint as Avro's int and long.
func long(v int64) []byte     { return binary.AppendVarint(nil, v) }
func union(branch int) []byte { return long(int64(branch)) }
func str(s string) []byte     { return append(long(int64(len(s))), s...) }
func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestDecodeTruncated(t *testing.T) {
	cs := testCodecs(t)
	for _, s := range samples() {
		b, err := s.encode(cs)
		if err != nil {
			t.Fatalf("%s: encode: %v", s.label(), err)
		}
		for i := range len(b) {
			if err := s.decode(cs, b[:i]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: decode of %d/%d bytes: err = %v, want ErrTruncated", s.label(), i, len(b), err)
			}
		}
	}
}

func TestDecodeTrailingBytes(t *testing.T) {
	cs := testCodecs(t)
	for _, s := range samples() {
		b, err := s.encode(cs)
		if err != nil {
			t.Fatalf("%s: encode: %v", s.label(), err)
		}
		for _, extra := range [][]byte{{0}, {0x02, 'x'}, b} {
			if err := s.decode(cs, concat(b, extra)); !errors.Is(err, ErrTrailingBytes) {
				t.Errorf("%s + %d bytes: err = %v, want ErrTrailingBytes", s.label(), len(extra), err)
			}
		}
	}
}

// TestDecodeWrongSchema: bytes of one record fed to the codec of another.
// Avro binary has no type tags, so this cannot be caught in general (that is
// what the fingerprint header is for), but with our schemas these pairs
// all fail.
func TestDecodeWrongSchema(t *testing.T) {
	cs := testCodecs(t)
	enc := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dlr := enc(cs.DeliveryReport.Encode(fullDeliveryReport()))
	req := enc(cs.SendRequest.Encode(fullSendRequest()))
	send := enc(cs.ChannelSend.Encode(fullChannelSend()))
	event := enc(cs.FlowEvent.Encode(fullFlowEvent()))
	def := enc(cs.FlowDefinition.Encode(fullFlowDefinition()))
	sender := enc(cs.Sender.Encode(fullSender()))
	template := enc(cs.Template.Encode(fullTemplate()))

	checks := []struct {
		name string
		err  error
	}{
		{"DeliveryReport as SendRequest", func() error { _, err := cs.SendRequest.Decode(dlr); return err }()},
		{"SendRequest as DeliveryReport", func() error { _, err := cs.DeliveryReport.Decode(req); return err }()},
		{"ChannelSend as DeliveryReport", func() error { _, err := cs.DeliveryReport.Decode(send); return err }()},
		{"FlowEvent as SendRequest", func() error { _, err := cs.SendRequest.Decode(event); return err }()},
		{"SendRequest as FlowDefinition", func() error { _, err := cs.FlowDefinition.Decode(req); return err }()},
		{"FlowDefinition as SendRequest", func() error { _, err := cs.SendRequest.Decode(def); return err }()},
		{"ChannelSend as FlowEvent", func() error { _, err := cs.FlowEvent.Decode(send); return err }()},
		{"Sender as Template", func() error { _, err := cs.Template.Decode(sender); return err }()},
		{"Template as Sender", func() error { _, err := cs.Sender.Decode(template); return err }()},
		{"Template as ChannelSend", func() error { _, err := cs.ChannelSend.Decode(template); return err }()},
		{"Sender as FlowDefinition", func() error { _, err := cs.FlowDefinition.Decode(sender); return err }()},
	}
	for _, c := range checks {
		if c.err == nil {
			t.Errorf("%s: decoded without error", c.name)
		}
	}
}

// TestDecodeHostile: inputs crafted to make a naive decoder allocate
// gigabytes or loop must fail fast with little memory.
func TestDecodeHostile(t *testing.T) {
	cs := testCodecs(t)
	// SendRequest up to its steps field: request_id, kind, recipient = "",
	// flow_id = null.
	head := concat(str(""), str(""), str(""), union(0))
	// ... up to params: steps = null.
	toParams := concat(head, union(0))
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"steps block count MaxInt32", concat(head, union(1), long(math.MaxInt32)), ErrTruncated},
		{"steps block count MaxInt64", concat(head, union(1), long(math.MaxInt64)), ErrTruncated},
		{"steps negative count with huge size", concat(head, union(1), long(-3), long(1<<50)), ErrTruncated},
		{"steps block count MinInt64", concat(head, union(1), long(math.MinInt64)), ErrMalformed},
		{"params block count MaxInt32", concat(toParams, long(math.MaxInt32)), ErrTruncated},
		{"params block count 2^40", concat(toParams, long(1<<40), str("k"), str("v")), ErrTruncated},
		{"params second block huge", concat(toParams, long(1), str("k"), str("v"), long(math.MaxInt32)), ErrTruncated},
		{"string length 2^62", long(1 << 62), ErrTruncated},
		{"string length MaxInt32", concat(long(math.MaxInt32), []byte("abc")), ErrTruncated},
		{"negative string length", long(-1), ErrMalformed},
		{"varint longer than 10 bytes", bytes.Repeat([]byte{0xff}, 11), ErrMalformed},
		{"varint overflowing 64 bits", append(bytes.Repeat([]byte{0xff}, 9), 0x7f), ErrMalformed},
		{"union branch out of range", concat(head[:3], union(2)), ErrMalformed},
		{"negative union branch", concat(head[:3], long(-1)), ErrMalformed},
		{"invalid UTF-8 in request_id", concat(str("\xff\xfe"), str(""), str(""), union(0), union(0), long(0), long(0), long(0)), ErrMalformed},
		{"invalid UTF-8 in a map key", concat(toParams, long(1), str("\xc0\xaf"), str("v"), long(0), long(0), long(0)), ErrMalformed},
		{"duplicate map key", concat(toParams, long(2), str("k"), str("a"), str("k"), str("b"), long(0), long(0), long(0), union(0)), ErrMalformed},
		{"timestamp beyond year 9999", concat(toParams, long(0), long(0), long(math.MaxInt64)), ErrMalformed},
		{"timestamp MinInt64", concat(toParams, long(0), long(0), long(math.MinInt64)), ErrMalformed},
		{"empty input", nil, ErrTruncated},
		{"too large", make([]byte, MaxRecordBytes+1), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := cs.SendRequest.Decode(c.input)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
				t.Errorf("allocated %d bytes on a %d-byte input", alloc, len(c.input))
			}
		})
	}

	// Field-specific checks on other records.
	if _, err := cs.FlowEvent.Decode(concat(str(""), str(""), str(""), bytes.Repeat([]byte{0}, 7), []byte{2}, long(0))); !errors.Is(err, ErrMalformed) {
		t.Errorf("boolean byte 2: err = %v, want ErrMalformed", err)
	}
	if _, err := cs.DeadLetter.Decode(concat(union(1), long(1<<40))); !errors.Is(err, ErrTruncated) {
		t.Errorf("bytes length 2^40: err = %v, want ErrTruncated", err)
	}
	if _, err := cs.DeadLetter.Decode(make([]byte, MaxDeadLetterBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("dead letter too large: err = %v, want ErrTooLarge", err)
	}
	// int fields reject varints that do not fit 32 bits.
	stepBytes := concat(str(""), str(""), str(""), union(0), long(math.MaxInt32+1), str(""))
	if _, err := cs.Step.Decode(stepBytes); !errors.Is(err, ErrMalformed) {
		t.Errorf("delay_seconds 2^31: err = %v, want ErrMalformed", err)
	}
}

// TestDecodeErrorsNameTheField: errors say where decoding stopped.
func TestDecodeErrorsNameTheField(t *testing.T) {
	cs := testCodecs(t)
	b, err := cs.SendRequest.Encode(fullSendRequest())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.SendRequest.Decode(b[:40])
	if err == nil || !strings.Contains(err.Error(), "fallbackd.v1.SendRequest") || !strings.Contains(err.Error(), "steps") {
		t.Fatalf("err = %v, want it to name the record and the steps field", err)
	}
}

// ---- the .avsc files ----

var wantFields = map[string][]string{
	"SendRequest":    {"request_id", "kind", "recipient", "flow_id", "steps", "params", "metadata", "requested_at", "expires_at"},
	"Step":           {"channel", "from", "template", "template_category", "delay_seconds", "success_on", "variables", "fixed_text", "failure_codes", "delay_auto"},
	"DelayAuto":      {"percentile", "margin_seconds", "min_seconds", "max_seconds"},
	"DeliveryReport": {"attempt_id", "provider_message_id", "channel", "status", "error_code", "reported_at", "price_micros", "currency"},
	"ChannelSend": {"attempt_id", "request_id", "step", "channel", "from", "to", "template", "template_category", "params", "reason", "deadline", "sent_at",
		"template_params", "template_language", "provider_template_id"},
	"FlowEvent": {"event_id", "request_id", "type", "step", "channel", "attempt_id", "reason", "outcome", "status", "status_kind", "late", "occurred_at", "summary", "metadata", "deadline_forced",
		"flow_id", "flow_version", "wasted_micros", "delay_seconds", "delay_basis"},
	"FlowSummary": {"outcome", "delivered_step", "steps_used", "requested_at", "started_at", "closed_at", "time_to_outcome_ms", "multi_channel_delivery", "steps",
		"cost_micros", "wasted_micros", "unpriced_steps"},
	"StepSummary": {"step", "channel", "attempt_id", "reason", "sent_at", "last_status", "last_status_at", "succeeded",
		"cost_micros", "cost_currency", "cost_source", "wasted", "delay_seconds", "delay_basis"},
	"FlowDefinition": {"flow_id", "version", "steps", "status", "changed_by", "changed_at", "title"},
	"DeadLetter":     {"key", "value", "topic", "partition", "offset", "error", "failed_at"},
	"Sender":         {"channel", "id", "label", "status", "version", "changed_by", "changed_at"},
	"Template": {"channel", "name", "language", "category", "body", "status", "provider_template_id", "sender",
		"version", "changed_by", "changed_at"},
}

func readSchemaJSON(t *testing.T, file string) map[string]any {
	t.Helper()
	text, err := fs.ReadFile(SchemaFiles(), file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(text, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// TestEachSchemaStandsAlone: every .avsc parses alone (a fresh goavro codec,
// no other file), defines the expected full name and fields, and has docs.
func TestEachSchemaStandsAlone(t *testing.T) {
	files, err := fs.Glob(SchemaFiles(), "*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	for _, file := range files {
		record := strings.TrimSuffix(file, ".avsc")
		records = append(records, record)
		text, _ := fs.ReadFile(SchemaFiles(), file)
		c, err := goavro.NewCodec(string(text))
		if err != nil {
			t.Errorf("%s does not parse alone: %v", file, err)
			continue
		}
		name := c.TypeName()
		if got, want := name.String(), Namespace+"."+record; got != want {
			t.Errorf("%s defines %s, want %s", file, got, want)
		}
		m := readSchemaJSON(t, file)
		if m["namespace"] != Namespace {
			t.Errorf("%s: namespace %v", file, m["namespace"])
		}
		if doc, _ := m["doc"].(string); doc == "" {
			t.Errorf("%s: record has no doc", file)
		}
		var got []string
		for _, f := range m["fields"].([]any) {
			got = append(got, f.(map[string]any)["name"].(string))
		}
		if !reflect.DeepEqual(got, wantFields[record]) {
			t.Errorf("%s fields = %v, want %v", file, got, wantFields[record])
		}
	}
	want := make([]string, 0, len(wantFields))
	for r := range wantFields {
		want = append(want, r)
	}
	sort.Strings(want)
	sort.Strings(records)
	if !reflect.DeepEqual(records, want) {
		t.Errorf("schema files = %v, want %v", records, want)
	}
}

// walkRecords calls fn for every record definition inside a schema.
func walkRecords(schema any, fn func(rec map[string]any)) {
	switch s := schema.(type) {
	case []any:
		for _, b := range s {
			walkRecords(b, fn)
		}
	case map[string]any:
		if s["type"] == "record" {
			fn(s)
			for _, f := range s["fields"].([]any) {
				walkRecords(f.(map[string]any)["type"], fn)
			}
			return
		}
		for _, k := range []string{"type", "items", "values"} {
			if v, ok := s[k]; ok {
				walkRecords(v, fn)
			}
		}
	}
}

// TestInlineCopiesMatch: records are inlined (Step in SendRequest and
// FlowDefinition, FlowSummary in FlowEvent, StepSummary in both) so that
// every file stands alone; every inline copy must equal its own file, docs
// and defaults included.
func TestInlineCopiesMatch(t *testing.T) {
	copies := 0
	for record := range wantFields {
		file := record + ".avsc"
		walkRecords(readSchemaJSON(t, file), func(rec map[string]any) {
			name := rec["name"].(string)
			if name == record {
				return
			}
			copies++
			own := readSchemaJSON(t, name+".avsc")
			delete(own, "namespace") // the inline copy inherits it
			if _, has := rec["namespace"]; has {
				t.Errorf("%s: inline %s sets its own namespace", file, name)
			}
			if !reflect.DeepEqual(rec, own) {
				t.Errorf("%s: inline %s differs from %s.avsc", file, name, name)
			}
		})
	}
	// Step x2, FlowSummary x1, StepSummary x2, DelayAuto x3 (in Step and
	// in Step's two copies).
	if copies != 8 {
		t.Errorf("found %d inline copies, want 8", copies)
	}
}

// TestOptionalFieldsDefaultToNull: every union with null has null first and
// a null default, so that a reader with a newer schema can resolve records
// written before the field existed.
func TestOptionalFieldsDefaultToNull(t *testing.T) {
	for record := range wantFields {
		walkRecords(readSchemaJSON(t, record+".avsc"), func(rec map[string]any) {
			for _, f := range rec["fields"].([]any) {
				fm := f.(map[string]any)
				u, ok := fm["type"].([]any)
				if !ok {
					continue
				}
				def, hasDefault := fm["default"]
				if u[0] != "null" || !hasDefault || def != nil {
					t.Errorf("%s.%s: union %v must start with null and default to null", rec["name"], fm["name"], u)
				}
			}
		})
	}
}

// ---- fingerprints ----

func TestFingerprints(t *testing.T) {
	cs := testCodecs(t)
	again, err := New()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i, info := range cs.All() {
		// The hash is goavro's Rabin over the canonical form.
		ref, err := goavro.NewCodec(info.Canonical())
		if err != nil {
			t.Fatalf("%s: canonical form does not parse: %v", info.Name(), err)
		}
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], ref.Rabin)
		if info.Rabin() != ref.Rabin {
			t.Errorf("%s: Rabin %x, goavro %x", info.Name(), info.Rabin(), ref.Rabin)
		}
		if want := hexString(le[:]); info.Fingerprint() != want {
			t.Errorf("%s: Fingerprint %s, want %s", info.Name(), info.Fingerprint(), want)
		}
		if len(info.Fingerprint()) != 16 {
			t.Errorf("%s: fingerprint %q is not 16 hex digits", info.Name(), info.Fingerprint())
		}
		// Stable across builds.
		if other := again.All()[i]; other.Fingerprint() != info.Fingerprint() {
			t.Errorf("%s: fingerprint changed between two New()", info.Name())
		}
		// Distinct per record.
		if prev, dup := seen[info.Fingerprint()]; dup {
			t.Errorf("%s and %s share a fingerprint", prev, info.Name())
		}
		seen[info.Fingerprint()] = info.Name()
		// The canonical form has no logical types (see canonical.go).
		if strings.Contains(info.Canonical(), "logicalType") || strings.Contains(info.Canonical(), `{"type":"long"}`) {
			t.Errorf("%s: canonical form keeps a logical type: %s", info.Name(), info.Canonical())
		}
		if strings.Contains(info.Canonical(), `"doc"`) || strings.Contains(info.Canonical(), `"default"`) {
			t.Errorf("%s: canonical form keeps doc or default", info.Name())
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestCanonicalForm checks the canonical form against the Avro
// specification's rules and its published fingerprints (the test vectors of
// Avro's share/test/data/schema-tests.txt).
func TestCanonicalForm(t *testing.T) {
	cases := []struct {
		in, want string
		rabin    int64 // 0: not checked
	}{
		{`"null"`, `"null"`, 7195948357588979594},
		{`{"type":"boolean"}`, `"boolean"`, -6970731678124411036},
		{`"int"`, `"int"`, 8247732601305521295},
		{`{"type":"long","logicalType":"timestamp-millis"}`, `"long"`, 0},
		{`{"type":"fixed","name":"Foo","namespace":"x.y","size":16,"doc":"d"}`, `{"name":"x.y.Foo","type":"fixed","size":16}`, 0},
		{`{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`, `{"name":"E","type":"enum","symbols":["A","B"]}`, 0},
		{`{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[
			{"name":"s","type":{"type":"record","name":"S","fields":[{"name":"x","type":"string","default":""}]}},
			{"name":"s2","type":["null","S"],"default":null},
			{"name":"o","type":{"type":"record","name":"c.O","fields":[{"name":"p","type":"a.b.S"},{"name":"q","type":["null","O"]}]}},
			{"name":"m","type":{"type":"map","values":{"type":"array","items":"int"}}}]}`,
			`{"name":"a.b.R","type":"record","fields":[` +
				`{"name":"s","type":{"name":"a.b.S","type":"record","fields":[{"name":"x","type":"string"}]}},` +
				`{"name":"s2","type":["null","a.b.S"]},` +
				`{"name":"o","type":{"name":"c.O","type":"record","fields":[{"name":"p","type":"a.b.S"},{"name":"q","type":["null","c.O"]}]}},` +
				`{"name":"m","type":{"type":"map","values":{"type":"array","items":"int"}}}]}`, 0},
	}
	for _, c := range cases {
		got, err := canonicalForm([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("canonical(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
		if c.rabin != 0 {
			if fp := fingerprintOf(got); int64(fp) != c.rabin {
				t.Errorf("fingerprint(%s) = %d; want %d", got, int64(fp), c.rabin)
			}
		}
	}
}

// TestHeaderNames pins the header names: producers and consumers in other
// languages hard-code them.
func TestHeaderNames(t *testing.T) {
	if HeaderSchemaName != "fallback.schema" || HeaderSchemaFingerprint != "fallback.schema.fp" {
		t.Fatal("header names changed: they are part of the public contract")
	}
}

// TestIdentifySchemaOfRegistryText: a schema as a registry returns it
// (compacted, a doc changed) has the codec's name and fingerprint; another
// record's schema does not, and text that is not a schema is an error.
func TestIdentifySchemaOfRegistryText(t *testing.T) {
	codecs, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range codecs.All() {
		var m map[string]any
		if err := json.Unmarshal([]byte(info.Schema()), &m); err != nil {
			t.Fatal(err)
		}
		m["doc"] = "changed by a registry user"
		compact, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		name, fp, err := IdentifySchema(string(compact))
		if err != nil || fp != info.Fingerprint() || name != info.Name() {
			t.Fatalf("%s: identified as %q %q (%v), want %s", info.Name(), name, fp, err, info.Fingerprint())
		}
	}
	if _, fp, _ := IdentifySchema(codecs.Step.Schema()); fp == codecs.SendRequest.Fingerprint() {
		t.Fatal("Step's schema has SendRequest's fingerprint")
	}
	if _, _, err := IdentifySchema(`{"type": "record"`); err == nil {
		t.Fatal("truncated JSON has a fingerprint")
	}
}
