package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fast decoders (fastdecode.go) must return what the goavro path
// (validate, NativeFromBinary, fromNative) returns, and refuse what it
// refuses. The reference is Codec.decodeGoavro; Codec.Decode takes the fast
// path.

var errClasses = []error{ErrTooLarge, ErrTruncated, ErrTrailingBytes, ErrMalformed}

// checkDecode compares the fast path with the goavro path on b: both
// succeed with reflect.DeepEqual values, or both fail with the same error
// class. When the reference's error comes from the size check or validate,
// the fast error's text is the same; otherwise (goavro's duplicate map key)
// it names the map. It returns the fast path's value and error.
func checkDecode[T any](t *testing.T, c *Codec[T], b []byte) (T, error) {
	t.Helper()
	if c.fastDecode == nil {
		t.Fatalf("%s has no fast decoder", c.Name())
	}
	want, wantErr := c.decodeGoavro(b)
	// Decode a copy, then overwrite it: the value must not change (no
	// aliasing of the input).
	in := bytes.Clone(b)
	got, gotErr := c.Decode(in)
	for i := range in {
		in[i] = 0xAA
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("goavro err = %v, fast err = %v\ninput % x", wantErr, gotErr, b)
	}
	if wantErr != nil {
		classes := 0
		for _, class := range errClasses {
			if errors.Is(wantErr, class) != errors.Is(gotErr, class) {
				t.Fatalf("error classes differ:\ngoavro %v\n  fast %v\ninput % x", wantErr, gotErr, b)
			}
			if errors.Is(gotErr, class) {
				classes++
			}
		}
		if classes != 1 {
			t.Fatalf("fast error %q wraps %d error classes, want 1", gotErr, classes)
		}
		prefix := "schemas: decode " + c.Name() + ": "
		if !strings.HasPrefix(gotErr.Error(), prefix) {
			t.Fatalf("fast error %q does not name the record", gotErr)
		}
		if len(b) > c.MaxBytes() || validate(c.shape, b) != nil {
			if gotErr.Error() != wantErr.Error() {
				t.Fatalf("error texts differ:\ngoavro %v\n  fast %v", wantErr, gotErr)
			}
		} else if msg := gotErr.Error(); !strings.Contains(msg, "duplicate map key") ||
			!(strings.HasPrefix(msg, prefix+"params: [") || strings.HasPrefix(msg, prefix+"metadata: [") ||
				strings.HasPrefix(msg, prefix+"steps: [")) {
			t.Fatalf("validate passes, goavro refuses (%v), fast error %q is not a named duplicate key", wantErr, gotErr)
		}
		return got, gotErr
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("values differ:\n  fast %#v\ngoavro %#v\ninput % x", got, want, b)
	}
	return got, nil
}

// Raw encodings of the decoded records, one field at a time, so that a case
// can replace one field's bytes.

var t0ms = t0.UnixMilli()

type rawStep struct {
	channel, from, template, category, delay, successOn, variables, fixedText, failureCodes, delayAuto []byte
}

func (s rawStep) bytes() []byte {
	return concat(s.channel, s.from, s.template, s.category, s.delay, s.successOn, s.variables, s.fixedText, s.failureCodes, s.delayAuto)
}

// goodStep is fullStep().
func goodStep() rawStep {
	return rawStep{str("whatsapp"), str("+14155550100"), str("otp_wa"), concat(union(1), str("authentication")), long(30), str("read"),
		strMapBytes("1", "code", "2", "name"), strMapBytes("3", "ACME ✓"), strListBytes("131026", "131047", ""),
		concat(union(1), long(95), long(5), long(10), long(120))}
}

// bareStep is a step with no variables, fixed_text, failure_codes or
// delay_auto.
func bareStep() rawStep {
	s := goodStep()
	s.variables, s.fixedText, s.failureCodes, s.delayAuto = long(0), long(0), long(0), union(0)
	return s
}

type rawSend struct {
	requestID, kind, recipient, flowID, steps, params, metadata, requestedAt, expiresAt []byte
}

func (r rawSend) bytes() []byte {
	return concat(r.requestID, r.kind, r.recipient, r.flowID, r.steps, r.params, r.metadata, r.requestedAt, r.expiresAt)
}

// goodSend: two steps (the first with variables, fixed_text and
// failure_codes, the second with none), one param, two metadata entries,
// both timestamps.
func goodSend() rawSend {
	step2 := bareStep()
	step2.channel, step2.category = str("sms"), union(0)
	return rawSend{
		requestID:   str("req-42"),
		kind:        str("send"),
		recipient:   str("+33612345678"),
		flowID:      union(0),
		steps:       concat(union(1), long(2), goodStep().bytes(), step2.bytes(), long(0)),
		params:      concat(long(1), str("code"), str("123456"), long(0)),
		metadata:    concat(long(2), str("tenant"), str("acme"), str("ü"), str("日本"), long(0)),
		requestedAt: long(t0ms),
		expiresAt:   concat(union(1), long(t0ms+300_000)),
	}
}

// withSteps is goodSend with steps replaced by one array block of the given
// steps.
func withSteps(steps ...rawStep) rawSend {
	r := goodSend()
	var items []byte
	for _, s := range steps {
		items = append(items, s.bytes()...)
	}
	r.steps = concat(union(1), long(int64(len(steps))), items, long(0))
	return r
}

type rawDLR struct {
	attemptID, providerID, channel, status, errorCode, reportedAt, priceMicros, currency []byte
}

func (r rawDLR) bytes() []byte {
	return concat(r.attemptID, r.providerID, r.channel, r.status, r.errorCode, r.reportedAt, r.priceMicros, r.currency)
}

func goodDLR() rawDLR {
	return rawDLR{concat(union(1), str("req-42/0")), union(0), str("whatsapp"), str("delivered"), union(0), long(t0ms),
		union(0), union(0)}
}

// padded is v as a zig-zag varint of exactly n bytes (non-minimal when n is
// more than needed), as validate accepts and goavro reads.
func padded(v int64, n int) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	out := make([]byte, n)
	for i := range n {
		out[i] = byte(u&0x7f) | 0x80
		u >>= 7
	}
	out[n-1] &= 0x7f
	return out
}

// strMapBytes encodes entries (key, value, key, value...) as one block.
func strMapBytes(kv ...string) []byte {
	if len(kv) == 0 {
		return long(0)
	}
	out := long(int64(len(kv) / 2))
	for _, s := range kv {
		out = append(out, str(s)...)
	}
	return append(out, 0)
}

