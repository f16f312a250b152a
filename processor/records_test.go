package processor

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
)

func TestOutboxRecordRoundTrip(t *testing.T) {
	in := &kgo.Record{Topic: "fallback.sends.sms", Key: []byte("r1/1"), Value: []byte{0, 1, 2, ':', 0xff},
		Headers: []kgo.RecordHeader{{Key: "fallback.schema", Value: []byte("fallbackd.v1.ChannelSend")}, {Key: "empty"}}}
	out, err := unmarshalRecord(marshalRecord(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Topic != in.Topic || !bytes.Equal(out.Key, in.Key) || !bytes.Equal(out.Value, in.Value) || len(out.Headers) != 2 ||
		out.Headers[0].Key != "fallback.schema" || string(out.Headers[0].Value) != "fallbackd.v1.ChannelSend" || out.Headers[1].Key != "empty" {
		t.Fatalf("round trip changed the record: %+v", out)
	}
	b := marshalRecord(in)
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := unmarshalRecord(bad); err == nil {
			t.Fatalf("unmarshalRecord accepted %d malformed bytes", len(bad))
		}
	}
}

func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{
		"+4915112345678": "+49*********78",
		"+15550001":      "+15****01",
		"12":             "***",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestManualClockFiresWaitersWhenDue(t *testing.T) {
	c := clocktest.NewManual(t0())
	ch := c.At(t0().Add(10e9))
	c.Advance(9e9)
	select {
	case <-ch:
		t.Fatal("fired 1 s early")
	default:
	}
	c.Advance(1e9)
	select {
	case <-ch:
	default:
		t.Fatal("did not fire when due")
	}
	// A wait for a time the clock already passed (it moved between the
	// caller's Now and its At) fires at once instead of sleeping forever.
	select {
	case <-c.At(t0()):
	default:
		t.Fatal("a wait for a past time did not fire")
	}
}

func t0() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
