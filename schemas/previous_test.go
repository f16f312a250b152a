package schemas

import (
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// encodeWithPrevious encodes a record's native form with a schema kept in
// previous/, leaving out the fields that schema did not have yet: what a
// producer built before them writes.
func encodeWithPrevious(t *testing.T, file string, native map[string]any, newFields ...string) []byte {
	t.Helper()
	text, err := fs.ReadFile(previousFiles, "previous/"+file)
	if err != nil {
		t.Fatal(err)
	}
	old, err := goavro.NewCodec(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range newFields {
		delete(native, f)
	}
	b, err := old.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// previousSendRequest encodes v with the first SendRequest schema, which had
// no expires_at.
func previousSendRequest(t *testing.T, v SendRequest) []byte {
	t.Helper()
	native, err := sendRequestToNative(v)
	if err != nil {
		t.Fatal(err)
	}
	return encodeWithPrevious(t, "SendRequest.1.avsc", native, "expires_at")
}

// TestPreviousSendRequestSchemaStillDecodes: adding expires_at is a
// compatible change. Records written with the first schema decode, with
// ExpiresAt nil, when their fingerprint header names it or when they carry
// no header; the current schema's bytes still decode as before.
func TestPreviousSendRequestSchemaStillDecodes(t *testing.T) {
	cs := testCodecs(t)
	c := cs.SendRequest
	fps := c.PreviousFingerprints()
	if len(fps) != 1 || fps[0] == c.Fingerprint() || len(fps[0]) != 16 {
		t.Fatalf("previous fingerprints %v (current %s)", fps, c.Fingerprint())
	}
	want := fullSendRequest()
	want.ExpiresAt = nil
	old := previousSendRequest(t, want)

	for _, fp := range []string{fps[0], "", "0123456789abcdef"} {
		got, err := c.DecodeFrom(fp, old)
		if err != nil {
			t.Fatalf("fingerprint %q: %v", fp, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fingerprint %q: got %+v, want %+v", fp, got, want)
		}
	}
	// Strict decoding with the current schema: the old record is one field short.
	if _, err := c.Decode(old); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Decode of an old record: err = %v, want ErrTruncated", err)
	}
	if _, err := c.DecodeFrom(c.Fingerprint(), old); !errors.Is(err, ErrTruncated) {
		t.Fatalf("old record under the current fingerprint: err = %v, want ErrTruncated", err)
	}

	// Current records decode under every route but the old fingerprint.
	cur := fullSendRequest()
	b := mustEncode(t, c, cur)
	for _, fp := range []string{c.Fingerprint(), "", "0123456789abcdef"} {
		got, err := c.DecodeFrom(fp, b)
		if err != nil || got.ExpiresAt == nil || !got.ExpiresAt.Equal(*cur.ExpiresAt) {
			t.Fatalf("fingerprint %q: %+v %v", fp, got.ExpiresAt, err)
		}
	}
	if _, err := c.DecodeFrom(fps[0], b); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("new record under the old fingerprint: err = %v, want ErrTrailingBytes", err)
	}
	// Garbage reports the current schema's error.
	if _, err := c.DecodeFrom("", b[:len(b)/2]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("half a record: err = %v, want ErrTruncated", err)
	}
	// Other records have no previous versions: DecodeFrom is Decode.
	if n := len(cs.DeliveryReport.PreviousFingerprints()); n != 0 {
		t.Fatalf("DeliveryReport has %d previous schemas", n)
	}
}

// TestExpiresAtEncoding: expires_at is a ["null", timestamp-millis] union
// after requested_at, null when unset, in the same range as every timestamp.
func TestExpiresAtEncoding(t *testing.T) {
	c := testCodecs(t).SendRequest
	base := SendRequest{RequestID: "r", Kind: KindSend, RequestedAt: t0}
	unset := mustEncode(t, c, base)
	if unset[len(unset)-1] != 0 {
		t.Fatalf("unset expires_at is not the null branch: % x", unset[len(unset)-4:])
	}
	at := t0.Add(time.Hour)
	base.ExpiresAt = &at
	set := mustEncode(t, c, base)
	got, err := c.Decode(set)
	if err != nil || got.ExpiresAt == nil || !got.ExpiresAt.Equal(at) || got.ExpiresAt.Location() != time.UTC {
		t.Fatalf("decoded %v, %v", got.ExpiresAt, err)
	}
	tooLate := lastInstant.Add(time.Millisecond)
	base.ExpiresAt = &tooLate
	if _, err := c.Encode(base); !errors.Is(err, ErrMalformed) {
		t.Fatalf("expires_at in year 10000: err = %v, want ErrMalformed", err)
	}
}

func mustEncode[T any](t *testing.T, c *Codec[T], v T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