// strListBytes encodes items as an array of strings in one block.
func strListBytes(items ...string) []byte {
	if len(items) == 0 {
		return long(0)
	}
	out := long(int64(len(items)))
	for _, s := range items {
		out = append(out, str(s)...)
	}
	return append(out, 0)
}

// sizedTo returns build(n) for the n that makes it exactly size bytes long.
func sizedTo(t *testing.T, size int, build func(n int) []byte) []byte {
	t.Helper()
	n := size - len(build(0))
	for len(build(n)) > size {
		n--
	}
	if b := build(n); len(b) == size {
		return b
	}
	t.Fatalf("no padding gives %d bytes", size)
	return nil
}

type decodeCase struct {
	name    string
	in      []byte
	wantErr error  // nil: must decode
	field   string // the error names it
	check   func(t *testing.T, v any)
}

// TestFastDecodeTable: hand-made edge cases for both records, each checked
// against goavro and against the expected outcome.
func TestFastDecodeTable(t *testing.T) {
	cs := testCodecs(t)
	bad := str("ok\xffok")
	// SendRequest cases: goodSend with one field's bytes replaced.
	send := func(edit func(*rawSend)) []byte {
		r := goodSend()
		edit(&r)
		return r.bytes()
	}
	stepEdit := func(i int, edit func(*rawStep)) []byte {
		s := [2]rawStep{goodStep(), goodStep()}
		edit(&s[i])
		return withSteps(s[0], s[1]).bytes()
	}
	sendCases := []decodeCase{
		{name: "good", in: goodSend().bytes(), check: func(t *testing.T, v any) {
			got := v.(SendRequest)
			want := SendRequest{RequestID: "req-42", Kind: "send", Recipient: "+33612345678",
				Steps:  []Step{fullStep(), {Channel: "sms", From: "+14155550100", Template: "otp_wa", DelaySeconds: 30, SuccessOn: "read"}},
				Params: map[string]string{"code": "123456"}, Metadata: map[string]string{"tenant": "acme", "ü": "日本"},
				RequestedAt: t0, ExpiresAt: ptr(t0.Add(5 * time.Minute))}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v\nwant %#v", got, want)
			}
		}},
		{name: "every optional field null, maps empty", in: send(func(r *rawSend) {
			r.steps, r.params, r.metadata, r.expiresAt = union(0), long(0), long(0), union(0)
		}), check: func(t *testing.T, v any) {
			got := v.(SendRequest)
			if got.FlowID != "" || got.Steps != nil || got.Params != nil || got.Metadata != nil || got.ExpiresAt != nil {
				t.Fatalf("got %#v, want null fields as zero values and empty maps nil", got)
			}
		}},
		{name: "every optional field set", in: send(func(r *rawSend) { r.flowID = concat(union(1), str("otp-default")) }),
			check: func(t *testing.T, v any) {
				if got := v.(SendRequest); got.FlowID != "otp-default" || got.Steps == nil || got.ExpiresAt == nil {
					t.Fatalf("got %#v", got)
				}
			}},
		{name: "optional strings set to empty", in: send(func(r *rawSend) { r.flowID = concat(union(1), str("")) })},
		{name: "steps empty array is non-nil", in: send(func(r *rawSend) { r.steps = concat(union(1), long(0)) }),
			check: func(t *testing.T, v any) {
				if got := v.(SendRequest).Steps; got == nil || len(got) != 0 {
					t.Fatalf("steps = %#v, want empty non-nil", got)
				}
			}},
		{name: "steps in two blocks", in: send(func(r *rawSend) {
			r.steps = concat(union(1), long(1), goodStep().bytes(), long(1), goodStep().bytes(), long(0))
		})},
		{name: "steps negative block count", in: send(func(r *rawSend) {
			s := goodStep().bytes()
			r.steps = concat(union(1), long(-1), long(int64(len(s))), s, long(0))
		})},
		{name: "steps negative block count, block size ignored", in: send(func(r *rawSend) {
			r.steps = concat(union(1), long(-1), long(0), goodStep().bytes(), long(0))
		})},
		{name: "nine steps", in: withSteps(goodStep(), goodStep(), goodStep(), goodStep(), goodStep(), goodStep(), goodStep(), goodStep(), goodStep()).bytes()},
		{name: "template_category null", in: stepEdit(1, func(s *rawStep) { s.category = union(0) })},
		{name: "template_category empty", in: stepEdit(0, func(s *rawStep) { s.category = concat(union(1), str("")) })},
		{name: "delay min int32", in: stepEdit(0, func(s *rawStep) { s.delay = long(math.MinInt32) })},
		{name: "delay max int32", in: stepEdit(1, func(s *rawStep) { s.delay = long(math.MaxInt32) })},
		{name: "delay 5-byte zero", in: stepEdit(0, func(s *rawStep) { s.delay = padded(0, 5) })},
		{name: "delay 5-byte -1", in: stepEdit(0, func(s *rawStep) { s.delay = padded(-1, 5) })},
		{name: "delay overflows int32", in: stepEdit(1, func(s *rawStep) { s.delay = long(math.MaxInt32 + 1) }),
			wantErr: ErrMalformed, field: "steps: [1]: delay_seconds"},
		{name: "delay 6-byte varint", in: stepEdit(0, func(s *rawStep) { s.delay = padded(0, 6) }),
			wantErr: ErrMalformed, field: "steps: [0]: delay_seconds"},
		{name: "params nil", in: send(func(r *rawSend) { r.params = long(0) })},
		{name: "params two blocks", in: send(func(r *rawSend) {
			r.params = concat(long(1), str("a"), str("1"), long(-1), long(4), str("b"), str("2"), long(0))
		}), check: func(t *testing.T, v any) {
			if got := v.(SendRequest).Params; !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
				t.Fatalf("params = %#v", got)
			}
		}},
		{name: "params empty key and value", in: send(func(r *rawSend) { r.params = strMapBytes("", "") })},
		{name: "params twenty entries", in: send(func(r *rawSend) {
			var kv []string
			for i := range 20 {
				kv = append(kv, fmt.Sprint("k", i), strings.Repeat("v", i))
			}
			r.params = strMapBytes(kv...)
		})},
		{name: "metadata one entry", in: send(func(r *rawSend) { r.metadata = strMapBytes("k", "v") })},
		{name: "non-minimal varints everywhere", in: send(func(r *rawSend) {
			r.requestID = concat(padded(3, 10), []byte("abc"))
			r.flowID = concat(padded(1, 3), padded(1, 2), []byte("f"))
			r.steps = concat(padded(1, 4), padded(1, 10), goodStep().bytes(), padded(0, 10))
			r.params = concat(padded(-1, 2), padded(6, 3), str("k"), str("v"), padded(0, 2))
			r.requestedAt = padded(t0ms, 10)
			r.expiresAt = concat(padded(1, 10), padded(t0ms, 10))
		})},
		{name: "requested_at first instant", in: send(func(r *rawSend) { r.requestedAt = long(minTimestampMillis) }),
			check: func(t *testing.T, v any) {
				if got := v.(SendRequest).RequestedAt; !reflect.DeepEqual(got, time.Time{}) {
					t.Fatalf("requested_at = %#v, want the zero time", got)
				}
			}},
		{name: "requested_at last instant", in: send(func(r *rawSend) { r.requestedAt = long(maxTimestampMillis) })},
		{name: "requested_at before 1970", in: send(func(r *rawSend) { r.requestedAt = long(-1) })},
		{name: "requested_at before year 1", in: send(func(r *rawSend) { r.requestedAt = long(minTimestampMillis - 1) }),
			wantErr: ErrMalformed, field: "requested_at"},
		{name: "requested_at after 9999", in: send(func(r *rawSend) { r.requestedAt = long(maxTimestampMillis + 1) }),
			wantErr: ErrMalformed, field: "requested_at"},
		{name: "requested_at MinInt64", in: send(func(r *rawSend) { r.requestedAt = long(math.MinInt64) }),
			wantErr: ErrMalformed, field: "requested_at"},
		{name: "expires_at last instant", in: send(func(r *rawSend) { r.expiresAt = concat(union(1), long(maxTimestampMillis)) })},
		{name: "expires_at after 9999", in: send(func(r *rawSend) { r.expiresAt = concat(union(1), long(maxTimestampMillis+1)) }),
			wantErr: ErrMalformed, field: "expires_at"},
		{name: "expires_at before year 1", in: send(func(r *rawSend) { r.expiresAt = concat(union(1), long(minTimestampMillis-1)) }),
			wantErr: ErrMalformed, field: "expires_at"},
		{name: "long varint 11 bytes", in: send(func(r *rawSend) { r.requestedAt = bytes.Repeat([]byte{0x80}, 11) }),
			wantErr: ErrMalformed, field: "requested_at"},
		{name: "long varint overflows on byte 10", in: send(func(r *rawSend) { r.requestedAt = append(bytes.Repeat([]byte{0x80}, 9), 0x02) }),
			wantErr: ErrMalformed, field: "requested_at"},
		{name: "negative string length", in: send(func(r *rawSend) { r.kind = long(-1) }), wantErr: ErrMalformed, field: "kind"},
		{name: "string length beyond the input", in: send(func(r *rawSend) { r.recipient = long(1 << 20) }), wantErr: ErrTruncated, field: "recipient"},
		{name: "params count beyond the input", in: send(func(r *rawSend) { r.params = long(1 << 40) }), wantErr: ErrTruncated, field: "params"},
		{name: "params count MinInt64", in: send(func(r *rawSend) { r.params = long(math.MinInt64) }), wantErr: ErrMalformed, field: "params"},
		{name: "params negative size", in: send(func(r *rawSend) { r.params = concat(long(-1), long(-4), str("k"), str("v"), long(0)) }),
			wantErr: ErrMalformed, field: "params"},
		{name: "steps count MaxInt32", in: send(func(r *rawSend) { r.steps = concat(union(1), long(math.MaxInt32)) }),
			wantErr: ErrTruncated, field: "steps"},
		{name: "duplicate params key", in: send(func(r *rawSend) { r.params = strMapBytes("k", "a", "k", "b") }),
			wantErr: ErrMalformed, field: "params: [1] key"},
		{name: "duplicate metadata key across blocks", in: send(func(r *rawSend) {
			r.metadata = concat(long(1), str("k"), str("a"), long(1), str("k"), str("a"), long(0))
		}), wantErr: ErrMalformed, field: "metadata: [1] key"},
		// goavro sees a duplicate key only after validate passed the whole
		// input: any later error wins over it.
		{name: "duplicate key, then truncated", in: func() []byte {
			b := send(func(r *rawSend) { r.params = strMapBytes("k", "a", "k", "b") })
			return b[:len(b)-1]
		}(), wantErr: ErrTruncated, field: "expires_at"},
		{name: "duplicate key, then trailing byte", in: append(send(func(r *rawSend) { r.params = strMapBytes("k", "a", "k", "b") }), 0),
			wantErr: ErrTrailingBytes},
		{name: "duplicate key, then bad timestamp", in: send(func(r *rawSend) {
			r.params = strMapBytes("k", "a", "k", "b")
			r.requestedAt = long(math.MaxInt64)
		}), wantErr: ErrMalformed, field: "requested_at"},
		{name: "duplicate key, then invalid UTF-8", in: send(func(r *rawSend) {
			r.params = strMapBytes("k", "a", "k", "b")
			r.metadata = strMapBytes("x", "\xff")
		}), wantErr: ErrMalformed, field: "metadata: [0]"},
		{name: "same key in params and metadata", in: send(func(r *rawSend) {
			r.params, r.metadata = strMapBytes("k", "a"), strMapBytes("k", "b")
		})},

		// Step's variables, fixed_text (maps) and failure_codes (array of
		// strings), added in version 3.
		{name: "step maps and failure_codes empty", in: withSteps(bareStep(), bareStep()).bytes(), check: func(t *testing.T, v any) {
			for _, st := range v.(SendRequest).Steps {
				if st.Variables != nil || st.FixedText != nil || st.FailureCodes != nil {
					t.Fatalf("step %#v, want empty maps and failure_codes nil", st)
				}
			}
		}},
		{name: "step maps in two blocks, sized", in: stepEdit(0, func(s *rawStep) {
			s.variables = concat(long(1), str("1"), str("code"), long(-1), long(7), str("2"), str("name"), long(0))
			s.fixedText = concat(long(-1), long(0), str("3"), str("x"), long(1), str("4"), str("y"), long(0))
		}), check: func(t *testing.T, v any) {
			st := v.(SendRequest).Steps[0]
			if !reflect.DeepEqual(st.Variables, map[string]string{"1": "code", "2": "name"}) ||
				!reflect.DeepEqual(st.FixedText, map[string]string{"3": "x", "4": "y"}) {
				t.Fatalf("variables %#v, fixed_text %#v", st.Variables, st.FixedText)
			}
		}},
		{name: "failure_codes in two blocks, sized, order kept", in: stepEdit(1, func(s *rawStep) {
			s.failureCodes = concat(long(2), str("b"), str("a"), long(-1), long(2), str("c"), long(0))
		}), check: func(t *testing.T, v any) {
			if got := v.(SendRequest).Steps[1].FailureCodes; !reflect.DeepEqual(got, []string{"b", "a", "c"}) {
				t.Fatalf("failure_codes = %#v", got)
			}
		}},
		{name: "failure_codes repeated items kept", in: stepEdit(0, func(s *rawStep) { s.failureCodes = strListBytes("x", "x", "") }),
			check: func(t *testing.T, v any) {
				if got := v.(SendRequest).Steps[0].FailureCodes; !reflect.DeepEqual(got, []string{"x", "x", ""}) {
					t.Fatalf("failure_codes = %#v", got)
				}
			}},
		{name: "failure_codes twenty items", in: stepEdit(1, func(s *rawStep) {
			var items []string
			for i := range 20 {
				items = append(items, strings.Repeat("c", i))
			}
			s.failureCodes = strListBytes(items...)
		})},
		{name: "non-minimal varints in step fields", in: stepEdit(0, func(s *rawStep) {
			s.variables = concat(padded(1, 10), padded(1, 3), []byte("k"), padded(0, 2), padded(0, 4))
			s.fixedText = concat(padded(-1, 5), padded(4, 2), str("k"), str("v"), padded(0, 10))
			s.failureCodes = concat(padded(1, 2), padded(1, 10), []byte("x"), padded(0, 3))
		})},
		{name: "same key in variables and fixed_text", in: stepEdit(0, func(s *rawStep) {
			s.variables, s.fixedText = strMapBytes("1", "code"), strMapBytes("1", "x")
		})},
		{name: "same variables key in two steps and in params", in: send(func(r *rawSend) {
			s := goodStep()
			s.variables = strMapBytes("code", "code")
			*r = withSteps(s, s)
		})},
		{name: "duplicate variables key", in: stepEdit(1, func(s *rawStep) { s.variables = strMapBytes("1", "a", "1", "b") }),
			wantErr: ErrMalformed, field: "steps: [1]: variables: [1] key"},
		{name: "duplicate fixed_text key across blocks", in: stepEdit(0, func(s *rawStep) {
			s.fixedText = concat(long(1), str("k"), str("a"), long(1), str("k"), str("a"), long(0))
		}), wantErr: ErrMalformed, field: "steps: [0]: fixed_text: [1] key"},
		{name: "duplicate keys in a step and in params: the first wins", in: func() []byte {
			s := goodStep()
			s.fixedText = strMapBytes("k", "a", "x", "", "k", "b")
			r := withSteps(goodStep(), s)
			r.params = strMapBytes("p", "a", "p", "b")
			return r.bytes()
		}(), wantErr: ErrMalformed, field: "steps: [1]: fixed_text: [2] key"},
		{name: "duplicate variables key, then truncated", in: func() []byte {
			b := stepEdit(0, func(s *rawStep) { s.variables = strMapBytes("1", "a", "1", "b") })
			return b[:len(b)-1]
		}(), wantErr: ErrTruncated, field: "expires_at"},
		{name: "duplicate variables key, then invalid UTF-8 in failure_codes", in: stepEdit(0, func(s *rawStep) {
			s.variables, s.failureCodes = strMapBytes("1", "a", "1", "b"), strListBytes("ok", "\xff")
		}), wantErr: ErrMalformed, field: "steps: [0]: failure_codes: [1]"},
		{name: "variables count MaxInt32", in: stepEdit(1, func(s *rawStep) { s.variables = long(math.MaxInt32) }),
			wantErr: ErrTruncated, field: "steps: [1]: variables"},
		{name: "failure_codes count beyond the input", in: stepEdit(0, func(s *rawStep) { s.failureCodes = long(1 << 40) }),
			wantErr: ErrTruncated, field: "steps: [0]: failure_codes"},
		{name: "failure_codes count MinInt64", in: stepEdit(0, func(s *rawStep) { s.failureCodes = long(math.MinInt64) }),
			wantErr: ErrMalformed, field: "steps: [0]: failure_codes"},
		{name: "failure_codes negative size", in: stepEdit(1, func(s *rawStep) { s.failureCodes = concat(long(-1), long(-4), str("x"), long(0)) }),
			wantErr: ErrMalformed, field: "steps: [1]: failure_codes"},
		{name: "failure_codes item length beyond the input", in: stepEdit(0, func(s *rawStep) { s.failureCodes = concat(long(1), long(1<<20)) }),
			wantErr: ErrTruncated, field: "steps: [0]: failure_codes: [0]"},
		{name: "failure_codes item negative length", in: stepEdit(0, func(s *rawStep) { s.failureCodes = concat(long(2), str("a"), long(-1)) }),
			wantErr: ErrMalformed, field: "steps: [0]: failure_codes: [1]"},
		{name: "delay_auto branch 2", in: stepEdit(0, func(s *rawStep) { s.delayAuto = concat(union(2), long(95)) }),
			wantErr: ErrMalformed, field: "steps: [0]: delay_auto"},
		{name: "delay_auto cut inside", in: send(func(r *rawSend) {
			s := goodStep()
			s.delayAuto = concat(union(1), long(95), long(5))
			r.steps, r.params, r.metadata, r.requestedAt, r.expiresAt = concat(union(1), long(1), s.bytes()), nil, nil, nil, nil
		}), wantErr: ErrTruncated, field: "steps: [0]: delay_auto: min_seconds"},
		{name: "delay_auto set and null", in: withSteps(goodStep(), bareStep()).bytes(), check: func(t *testing.T, v any) {
			steps := v.(SendRequest).Steps
			if a := steps[0].DelayAuto; a == nil || *a != (DelayAuto{Percentile: 95, MarginSeconds: 5, MinSeconds: 10, MaxSeconds: 120}) {
				t.Fatalf("step 0 delay_auto %+v", a)
			}
			if steps[1].DelayAuto != nil {
				t.Fatalf("step 1 delay_auto %+v, want nil", steps[1].DelayAuto)
			}
		}},
		{name: "a version 2 step (no new fields)", in: send(func(r *rawSend) {
			s := goodStep()
			s.variables, s.fixedText, s.failureCodes, s.delayAuto = nil, nil, nil, nil
			*r = withSteps(s)
		}), wantErr: ErrMalformed, field: "steps: [0]"}, // read on into params and metadata
		{name: "one trailing byte", in: append(goodSend().bytes(), 0), wantErr: ErrTrailingBytes},
		{name: "trailing record", in: append(goodSend().bytes(), goodSend().bytes()...), wantErr: ErrTrailingBytes},
		{name: "empty input", in: nil, wantErr: ErrTruncated, field: "request_id"},
		{name: "a DeliveryReport", in: goodDLR().bytes(), wantErr: ErrTruncated},
	}
	// Invalid UTF-8 in every string field, map key and map value.
	for _, f := range []struct {
		field string
		edit  func(*rawSend)
	}{
		{"request_id", func(r *rawSend) { r.requestID = bad }},
		{"kind", func(r *rawSend) { r.kind = str("\xc3") }},
		{"recipient", func(r *rawSend) { r.recipient = str("+33\xed\xa0\x80") }},
		{"flow_id", func(r *rawSend) { r.flowID = concat(union(1), bad) }},
		{"steps: [0]: channel", func(r *rawSend) { s := goodStep(); s.channel = bad; *r = withSteps(s) }},
		{"steps: [1]: from", func(r *rawSend) { s := goodStep(); s.from = bad; *r = withSteps(goodStep(), s) }},
		{"steps: [1]: template", func(r *rawSend) { s := goodStep(); s.template = bad; *r = withSteps(goodStep(), s) }},
		{"steps: [0]: template_category", func(r *rawSend) { s := goodStep(); s.category = concat(union(1), bad); *r = withSteps(s) }},
		{"steps: [2]: success_on", func(r *rawSend) { s := goodStep(); s.successOn = bad; *r = withSteps(goodStep(), goodStep(), s) }},
		{"params: [0] key", func(r *rawSend) { r.params = strMapBytes("\xff", "v") }},
		{"params: [0]", func(r *rawSend) { r.params = strMapBytes("k", "\xff") }},
		{"metadata: [1] key", func(r *rawSend) { r.metadata = strMapBytes("a", "1", "b\xc0\xaf", "2") }},
		{"metadata: [1]", func(r *rawSend) { r.metadata = strMapBytes("a", "1", "b", "2\xff") }},
		{"steps: [0]: variables: [0] key", func(r *rawSend) { s := goodStep(); s.variables = strMapBytes("\xff", "code"); *r = withSteps(s) }},
		{"steps: [1]: variables: [1]", func(r *rawSend) {
			s := goodStep()
			s.variables = strMapBytes("1", "a", "2", "\xc3")
			*r = withSteps(goodStep(), s)
		}},
		{"steps: [0]: fixed_text: [0] key", func(r *rawSend) { s := goodStep(); s.fixedText = strMapBytes("\xed\xa0\x80", "x"); *r = withSteps(s) }},
		{"steps: [1]: fixed_text: [0]", func(r *rawSend) {
			s := goodStep()
			s.fixedText = strMapBytes("3", "ok\xffok")
			*r = withSteps(goodStep(), s)
		}},
		{"steps: [0]: failure_codes: [0]", func(r *rawSend) { s := goodStep(); s.failureCodes = strListBytes("\xff"); *r = withSteps(s) }},
		{"steps: [1]: failure_codes: [2]", func(r *rawSend) {
			s := goodStep()
			s.failureCodes = strListBytes("a", "b", "\xed\xa0\x80")
			*r = withSteps(goodStep(), s)
		}},
		{"steps: [0]: failure_codes: [1]", func(r *rawSend) {
			s := goodStep()
			s.failureCodes = concat(long(1), str("a"), long(1), str("\xc3"), long(0)) // item numbered across blocks
			*r = withSteps(s)
		}},
	} {
		sendCases = append(sendCases, decodeCase{name: "invalid UTF-8 " + f.field, in: send(f.edit), wantErr: ErrMalformed, field: f.field})
	}
	// Bad union branches in every union.
	for _, f := range []struct {
		field string
		edit  func(*rawSend, []byte)
	}{
		{"flow_id", func(r *rawSend, b []byte) { r.flowID = b }},
		{"steps", func(r *rawSend, b []byte) { r.steps = b }},
		{"steps: [0]: template_category", func(r *rawSend, b []byte) { s := goodStep(); s.category = b; *r = withSteps(s) }},
		{"expires_at", func(r *rawSend, b []byte) { r.expiresAt = b }},
	} {
		for _, branch := range []int64{2, -1, math.MaxInt64, math.MinInt64} {
			sendCases = append(sendCases, decodeCase{name: fmt.Sprintf("%s branch %d", f.field, branch),
				in: send(func(r *rawSend) { f.edit(r, long(branch)) }), wantErr: ErrMalformed, field: f.field})
		}
		sendCases = append(sendCases, decodeCase{name: f.field + " null in 3 bytes",
			in: send(func(r *rawSend) { f.edit(r, padded(0, 3)) })})
	}
	// The size limit: exactly MaxRecordBytes decodes; one byte more is too
	// large, whatever else is wrong with it.
	big := func(n int) []byte { return send(func(r *rawSend) { r.recipient = str(strings.Repeat("x", n)) }) }
	exact := sizedTo(t, MaxRecordBytes, big)
	badAtEnd := bytes.Clone(exact)
	badAtEnd[len(badAtEnd)-len(goodSend().expiresAt)-len(goodSend().requestedAt)-len(goodSend().metadata)-len(goodSend().params)-
		len(goodSend().steps)-len(goodSend().flowID)-1] = 0xff
	sendCases = append(sendCases,
		decodeCase{name: "exactly MaxRecordBytes", in: exact},
		decodeCase{name: "exactly MaxRecordBytes, invalid UTF-8", in: badAtEnd, wantErr: ErrMalformed, field: "recipient"},
		decodeCase{name: "MaxRecordBytes plus one (trailing byte)", in: append(bytes.Clone(exact), 0), wantErr: ErrTooLarge},
		decodeCase{name: "MaxRecordBytes plus one (longer string)", in: sizedTo(t, MaxRecordBytes+1, big), wantErr: ErrTooLarge},
		decodeCase{name: "MaxRecordBytes plus one, invalid UTF-8", in: append(badAtEnd, 0), wantErr: ErrTooLarge},
		decodeCase{name: "MaxRecordBytes plus one, truncated", in: append(long(1<<30), make([]byte, MaxRecordBytes)...), wantErr: ErrTooLarge},
	)
	for _, c := range sendCases {
		t.Run("SendRequest/"+c.name, func(t *testing.T) {
			v, err := checkDecode(t, cs.SendRequest, c.in)
			checkWant(t, err, c.wantErr, c.field)
			if c.check != nil {
				c.check(t, v)
			}
		})
	}

	dlr := func(edit func(*rawDLR)) []byte {
		r := goodDLR()
		edit(&r)
		return r.bytes()
	}
	dlrCases := []decodeCase{
		{name: "good", in: goodDLR().bytes(), check: func(t *testing.T, v any) {
			want := DeliveryReport{AttemptID: "req-42/0", Channel: "whatsapp", Status: "delivered", ReportedAt: t0}
			if got := v.(DeliveryReport); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		}},
		{name: "every optional field set", in: dlr(func(r *rawDLR) {
			r.providerID, r.errorCode = concat(union(1), str("wamid.X")), concat(union(1), str("131026"))
		})},
		{name: "every optional field null, strings empty", in: concat(union(0), union(0), str(""), str(""), union(0), long(0), union(0), union(0))},
		{name: "price set", in: dlr(func(r *rawDLR) {
			r.priceMicros, r.currency = concat(union(1), long(7500)), concat(union(1), str("EUR"))
		}), check: func(t *testing.T, v any) {
			if got := v.(DeliveryReport); got.PriceMicros == nil || *got.PriceMicros != 7500 || got.Currency != "EUR" {
				t.Fatalf("price %v %q, want 7500 EUR", got.PriceMicros, got.Currency)
			}
		}},
		{name: "price zero is a price", in: dlr(func(r *rawDLR) {
			r.priceMicros, r.currency = concat(union(1), long(0)), concat(union(1), str("USD"))
		}), check: func(t *testing.T, v any) {
			if got := v.(DeliveryReport); got.PriceMicros == nil || *got.PriceMicros != 0 {
				t.Fatalf("price %v, want a non-nil 0", got.PriceMicros)
			}
		}},
		{name: "price MaxInt64 and MinInt64", in: dlr(func(r *rawDLR) {
			r.priceMicros = concat(union(1), long(math.MaxInt64))
		})},
		{name: "price_micros truncated", in: dlr(func(r *rawDLR) { r.priceMicros, r.currency = concat(union(1), []byte{0xff}), nil }),
			wantErr: ErrTruncated, field: "price_micros"},
		{name: "price_micros over-long varint", in: dlr(func(r *rawDLR) { r.priceMicros = concat(union(1), bytes.Repeat([]byte{0xff}, 11)) }),
			wantErr: ErrMalformed, field: "price_micros"},
		{name: "version 1 record (no price fields)", in: dlr(func(r *rawDLR) { r.priceMicros, r.currency = nil, nil }),
			wantErr: ErrTruncated, field: "price_micros"},
		{name: "optional strings set to empty", in: dlr(func(r *rawDLR) {
			r.attemptID, r.providerID, r.errorCode = concat(union(1), str("")), concat(union(1), str("")), concat(union(1), str(""))
		})},
		{name: "non-minimal varints", in: dlr(func(r *rawDLR) {
			r.attemptID = concat(padded(1, 10), padded(2, 10), []byte("ab"))
			r.reportedAt = padded(-1, 10)
		})},
		{name: "reported_at first instant", in: dlr(func(r *rawDLR) { r.reportedAt = long(minTimestampMillis) })},
		{name: "reported_at last instant", in: dlr(func(r *rawDLR) { r.reportedAt = long(maxTimestampMillis) })},
		{name: "reported_at after 9999", in: dlr(func(r *rawDLR) { r.reportedAt = long(maxTimestampMillis + 1) }),
			wantErr: ErrMalformed, field: "reported_at"},
		{name: "reported_at MaxInt64", in: dlr(func(r *rawDLR) { r.reportedAt = long(math.MaxInt64) }),
			wantErr: ErrMalformed, field: "reported_at"},
		{name: "error_code branch truncated", in: dlr(func(r *rawDLR) { r.errorCode, r.reportedAt, r.priceMicros, r.currency = []byte{0x82}, nil, nil, nil }),
			wantErr: ErrTruncated, field: "error_code"},
		{name: "reported_at truncated varint", in: dlr(func(r *rawDLR) { r.reportedAt, r.priceMicros, r.currency = []byte{0xff, 0xff}, nil, nil }),
			wantErr: ErrTruncated, field: "reported_at"},
		{name: "one trailing byte", in: append(goodDLR().bytes(), 0), wantErr: ErrTrailingBytes},
		{name: "status length beyond the input", in: dlr(func(r *rawDLR) { r.status = long(100) }), wantErr: ErrTruncated, field: "status"},
		{name: "negative channel length", in: dlr(func(r *rawDLR) { r.channel = long(-2) }), wantErr: ErrMalformed, field: "channel"},
		{name: "a SendRequest", in: goodSend().bytes(), wantErr: ErrMalformed},
		{name: "empty input", in: nil, wantErr: ErrTruncated, field: "attempt_id"},
		{name: "MaxRecordBytes plus one", in: make([]byte, MaxRecordBytes+1), wantErr: ErrTooLarge},
	}
	for _, f := range []struct {
		field string
		edit  func(*rawDLR)
	}{
		{"attempt_id", func(r *rawDLR) { r.attemptID = concat(union(1), bad) }},
		{"provider_message_id", func(r *rawDLR) { r.providerID = concat(union(1), str("\xc3")) }},
		{"channel", func(r *rawDLR) { r.channel = bad }},
		{"status", func(r *rawDLR) { r.status = str("DELIV\xed\xa0\x80RD") }},
		{"error_code", func(r *rawDLR) { r.errorCode = concat(union(1), bad) }},
		{"currency", func(r *rawDLR) { r.currency = concat(union(1), bad) }},
	} {
		dlrCases = append(dlrCases, decodeCase{name: "invalid UTF-8 " + f.field, in: dlr(f.edit), wantErr: ErrMalformed, field: f.field})
	}
	for _, f := range []struct {
		field string
		edit  func(*rawDLR, []byte)
	}{
		{"attempt_id", func(r *rawDLR, b []byte) { r.attemptID = b }},
		{"provider_message_id", func(r *rawDLR, b []byte) { r.providerID = b }},
		{"error_code", func(r *rawDLR, b []byte) { r.errorCode = b }},
		{"price_micros", func(r *rawDLR, b []byte) { r.priceMicros = b }},
		{"currency", func(r *rawDLR, b []byte) { r.currency = b }},
	} {
		for _, branch := range []int64{2, 3, -1, math.MinInt64} {
			dlrCases = append(dlrCases, decodeCase{name: fmt.Sprintf("%s branch %d", f.field, branch),
				in: dlr(func(r *rawDLR) { f.edit(r, long(branch)) }), wantErr: ErrMalformed, field: f.field})
		}
	}
	bigDLR := func(n int) []byte { return dlr(func(r *rawDLR) { r.status = str(strings.Repeat("s", n)) }) }
	dlrCases = append(dlrCases,
		decodeCase{name: "exactly MaxRecordBytes", in: sizedTo(t, MaxRecordBytes, bigDLR)},
		decodeCase{name: "MaxRecordBytes plus one", in: sizedTo(t, MaxRecordBytes+1, bigDLR), wantErr: ErrTooLarge},
	)
	for _, c := range dlrCases {
		t.Run("DeliveryReport/"+c.name, func(t *testing.T) {
			v, err := checkDecode(t, cs.DeliveryReport, c.in)
			checkWant(t, err, c.wantErr, c.field)
			if c.check != nil {
				c.check(t, v)
			}
		})
	}
}

