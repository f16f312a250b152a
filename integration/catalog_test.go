package integration

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// The catalog (senders and templates) and the flow lifecycle (draft,
// published) on a real pipeline: the processor reads them from their
// compacted topics and checks every request against them (catalog mode
// auto: enforced once the catalog holds anything).

func (h *harness) storeSender(s schemas.Sender) {
	s.Version, s.ChangedBy, s.ChangedAt = max(s.Version, 1), "it", t0
	storeEntry(h, h.codecs.Sender, h.names.Senders, s.Key(), s)
}

func (h *harness) storeTemplate(tp schemas.Template) {
	tp.Version, tp.ChangedBy, tp.ChangedAt = max(tp.Version, 1), "it", t0
	storeEntry(h, h.codecs.Template, h.names.Templates, tp.Key(), tp)
}

func (h *harness) storeFlow(def schemas.FlowDefinition) {
	storeEntry(h, h.codecs.FlowDefinition, h.names.Flows, def.FlowID, def)
}

// storeEntry writes v to a compacted configuration topic under key.
func storeEntry[T any](h *harness, codec *schemas.Codec[T], topic, key string, v T) {
	h.t.Helper()
	b, err := codec.Encode(v)
	if err != nil {
		h.t.Fatal(err)
	}
	h.produce(topic, key, b)
}

