package flow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
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

// moreStates are states that use what statesThroughAFlow does not: a
// stored flow's reference, a trace context, a status time, no params.
func moreStates(t testing.TB) []*State {
	var out []*State
	in := startInput(twoSteps())
	in.FlowID, in.FlowVersion = "otp", 3
	in.TraceParent, in.TraceState = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x"
	st, _ := Apply(nil, in, t0)
	out = append(out, st)
	st = st.clone()
	st.Attempts[0].LastStatus, st.Attempts[0].LastStatusAt = "sent", t0.Add(2*time.Second).UnixMilli()
	out = append(out, st)
	in = startInput(twoSteps())
	in.Params = nil
	st, _ = Apply(nil, in, t0)
	out = append(out, st)
	st, _ = Apply(st, Cancel{Pos: Position{Source: SourceRequests, Offset: 11}, RequestID: st.RequestID}, t0.Add(time.Second))
	out = append(out, st)
	// Steps checked against a catalog: args, language, provider id and
	// failure codes, on the step not yet sent.
	in = startInput(catalogSteps())
	st, _ = Apply(nil, in, t0)
	return append(out, st)
}

// catalogSteps are two steps as the catalog resolves them: each with its
// template's args (a param, a fixed text), language and provider id, the
// first with failure codes.
func catalogSteps() []StepDef {
	steps := twoSteps()
	steps[0].Args, steps[0].Language, steps[0].FailureCodes = []Arg{{Param: "code"}}, "en", []string{"131026", "FAILED"}
	steps[1].Args = []Arg{{Text: "ACME", Fixed: true}, {Param: "code"}, {Text: "", Fixed: true}}
	steps[1].Language, steps[1].ProviderTemplateID = "en", "1107160000000012345"
	return steps
}

func allStates(t testing.TB) []*State { return append(statesThroughAFlow(t), moreStates(t)...) }

// stored is st as Decode returns it: the noted statuses are not stored,
// and an empty params map comes back nil, an empty applied map empty.
func stored(st *State) *State {
	c := *st
	c.noted = nil
	if len(c.Params) == 0 {
		c.Params = nil
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	if len(c.Steps) == 0 {
		c.Steps = nil
	}
	if len(c.Attempts) == 0 {
		c.Attempts = nil
	}
	if c.Applied == nil {
		c.Applied = map[string]int64{}
	}
	return &c
}

func TestBinaryStateRoundTrip(t *testing.T) {
	for i, st := range allStates(t) {
		b, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != binaryFormat || binaryFormat != 0x02 {
			t.Fatalf("state %d: not the binary form 0x02: %q", i, b)
		}
		back, err := Decode(st.RequestID, b)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if want := stored(st); !reflect.DeepEqual(stored(back), want) {
			t.Fatalf("state %d round trip:\n got %+v\nwant %+v", i, back, want)
		}
		again, _ := back.Encode()
		if string(again) != string(b) {
			t.Fatalf("state %d: unstable encoding", i)
		}
	}
}

// TestBinaryStateRoundTripsAnyState: every field of any state, valid for
// the machine or not, survives the encoding exactly, with each optional
// group of fields present alone at a value other than its default.
func TestBinaryStateRoundTripsAnyState(t *testing.T) {
	base := func() State {
		return State{RequestID: "r", DeliveredStep: NoStep, Applied: map[string]int64{}}
	}
	cases := map[string]func(*State){
		"zero":                  func(s *State) {},
		"flow id only":          func(s *State) { s.FlowID = "f" },
		"flow version only":     func(s *State) { s.FlowVersion = -7 },
		"numeric flow id":       func(s *State) { s.FlowID, s.FlowVersion = "42", 1<<40 },
		"outcome only":          func(s *State) { s.Outcome = OutcomeRead },
		"closed at only":        func(s *State) { s.ClosedAt = -1 },
		"delivered step 0 only": func(s *State) { s.DeliveredStep = 0 },
		"delivered step -2":     func(s *State) { s.DeliveredStep = -2 },
		"closed fields, open":   func(s *State) { s.Outcome, s.ClosedAt, s.DeliveredStep = "odd", 5, 1 },
		"closed flags":          func(s *State) { s.Closed, s.Late = true, true },
		"trace state only":      func(s *State) { s.TraceState = "a=1" },
		"deadline":              func(s *State) { s.StartedAt, s.Deadline = 1<<62, -1<<62 },
		"extreme times": func(s *State) {
			s.RequestedAt, s.StartedAt = -1<<63, 1<<63-1
			s.Attempts = []Attempt{{SentAt: -1 << 63, LastStatusAt: 1<<63 - 1, Succeeded: true}}
		},
		"status at only": func(s *State) { s.Attempts = []Attempt{{LastStatusAt: 1}, {Delivered: true}} },
		"step extras":    func(s *State) { s.Steps = catalogSteps() },
		"failure codes on the second step only": func(s *State) {
			s.Steps = []StepDef{{Channel: "sms"}, {Channel: "rcs", FailureCodes: []string{"X"}}}
		},
		"an empty param name": func(s *State) { s.Steps = []StepDef{{Args: []Arg{{Param: ""}}}} },
		"digits everywhere": func(s *State) {
			s.Recipient = "+1"
			s.Params = map[string]string{"1": "+", "+2": "0", "x": strings.Repeat("9", 64), "y": strings.Repeat("9", 65)}
			s.Metadata = map[string]string{"0": "007"}
			s.Steps = []StepDef{{Channel: "1", From: "+0", Template: "2", TemplateCategory: "3", DelaySeconds: -1 << 31, SuccessOn: "4"}}
			s.Attempts = []Attempt{{Reason: "5", LastStatus: "6"}}
			s.Applied = map[string]int64{"7": 8, "code": 9, "": 1}
		},
	}
	for name, edit := range cases {
		s := base()
		edit(&s)
		b := s.appendBinary(nil)
		back, err := decodeBinary(s.RequestID, b)
		if err != nil {
			t.Fatalf("%s: %v (%x)", name, err, b)
		}
		if !reflect.DeepEqual(back, &s) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", name, back, &s)
		}
		if again := back.appendBinary(nil); !bytes.Equal(again, b) {
			t.Fatalf("%s: unstable encoding", name)
		}
	}
}

