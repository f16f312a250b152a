package schemas

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

// previousFlowEvent encodes v with FlowEvent schema version 1 (no
// metadata, deadline_forced, flow_id, flow_version) or 2 (no flow_id,
// flow_version).
func previousFlowEvent(t *testing.T, v FlowEvent, version int) []byte {
	t.Helper()
	native, err := flowEventToNative(v)
	if err != nil {
		t.Fatal(err)
	}
	switch version {
	case 1:
		return encodeWithPrevious(t, "FlowEvent.1.avsc", native, "metadata", "deadline_forced", "flow_id", "flow_version")
	case 2:
		return encodeWithPrevious(t, "FlowEvent.2.avsc", native, "flow_id", "flow_version", "wasted_micros")
	case 3:
		return encodeWithPrevious(t, "FlowEvent.3.avsc", native, "wasted_micros")
	case 4:
		return encodeWithPrevious(t, "FlowEvent.4.avsc", native, "delay_seconds", "delay_basis")
	}
	t.Fatalf("no FlowEvent version %d in previous/", version)
	return nil
}

// TestPreviousFlowEventSchemasStillDecode: metadata and deadline_forced
// (version 2), flow_id and flow_version (version 3) are compatible changes.
// Events written with versions 1 and 2 decode, the fields they lack at
// their defaults (no metadata, not forced, no stored flow), under their
// fingerprint, none, or an unknown one.
func TestPreviousFlowEventSchemasStillDecode(t *testing.T) {
	c := testCodecs(t).FlowEvent
	fp1, fp2 := previousFingerprint(t, "FlowEvent.1.avsc"), previousFingerprint(t, "FlowEvent.2.avsc")
	fp3, fp4 := previousFingerprint(t, "FlowEvent.3.avsc"), previousFingerprint(t, "FlowEvent.4.avsc")
	if fps := c.PreviousFingerprints(); !reflect.DeepEqual(fps, []string{fp4, fp3, fp2, fp1}) || fp1 == fp2 || fp4 == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v, want [%s %s %s %s] (newest first; current %s)", fps, fp4, fp3, fp2, fp1, c.Fingerprint())
	}
	for _, v := range []FlowEvent{fullFlowEvent(), {}, {Type: "FLOW_CLOSED", Summary: &FlowSummary{}},
		{Type: "FLOW_STARTED", FlowID: "otp", FlowVersion: 1, Metadata: map[string]string{"k": "v"}}} {
		want := withoutCost(v)
		want.FlowID, want.FlowVersion = "", 0
		old := previousFlowEvent(t, v, 2)
		checkPrevious(t, c, fp2, old, want, v)
		// The fields were added at the end: the old record is the current
		// one cut short, the current one the old one with bytes to spare.
		// (With a summary, whose records changed in version 4 too, the
		// bytes misread earlier: checkPrevious requires an error.)
		if _, err := c.Decode(old); v.Summary == nil && !errors.Is(err, ErrTruncated) {
			t.Fatalf("Decode of a version 2 event: err = %v, want ErrTruncated", err)
		}
		if _, err := c.DecodeFrom(fp2, mustEncode(t, c, v)); v.Summary == nil && !errors.Is(err, ErrTrailingBytes) {
			t.Fatalf("current event under the version 2 fingerprint: err = %v, want ErrTrailingBytes", err)
		}
		// Without a stored flow or a cost, a current event is the version
		// 2 one, two null unions and an empty map.
		if v.FlowID == "" && v.FlowVersion == 0 && len(v.Metadata) < 2 && v.Summary == nil && v.WastedMicros == nil {
			if cur := mustEncode(t, c, v); !bytes.Equal(cur, concat(old, union(0), union(0), long(0), union(0), union(0))) {
				t.Fatalf("version 3 % x, want version 2 % x and two nulls", cur, old)
			}
		}

		want.Metadata, want.DeadlineForced = nil, false
		old = previousFlowEvent(t, v, 1)
		checkPrevious(t, c, fp1, old, want, v)
		if _, err := c.Decode(old); v.Summary == nil && !errors.Is(err, ErrTruncated) {
			t.Fatalf("Decode of a version 1 event: err = %v, want ErrTruncated", err)
		}
	}
}

// TestFlowEventNewFields: metadata is a map after summary (empty when unset,
// decoding to nil), then deadline_forced, a boolean.
func TestFlowEventNewFields(t *testing.T) {
	c := testCodecs(t).FlowEvent
	zero := mustEncode(t, c, FlowEvent{})
	// metadata empty, deadline_forced false, flow_id and flow_version null.
	if n := len(zero); !bytes.Equal(zero[n-4:], []byte{0, 0, 0, 0}) {
		t.Fatalf("unset metadata, deadline_forced, flow_id, flow_version are not an empty map, false, null, null: % x", zero)
	}
	empty := mustEncode(t, c, FlowEvent{Metadata: map[string]string{}})
	if string(empty) != string(zero) {
		t.Fatalf("empty and nil metadata encode differently")
	}
	v := FlowEvent{Type: "FLOW_STARTED", Metadata: map[string]string{"tenant": "acme", "": "ü"}, DeadlineForced: true}
	got, err := c.Decode(mustEncode(t, c, v))
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("got %+v, %v; want %+v", got, err, v)
	}
	bad := v
	bad.Metadata = map[string]string{"k": "\xff"}
	if _, err := c.Encode(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 metadata: err = %v, want ErrMalformed", err)
	}
}