// storeCatalog stores the senders and templates of catalogOTP's steps, and
// the ones each refusal needs.
func (h *harness) storeCatalog() {
	for _, s := range []schemas.Sender{
		{Channel: "whatsapp", ID: "+4915100000000", Status: schemas.SenderActive},
		{Channel: "whatsapp", ID: "+4915100000009", Status: schemas.SenderDisabled},
		{Channel: "sms", ID: "ACME", Status: schemas.SenderActive},
		{Channel: "rcs", ID: "acme_agent", Status: schemas.SenderActive},
	} {
		h.storeSender(s)
	}
	for _, tp := range []schemas.Template{
		{Channel: "whatsapp", Name: "otp_auth", Language: "en", Category: "authentication", Body: "{{1}} is your code.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "promo", Language: "en", Category: "marketing", Body: "Sale!", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "otp_pending", Language: "en", Category: "authentication", Body: "Code {{1}}", Status: schemas.TemplatePending},
		{Channel: "sms", Name: "otp_sms", Language: "en", Body: "ACME: {{code}}", Status: schemas.TemplateApproved, ProviderTemplateID: "1107160000000012345"},
		{Channel: "sms", Name: "otp_named", Language: "en", Body: "Hi {{name}}, {{code}}", Status: schemas.TemplateApproved},
		{Channel: "rcs", Name: "otp_rcs", Body: "Your code: {{1}}", Status: schemas.TemplateApproved, Sender: "acme_agent"},
	} {
		h.storeTemplate(tp)
	}
}

// catalogOTP is otp with the mapping its WhatsApp template needs.
func catalogOTP(id string) schemas.SendRequest {
	req := otp(id)
	req.Steps[0].Variables = map[string]string{"1": "code"}
	return req
}

// expectRejected waits for the request's REQUEST_REJECTED and checks that
// it left nothing: no flow in Redis, no send.
func (h *harness) expectRejected(id, code string) {
	h.t.Helper()
	h.eventually(id+" rejected", func() bool { return len(h.out.eventsOf(id, flow.EventRequestRejected)) > 0 })
	ev := h.out.eventsOf(id, flow.EventRequestRejected)[0]
	if !strings.HasPrefix(ev.Reason, code+": ") {
		h.t.Fatalf("%s rejected %q, want %s", id, ev.Reason, code)
	}
	snaps, err := h.store.Load(h.ctx, []string{id})
	if err != nil {
		h.t.Fatal(err)
	}
	if snaps[0].Exists {
		h.t.Fatalf("%s: rejected, yet a flow is in Redis", id)
	}
	if n := len(h.out.sendsOf(id+"/0")) + len(h.out.sendsOf(id+"/1")); n != 0 {
		h.t.Fatalf("%s: rejected, yet %d sends", id, n)
	}
}

func TestCatalogRefusesWhatItDoesNotAllow(t *testing.T) {
	h := newHarness(t)
	h.storeCatalog()
	h.start(nil)

	cases := []struct {
		code string
		edit func(*schemas.SendRequest)
	}{
		{flow.RejectSenderUnknown, func(r *schemas.SendRequest) { r.Steps[1].From = "NOBODY" }},
		{flow.RejectSenderDisabled, func(r *schemas.SendRequest) { r.Steps[0].From = "+4915100000009" }},
		{flow.RejectTemplateNotApproved, func(r *schemas.SendRequest) { r.Steps[0].Template = "otp_pending" }},
		{flow.RejectTemplateUnknown, func(r *schemas.SendRequest) { r.Steps[1].Template = "nobody_approved_this" }},
		{flow.RejectCategory, func(r *schemas.SendRequest) {
			r.Steps[0].Template, r.Steps[0].TemplateCategory, r.Steps[0].Variables = "promo", "", nil
		}},
		{flow.RejectPlaceholderUnmapped, func(r *schemas.SendRequest) { r.Steps[0].Variables = nil }},
		{flow.RejectParamMissing, func(r *schemas.SendRequest) { r.Steps[1].Template = "otp_named" }}, // needs {{name}}
	}
	for i, c := range cases {
		req := catalogOTP(fmt.Sprintf("cat%d", i))
		c.edit(&req)
		h.request(req)
	}
	for i, c := range cases {
		h.expectRejected(fmt.Sprintf("cat%d", i), c.code)
	}

	// The same request within the catalog's rules runs, and its sends carry
	// the template params in the template's order.
	h.request(catalogOTP("ok1"))
	first := h.waitSend("ok1/0")
	if !reflect.DeepEqual(first.TemplateParams, []string{"424242"}) || first.TemplateLanguage != "en" || first.TemplateCategory != "authentication" {
		t.Fatalf("first send %+v", first)
	}
	h.status("ok1/0", "failed")
	second := h.waitSend("ok1/1")
	if !reflect.DeepEqual(second.TemplateParams, []string{"424242"}) || second.ProviderTemplateID != "1107160000000012345" {
		t.Fatalf("second send %+v", second)
	}
	h.status("ok1/1", "DELIVRD")
	if closed := h.waitClosed("ok1"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("outcome %q", closed.Outcome)
	}
}

// TestCatalogStoredJustBeforeTheRequest: a template stored right before a
// request that uses it is found (the config table is read to its end before
// a request naming something it lacks is refused).
func TestCatalogStoredJustBeforeTheRequest(t *testing.T) {
	h := newHarness(t)
	h.storeCatalog()
	h.start(nil)
	h.request(catalogOTP("warm")) // the instance is up and reading
	h.waitSend("warm/0")
	h.storeTemplate(schemas.Template{Channel: "sms", Name: "otp_sms_v2", Body: "Code {{code}}", Status: schemas.TemplateApproved})
	req := catalogOTP("fresh")
	req.Steps[1].Template = "otp_sms_v2"
	h.request(req)
	h.waitSend("fresh/0")
	if n := len(h.out.eventsOf("fresh", flow.EventRequestRejected)); n != 0 {
		t.Fatalf("a request naming a template stored just before it was rejected: %+v", h.out.eventsOf("fresh"))
	}
}

// TestDraftAndUnpublishedFlows: a draft is refused; a published flow runs;
// unpublished, the flows it started finish and new requests are refused.
func TestDraftAndUnpublishedFlows(t *testing.T) {
	h := newHarness(t)
	h.storeCatalog()
	steps := catalogOTP("").Steps
	h.storeFlow(schemas.FlowDefinition{FlowID: "draft", Version: 1, Steps: steps, Status: schemas.FlowDraft})
	h.storeFlow(schemas.FlowDefinition{FlowID: "otp", Version: 1, Steps: steps, Status: schemas.FlowPublished})
	inst := h.start(nil)

	named := func(id, flowID string) schemas.SendRequest {
		req := otp(id)
		req.Steps, req.FlowID = nil, flowID
		return req
	}
	h.request(named("d1", "draft"))
	h.expectRejected("d1", flow.RejectNotPublished)

	h.request(named("u1", "otp"))
	h.waitSend("u1/0")
	// Unpublished: version 2, a draft. Once the table has read it (Refresh),
	// a new request is refused.
	h.storeFlow(schemas.FlowDefinition{FlowID: "otp", Version: 2, Steps: steps, Status: schemas.FlowDraft})
	if err := inst.p.ConfigTable().Refresh(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.request(named("u2", "otp"))
	h.expectRejected("u2", flow.RejectNotPublished)
	// The running flow finishes with the definition it started with.
	h.advance(30 * time.Second)
	h.waitSend("u1/1")
	h.status("u1/1", "DELIVRD")
	closed := h.waitClosed("u1")
	if closed.Outcome != flow.OutcomeDelivered || closed.Summary.StepsUsed != 2 {
		t.Fatalf("u1 closed %+v", closed)
	}
	started := h.out.eventsOf("u1", flow.EventFlowStarted)
	if len(started) != 1 {
		t.Fatalf("u1 started %d times", len(started))
	}
}

// TestFailureCodeOutsideTheListCloses: a step that falls back only on some
// failure codes closes FAILED on another, and the second channel is never
// paid for.
func TestFailureCodeOutsideTheListCloses(t *testing.T) {
	h := newHarness(t)
	h.storeCatalog()
	h.start(nil)
	req := catalogOTP("fc1")
	req.Steps[0].FailureCodes = []string{"131026"} // message undeliverable: worth an SMS
	h.request(req)
	h.waitSend("fc1/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "fc1/0", Channel: "whatsapp", Status: "failed", ErrorCode: "131009"}) // invalid parameter
	closed := h.waitClosed("fc1")
	if closed.Outcome != flow.OutcomeFailed || closed.Reason != flow.CloseReasonFailureNotListed || closed.Summary.StepsUsed != 1 {
		t.Fatalf("closed %+v", closed)
	}
	h.advance(120 * time.Second)
	h.settle()
	if n := len(h.out.sendsOf("fc1/1")); n != 0 {
		t.Fatalf("%d SMS sent after a failure that does not fall back", n)
	}

	// A listed code falls back as before.
	req = catalogOTP("fc2")
	req.RequestedAt = t0.Add(120 * time.Second)
	req.Steps[0].FailureCodes = []string{"131026"}
	h.request(req)
	h.waitSend("fc2/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "fc2/0", Channel: "whatsapp", Status: "failed", ErrorCode: "131026"})
	if s := h.waitSend("fc2/1"); s.Reason != flow.ReasonFailure {
		t.Fatalf("fallback send %+v", s)
	}
}

// TestWhatsAppThenRCSThenSMS: a third channel is data: its own send topic,
// statuses, senders and templates (approved per agent).
func TestWhatsAppThenRCSThenSMS(t *testing.T) {
	h := newHarness(t)
	h.storeCatalog()
	h.start(nil)
	req := catalogOTP("rcs1")
	req.Steps = []schemas.Step{
		req.Steps[0],
		{Channel: "rcs", From: "acme_agent", Template: "otp_rcs", DelaySeconds: 20, Variables: map[string]string{"1": "code"}, SuccessOn: "read"},
		req.Steps[1],
	}
	h.request(req)
	h.waitSend("rcs1/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "rcs1/0", Channel: "whatsapp", Status: "failed"})
	rcs := h.waitSend("rcs1/1")
	if rcs.Channel != "rcs" || rcs.From != "acme_agent" || !reflect.DeepEqual(rcs.TemplateParams, []string{"424242"}) {
		t.Fatalf("rcs send %+v", rcs)
	}
	// Delivered but not read: the step waits for a read, then times out.
	h.dlr(schemas.DeliveryReport{AttemptID: "rcs1/1", Channel: "rcs", Status: "DELIVERED"})
	h.advance(20 * time.Second)
	sms := h.waitSend("rcs1/2")
	if sms.Channel != "sms" || sms.Reason != flow.ReasonTimeout {
		t.Fatalf("sms send %+v", sms)
	}
	h.dlr(schemas.DeliveryReport{AttemptID: "rcs1/2", Channel: "sms", Status: "DELIVRD"})
	closed := h.waitClosed("rcs1")
	if closed.Outcome != flow.OutcomeDelivered || closed.Summary.StepsUsed != 3 || closed.Summary.DeliveredStep == nil || *closed.Summary.DeliveredStep != 2 {
		t.Fatalf("closed %+v", closed)
	}
	if got := closed.Summary.Steps[1].Channel; got != "rcs" {
		t.Fatalf("step 1 summary on %q", got)
	}
	// The RCS delivery and the SMS delivery both reached the person.
	if !closed.Summary.MultiChannelDelivery {
		t.Fatalf("two channels delivered, summary says one: %+v", closed.Summary)
	}
}