// TestJSONStatesStillDecode: blobs written before the binary form (JSON)
// are read as before.
func TestJSONStatesStillDecode(t *testing.T) {
	for i, st := range allStates(t) {
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

// TestTypicalStateFitsSizeClass: the blob of a typical OTP flow waiting on
// its first step (as the benchmark parks them) is at most 73 bytes, so that
// Redis's value (the blob behind a 2-byte header) takes jemalloc's 80-byte
// size class, not the 96-byte one. 0x01 took 88.
func TestTypicalStateFitsSizeClass(t *testing.T) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	now := time.Now()
	req := schemas.SendRequest{RequestID: "fbbpark-123456", Kind: schemas.KindSend, Recipient: "+4915123456789",
		Params: map[string]string{"code": "123456"}, RequestedAt: now,
		Steps: []schemas.Step{{Channel: "whatsapp", From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: 900},
			{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 900}}}
	start, rej := v.ValidateSend(req, nil)
	if rej != nil {
		t.Fatal(rej)
	}
	start.Pos = Position{Source: SourceRequests, Partition: 3, Offset: 123456}
	st, _ := Apply(nil, start, now)
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	v1 := appendBinaryV1(st)
	t.Logf("typical OTP flow: %d bytes (0x01: %d): %x", len(b), len(v1), b)
	if len(b) > 73 {
		t.Fatalf("typical OTP flow takes %d bytes, want at most 73: %x", len(b), b)
	}
	if back, err := Decode(req.RequestID, b); err != nil || !reflect.DeepEqual(back, stored(st)) {
		t.Fatalf("typical flow decodes to %+v, %v", back, err)
	}
}

// TestCorruptBinaryStates: every truncation and every single-byte change of
// a valid blob of either format is refused or decodes to a state that
// encodes back to itself; none panics. A changed 0x02 blob that is accepted
// is that state's encoding: each state has one.
func TestCorruptBinaryStates(t *testing.T) {
	var blobs [][]byte
	for _, st := range allStates(t) {
		b, _ := st.Encode()
		blobs = append(blobs, b, appendBinaryV1(st))
	}
	for _, b := range blobs {
		for n := range len(b) {
			if _, err := Decode("r1", b[:n]); err == nil {
				t.Fatalf("truncated blob %q accepted", b[:n])
			}
		}
		for i := range b {
			for _, v := range []byte{0, 1, 2, 3, 0x0a, 0x0f, 0x7f, 0x80, 0xa0, 0xf0, 0xff, b[i] ^ 1, b[i] ^ 2, b[i] ^ 0x80} {
				c := append([]byte(nil), b...)
				c[i] = v
				s, err := Decode("r1", c)
				if err != nil {
					continue
				}
				e1, _ := s.Encode()
				if c[0] == binaryFormat && !bytes.Equal(e1, c) {
					t.Fatalf("accepted %x re-encodes to %x", c, e1)
				}
				s2, err := Decode("r1", e1)
				if err != nil {
					t.Fatalf("re-encoding of accepted %q does not decode: %v", c, err)
				}
				if !reflect.DeepEqual(s2, s) {
					t.Fatalf("accepted %x decodes to\n%+v\nits re-encoding to\n%+v", c, s, s2)
				}
			}
		}
	}
}

// appendBinaryV1 is the encoder of format 0x01 as it was before 0x02,
// for tests.
func appendBinaryV1(s *State) []byte {
	str := func(b []byte, s string) []byte {
		if i := slices.Index(wellKnown[:wellKnownV1], s); i >= 0 {
			return binary.AppendUvarint(b, uint64(i)<<1|1)
		}
		b = binary.AppendUvarint(b, uint64(len(s))<<1)
		return append(b, s...)
	}
	strMap := func(b []byte, m map[string]string) []byte {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = str(b, k)
			b = str(b, m[k])
		}
		return b
	}
	b := []byte{binaryFormatV1}
	var flags byte
	if s.Closed {
		flags |= flagClosed
	}
	if s.Late {
		flags |= flagLate
	}
	if s.Deadline != 0 {
		flags |= flagDeadline
	}
	if len(s.Metadata) > 0 {
		flags |= flagMetadata
	}
	hasTrace := s.TraceParent != "" || s.TraceState != ""
	if hasTrace {
		flags |= flagTrace
	}
	b = append(b, flags)
	b = str(b, s.RequestID)
	b = str(b, s.Recipient)
	b = strMap(b, s.Params)
	if len(s.Metadata) > 0 {
		b = strMap(b, s.Metadata)
	}
	if hasTrace {
		b = str(b, s.TraceParent)
		b = str(b, s.TraceState)
	}
	b = str(b, s.FlowID)
	b = binary.AppendVarint(b, s.FlowVersion)
	b = binary.AppendUvarint(b, uint64(len(s.Steps)))
	for _, st := range s.Steps {
		b = str(b, st.Channel)
		b = str(b, st.From)
		b = str(b, st.Template)
		b = str(b, st.TemplateCategory)
		b = binary.AppendVarint(b, int64(st.DelaySeconds))
		b = str(b, st.SuccessOn)
	}
	b = binary.AppendVarint(b, s.RequestedAt)
	b = binary.AppendVarint(b, s.StartedAt-s.RequestedAt)
	b = binary.AppendVarint(b, int64(s.Current))
	if s.Deadline != 0 {
		b = binary.AppendVarint(b, s.Deadline-s.StartedAt)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Attempts)))
	for _, a := range s.Attempts {
		b = str(b, a.Reason)
		b = binary.AppendVarint(b, a.SentAt-s.StartedAt)
		b = str(b, a.LastStatus)
		if a.LastStatusAt == 0 {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendVarint(b, a.LastStatusAt-a.SentAt)
		}
		var bits byte
		if a.Succeeded {
			bits |= attemptSucceeded
		}
		if a.Delivered {
			bits |= attemptDelivered
		}
		b = append(b, bits)
	}
	b = str(b, s.Outcome)
	b = binary.AppendVarint(b, s.ClosedAt)
	b = binary.AppendVarint(b, int64(s.DeliveredStep))
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range s.Applied {
			if !yield(k) {
				return
			}
		}
	})
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = str(b, k)
		b = binary.AppendVarint(b, s.Applied[k])
	}
	return b
}

