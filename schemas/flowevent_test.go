package schemas

import (
	"errors"
	"reflect"
	"testing"
)

// previousFlowEvent encodes v with the first FlowEvent schema, which had no
// metadata and no deadline_forced.
func previousFlowEvent(t *testing.T, v FlowEvent) []byte {
	t.Helper()
	native, err := flowEventToNative(v)
	if err != nil {
		t.Fatal(err)
	}
	return encodeWithPrevious(t, "FlowEvent.1.avsc", native, "metadata", "deadline_forced")
}

// TestPreviousFlowEventSchemaStillDecodes: adding metadata and
// deadline_forced is a compatible change. Events written with the first
// schema decode (no metadata, not forced) under its fingerprint or none.
func TestPreviousFlowEventSchemaStillDecodes(t *testing.T) {
	c := testCodecs(t).FlowEvent
	fps := c.PreviousFingerprints()
	if len(fps) != 1 || fps[0] == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v (current %s)", fps, c.Fingerprint())
	}
	for _, want := range []FlowEvent{fullFlowEvent(), {}, {Type: "FLOW_CLOSED", Summary: &FlowSummary{}}} {
		want.Metadata, want.DeadlineForced = nil, false
		old := previousFlowEvent(t, want)
		for _, fp := range []string{fps[0], "", "0123456789abcdef"} {
			got, err := c.DecodeFrom(fp, old)
			if err != nil {
				t.Fatalf("fingerprint %q: %v", fp, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fingerprint %q: got %+v, want %+v", fp, got, want)
			}
		}
		if _, err := c.Decode(old); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Decode of an old event: err = %v, want ErrTruncated", err)
		}
	}
	// A current event under the old fingerprint has bytes the old schema lacks.
	if _, err := c.DecodeFrom(fps[0], mustEncode(t, c, fullFlowEvent())); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("new event under the old fingerprint: err = %v, want ErrTrailingBytes", err)
	}
}

// TestFlowEventNewFields: metadata is a map after summary (empty when unset,
// decoding to nil), then deadline_forced, a boolean.
func TestFlowEventNewFields(t *testing.T) {
	c := testCodecs(t).FlowEvent
	zero := mustEncode(t, c, FlowEvent{})
	if n := len(zero); zero[n-2] != 0 || zero[n-1] != 0 {
		t.Fatalf("unset metadata and deadline_forced are not an empty map and false: % x", zero)
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
