package flow

import (
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
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if len(back.Params) == 0 {
			back.Params = st.Params // nil and empty are the same state
		}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("state %d round trip:\n got %+v\nwant %+v", i, back, st)
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
		back, err := Decode(js)
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
			if _, err := Decode(b[:n]); err == nil {
				t.Fatalf("truncated blob %q accepted", b[:n])
			}
		}
		for i := range b {
			for _, v := range []byte{0, 1, 2, 0x7f, 0x80, 0xff, b[i] ^ 1} {
				c := append([]byte(nil), b...)
				c[i] = v
				s, err := Decode(c)
				if err != nil {
					continue
				}
				e1, _ := s.Encode()
				s2, err := Decode(e1)
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