// fastDecodeSamples are encodings of valid records: the shared samples,
// goodSend and goodDLR, and records with edge values.
func fastDecodeSamples(t testing.TB) [][]byte {
	cs := testCodecs(t)
	var out [][]byte
	add := func(b []byte, err error) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, v := range []SendRequest{fullSendRequest(), typicalSendRequest(), {}, {Steps: []Step{}}, {Kind: KindCancel, RequestID: "r"},
		{RequestID: "r", Kind: KindSend, RequestedAt: firstInstant, ExpiresAt: ptr(lastInstant),
			Steps: []Step{{DelaySeconds: math.MinInt32}, {DelaySeconds: math.MaxInt32, TemplateCategory: "x"}}},
		{Steps: []Step{{FailureCodes: []string{"", ""}}, {Variables: map[string]string{"": ""}}, {FixedText: map[string]string{"k": "v", "l": ""}}}}} {
		add(cs.SendRequest.Encode(v))
	}
	for _, v := range []DeliveryReport{fullDeliveryReport(), {}, {ProviderMessageID: "p", ReportedAt: lastInstant},
		{AttemptID: "a", ErrorCode: "e", ReportedAt: firstInstant}} {
		add(cs.DeliveryReport.Encode(v))
	}
	out = append(out, goodSend().bytes(), goodDLR().bytes())
	return out
}

