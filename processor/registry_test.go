package processor

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

func fakeRegistry(t *testing.T) (*srfake.Registry, *sr.Client) {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return fake, cl
}

// TestRegisterRefusedOrUnreachable: a registry that refuses a schema (a 4xx
// such as 409, incompatible) fails the start at once, naming the subject;
// one that fails (a 5xx) is worth retrying.
func TestRegisterRefusedOrUnreachable(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	subjects := Subjects(topics.DefaultNames(), flow.DefaultChannels().Names(), codecs)
	for _, tc := range []struct {
		status  int
		refused bool
	}{{http.StatusConflict, true}, {http.StatusUnprocessableEntity, true}, {http.StatusServiceUnavailable, false}} {
		fake, cl := fakeRegistry(t)
		fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPost || !strings.Contains(r.URL.Path, "fallback.events-value") {
				return false
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(`{"error_code": 409, "message": "incompatible"}`))
			return true
		})
		_, err := Register(context.Background(), cl, subjects)
		if err == nil || !strings.Contains(err.Error(), "fallback.events-value") {
			t.Fatalf("status %d: %v, want an error naming the subject", tc.status, err)
		}
		if got := registryRefused(err); got != tc.refused {
			t.Fatalf("status %d: refused %v, want %v", tc.status, got, tc.refused)
		}
	}
}

// TestUnframeKnowsEveryVersion: a framed value is read with the writer
// schema its id stands for, the current version or an earlier one; an id
// the registry does not hold, or that is another record's, leaves the
// value to be read as plain Avro, with a note; a registry that cannot be
// asked is an error, not remembered, so the batch is tried again.
func TestUnframeKnowsEveryVersion(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	fake, cl := fakeRegistry(t)
	ctx := context.Background()
	register := func(subject, text string) int {
		got, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: text})
		if err != nil {
			t.Fatal(err)
		}
		return got.ID
	}
	prevText, err := os.ReadFile("../schemas/previous/SendRequest.1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	current := register("r-value", codecs.SendRequest.Schema())
	older := register("old-value", string(prevText))
	other := register("e-value", codecs.FlowEvent.Schema())
	w := newWireFormat(cl, nil)
	frame := func(id int) []byte {
		b, _ := (&sr.ConfluentHeader{}).AppendEncode(nil, id, nil)
		return append(b, "body"...)
	}

	for _, tc := range []struct {
		id     int
		fp     string
		framed bool
		note   string
	}{
		{current, codecs.SendRequest.Fingerprint(), true, ""},
		{older, codecs.SendRequest.PreviousFingerprints()[len(codecs.SendRequest.PreviousFingerprints())-1], true, ""},
		{other, "", false, "is fallbackd.v1.FlowEvent, not fallbackd.v1.SendRequest"},
		{99999, "", false, "not in the registry"},
	} {
		fp, body, note, err := w.unframe(ctx, codecs.SendRequest, frame(tc.id))
		switch {
		case err != nil:
			t.Fatalf("id %d: %v", tc.id, err)
		case tc.framed && (fp != tc.fp || string(body) != "body"):
			t.Fatalf("id %d: read as %q %q, want fingerprint %s and the body", tc.id, fp, body, tc.fp)
		case !tc.framed && (body != nil || !strings.Contains(note, tc.note)):
			t.Fatalf("id %d: body %q, note %q; want plain Avro and a note saying %q", tc.id, body, note, tc.note)
		}
	}

	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	if _, _, _, err := w.unframe(ctx, codecs.SendRequest, frame(424242)); err == nil {
		t.Fatal("registry down: no error")
	}
	fake.ClearInterceptors()
	if _, _, note, err := w.unframe(ctx, codecs.SendRequest, frame(424242)); err != nil || !strings.Contains(note, "not in the registry") {
		t.Fatalf("registry back: %q, %v; want the id looked up again", note, err)
	}
}

// TestEncoderFramesOutputs: with a registry every output value is the
// Confluent header with the record's id, then the same Avro body as
// without one; the schema headers stay.
func TestEncoderFramesOutputs(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	_, cl := fakeRegistry(t)
	names := topics.DefaultNames()
	w := newWireFormat(cl, Subjects(names, []string{"sms"}, codecs))
	if err := w.register(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain := &encoder{codecs: codecs, topics: names}
	framed := &encoder{codecs: codecs, topics: names, wire: w}
	ev := schemas.FlowEvent{EventID: "e1", RequestID: "r1", Type: flow.EventFlowStarted, OccurredAt: t0()}
	send := schemas.ChannelSend{AttemptID: "r1/0", RequestID: "r1", Channel: "sms", To: "+4915112345678", From: "ACME", Template: "t", Deadline: t0()}
	src := &kgo.Record{Topic: names.Requests, Key: []byte("r1"), Value: []byte("junk")}
	outputs := func(enc *encoder) []*kgo.Record {
		e, err := enc.event(ev, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := enc.send(send, nil)
		if err != nil {
			t.Fatal(err)
		}
		return []*kgo.Record{e, s, enc.deadLetter(src, context.Canceled, t0())}
	}
	plainOut, framedOut := outputs(plain), outputs(framed)
	for i, record := range []string{codecs.FlowEvent.Name(), codecs.ChannelSend.Name(), codecs.DeadLetter.Name()} {
		p, f := plainOut[i], framedOut[i]
		id, body, err := (&sr.ConfluentHeader{}).DecodeID(f.Value)
		if err != nil || id != w.ids[record] || string(body) != string(p.Value) {
			t.Fatalf("%s: framed as id %d (%v), want %d and the plain body", record, id, err, w.ids[record])
		}
		if len(f.Headers) != len(p.Headers) || string(f.Headers[1].Value) != string(p.Headers[1].Value) {
			t.Fatalf("%s: headers %v, want %v", record, f.Headers, p.Headers)
		}
	}
}

// TestHeaderMeansPlain: an input carrying our fingerprint header (what the
// client and adapters write) is read as plain Avro without asking the
// registry, even when it starts with byte 0 as a DLR without attempt_id
// does; the same bytes without the header wait on a registry that is down.
func TestHeaderMeansPlain(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	fake, cl := fakeRegistry(t)
	asked := 0
	fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		asked++
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	w := newWireFormat(cl, nil)
	v, err := codecs.DeliveryReport.Encode(schemas.DeliveryReport{ProviderMessageID: "wamid.1", Channel: "whatsapp", Status: "failed"})
	if err != nil || v[0] != 0 {
		t.Fatalf("a DLR without attempt_id encodes to %x (%v), want a first byte 0", v, err)
	}
	ctx := context.Background()
	withHeader := &kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: schemas.HeaderSchemaFingerprint, Value: []byte(codecs.DeliveryReport.Fingerprint())}}}
	rep, bad, err := decodeInput(ctx, w, codecs.DeliveryReport, withHeader)
	if err != nil || bad != nil || rep.ProviderMessageID != "wamid.1" || asked != 0 {
		t.Fatalf("with the header: %+v, %v, %v after %d registry calls; want the DLR and no call", rep, bad, err, asked)
	}
	if _, _, err := decodeInput(ctx, w, codecs.DeliveryReport, &kgo.Record{Value: v}); err == nil || asked == 0 {
		t.Fatalf("without the header: err %v after %d registry calls; want the registry asked, and its failure", err, asked)
	}
}
