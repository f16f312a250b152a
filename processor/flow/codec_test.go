package flow

import (
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// statesThroughAFlow returns the states of one flow from start to close:
// started, after a DLR, fallen back by timeout, delivered and closed.
func statesThroughAFlow(t testing.TB) []*State {
	start := startInput(twoSteps())
	start.Params = map[string]string{"code": "123456", "name": "Ada"}
	start.Metadata = map[string]string{"tenant": "acme"}
	st, _ := Apply(nil, start, t0)
	out := []*State{st}
	st, _ = Apply(st, dlr(0, "sent", Intermediate), t0.Add(time.Second))
	out = append(out, st)
	st, _ = Apply(st, DeadlineElapsed{Step: 0}, st.DeadlineTime().Add(3*time.Millisecond))
	out = append(out, st)
	st, _ = Apply(st, dlr(1, "DELIVRD", Delivered), t0.Add(40*time.Second))
	out = append(out, st)
	st, _ = Apply(st, dlr(0, "read", Read), t0.Add(50*time.Second)) // a late read: multi-channel
	return append(out, st)
}

func TestBinaryStateRoundTrip(t *testing.T) {
	for i, st := range statesThroughAFlow(t) {
		b, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != binaryFormat {
			t.Fatalf("state %d: not the binary form: %q", i, b)
		}
		back, err := Decode(st.RequestID, b)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if len(back.Params) == 0 {
			back.Params = st.Params // nil and empty are the same state
		}
		want := *st
		want.noted = nil // intermediate statuses are noted, not stored
		if !reflect.DeepEqual(back, &want) {
			t.Fatalf("state %d round trip:\n got %+v\nwant %+v", i, back, &want)
		}
		again, _ := back.Encode()
		if string(again) != string(b) {
			t.Fatalf("state %d: unstable encoding", i)
		}
	}
}

// TestJSONStatesStillDecode: blobs written before the binary form (JSON)
// are read as before.
func TestJSONStatesStillDecode(t *testing.T) {
	for i, st := range statesThroughAFlow(t) {
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(st.RequestID, js)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		a, _ := back.Encode()
		b, _ := st.Encode()
		if string(a) != string(b) {
			t.Fatalf("state %d: JSON and binary disagree:\n%+v\n%+v", i, back, st)
		}
	}
}

// TestBinaryStateSize pins the point of the binary form: a typical OTP flow
// in flight fits in about a third of its JSON.
func TestBinaryStateSize(t *testing.T) {
	st := statesThroughAFlow(t)[0]
	st.Params = map[string]string{"code": "123456"}
	b, _ := st.Encode()
	js, _ := json.Marshal(st)
	if len(b) > 120 || len(b)*2 > len(js) {
		t.Fatalf("binary state %d bytes, JSON %d", len(b), len(js))
	}
}

// TestCorruptBinaryStates: every truncation and every single-byte change of
// a valid blob is refused or decodes to a state that encodes back to itself;
// none panics.
func TestCorruptBinaryStates(t *testing.T) {
	for _, st := range statesThroughAFlow(t) {
		b, _ := st.Encode()
		for n := range len(b) {
			if _, err := Decode(st.RequestID, b[:n]); err == nil {
				t.Fatalf("truncated blob %q accepted", b[:n])
			}
		}
		for i := range b {
			for _, v := range []byte{0, 1, 2, 0x7f, 0x80, 0xff, b[i] ^ 1} {
				c := append([]byte(nil), b...)
				c[i] = v
				s, err := Decode(st.RequestID, c)
				if err != nil {
					continue
				}
				e1, _ := s.Encode()
				s2, err := Decode(st.RequestID, e1)
				if err != nil {
					t.Fatalf("re-encoding of accepted %q does not decode: %v", c, err)
				}
				if e2, _ := s2.Encode(); string(e1) != string(e2) {
					t.Fatalf("unstable encoding of accepted %q", c)
				}
			}
		}
	}
}

// oldBinaryStates are statesThroughAFlow as the binary codec wrote them
// before attempts remembered a delivery that did not meet success_on and
// before states carried the request's metadata: they must still decode, to
// the same state, and encode back to the same bytes.
var oldBinaryStates = []string{
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680000e0d403010f000100000100010104723014",
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680000e0d403010f001f01d00f00010001020464310204723014",
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680002a6fe0a020f001f01d00f0013e6d403010000010001020464310204723014",
	"01010472310100010002030101013c0105010101780180c494c7c3680002020f001f01d00f0013e6d4032b019a9c01012180b599c7c36802020464310404723014",
	"01010472310100010002030101013c0105010101780180c494c7c3680002020f000d01a08d060113e6d4032b019a9c01012180b599c7c36802020464310604723014",
}

func TestOldBinaryStatesStillDecode(t *testing.T) {
	for i, h := range oldBinaryStates {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Decode("r1", b)
		if err != nil {
			t.Fatalf("old state %d: %v", i, err)
		}
		if st.Metadata != nil || st.TraceParent != "" || st.TraceState != "" {
			t.Fatalf("old state %d: metadata %v, trace %q %q", i, st.Metadata, st.TraceParent, st.TraceState)
		}
		// Written again, it loses only the request id (the key's now).
		again, _ := st.Encode()
		if len(again) != len(b)-len("r1")-1 {
			t.Fatalf("old state %d re-encodes to %d bytes from %d:\n%x\n%x", i, len(again), len(b), again, b)
		}
		if back, err := Decode("r1", again); err != nil || !reflect.DeepEqual(back, st) {
			t.Fatalf("old state %d: re-encoding decodes to %+v, %v; want %+v", i, back, err, st)
		}
		if _, err := Decode("r2", b); err == nil {
			t.Fatalf("old state %d of flow r1 accepted as r2's", i)
		}
	}
	// The last one is a tombstone whose steps 0 and 1 both succeeded.
	st, _ := Decode("r1", mustHex(t, oldBinaryStates[4]))
	if !st.Attempts[0].Succeeded || !st.Attempts[1].Succeeded || !st.summary().MultiChannelDelivery {
		t.Fatalf("old tombstone lost its deliveries: %+v", st.Attempts)
	}
}

func mustHex(t *testing.T, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBinaryStateCarriesNewFields: metadata and the per-attempt delivered
// flag survive the binary and JSON forms.
func TestBinaryStateCarriesNewFields(t *testing.T) {
	steps := twoSteps()
	steps[0].SuccessOn = SuccessOnRead
	in := startInput(steps)
	in.Metadata = map[string]string{"tenant": "acme", "campaign": "spring"}
	st, _ := Apply(nil, in, t0)
	st, _ = Apply(st, dlr(0, "delivered", Delivered), t0.Add(time.Second)) // delivered, not read
	if !st.Attempts[0].Delivered || st.Attempts[0].Succeeded {
		t.Fatalf("attempt 0 = %+v, want delivered, not succeeded", st.Attempts[0])
	}
	for _, enc := range []func(*State) ([]byte, error){(*State).Encode, func(s *State) ([]byte, error) { return json.Marshal(s) }} {
		b, err := enc(st)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(st.RequestID, b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Metadata, in.Metadata) || !back.Attempts[0].Delivered || back.Attempts[0].Succeeded {
			t.Fatalf("round trip of %q lost metadata or delivered: %+v", b[:1], back)
		}
	}
}

// TestBinaryStateCarriesTraceContext: the trace context survives the binary
// and JSON forms, the tombstone drops it, a state without one encodes as
// before the field existed, and a trace flag with nothing behind it is refused.
func TestBinaryStateCarriesTraceContext(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := startInput(twoSteps())
	plain, _ := Apply(nil, in, t0)
	in.TraceParent, in.TraceState = tp, "vendor=abc,other=1"
	st, _ := Apply(nil, in, t0)
	for _, enc := range []func(*State) ([]byte, error){(*State).Encode, func(s *State) ([]byte, error) { return json.Marshal(s) }} {
		b, err := enc(st)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(st.RequestID, b)
		if err != nil {
			t.Fatal(err)
		}
		if back.TraceParent != tp || back.TraceState != in.TraceState {
			t.Fatalf("round trip of %q lost the trace context: %+v", b[:1], back)
		}
	}
	withTrace, _ := st.Encode()
	without, _ := plain.Encode()
	if withTrace[1]&flagTrace == 0 || without[1]&flagTrace != 0 {
		t.Fatalf("trace flag: with %08b, without %08b", withTrace[1], without[1])
	}
	// Without the trace fields, the encoding is the pre-trace one.
	st.TraceParent, st.TraceState = "", ""
	if again, _ := st.Encode(); string(again) != string(without) {
		t.Fatalf("a state without trace context encodes differently:\n%x\n%x", again, without)
	}
	// The flag set but both fields empty is not something Encode writes.
	if _, err := Decode(st.RequestID, withTraceEmpty(t, st.RequestID, without)); err == nil {
		t.Fatal("a trace flag with empty fields decoded")
	}
	// The tombstone drops it.
	st.TraceParent = tp
	closed, _ := Apply(st, Cancel{Pos: Position{Source: SourceRequests, Offset: 11}, RequestID: st.RequestID}, t0.Add(time.Second))
	if !closed.Closed || closed.TraceParent != "" || closed.TraceState != "" {
		t.Fatalf("tombstone kept the trace context: %+v", closed)
	}
}

// withTraceEmpty re-encodes b (a state without trace context) with the
// trace flag set and two empty strings after the metadata.
func withTraceEmpty(t *testing.T, requestID string, b []byte) []byte {
	t.Helper()
	st, err := Decode(requestID, b)
	if err != nil {
		t.Fatal(err)
	}
	st.TraceParent = "x" // the encoder writes the flag and two strings
	enc, _ := st.Encode()
	st.TraceParent = ""
	plain, _ := st.Encode()
	// enc is plain with the flag bit and the two strings "x" (2 bytes) and
	// "" (1 byte) inserted where the trace goes; make the "x" a "" too.
	for i := range plain {
		if enc[i] != plain[i] && i != 1 {
			out := append([]byte{}, enc[:i]...)
			out = append(out, 0x01) // "", well-known entry 0
			out = append(out, enc[i+2:]...)
			return out
		}
	}
	t.Fatal("trace context not found in the encoding")
	return nil
}