// TestV1StatesDecodeAsTheirV2Encoding: a 0x01 blob and its 0x02
// re-encoding decode to the same state, the state that was encoded; the
// 0x02 one is smaller, and the 0x01 one names its flow.
func TestV1StatesDecodeAsTheirV2Encoding(t *testing.T) {
	for i, st := range allStates(t) {
		if slices.ContainsFunc(st.Steps, StepDef.hasExtras) {
			continue // 0x01 was fixed before steps had extras
		}
		v1 := appendBinaryV1(st)
		old, err := Decode(st.RequestID, v1)
		if err != nil {
			t.Fatalf("state %d: 0x01 blob %x: %v", i, v1, err)
		}
		if want := stored(st); !reflect.DeepEqual(old, want) {
			t.Fatalf("state %d: 0x01 decodes to\n%+v\nwant %+v", i, old, want)
		}
		v2, _ := old.Encode()
		if v2[0] != binaryFormat || len(v2) >= len(v1) {
			t.Fatalf("state %d: 0x02 blob %x of %d bytes from 0x01 of %d", i, v2, len(v2), len(v1))
		}
		back, err := Decode(st.RequestID, v2)
		if err != nil || !reflect.DeepEqual(back, old) {
			t.Fatalf("state %d: 0x02 re-encoding decodes to %+v, %v; want %+v", i, back, err, old)
		}
		if _, err := Decode("other", v1); err == nil {
			t.Fatalf("state %d: 0x01 blob of flow %q accepted as another's", i, st.RequestID)
		}
	}
}

