package processor

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// Fuzz targets of what the processor reads back from Redis: outbox entries
// and flow state blobs. Both are written by the processor itself, so bad
// bytes mean a bug, a version skew or a hand-edited key; either way they
// must not take the processor down. Seeds: the f.Add calls plus the files
// under testdata/fuzz/<FuzzName>/. Run one with e.g.
//
//	go test -run '^$' -fuzz '^FuzzUnmarshalRecord$' -fuzztime 20s -parallel 1 ./processor/

// FuzzUnmarshalRecord: no panic; an accepted entry is the canonical
// encoding of the record it decodes to: marshal(unmarshal(x)) == x.
func FuzzUnmarshalRecord(f *testing.F) {
	for _, r := range []*kgo.Record{
		{Topic: "fallback.sends.sms", Key: []byte("r1/1"), Value: []byte{0, 1, 2, ':', 0xff},
			Headers: []kgo.RecordHeader{{Key: "fallback.schema", Value: []byte("fallbackd.v1.ChannelSend")}, {Key: "empty"}}},
		{},
		{Topic: "t", Headers: make([]kgo.RecordHeader, 64)},
		{Topic: "fallback.events", Key: []byte("r"), Value: bytes.Repeat([]byte{0x80}, 200)},
	} {
		f.Add(marshalRecord(r))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := unmarshalRecord(in)
		if err != nil {
			return
		}
		if out := marshalRecord(r); !bytes.Equal(out, in) {
			t.Fatalf("marshal(unmarshal(%x)) = %x", in, out)
		}
	})
}