// TestFastDecodeTruncatedEverywhere: every proper prefix of a valid record
// is refused as truncated by both paths; one more byte as trailing.
func TestFastDecodeTruncatedEverywhere(t *testing.T) {
	cs := testCodecs(t)
	for _, b := range fastDecodeSamples(t) {
		check := func(in []byte) error {
			_, err := checkDecode(t, cs.SendRequest, in)
			return err
		}
		if _, err := cs.SendRequest.decodeGoavro(b); err != nil {
			check = func(in []byte) error {
				_, err := checkDecode(t, cs.DeliveryReport, in)
				return err
			}
		}
		if err := check(b); err != nil {
			t.Fatalf("sample does not decode: %v", err)
		}
		for i := range len(b) {
			if err := check(b[:i]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%d of %d bytes: err = %v, want ErrTruncated", i, len(b), err)
			}
		}
		for _, extra := range [][]byte{{0}, {0xff}, b} {
			if err := check(concat(b, extra)); !errors.Is(err, ErrTrailingBytes) {
				t.Fatalf("%d trailing bytes: err = %v, want ErrTrailingBytes", len(extra), err)
			}
		}
	}
}

// TestFastDecodeRoundTrip: realistic records, encoded then read by the fast
// path, come back equal, as through goavro.
func TestFastDecodeRoundTrip(t *testing.T) {
	cs := testCodecs(t)
	zone := time.FixedZone("X", 5*3600+30*60)
	sends := []SendRequest{
		fullSendRequest(),
		typicalSendRequest(),
		{RequestID: "req-7", Kind: KindSend, Recipient: "+4915112345678", FlowID: "otp-default",
			Params: map[string]string{"code": "0042"}, RequestedAt: t0},
		{RequestID: "req-7", Kind: KindCancel, RequestedAt: t0.Add(time.Minute)},
		{RequestID: "r", Steps: []Step{}, Metadata: map[string]string{"tenant": "acme"}, RequestedAt: lastInstant, ExpiresAt: ptr(firstInstant)},
		// Steps mapping the template's placeholders, one falling back on
		// listed failure codes only.
		{RequestID: "req-8", Kind: KindSend, Recipient: "+4915112345678", Params: map[string]string{"code": "0042", "name": "Zoë"},
			Steps: []Step{
				{Channel: "whatsapp", From: "+14155550100", Template: "otp_wa", DelaySeconds: 30, SuccessOn: "delivered",
					Variables: map[string]string{"1": "code", "2": "name"}, FixedText: map[string]string{"3": "ACME"},
					FailureCodes: []string{"131026", "131047"}},
				{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 120, SuccessOn: "delivered",
					FixedText: map[string]string{"brand": "ACME"}},
			},
			RequestedAt: t0},
	}
	for i, v := range sends {
		b, err := cs.SendRequest.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := checkDecode(t, cs.SendRequest, b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("send %d: got %#v, %v\nwant %#v", i, got, err, v)
		}
	}
	dlrs := []DeliveryReport{
		fullDeliveryReport(),
		{AttemptID: "req-42/1", Channel: "sms", Status: "DELIVRD", ReportedAt: t0},
		{ProviderMessageID: "wamid.HBgLMzM2", Channel: "whatsapp", Status: "read", ReportedAt: t0.Add(time.Hour)},
	}
	for i, v := range dlrs {
		b, err := cs.DeliveryReport.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := checkDecode(t, cs.DeliveryReport, b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("dlr %d: got %#v, %v\nwant %#v", i, got, err, v)
		}
	}
	// A timestamp written from another zone and below the millisecond comes
	// back in UTC (location nil, as fromNative's UTC() leaves it), truncated.
	b, err := cs.DeliveryReport.Encode(DeliveryReport{ReportedAt: t0.In(zone).Add(999_999)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkDecode(t, cs.DeliveryReport, b)
	if err != nil || !reflect.DeepEqual(got.ReportedAt, t0) || got.ReportedAt.Location() != time.UTC {
		t.Fatalf("reported_at = %#v, %v; want %v in UTC", got.ReportedAt, err, t0)
	}
}

// TestFastDecodersAttached: the records the processor reads take the fast
// path, the others goavro's; DecodeFrom reads the current schema with it
// and earlier ones with goavro.
func TestFastDecodersAttached(t *testing.T) {
	cs := testCodecs(t)
	if cs.SendRequest.fastDecode == nil || cs.DeliveryReport.fastDecode == nil {
		t.Fatal("a fast decoder is missing")
	}
	if cs.Step.fastDecode != nil || cs.ChannelSend.fastDecode != nil || cs.FlowEvent.fastDecode != nil ||
		cs.FlowSummary.fastDecode != nil || cs.StepSummary.fastDecode != nil || cs.FlowDefinition.fastDecode != nil ||
		cs.DeadLetter.fastDecode != nil || cs.Sender.fastDecode != nil || cs.Template.fastDecode != nil {
		t.Fatal("a record without a fast decoder claims one")
	}
	c := cs.SendRequest
	cur, err := c.Encode(fullSendRequest())
	if err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{c.Fingerprint(), "", "0000000000000000"} {
		if got, err := c.DecodeFrom(fp, cur); err != nil || !reflect.DeepEqual(got, fullSendRequest()) {
			t.Fatalf("DecodeFrom(%q, current) = %+v, %v", fp, got, err)
		}
	}
	// Versions 3, 2 and 1, newest first; typicalSendRequest has neither
	// expires_at nor Step's new fields, so it reads back whole.
	for i, fp := range c.PreviousFingerprints() {
		version := 3 - i
		old := previousSendRequest(t, typicalSendRequest(), version)
		if _, err := c.Decode(old); err == nil {
			t.Fatalf("Decode(version %d bytes) succeeded", version)
		}
		for _, route := range []string{fp, ""} {
			if got, err := c.DecodeFrom(route, old); err != nil || !reflect.DeepEqual(got, typicalSendRequest()) {
				t.Fatalf("DecodeFrom(%q, version %d) = %+v, %v", route, version, got, err)
			}
		}
	}
}

// TestFastDecodeLayoutGuard: a schema whose layout is not what a fast
// decoder reads makes New fail instead of misreading records.
func TestFastDecodeLayoutGuard(t *testing.T) {
	cs := testCodecs(t)
	guard := func(shape *node) []error {
		c := *cs.SendRequest
		c.fastDecode, c.shape = nil, shape
		var errs []error
		withFastDecoder(&errs, &c, "SendRequest", decodeSendRequest)
		if (c.fastDecode == nil) != (len(errs) == 1) {
			t.Fatalf("withFastDecoder attached %v with errors %v", c.fastDecode != nil, errs)
		}
		return errs
	}
	if errs := guard(cs.SendRequest.shape); len(errs) != 0 {
		t.Fatalf("the real schema is refused: %v", errs)
	}
	if layoutOf(cs.DeliveryReport.shape) != fastDecodeLayouts["DeliveryReport"] {
		t.Fatal("DeliveryReport.avsc does not have its fast layout")
	}
	// The previous SendRequest schemas (version 2: Step without variables,
	// fixed_text and failure_codes; version 1: no expires_at either), and
	// another record's.
	for _, shape := range []*node{cs.SendRequest.previous[0].shape, cs.SendRequest.previous[1].shape,
		cs.SendRequest.previous[2].shape, cs.DeliveryReport.shape} {
		if errs := guard(shape); len(errs) != 1 || !strings.Contains(errs[0].Error(), "SendRequest.avsc") {
			t.Fatalf("a wrong layout is accepted: %v", errs)
		}
	}
}

// TestFastDecodeAllocs: the fast path allocates only the value: strings,
// the steps slice, the maps. The bounds are the counts measured (goavro's
// path: 64 and 25), so that a regression shows.
func TestFastDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	cs := testCodecs(t)
	req, err := cs.SendRequest.Encode(typicalSendRequest())
	if err != nil {
		t.Fatal(err)
	}
	dlr, err := cs.DeliveryReport.Encode(fullDeliveryReport())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		max  float64
		fn   func()
	}{
		// Strings but the well-known ones (copyString): request_id,
		// recipient, from and template of both steps; the params value. The
		// steps slice; the params map (2: header and group).
		{"SendRequest", 10, func() { _, _ = cs.SendRequest.Decode(req) }},
		// attempt_id, provider_message_id, error_code (channel, status and
		// the currency EUR are well known); the price's pointer.
		{"DeliveryReport", 4, func() { _, _ = cs.DeliveryReport.Decode(dlr) }},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(100, c.fn); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}

// fastDecodeCorpus returns the hand-made seeds of FuzzDecodeSendRequest and
// FuzzDecodeDeliveryReport (see TestFuzzCorpusExpectations for the format).
func fastDecodeCorpus(f *testing.F) [][]byte {
	var out [][]byte
	for _, dir := range []string{"FuzzDecodeSendRequest", "FuzzDecodeDeliveryReport"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			text, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(text)), "\n")
			if len(lines) != 2 {
				f.Fatalf("%s: unexpected corpus format", file)
			}
			b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				f.Fatalf("%s: %v", file, err)
			}
			out = append(out, []byte(b))
		}
	}
	return out
}

