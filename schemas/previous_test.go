package schemas

import (
	"bytes"
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

// previousSendRequest encodes v with SendRequest schema version 1 (no
// expires_at; steps without variables, fixed_text, failure_codes) or 2 (no
// new Step fields).
func previousSendRequest(t *testing.T, v SendRequest, version int) []byte {
	t.Helper()
	native, err := sendRequestToNative(v)
	if err != nil {
		t.Fatal(err)
	}
	// goavro writes the fields of the schema it is given and ignores the
	// others, nested ones included: Step's new fields are left out too.
	switch version {
	case 1:
		return encodeWithPrevious(t, "SendRequest.1.avsc", native, "expires_at")
	case 2:
		return encodeWithPrevious(t, "SendRequest.2.avsc", native)
	case 3:
		return encodeWithPrevious(t, "SendRequest.3.avsc", native)
	}
	t.Fatalf("no SendRequest version %d in previous/", version)
	return nil
}

// stepsBefore3 are steps as a schema without Step's variables, fixed_text
// and failure_codes carries them: those fields at their defaults.
func stepsBefore3(steps []Step) []Step {
	if steps == nil {
		return nil
	}
	out := make([]Step, len(steps))
	for i, s := range steps {
		s.Variables, s.FixedText, s.FailureCodes, s.DelayAuto = nil, nil, nil, nil
		out[i] = s
	}
	return out
}

// stepsBefore4 are steps as a schema without Step's delay_auto carries
// them (SendRequest 3, FlowDefinition 2): delay_auto nil.
func stepsBefore4(steps []Step) []Step {
	if steps == nil {
		return nil
	}
	out := make([]Step, len(steps))
	for i, s := range steps {
		s.DelayAuto = nil
		out[i] = s
	}
	return out
}

// previousFingerprint is the fingerprint of previous/<file>.
func previousFingerprint(t *testing.T, file string) string {
	t.Helper()
	text, err := fs.ReadFile(previousFiles, "previous/"+file)
	if err != nil {
		t.Fatal(err)
	}
	_, fp, err := IdentifySchema(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// checkPrevious checks one earlier version of a record: its bytes decode
// to want under its own fingerprint, under none and under an unknown one,
// and not as the current schema; the current schema's bytes of cur do not
// decode as that version.
func checkPrevious[T any](t *testing.T, c *Codec[T], fp string, old []byte, want T, cur T) {
	t.Helper()
	for _, route := range []string{fp, "", "0123456789abcdef"} {
		got, err := c.DecodeFrom(route, old)
		if err != nil {
			t.Fatalf("fingerprint %q: %v", route, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fingerprint %q: got %+v, want %+v", route, got, want)
		}
	}
	// Strict decoding with the current schema refuses it.
	if _, err := c.Decode(old); err == nil {
		t.Fatalf("Decode of an old record succeeded")
	}
	if _, err := c.DecodeFrom(c.Fingerprint(), old); err == nil {
		t.Fatalf("old record under the current fingerprint decoded")
	}
	if _, err := c.DecodeFrom(fp, mustEncode(t, c, cur)); err == nil {
		t.Fatalf("current record under the old fingerprint %s decoded", fp)
	}
}

// TestPreviousSendRequestSchemasStillDecode: expires_at (version 2) and
// Step's variables, fixed_text and failure_codes (version 3) are compatible
// changes. Records written with versions 1 and 2 decode, the fields they
// lack at their defaults (nil), when their fingerprint header names the
// version or when they carry none.
func TestPreviousSendRequestSchemasStillDecode(t *testing.T) {
	cs := testCodecs(t)
	c := cs.SendRequest
	fp1, fp2 := previousFingerprint(t, "SendRequest.1.avsc"), previousFingerprint(t, "SendRequest.2.avsc")
	fp3 := previousFingerprint(t, "SendRequest.3.avsc")
	if fps := c.PreviousFingerprints(); !reflect.DeepEqual(fps, []string{fp3, fp2, fp1}) || fp1 == fp2 || fp3 == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v, want [%s %s %s] (newest first; current %s)", fps, fp3, fp2, fp1, c.Fingerprint())
	}
	for _, v := range []SendRequest{fullSendRequest(), typicalSendRequest(),
		{RequestID: "r", Kind: KindSend, Steps: []Step{{FailureCodes: []string{"x"}}, fullStep()}, RequestedAt: t0}} {
		want := v
		want.Steps = stepsBefore4(v.Steps)
		checkPrevious(t, c, fp3, previousSendRequest(t, v, 3), want, v)
		want.Steps = stepsBefore3(v.Steps)
		checkPrevious(t, c, fp2, previousSendRequest(t, v, 2), want, v)
		want.ExpiresAt = nil
		checkPrevious(t, c, fp1, previousSendRequest(t, v, 1), want, v)
	}

	// A request without steps has the same bytes in versions 2 and 3 (the
	// new fields are inside Step), and reads the same either way.
	named := SendRequest{RequestID: "r", Kind: KindSend, FlowID: "otp-default", Params: map[string]string{"code": "1"},
		RequestedAt: t0, ExpiresAt: ptr(t0.Add(time.Minute))}
	v2 := previousSendRequest(t, named, 2)
	if cur := mustEncode(t, c, named); !bytes.Equal(v2, cur) {
		t.Fatalf("a request without steps: version 2 % x, version 3 % x", v2, cur)
	}
	for _, route := range []string{c.Fingerprint(), fp2, ""} {
		if got, err := c.DecodeFrom(route, v2); err != nil || !reflect.DeepEqual(got, named) {
			t.Fatalf("fingerprint %q: got %+v, %v", route, got, err)
		}
	}
	// Version 1 without steps is one field short of the current schema.
	named.ExpiresAt = nil
	if _, err := c.Decode(previousSendRequest(t, named, 1)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Decode of a version 1 record: err = %v, want ErrTruncated", err)
	}

	// Current records decode under every route but the old fingerprints.
	cur := fullSendRequest()
	b := mustEncode(t, c, cur)
	for _, fp := range []string{c.Fingerprint(), "", "0123456789abcdef"} {
		got, err := c.DecodeFrom(fp, b)
		if err != nil || !reflect.DeepEqual(got, cur) {
			t.Fatalf("fingerprint %q: %+v %v", fp, got, err)
		}
	}
	// Garbage reports the current schema's error.
	if _, err := c.DecodeFrom("", b[:len(b)/2]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("half a record: err = %v, want ErrTruncated", err)
	}
	// Records without previous versions: DecodeFrom is Decode.
	for _, info := range []interface{ PreviousFingerprints() []string }{cs.DeadLetter, cs.Sender, cs.Template} {
		if n := len(info.PreviousFingerprints()); n != 0 {
			t.Fatalf("%s has %d previous schemas", info.(Info).Name(), n)
		}
	}
}

// TestPreviousFlowDefinitionSchemaStillDecodes: status, changed_by,
// changed_at and Step's new fields are compatible changes. A version 1
// definition decodes as published (the schema's default, what Java and
// fastavro resolve it to), with no author, no time and steps without
// variables, fixed_text and failure_codes.
func TestPreviousFlowDefinitionSchemaStillDecodes(t *testing.T) {
	c := testCodecs(t).FlowDefinition
	fp := previousFingerprint(t, "FlowDefinition.1.avsc")
	fp2 := previousFingerprint(t, "FlowDefinition.2.avsc")
	if fps := c.PreviousFingerprints(); !reflect.DeepEqual(fps, []string{fp2, fp}) || fp2 == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v, want [%s %s] (current %s)", fps, fp2, fp, c.Fingerprint())
	}
	for _, v := range []FlowDefinition{fullFlowDefinition(), {}, {FlowID: "f", Version: 2, Status: FlowDraft, Steps: []Step{fullStep(), {}}}} {
		native, err := flowDefinitionToNative(v)
		if err != nil {
			t.Fatal(err)
		}
		// Version 2: Step without delay_auto (without steps, the same
		// bytes as the current version).
		if len(v.Steps) > 0 {
			want2 := v
			want2.Steps = stepsBefore4(v.Steps)
			checkPrevious(t, c, fp2, encodeWithPrevious(t, "FlowDefinition.2.avsc", native), want2, v)
		}
		old := encodeWithPrevious(t, "FlowDefinition.1.avsc", native, "status", "changed_by", "changed_at")
		want := FlowDefinition{FlowID: v.FlowID, Version: v.Version, Steps: stepsBefore3(v.Steps), Status: FlowPublished}
		checkPrevious(t, c, fp, old, want, v)
		if !want.IsPublished() {
			t.Fatal("a version 1 definition is not published")
		}
		if len(v.Steps) == 0 {
			// Without steps, the old record is the current one cut before
			// status.
			if _, err := c.Decode(old); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Decode of a version 1 record: err = %v, want ErrTruncated", err)
			}
			if _, err := c.DecodeFrom(fp, mustEncode(t, c, v)); !errors.Is(err, ErrTrailingBytes) {
				t.Fatalf("current record under the old fingerprint: err = %v, want ErrTrailingBytes", err)
			}
		}
	}
}

// TestPreviousChannelSendSchemaStillDecodes: template_params,
// template_language and provider_template_id are compatible changes. A
// version 1 send decodes with no template params, language or provider id.
func TestPreviousChannelSendSchemaStillDecodes(t *testing.T) {
	c := testCodecs(t).ChannelSend
	fp := previousFingerprint(t, "ChannelSend.1.avsc")
	if fps := c.PreviousFingerprints(); !reflect.DeepEqual(fps, []string{fp}) || fp == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v, want [%s] (current %s)", fps, fp, c.Fingerprint())
	}
	for _, v := range []ChannelSend{fullChannelSend(), {}, {AttemptID: "a/0", TemplateParams: []string{"x"}, TemplateLanguage: "en"}} {
		native, err := channelSendToNative(v)
		if err != nil {
			t.Fatal(err)
		}
		old := encodeWithPrevious(t, "ChannelSend.1.avsc", native, "template_params", "template_language", "provider_template_id")
		want := v
		want.TemplateParams, want.TemplateLanguage, want.ProviderTemplateID = nil, "", ""
		checkPrevious(t, c, fp, old, want, v)
		// The fields were added at the end: the old record is the current
		// one cut short, the current one the old one with bytes to spare.
		if _, err := c.Decode(old); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Decode of a version 1 record: err = %v, want ErrTruncated", err)
		}
		if _, err := c.DecodeFrom(fp, mustEncode(t, c, v)); !errors.Is(err, ErrTrailingBytes) {
			t.Fatalf("current record under the old fingerprint: err = %v, want ErrTrailingBytes", err)
		}
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
