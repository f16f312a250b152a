package integration

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestSchemaRegistryBothFormats runs a processor with a schema registry
// (pkg/sr's fake, over HTTP): it registers every topic's subject, writes
// every output in the Confluent wire format with the registered id (the
// collector checks each one), and reads inputs in either format: a framed
// request, a plain request, a framed DLR, a plain DLR that names only the
// provider's message id (its value starts with byte 0, as framing does),
// and a framed value of a schema that is not the topic's, which is
// dead-lettered with the id named.
func TestSchemaRegistryBothFormats(t *testing.T) {
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	subjects := processor.Subjects(h.names, flow.DefaultChannels().Names(), h.codecs)
	ids, err := processor.Register(h.ctx, reg, subjects)
	if err != nil {
		t.Fatal(err)
	}
	h.registry, h.out.framed = reg, ids
	h.start(nil)

	framed := func(name string, body []byte) []byte {
		b, err := (&sr.ConfluentHeader{}).AppendEncode(nil, ids[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, body...)
	}
	encodeRequest := func(id string) []byte {
		req := otp(id)
		req.Kind = schemas.KindSend
		v, err := h.codecs.SendRequest.Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	encodeDLR := func(rep schemas.DeliveryReport) []byte {
		v, err := h.codecs.DeliveryReport.Encode(rep)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// A framed request, delivered by a framed DLR.
	h.produce(h.names.Requests, "sr1", framed(h.codecs.SendRequest.Name(), encodeRequest("sr1")))
	h.waitSend("sr1/0")
	h.produce(h.names.DLR, "sr1/0", framed(h.codecs.DeliveryReport.Name(),
		encodeDLR(schemas.DeliveryReport{AttemptID: "sr1/0", Channel: "whatsapp", Status: "delivered"})))
	if c := h.waitClosed("sr1"); c.Outcome != flow.OutcomeDelivered {
		t.Fatalf("framed request and DLR: closed %+v, want DELIVERED", c)
	}

	// A plain request, failed by a plain DLR that names only the provider's
	// message id (learnt from a first plain report).
	h.request(otp("sr2"))
	h.waitSend("sr2/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "sr2/0", ProviderMessageID: "wamid.sr2", Channel: "whatsapp", Status: "sent"})
	onlyProvider := encodeDLR(schemas.DeliveryReport{ProviderMessageID: "wamid.sr2", Channel: "whatsapp", Status: "failed"})
	if onlyProvider[0] != 0 {
		t.Fatalf("a DLR without attempt_id starts with %#x, want 0 (the case framing detection must leave alone)", onlyProvider[0])
	}
	h.produce(h.names.DLR, "wamid.sr2", onlyProvider)
	if s := h.waitSend("sr2/1"); s.Reason != flow.ReasonFailure {
		t.Fatalf("plain DLR by provider id: fallback %+v, want one on failure", s)
	}

	// A framed value whose schema id is another record's: a dead letter
	// that says so, and the pipeline goes on.
	h.produce(h.names.Requests, "sr3", framed(h.codecs.FlowEvent.Name(), encodeRequest("sr3")))
	h.request(otp("sr4"))
	h.waitSend("sr4/0")
	h.eventually("the dead letter", func() bool { return len(h.out.deadLetters()) == 1 })
	dl := h.out.deadLetters()[0]
	if string(dl.Key) != "sr3" || !strings.Contains(dl.Error, h.codecs.FlowEvent.Name()) {
		t.Fatalf("dead letter %q: %s, want sr3 naming %s", dl.Key, dl.Error, h.codecs.FlowEvent.Name())
	}
	if n := len(h.out.eventsOf("sr3")); n != 0 {
		t.Fatalf("%d events for the dead-lettered request", n)
	}

	// The registry holds the contract under every topic's subject.
	for _, s := range subjects {
		got, err := reg.SchemaByVersion(h.ctx, s.Name, -1)
		if err != nil {
			t.Fatalf("subject %s: %v", s.Name, err)
		}
		if got.ID != ids[s.Record.Name()] {
			t.Fatalf("subject %s holds schema id %d, want %d", s.Name, got.ID, ids[s.Record.Name()])
		}
	}
}