// FuzzFastDecodeMatchesGoavro: arbitrary bytes read as a SendRequest and as
// a DeliveryReport; the fast path and the goavro path (validate,
// NativeFromBinary, fromNative) agree: equal values, or the same error
// class (the same text when validate refuses, a named duplicate key when
// only goavro does), and the value does not alias the input.
func FuzzFastDecodeMatchesGoavro(f *testing.F) {
	cs := testCodecs(f)
	for _, b := range fastDecodeSamples(f) {
		f.Add(b)
	}
	for _, b := range fastDecodeCorpus(f) {
		f.Add(b)
	}
	// Blocks, sized blocks, duplicate keys, non-minimal varints.
	seeds := []rawSend{goodSend(), goodSend(), goodSend(), goodSend()}
	seeds[0].params = concat(long(1), str("a"), str("1"), long(-1), long(4), str("b"), str("2"), long(0))
	seeds[1].metadata = strMapBytes("k", "a", "k", "b")
	seeds[2].steps = concat(padded(1, 4), padded(1, 10), goodStep().bytes(), padded(0, 10))
	seeds[3].flowID, seeds[3].expiresAt = concat(union(1), str("")), union(0)
	// Step's maps and array: a duplicate key in variables, fixed_text and
	// failure_codes in sized blocks, invalid UTF-8 in a failure code.
	dupStep, blockStep, badStep := goodStep(), goodStep(), bareStep()
	dupStep.variables = strMapBytes("1", "a", "2", "b", "1", "c")
	blockStep.fixedText = concat(long(-1), long(6), str("k"), str("v1"), long(1), str("l"), str("v2"), long(0))
	blockStep.failureCodes = concat(long(-2), long(4), str("a"), str("b"), long(1), str("c"), long(0))
	badStep.failureCodes = strListBytes("131026", "\xc3\x28")
	seeds = append(seeds, withSteps(dupStep, goodStep()), withSteps(blockStep), withSteps(goodStep(), badStep))
	for _, s := range seeds {
		f.Add(s.bytes())
	}
	f.Add(concat(padded(1, 3), str("a/0"), union(0), str("sms"), str("DELIVRD"), union(0), padded(t0ms, 10)))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, cs.SendRequest, in)
		checkDecode(t, cs.DeliveryReport, in)
	})
}