// oldBinaryStates are statesThroughAFlow as the binary codec wrote them
// before attempts remembered a delivery that did not meet success_on and
// before states carried the request's metadata (format 0x01, with the
// request id): they must still decode, to the same state, and encode (as
// 0x02) to newBinaryStates, which decode to the same state.
var oldBinaryStates = []string{
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680000e0d403010f000100000100010104723014",
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680000e0d403010f001f01d00f00010001020464310204723014",
	"01040472311c2b343931353131323334353637380208636f64650c313233343536086e616d6506416461010002031c2b343931353130303030303030300c6f74705f7761073c01050841434d450e6f74705f736d7301780180c494c7c3680002a6fe0a020f001f01d00f0013e6d403010000010001020464310204723014",
	"01010472310100010002030101013c0105010101780180c494c7c3680002020f001f01d00f0013e6d4032b019a9c01012180b599c7c36802020464310404723014",
	"01010472310100010002030101013c0105010101780180c494c7c3680002020f000d01a08d060113e6d4032b019a9c01012180b599c7c36802020464310604723014",
}

// newBinaryStates pin format 0x02: oldBinaryStates as Encode writes them.
var newBinaryStates = []string{
	"02043aa491511234567802331a123456106e616d650c41646102033aa4915100000000186f74705f7761073c01051041434d451c6f74705f736d7301780180c494c7c3680000e0d403010f0001000108723014",
	"02043aa491511234567802331a123456106e616d650c41646102033aa4915100000000186f74705f7761073c01051041434d451c6f74705f736d7301780180c494c7c3680000e0d403010f001f04d00f020864310208723014",
	"02043aa491511234567802331a123456106e616d650c41646102033aa4915100000000186f74705f7761073c01051041434d451c6f74705f736d7301780180c494c7c3680002a6fe0a020f001f04d00f13e6d4030100020864310208723014",
	"0281010002030101013c0105010101780180c494c7c3680002020f001f04d00f13e6d4032b059a9c012180f10402020864310408723014",
	"0281010002030101013c0105010101780180c494c7c3680002020f000d05a08d0613e6d4032b059a9c012180f10402020864310608723014",
}