// TestFlowEventFlowRef: flow_id and flow_version are ["null", "string"] and
// ["null", "long"] unions after deadline_forced, the last fields; "" and 0
// are null (versions start at 1), and a non-null 0 from another writer
// reads as 0.
func TestFlowEventFlowRef(t *testing.T) {
	c := testCodecs(t).FlowEvent
	base := FlowEvent{EventID: "e", RequestID: "r", Type: "FLOW_STARTED"}
	none := mustEncode(t, c, base)
	head := none[:len(none)-5] // flow_id, flow_version, then wasted_micros (empty), delay_seconds and delay_basis (null) last
	cases := []struct {
		id      string
		version int64
		tail    []byte
	}{
		{"", 0, concat(union(0), union(0))},
		{"otp", 1, concat(union(1), str("otp"), union(1), long(1))},
		{"otp", 0, concat(union(1), str("otp"), union(0))},
		{"", 3, concat(union(0), union(1), long(3))},
		{"Zoë ✓", math.MaxInt64, concat(union(1), str("Zoë ✓"), union(1), long(math.MaxInt64))},
		{"f", -1, concat(union(1), str("f"), union(1), long(-1))},
		{"f", math.MinInt64, concat(union(1), str("f"), union(1), long(math.MinInt64))},
	}
	for _, tc := range cases {
		v := base
		v.FlowID, v.FlowVersion = tc.id, tc.version
		b := mustEncode(t, c, v)
		if want := concat(head, tc.tail, long(0), union(0), union(0)); !bytes.Equal(b, want) {
			t.Fatalf("flow %q version %d: % x, want % x", tc.id, tc.version, b, want)
		}
		if got, err := c.Decode(b); err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("flow %q version %d: got %+v, %v", tc.id, tc.version, got, err)
		}
	}
	// Non-null "" and 0 written by another producer read as unset.
	got, err := c.Decode(concat(head, union(1), str(""), union(1), long(0), long(0), union(0), union(0)))
	if err != nil || !reflect.DeepEqual(got, base) {
		t.Fatalf("non-null empty flow_id and zero flow_version: got %+v, %v", got, err)
	}
	bad := base
	bad.FlowID = "ot\xffp"
	if _, err := c.Encode(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 flow_id: err = %v, want ErrMalformed", err)
	}
	if _, err := c.Decode(concat(head, union(0), union(2))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("flow_version branch 2: err = %v, want ErrMalformed", err)
	}
}

// withoutDelay is v as a schema before FlowEvent 5 carries it: no
// delay_seconds, no delay_basis.
func withoutDelay(v FlowEvent) FlowEvent {
	v.DelaySeconds, v.DelayBasis = 0, ""
	if v.Summary != nil {
		s := *v.Summary
		if s.Steps != nil {
			s.Steps = append([]StepSummary(nil), s.Steps...)
			for i := range s.Steps {
				s.Steps[i].DelaySeconds, s.Steps[i].DelayBasis = 0, ""
			}
		}
		v.Summary = &s
	}
	return v
}

// TestPreviousFlowEvent4StillDecodes: delay_seconds and delay_basis
// (FlowEvent 5) are compatible: a version 4 event decodes with them null,
// under its fingerprint or none, and is the current one cut short.
func TestPreviousFlowEvent4StillDecodes(t *testing.T) {
	c := testCodecs(t).FlowEvent
	fp4 := previousFingerprint(t, "FlowEvent.4.avsc")
	for _, v := range []FlowEvent{fullFlowEvent(), {}, {Type: "ATTEMPT_SENT", DelaySeconds: 42, DelayBasis: "fallback: too few samples (3 < 50)"}} {
		old := previousFlowEvent(t, v, 4)
		checkPrevious(t, c, fp4, old, withoutDelay(v), v)
		// (goavro writes maps in random order: compared without them.)
		if cur := mustEncode(t, c, withoutDelay(v)); v.Summary == nil && len(v.Metadata) == 0 && !bytes.Equal(cur, concat(old, union(0), union(0))) {
			t.Fatalf("version 5 % x, want version 4 % x and two nulls", cur, old)
		}
	}
	// Set, the delay is an int union and the basis a string union.
	v := FlowEvent{Type: "ATTEMPT_SENT", DelaySeconds: 42, DelayBasis: "p95"}
	b := mustEncode(t, c, v)
	if !bytes.HasSuffix(b, concat(union(1), long(42), union(1), str("p95"))) {
		t.Fatalf("delay fields % x", b)
	}
	if got, err := c.Decode(b); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("got %+v, %v", got, err)
	}
}
