package schemas

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// What the hamba path (mirror.go, validateInput) adds to hamba itself.

// TestHambaEncodeRefusesWrappedTimes: a time so far out that hamba's
// t.Unix()*1e3 wraps around into years 1 to 9999 is refused before
// encoding (validate after hamba would see an ordinary timestamp), named by
// its Avro path, nested records and arrays included.
func TestHambaEncodeRefusesWrappedTimes(t *testing.T) {
	wrapped := time.Unix(18446744073709552, 0) // *1e3 is 2^64 + 384
	if ms := wrapped.Unix()*1e3 + int64(wrapped.Nanosecond()/1e6); ms < minTimestampMillis || ms > maxTimestampMillis {
		t.Fatalf("the wrapped time writes %d ms, outside the range: the test checks nothing", ms)
	}
	cs := testCodecs(t)
	cases := []struct {
		name, path string
		encode     func() error
	}{
		{"FlowDefinition.changed_at", "changed_at: ", func() error {
			_, err := cs.FlowDefinition.Encode(FlowDefinition{FlowID: "f", Version: 1, ChangedAt: &wrapped})
			return err
		}},
		{"Sender.changed_at", "changed_at: ", func() error {
			_, err := cs.Sender.Encode(Sender{Channel: "sms", ID: "s", Status: SenderActive, ChangedAt: wrapped})
			return err
		}},
		{"FlowSummary.steps[1].sent_at", "steps: [1]: sent_at: ", func() error {
			_, err := cs.FlowSummary.Encode(FlowSummary{Outcome: "DELIVERED", RequestedAt: t0, StartedAt: t0, ClosedAt: t0,
				Steps: []StepSummary{{SentAt: t0}, {SentAt: wrapped}}})
			return err
		}},
		{"SendRequest.expires_at", "expires_at: ", func() error {
			_, err := cs.SendRequest.Encode(SendRequest{RequestID: "r", Kind: KindSend, RequestedAt: t0, ExpiresAt: &wrapped})
			return err
		}},
	}
	for _, c := range cases {
		err := c.encode()
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.path+"malformed record: timestamp") {
			t.Errorf("%s: err = %v, want ErrMalformed naming %q", c.name, err, c.path)
		}
	}
}

// channelSendWithParams is a ChannelSend whose params map is the given
// bytes (block counts, keys, values, the terminating 0).
func channelSendWithParams(params ...[]byte) []byte {
	return concat(str("r/0"), str("r"), long(0), str("sms"), str("f"), str("t"), str("x"), union(0),
		concat(params...), str("initial"), long(0), long(0), long(0), union(0), union(0))
}

// TestValidateInputDuplicateKeys: a record hamba reads (ChannelSend) with a
// key twice in one map is refused like goavro refused it, wherever the
// duplicate is: among the first keys, past the keys compared one by one,
// in another block, with a length written in more bytes than it needs. A
// structural error anywhere, or trailing bytes, wins over the duplicate
// (goavro's order, and the hand-written decoders').
func TestValidateInputDuplicateKeys(t *testing.T) {
	c := testCodecs(t).ChannelSend
	many := []byte{}
	for i := range smallKeys + 3 {
		many = append(many, concat(str(fmt.Sprint("k", i)), str("v"))...)
	}
	cases := []struct {
		name string
		in   []byte
		want error
		text string
	}{
		{"no duplicate", channelSendWithParams(long(2), str("a"), str("1"), str("b"), str("1"), long(0)), nil, ""},
		{"many keys", channelSendWithParams(long(smallKeys+3), many, long(0)), nil, ""},
		{"first two keys", channelSendWithParams(long(2), str("a"), str("1"), str("a"), str("2"), long(0)),
			ErrMalformed, "params: [1] key: malformed record: duplicate map key"},
		{"past the small set", channelSendWithParams(long(smallKeys+4), many, str("k2"), str("v"), long(0)),
			ErrMalformed, fmt.Sprintf("params: [%d] key: malformed record: duplicate map key", smallKeys+3)},
		{"in the next block", channelSendWithParams(long(1), str("a"), str("1"), long(1), str("a"), str("1"), long(0)),
			ErrMalformed, "params: [1] key: malformed record: duplicate map key"},
		{"a non-minimal length", channelSendWithParams(long(2), str("a"), str("1"), []byte{0x82, 0x00}, []byte("a"), str("2"), long(0)),
			ErrMalformed, "duplicate map key"},
		{"duplicate, then trailing bytes", append(channelSendWithParams(long(2), str("a"), str("1"), str("a"), str("2"), long(0)), 0),
			ErrTrailingBytes, ""},
		{"duplicate, then truncated", channelSendWithParams(long(2), str("a"), str("1"), str("a"), str("2"), long(0))[:30],
			ErrTruncated, ""},
	}
	for _, tc := range cases {
		_, err := c.Decode(tc.in)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: err = %v, want %v (%q)", tc.name, err, tc.want, tc.text)
		}
		if tc.want != ErrMalformed && strings.Contains(err.Error(), "duplicate") {
			t.Errorf("%s: the duplicate was reported before %v: %v", tc.name, tc.want, err)
		}
	}
	// A duplicate key, then invalid UTF-8 in reason: the UTF-8 error.
	in := concat(str("r/0"), str("r"), long(0), str("sms"), str("f"), str("t"), str("x"), union(0),
		long(2), str("a"), str("1"), str("a"), str("2"), long(0), str("\xff"), long(0), long(0), long(0), union(0), union(0))
	if _, err := c.Decode(in); err == nil || !strings.Contains(err.Error(), "reason: malformed record: string is not valid UTF-8") {
		t.Errorf("duplicate, then invalid UTF-8: err = %v, want the UTF-8 error", err)
	}
	// The reference refuses what validateInput refuses.
	for _, tc := range cases {
		_, got := c.Decode(tc.in)
		_, want := c.decodeGoavro(tc.in)
		if (got == nil) != (want == nil) {
			t.Errorf("%s: hamba path err = %v, goavro err = %v", tc.name, got, want)
		}
	}
}