func TestOldBinaryStatesStillDecode(t *testing.T) {
	for i, h := range oldBinaryStates {
		b := mustHex(t, h)
		st, err := Decode("r1", b)
		if err != nil {
			t.Fatalf("old state %d: %v", i, err)
		}
		if st.Metadata != nil || st.TraceParent != "" || st.TraceState != "" {
			t.Fatalf("old state %d: metadata %v, trace %q %q", i, st.Metadata, st.TraceParent, st.TraceState)
		}
		// Written again, it is 0x02, without the request id (the key's now).
		again, _ := st.Encode()
		if hex.EncodeToString(again) != newBinaryStates[i] {
			t.Fatalf("old state %d re-encodes to\n%x\nwant\n%s", i, again, newBinaryStates[i])
		}
		for _, enc := range [][]byte{again, mustHex(t, newBinaryStates[i])} {
			if back, err := Decode("r1", enc); err != nil || !reflect.DeepEqual(back, st) {
				t.Fatalf("old state %d: re-encoding decodes to %+v, %v; want %+v", i, back, err, st)
			}
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
	// 0x01 knows the first wellKnownV1 entries only: "code" is a literal
	// there (as in the blobs above), and its index is not 0x01's.
	r := blobReader{b: []byte{0x33}, v1: true}
	if got := r.str(); r.err == nil {
		t.Fatalf("0x01 reads entry 25 of wellKnown as %q", got)
	}
	r = blobReader{b: []byte{0x08, 'c', 'o', 'd', 'e'}, v1: true}
	if got := r.str(); r.err != nil || got != "code" {
		t.Fatalf("0x01 reads a literal \"code\" as %q, %v", got, r.err)
	}
	r = blobReader{b: []byte{0x06, 's', 'm', 's'}, v1: true}
	if got := r.str(); r.err == nil {
		t.Fatalf("0x01 reads a literal well-known entry as %q", got)
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

// TestWellKnownIsAppendOnly: entries keep their indexes (they are part of
// both formats); 0x02 knows them all, 0x01 the ones it was written with;
// none is a packable digit string (the order of well-known, packed,
// literal would not matter).
func TestWellKnownIsAppendOnly(t *testing.T) {
	v1 := []string{
		"", "whatsapp", "sms", "authentication", "text", "delivered", "read",
		"initial", "failure", "timeout",
		"DELIVERED", "READ", "FAILED", "EXPIRED", "CANCELLED",
		"sent", "DELIVERED", "READ", "FAILED", "SENT", "ENROUTE", "DELIVRD", "UNDELIV", "failed", "ACCEPTED",
	}
	v2 := append(slices.Clone(v1), "code")
	if !slices.Equal(wellKnown[:wellKnownV1], v1) {
		t.Fatalf("the 0x01 table changed: %q", wellKnown[:wellKnownV1])
	}
	if len(wellKnown) != wellKnownV2 || !slices.Equal(wellKnown, v2) {
		t.Fatalf("the 0x02 table changed: %q (an entry is added with a new format)", wellKnown)
	}
	for _, s := range wellKnown {
		if packable(s) {
			t.Fatalf("well-known %q is packable", s)
		}
	}
}

// TestWellKnownDuplicates: an entry listed twice ("DELIVERED" is both an
// outcome and a status) encodes as its last index, as 0x01 did; every
// index reads.
func TestWellKnownDuplicates(t *testing.T) {
	for i, s := range wellKnown[:wellKnownV2] {
		last := i
		for j := i + 1; j < wellKnownV2; j++ {
			if wellKnown[j] == s {
				last = j
			}
		}
		if slices.Index(wellKnown, s) == i && wellKnownIndex[s] != last {
			t.Fatalf("%q encodes as %d, want %d", s, wellKnownIndex[s], last)
		}
		// An entry reads back only at the index Encode writes: the
		// earlier index of a duplicate is refused (one encoding per state).
		r := blobReader{b: binary.AppendUvarint(nil, uint64(i)<<1|1)}
		got := r.str()
		if canonical := i == last; canonical != (r.err == nil) || canonical && got != s {
			t.Fatalf("entry %d (%q, written as %d) reads %q, %v", i, s, last, got, r.err)
		}
	}
}

// TestPackedDigits: strings of ASCII digits with an optional leading '+'
// (1 to 64 characters) are packed two to a byte; everything else is
// well-known or literal. Each round-trips and is its only encoding.
func TestPackedDigits(t *testing.T) {
	const (
		known = iota
		packed
		literal
	)
	d64, d65 := strings.Repeat("0123456789", 7)[:64], strings.Repeat("9876543210", 7)[:65]
	cases := []struct {
		s    string
		kind int
		enc  string // hex, when pinned
	}{
		{"", known, "01"},
		{"+", packed, "06af"},
		{"+0", packed, "0aa0"},
		{"0", packed, "060f"},
		{"00", packed, "0a00"},
		{"+49", packed, "0ea49f"},
		{"123456", packed, "1a123456"},
		{"+4915123456789", packed, "3aa4915123456789"},
		{"+15550000001", packed, "32a15550000001"},
		{d64, packed, ""},
		{"+" + d64[1:], packed, ""},
		{d65, literal, ""},
		{"+" + d64, literal, ""},
		{"12a", literal, "0c313261"},
		{"1+2", literal, "0c312b32"},
		{"++1", literal, ""},
		{"+-1", literal, ""},
		{" 1", literal, ""},
		{"1 ", literal, ""},
		{"١٢٣", literal, ""}, // Arabic-Indic digits: not ASCII
		{"１２", literal, ""},  // fullwidth digits
		{"code", known, "33"},
		{"sms", known, "05"},
		{"ACME", literal, "1041434d45"},
		{"\xff", literal, ""},
	}
	for _, c := range cases {
		b := appendStr(nil, c.s)
		if c.enc != "" && hex.EncodeToString(b) != c.enc {
			t.Errorf("%q encodes as %x, want %s", c.s, b, c.enc)
		}
		n, _ := binary.Uvarint(b)
		kind := literal
		if n&1 == 1 {
			kind = known
		} else if n&3 == 2 {
			kind = packed
		}
		if kind != c.kind {
			t.Errorf("%q written as kind %d (tag %d), want %d", c.s, kind, n, c.kind)
		}
		if kind == packed && len(b) != len(binary.AppendUvarint(nil, n))+(len(c.s)+1)/2 {
			t.Errorf("%q packed into %d bytes", c.s, len(b))
		}
		r := blobReader{b: b}
		got := r.str()
		if r.err != nil || got != c.s || len(r.b) != 0 {
			t.Errorf("%q reads back as %q, %v (%d left)", c.s, got, r.err, len(r.b))
		}
		// Written as a literal instead, it is refused.
		if kind != literal {
			lit := append(binary.AppendUvarint(nil, uint64(len(c.s))<<2), c.s...)
			r := blobReader{b: lit}
			if got := r.str(); r.err == nil {
				t.Errorf("%q: non-canonical %x accepted as %q", c.s, lit, got)
			}
		}
	}
}

// TestNonCanonicalStringsRefused: a 0x02 string that Encode would have
// written otherwise, or that is not a string at all, is refused.
func TestNonCanonicalStringsRefused(t *testing.T) {
	for _, c := range []struct{ name, hex string }{
		{"literal empty", "00"},
		{"literal well-known", "0c736d73"},
		{"literal digits", "0c313233"},
		{"literal plus", "042b"},
		{"literal plus digits", "0c2b3132"},
		{"packed, no characters", "02"},
		{"packed, 65 characters", "8602" + strings.Repeat("11", 33)},
		{"packed, odd without pad", "0610"},
		{"packed, odd, pad 0", "0e1230"},
		{"packed, even with pad", "0a1f"},
		{"pad in the middle", "0e1f2f"},
		{"pad first", "06ff"},
		{"plus not first", "0a1a"},
		{"plus twice", "0aaa"},
		{"plus as pad", "061a"},
		{"nibble b", "0a1b"},
		{"nibble c", "0ac1"},
		{"nibble d", "06df"},
		{"nibble e", "0a0e"},
		{"truncated packed", "1212"},
		{"truncated literal", "0c31"},
		{"well-known beyond the table", "35"},
		{"non-minimal tag", "8500"},
		{"non-minimal packed tag", "8600" + "1f"},
		{"overlong tag", "ffffffffffffffffffff01"},
	} {
		r := blobReader{b: mustHex(t, c.hex)}
		if got := r.str(); r.err == nil {
			t.Errorf("%s: %s accepted as %q", c.name, c.hex, got)
		}
	}
	// The canonical neighbours read.
	for _, h := range []string{"01", "061f", "0e123f", "0aa1", "0a12", "33", "0c616263"} {
		r := blobReader{b: mustHex(t, h)}
		if got := r.str(); r.err != nil || len(r.b) != 0 {
			t.Errorf("canonical %s refused: %q, %v", h, got, r.err)
		}
	}
}

// splice returns without, its flags or'ed with flag, and ins inserted
// where with (without plus a group of fields behind flag) has them.
func splice(t *testing.T, with, without []byte, flag byte, ins []byte) []byte {
	t.Helper()
	i := 2
	for i < len(without) && with[i] == without[i] {
		i++
	}
	n := len(with) - len(without)
	if n <= 0 || !bytes.Equal(with[i+n:], without[i:]) || with[1] != without[1]|flag {
		t.Fatalf("%x is not %x with fields inserted", with, without)
	}
	out := append([]byte{without[0], without[1] | flag}, without[2:i]...)
	out = append(out, ins...)
	return append(out, without[i:]...)
}

// TestNonCanonicalBlobsRefused: a 0x02 blob that is not the one encoding
// of its state is refused: a flag with only defaults behind it, the old
// key-id flag, a literal where Encode packs, a non-minimal varint.
func TestNonCanonicalBlobsRefused(t *testing.T) {
	st := statesThroughAFlow(t)[0]
	plain, _ := st.Encode()
	if _, err := Decode("r1", plain); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(*State)) []byte {
		c := st.clone()
		f(c)
		b, _ := c.Encode()
		return b
	}
	withRef := edit(func(s *State) { s.FlowID, s.FlowVersion = "otp", 2 })
	withClose := edit(func(s *State) { s.Outcome = "x" })
	defaultClose := binary.AppendVarint([]byte{0x01}, -st.StartedAt) // "", closed at 0
	defaultClose = binary.AppendVarint(defaultClose, NoStep)
	withStatus := edit(func(s *State) { s.Attempts[0].LastStatusAt = 1 })
	withExtras := edit(func(s *State) { s.Steps[1].FailureCodes = []string{"X"} })
	// Per step: no args, language "", provider id "", no failure codes.
	defaultExtras := bytes.Repeat([]byte{0x00, 0x01, 0x01, 0x00}, len(st.Steps))
	withArg := edit(func(s *State) { s.Steps[1].Args = []Arg{{Param: "code"}} })

	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"flow ref flag, default fields", splice(t, withRef, plain, flagFlowRef, []byte{0x01, 0x00})},
		{"close flag, default fields", splice(t, withClose, plain, flagCloseFields, defaultClose)},
		{"status-at bit, zero time", bytes.Replace(withStatus, binary.AppendVarint([]byte{attemptStatusAt}, 1-st.Attempts[0].SentAt),
			binary.AppendVarint([]byte{attemptStatusAt}, -st.Attempts[0].SentAt), 1)},
		{"step extras flag, default fields", splice(t, withExtras, plain, flagStepExtras, defaultExtras)},
		{"unknown arg kind", bytes.Replace(withArg, []byte{0x01, argParam, 0x33}, []byte{0x01, 0x02, 0x33}, 1)},
		{"unknown attempt bit", bytes.Replace(plain, []byte{0x0f, 0x00, 0x01, 0x00}, []byte{0x0f, 0x00, 0x01, 0x08}, 1)},
		{"recipient literal", bytes.Replace(plain, appendStr(nil, st.Recipient),
			append([]byte{byte(len(st.Recipient) << 2)}, st.Recipient...), 1)},
		{"param key literal", bytes.Replace(plain, []byte{0x02, 0x33}, []byte{0x02, 0x10, 'c', 'o', 'd', 'e'}, 1)},
		{"non-minimal steps count", bytes.Replace(plain, []byte{0x02, 0x03}, []byte{0x82, 0x00, 0x03}, 1)},
		{"0x01 string tags", append([]byte{binaryFormat}, appendBinaryV1(st)[1:]...)},
		{"request id in the blob", append([]byte{binaryFormat, plain[1], 0x08, 'r', '1'}, plain[2:]...)},
	} {
		if bytes.Equal(c.b, plain) {
			t.Fatalf("%s: the edit did not apply", c.name)
		}
		if s, err := Decode("r1", c.b); err == nil {
			t.Errorf("%s: %x accepted as %+v", c.name, c.b, s)
		}
	}
	// The same splices with real values are the encodings of those states.
	if got := splice(t, withRef, plain, flagFlowRef, []byte{0x0c, 'o', 't', 'p', 0x04}); !bytes.Equal(got, withRef) {
		t.Fatalf("flow ref splice %x, encoding %x", got, withRef)
	}
	realClose := binary.AppendVarint([]byte{0x04, 'x'}, -st.StartedAt)
	if got := splice(t, withClose, plain, flagCloseFields, binary.AppendVarint(realClose, NoStep)); !bytes.Equal(got, withClose) {
		t.Fatalf("close splice %x, encoding %x", got, withClose)
	}
}

// FuzzDecodeStateBinary feeds arbitrary bytes to Decode. Properties: no
// panic; an accepted state encodes (as 0x02) to a blob that decodes to the
// same state; an accepted 0x02 blob is exactly that encoding.
func FuzzDecodeStateBinary(f *testing.F) {
	for _, st := range allStates(f) {
		b, _ := st.Encode()
		f.Add(b)
		f.Add(appendBinaryV1(st))
	}
	for _, h := range oldBinaryStates {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Add(heldStateBlob(f)) // format 0x03
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := Decode("r1", in)
		if err != nil {
			return
		}
		enc, err := st.Encode()
		if err != nil {
			t.Fatalf("decoded state %+v does not encode: %v", st, err)
		}
		if (in[0] == binaryFormat || in[0] == binaryFormatHeld) && !bytes.Equal(enc, in) {
			t.Fatalf("accepted %x re-encodes to %x", in, enc)
		}
		back, err := Decode("r1", enc)
		if err != nil {
			t.Fatalf("our own encoding %x does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(back, stored(st)) {
			t.Fatalf("%x decodes to\n%+v\nits encoding %x to\n%+v", in, st, enc, back)
		}
	})
}

// A stored state has at most MaxStoredSteps steps: a larger blob is refused
// before any input runs on it.
func TestDecodeRefusesTooManySteps(t *testing.T) {
	st := statesThroughAFlow(t)[0]
	for _, n := range []int{MaxStoredSteps, MaxStoredSteps + 1} {
		big := *st
		big.Steps = make([]StepDef, n)
		for i := range big.Steps {
			big.Steps[i] = StepDef{Channel: "sms", DelaySeconds: 5}
		}
		b, _ := big.Encode()
		_, err := Decode(big.RequestID, b)
		if (err == nil) != (n <= MaxStoredSteps) {
			t.Fatalf("%d steps: err %v", n, err)
		}
	}
}

// heldStateBlob is a flow holding a late DLR and a late cancel (format 0x03).
func heldStateBlob(tb testing.TB) []byte {
	active, _ := Apply(nil, Start{Pos: Position{SourceRequests, 0, 1}, RequestID: "r1", Recipient: "+4915112345678",
		Steps: []StepDef{{Channel: "whatsapp", DelaySeconds: 30, SuccessOn: "delivered"}, {Channel: "sms", DelaySeconds: 60, SuccessOn: "delivered"}}},
		time.UnixMilli(1_800_000_000_000))
	due := active.DeadlineTime()
	late := Report{Pos: Position{SourceDLR, 2, 40}, RequestID: "r1", AttemptID: "r1/0", Channel: "whatsapp", Step: 0,
		Status: "failed", Kind: Failed, ErrorCode: "131026", ReportedAt: due.Add(time.Second), PublishedAt: due.Add(2 * time.Second)}
	held, _ := Apply(active, late, due.Add(time.Minute))
	held, _ = Apply(held, Cancel{Pos: Position{SourceRequests, 1, 9}, RequestID: "r1", PublishedAt: due.Add(3 * time.Second)}, due.Add(time.Minute))
	b, err := held.Encode()
	if err != nil || len(held.Held) != 2 {
		tb.Fatalf("held state: %d held, %v", len(held.Held), err)
	}
	return b
}