// FuzzDecodeState feeds arbitrary bytes to the processor's reading of a
// flow state blob (decodeSnapshot, flow.Decode). Properties: no panic; an
// accepted state encodes, and its encoding decodes to the same encoding;
// and every kind of input the consumer and the sweeper would apply to it
// runs through the state machine without a panic.
func FuzzDecodeState(f *testing.F) {
	steps := []flow.StepDef{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	st, _ := flow.Apply(nil, flow.Start{Pos: flow.Position{Source: flow.SourceRequests, Offset: 3}, RequestID: "r1",
		Recipient: "+4915112345678", Params: map[string]string{"code": "1"}, Steps: steps, RequestedAt: now}, now)
	active, _ := st.Encode()
	f.Add(active)
	closed, _ := flow.Apply(st, flow.Cancel{Pos: flow.Position{Source: flow.SourceRequests, Offset: 4}, RequestID: "r1"}, now)
	tomb, _ := closed.Encode()
	f.Add(tomb)
	// With metadata, and a WhatsApp delivery that did not meet success_on "read".
	steps[0].SuccessOn = flow.SuccessOnRead
	md, _ := flow.Apply(nil, flow.Start{Pos: flow.Position{Source: flow.SourceRequests, Offset: 3}, RequestID: "r1",
		Recipient: "+4915112345678", Metadata: map[string]string{"tenant": "acme"}, Steps: steps, RequestedAt: now}, now)
	md, _ = flow.Apply(md, flow.Report{Pos: flow.Position{Source: flow.SourceDLR, Offset: 1}, RequestID: "r1",
		AttemptID: "r1/0", Step: 0, Status: "delivered", Kind: flow.Delivered}, now)
	withMetadata, _ := md.Encode()
	f.Add(withMetadata)
	// With a trace context (traceparent and tracestate).
	tr, _ := flow.Apply(nil, flow.Start{Pos: flow.Position{Source: flow.SourceRequests, Offset: 3}, RequestID: "r1",
		Recipient: "+4915112345678", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "vendor=x", Steps: steps, RequestedAt: now}, now)
	withTrace, _ := tr.Encode()
	f.Add(withTrace)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":"r1","k":1,"dl":1,"a":[],"s":[]}`))
	f.Add([]byte(`{"id":"r1","k":0,"dl":1,"s":[{"c":"sms"}],"a":[{"r":"initial"},{"r":"failure"}],"ds":3}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := decodeSnapshot(statestore.Snapshot{RequestID: "r1", Exists: true, Version: 1, State: in})
		if err != nil {
			return
		}
		if st == nil {
			t.Fatalf("decodeSnapshot(%q) = nil, nil for an existing flow", in)
		}
		enc, err := st.Encode()
		if err != nil {
			t.Fatalf("decoded state %+v does not encode: %v", st, err)
		}
		again, err := flow.Decode("r1", enc)
		if err != nil {
			t.Fatalf("our own encoding %s does not decode: %v", enc, err)
		}
		if enc2, _ := again.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable encoding:\n%s\n%s", enc, enc2)
		}
		at := time.UnixMilli(st.Deadline).Add(time.Hour)
		channels := flow.DefaultChannels()
		inputs := []flow.Input{
			flow.DeadlineElapsed{Step: st.Current},
			flow.Cancel{Pos: flow.Position{Source: flow.SourceRequests, Offset: 1 << 40}, RequestID: st.RequestID},
			flow.Start{Pos: flow.Position{Source: flow.SourceRequests, Offset: 1<<40 + 1}, RequestID: st.RequestID,
				Recipient: "+4915112345678", Steps: steps, RequestedAt: now},
		}
		for step := -1; step <= len(st.Steps)+1; step++ {
			for _, status := range []string{"DELIVERED", "READ", "FAILED", "SENT"} {
				ch := "sms"
				if step >= 0 && step < len(st.Steps) {
					ch = st.Steps[step].Channel
				}
				kind, _ := channels.Normalise(ch, status)
				inputs = append(inputs, flow.Report{Pos: flow.Position{Source: flow.SourceDLR, Offset: 1 << 40}, RequestID: st.RequestID,
					AttemptID: flow.AttemptID(st.RequestID, step), Step: step, Status: status, Kind: kind})
			}
		}
		for _, in := range inputs {
			next, _ := flow.Apply(st, in, at)
			if next != nil {
				if _, err := next.Encode(); err != nil {
					t.Fatalf("state after %T does not encode: %v", in, err)
				}
			}
		}
	})
}

// TestFuzzCorpusExpectations pins what each hand-made corpus file is for
// (true: accepted), so that a seed cannot silently stop exercising its path.
func TestFuzzCorpusExpectations(t *testing.T) {
	read := map[string]func([]byte) error{
		"FuzzUnmarshalRecord": func(b []byte) error { _, err := unmarshalRecord(b); return err },
		"FuzzDecodeState": func(b []byte) error {
			_, err := decodeSnapshot(statestore.Snapshot{RequestID: "r", Exists: true, State: b})
			return err
		},
	}
	want := map[string]bool{
		"FuzzUnmarshalRecord/header_count_65":         false,
		"FuzzUnmarshalRecord/length_2_pow_63":         false,
		"FuzzUnmarshalRecord/non_minimal_varint":      false,
		"FuzzUnmarshalRecord/trailing_byte":           false,
		"FuzzUnmarshalRecord/send_with_trace_headers": true,
		"FuzzDecodeState/closed_with_deadline":        false,
		"FuzzDecodeState/current_beyond_steps":        false,
		"FuzzDecodeState/delivered_step_too_large":    false,
		"FuzzDecodeState/json_null":                   false,
		"FuzzDecodeState/negative_current":            false,
		"FuzzDecodeState/valid_active_two_steps":      true,
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d corpus files, %d expectations", len(files), len(want))
	}
	for _, file := range files {
		key := filepath.Base(filepath.Dir(file)) + "/" + filepath.Base(file)
		accept, ok := want[key]
		if !ok {
			t.Errorf("%s: no expectation", key)
			continue
		}
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: unexpected corpus format", key)
		}
		b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if err := read[filepath.Base(filepath.Dir(file))]([]byte(b)); (err == nil) != accept {
			t.Errorf("%s: err = %v, want accepted=%v", key, err, accept)
		}
	}
}
