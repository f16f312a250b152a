package flow

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// testCatalog is a Catalog in memory.
type testCatalog struct {
	senders   map[string]schemas.Sender
	templates map[string]schemas.Template
}

func (c testCatalog) Sender(channel, id string) (schemas.Sender, bool) {
	s, ok := c.senders[schemas.CatalogKey(channel, id)]
	return s, ok
}

func (c testCatalog) Template(channel, name string) (schemas.Template, bool) {
	t, ok := c.templates[schemas.CatalogKey(channel, name)]
	return t, ok
}

func (c testCatalog) Empty() bool { return len(c.senders) == 0 && len(c.templates) == 0 }

// demoCatalog holds the senders and templates of catalogRequest's steps,
// and the unusable ones each test case swaps in.
func demoCatalog() testCatalog {
	c := testCatalog{senders: map[string]schemas.Sender{}, templates: map[string]schemas.Template{}}
	for _, s := range []schemas.Sender{
		{Channel: "whatsapp", ID: "+4915100000000", Status: schemas.SenderActive},
		{Channel: "whatsapp", ID: "+4915100000009", Status: schemas.SenderDisabled},
		{Channel: "sms", ID: "ACME", Status: schemas.SenderActive},
		{Channel: "rcs", ID: "acme_agent", Status: schemas.SenderActive},
		{Channel: "rcs", ID: "other_agent", Status: schemas.SenderActive},
	} {
		c.senders[s.Key()] = s
	}
	for _, t := range []schemas.Template{
		{Channel: "whatsapp", Name: "otp_wa", Language: "en", Category: "authentication", Body: "{{1}} is your code.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "promo", Category: "marketing", Body: "Sale!", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "otp_wa_new", Category: "authentication", Body: "Code {{1}}", Status: schemas.TemplatePending},
		{Channel: "whatsapp", Name: "otp_wa_bad", Category: "authentication", Body: "Code {{1}}", Status: schemas.TemplateRejected},
		{Channel: "sms", Name: "otp_sms", Language: "en", Body: "{{brand}}: your code is {{code}}. {{code}} expires soon.",
			Status: schemas.TemplateApproved, ProviderTemplateID: "1107160000000012345"},
		{Channel: "rcs", Name: "otp_rcs", Body: "Code: {{code}}", Status: schemas.TemplateApproved, Sender: "acme_agent"},
	} {
		c.templates[t.Key()] = t
	}
	return c
}

func catalogValidator(mode CatalogMode) Validator {
	return Validator{Channels: DefaultChannels(), Limits: DefaultLimits(), Catalog: demoCatalog(), CatalogMode: mode}
}

func catalogRequest() schemas.SendRequest {
	return schemas.SendRequest{RequestID: "r1", Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", DelaySeconds: 30, Variables: map[string]string{"1": "code"},
				FailureCodes: []string{" 131026 "}},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60, FixedText: map[string]string{"brand": "ACME"}},
		}}
}

func TestCatalogResolvesSteps(t *testing.T) {
	in, r := catalogValidator(CatalogEnforce).ValidateSend(catalogRequest(), nil)
	if r != nil {
		t.Fatal(r)
	}
	want := []StepDef{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30,
			Args: []Arg{{Param: "code"}}, Language: "en", FailureCodes: []string{"131026"}},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60,
			Args: []Arg{{Text: "ACME", Fixed: true}, {Param: "code"}}, Language: "en", ProviderTemplateID: "1107160000000012345"},
	}
	if !reflect.DeepEqual(in.Steps, want) {
		t.Fatalf("steps\n got %+v\nwant %+v", in.Steps, want)
	}
	// Off: the steps as given, nothing taken from the catalog; the
	// WhatsApp step then needs its category.
	req := catalogRequest()
	req.Steps[0].TemplateCategory = "authentication"
	off, r := catalogValidator(CatalogOff).ValidateSend(req, nil)
	if r != nil {
		t.Fatal(r)
	}
	if off.Steps[0].Args != nil || off.Steps[1].ProviderTemplateID != "" || off.Steps[0].FailureCodes[0] != "131026" {
		t.Fatalf("catalog off resolved %+v", off.Steps)
	}
}

// TestCatalogRefusals: each way a step breaks the catalog is refused with
// its code, naming the step's field, in enforce and auto mode; warn mode
// starts the flow and reports the same rejection as a warning.
func TestCatalogRefusals(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*schemas.SendRequest)
		code  string
		field string
	}{
		{"unknown sender", func(r *schemas.SendRequest) { r.Steps[1].From = "NOBODY" }, RejectSenderUnknown, "steps[1].from"},
		{"disabled sender", func(r *schemas.SendRequest) { r.Steps[0].From = "+4915100000009" }, RejectSenderDisabled, "steps[0].from"},
		{"sender of another channel", func(r *schemas.SendRequest) { r.Steps[1].From = "+4915100000000" }, RejectSenderUnknown, "steps[1].from"},
		{"unknown template", func(r *schemas.SendRequest) { r.Steps[1].Template = "nope" }, RejectTemplateUnknown, "steps[1].template"},
		{"pending template", func(r *schemas.SendRequest) { r.Steps[0].Template = "otp_wa_new" }, RejectTemplateNotApproved, "steps[0].template"},
		{"rejected template", func(r *schemas.SendRequest) { r.Steps[0].Template = "otp_wa_bad" }, RejectTemplateNotApproved, "steps[0].template"},
		{"template of another channel", func(r *schemas.SendRequest) { r.Steps[1].Template = "otp_wa" }, RejectTemplateUnknown, "steps[1].template"},
		{"template approved for another agent", func(r *schemas.SendRequest) {
			r.Steps[1] = schemas.Step{Channel: "rcs", From: "other_agent", Template: "otp_rcs", DelaySeconds: 60}
		}, RejectTemplateNotApproved, "steps[1].template"},
		{"marketing template on whatsapp", func(r *schemas.SendRequest) { r.Steps[0].Template, r.Steps[0].Variables = "promo", nil },
			RejectCategory, "steps[0].template_category"},
		{"category other than the catalog's", func(r *schemas.SendRequest) { r.Steps[0].TemplateCategory = "text" },
			RejectCategoryMismatch, "steps[0].template_category"},
		{"unmapped positional placeholder", func(r *schemas.SendRequest) { r.Steps[0].Variables = nil }, RejectPlaceholderUnmapped, "steps[0].variables"},
		{"mapping a placeholder the template lacks", func(r *schemas.SendRequest) { r.Steps[1].Variables = map[string]string{"name": "code"} },
			RejectVariables, "steps[1].variables"},
	}
	for _, c := range cases {
		for _, mode := range []CatalogMode{CatalogEnforce, CatalogAuto} {
			req := catalogRequest()
			c.edit(&req)
			_, r := catalogValidator(mode).ValidateSend(req, nil)
			if r == nil || r.Code != c.code || r.Field != c.field {
				t.Errorf("%s (%s): %v, want %s on %s", c.name, mode, r, c.code, c.field)
			}
		}
		if c.code == RejectCategory {
			continue // the channel's own rule, with or without a catalog
		}
		req := catalogRequest()
		c.edit(&req)
		for i := range req.Steps {
			if req.Steps[i].Channel == "whatsapp" && req.Steps[i].TemplateCategory == "" {
				req.Steps[i].TemplateCategory = "authentication" // what warn needs where the catalog gives nothing
			}
		}
		in, r := catalogValidator(CatalogWarn).ValidateSend(req, nil)
		if r != nil || len(in.Warnings) != 1 || in.Warnings[0].Code != c.code {
			t.Errorf("%s (warn): %v, warnings %v, want the flow started with one %s warning", c.name, r, in.Warnings, c.code)
		}
	}
}

// TestCatalogAutoIsOffWhileEmpty: a deployment without a catalog keeps
// working: nothing is checked until the catalog holds something.
func TestCatalogAutoIsOffWhileEmpty(t *testing.T) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits(), Catalog: testCatalog{}}
	req := catalogRequest()
	req.Steps[0].TemplateCategory = "authentication"
	req.Steps[1].From = "NOBODY"
	in, r := v.ValidateSend(req, nil)
	if r != nil || len(in.Warnings) != 0 || in.Steps[1].Args != nil {
		t.Fatalf("empty catalog in auto mode: %v, %+v", r, in)
	}
	v.Catalog = demoCatalog()
	if _, r := v.ValidateSend(req, nil); r == nil || r.Code != RejectSenderUnknown {
		t.Fatalf("catalog with entries in auto mode: %v, want sender_unknown", r)
	}
}

func TestParamMissing(t *testing.T) {
	v := catalogValidator(CatalogEnforce)
	req := catalogRequest()
	req.Params = map[string]string{"name": "Ada"}
	_, r := v.ValidateSend(req, nil)
	if r == nil || r.Code != RejectParamMissing || r.Error() != `param_missing: steps[0].template: otp_wa needs param "code"` {
		t.Fatalf("got %v", r)
	}
	// An empty value is a value: the template gets "" as the request said.
	req.Params = map[string]string{"code": ""}
	if _, r := v.ValidateSend(req, nil); r != nil {
		t.Fatalf("empty value: %v", r)
	}
	// Without a catalog the flow's own mapping still says what it needs.
	off := catalogValidator(CatalogOff)
	req = catalogRequest()
	req.Steps[0].TemplateCategory = "authentication"
	req.Params = map[string]string{}
	if _, r := off.ValidateSend(req, nil); r == nil || r.Code != RejectParamMissing || !strings.Contains(r.Detail, `{{1}}`) {
		t.Fatalf("catalog off, mapped param missing: %v", r)
	}
	// A stored flow's rejection names the flow.
	req = catalogRequest()
	def := schemas.FlowDefinition{FlowID: "otp", Version: 2, Steps: req.Steps}
	req.Steps, req.FlowID, req.Params = nil, "otp", nil
	if _, r := v.ValidateSend(req, oneDef(def)); r == nil || r.Code != RejectParamMissing || r.Field != "flow otp: steps[0].template" {
		t.Fatalf("stored flow: %v", r)
	}
}

type oneDef schemas.FlowDefinition

func (d oneDef) Lookup(id string) (schemas.FlowDefinition, bool) {
	return schemas.FlowDefinition(d), id == d.FlowID
}

func TestDraftFlowIsNotPublished(t *testing.T) {
	v := catalogValidator(CatalogEnforce)
	steps := catalogRequest().Steps
	req := catalogRequest()
	req.Steps, req.FlowID = nil, "otp"
	for _, c := range []struct {
		status string
		ok     bool
	}{{"", true}, {schemas.FlowPublished, true}, {schemas.FlowDraft, false}} {
		in, r := v.ValidateSend(req, oneDef{FlowID: "otp", Version: 4, Steps: steps, Status: c.status})
		switch {
		case c.ok && (r != nil || in.FlowVersion != 4):
			t.Errorf("status %q: %v", c.status, r)
		case !c.ok && (r == nil || r.Code != RejectNotPublished || r.Field != "flow_id"):
			t.Errorf("status %q: %v, want flow_not_published", c.status, r)
		}
	}
}

func TestMappingChecks(t *testing.T) {
	v := catalogValidator(CatalogOff)
	for _, c := range []struct {
		name string
		edit func(*schemas.Step)
		code string
	}{
		{"placeholder in both maps", func(s *schemas.Step) { s.FixedText = map[string]string{"1": "x"} }, RejectVariables},
		{"bad placeholder name", func(s *schemas.Step) { s.Variables = map[string]string{"{{1}}": "code"} }, RejectVariables},
		{"empty param name", func(s *schemas.Step) { s.Variables = map[string]string{"1": ""} }, RejectVariables},
		{"empty failure code", func(s *schemas.Step) { s.FailureCodes = []string{" "} }, RejectFailureCodes},
		{"too many failure codes", func(s *schemas.Step) { s.FailureCodes = make([]string, 33) }, RejectFailureCodes},
	} {
		req := catalogRequest()
		req.Steps[0].TemplateCategory = "authentication"
		c.edit(&req.Steps[0])
		if _, r := v.ValidateSend(req, nil); r == nil || r.Code != c.code {
			t.Errorf("%s: %v, want %s", c.name, r, c.code)
		}
	}
}

// TestOtherChannelWithThreeChannels: the other channel keeps its meaning
// between SMS and WhatsApp; after RCS, which has two others, the channel
// must be named.
func TestOtherChannelWithThreeChannels(t *testing.T) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	steps := []schemas.Step{
		{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 10},
		{From: "+4915100000000", Template: "t", TemplateCategory: "text", DelaySeconds: 10},
		{Channel: "rcs", From: "acme_agent", Template: "t", DelaySeconds: 10},
		{From: "ACME", Template: "t", DelaySeconds: 10},
	}
	_, r := v.ValidateSteps(steps)
	if r == nil || r.Code != RejectChannelAmbiguous || r.Field != "steps[3].channel" {
		t.Fatalf("after rcs: %v, want channel_ambiguous on steps[3].channel", r)
	}
	steps[3].Channel = "sms"
	got, r := v.ValidateSteps(steps)
	if r != nil || got[1].Channel != "whatsapp" {
		t.Fatalf("%v, %+v: the step after sms is whatsapp", r, got)
	}
}

func TestPlaceholders(t *testing.T) {
	for _, c := range []struct {
		body string
		want []string
		err  string
	}{
		{"Hi {{name}}, code {{ code }}; again {{name}}", []string{"name", "code"}, ""},
		{"{{2}} then {{1}} and {{2}}", []string{"1", "2"}, ""},
		{"no placeholders, {braces} {{ }}", nil, ""},
		{"{{1}} {{3}}", nil, "without gaps"},
		{"{{0}}", nil, "from 1"},
		{"{{1}} {{name}}", nil, "mixes"},
		{"{{01}}", []string{"01"}, ""}, // not a number as written: a name
	} {
		got, err := Placeholders(c.body)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: %v, want an error about %q", c.body, err, c.err)
		case c.err == "" && (err != nil || !reflect.DeepEqual(got, c.want)):
			t.Errorf("%q: %q, %v; want %q", c.body, got, err, c.want)
		}
	}
	text, missing := Render("{{1}} is your code, {{2}}. {{1}}!", map[string]string{"1": "4242"})
	if text != "4242 is your code, {{2}}. 4242!" || !reflect.DeepEqual(missing, []string{"2"}) {
		t.Fatalf("Render = %q, missing %q", text, missing)
	}
}

func TestCatalogEntries(t *testing.T) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	sender := schemas.Sender{Channel: "sms", ID: "ACME", Status: schemas.SenderActive, ChangedBy: "ada"}
	if r := v.ValidateSender(sender); r != nil {
		t.Fatal(r)
	}
	for _, c := range []struct {
		edit  func(*schemas.Sender)
		field string
	}{
		{func(s *schemas.Sender) { s.ID = "AC" }, "id"},
		{func(s *schemas.Sender) { s.ID = "ACMEBANKLTD1" }, "id"}, // 12 characters
		{func(s *schemas.Sender) { s.Channel, s.ID = "whatsapp", "15550000001" }, "id"},
		{func(s *schemas.Sender) { s.Channel, s.ID = "rcs", "bad agent" }, "id"},
		{func(s *schemas.Sender) { s.Channel = "fax" }, "channel"},
		{func(s *schemas.Sender) { s.Status = "on" }, "status"},
		{func(s *schemas.Sender) { s.ChangedBy = "" }, "changed_by"},
	} {
		s := sender
		c.edit(&s)
		if r := v.ValidateSender(s); r == nil || r.Field != c.field {
			t.Errorf("%+v: %v, want a rejection of %s", s, r, c.field)
		}
	}
	for _, ok := range []schemas.Sender{
		{Channel: "sms", ID: "+4915100000000"}, {Channel: "sms", ID: "12345"}, {Channel: "whatsapp", ID: "+4915100000000"},
		{Channel: "rcs", ID: "acme_agent@rbm.goog"},
	} {
		ok.Status, ok.ChangedBy = schemas.SenderDisabled, "ada"
		if r := v.ValidateSender(ok); r != nil {
			t.Errorf("%+v: %v", ok, r)
		}
	}

	tmpl := schemas.Template{Channel: "whatsapp", Name: "otp", Category: "marketing", Body: "Code {{1}}", Status: schemas.TemplatePending, ChangedBy: "ada"}
	if r := v.ValidateTemplate(tmpl); r != nil {
		t.Fatalf("a marketing template may be stored (steps may not use it): %v", r)
	}
	for _, c := range []struct {
		edit  func(*schemas.Template)
		field string
	}{
		{func(t *schemas.Template) { t.Category = "promo" }, "category"},
		{func(t *schemas.Template) { t.Body = "{{1}} {{code}}" }, "body"},
		{func(t *schemas.Template) { t.Body = "" }, "body"},
		{func(t *schemas.Template) { t.Status = "ok" }, "status"},
		{func(t *schemas.Template) { t.Name = "a/b" }, "name"},
		{func(t *schemas.Template) { t.Sender = "not a number" }, "sender"},
	} {
		tp := tmpl
		c.edit(&tp)
		if r := v.ValidateTemplate(tp); r == nil || r.Field != c.field {
			t.Errorf("%+v: %v, want a rejection of %s", tp, r, c.field)
		}
	}
	// SMS has no category list: any is kept as written.
	if r := v.ValidateTemplate(schemas.Template{Channel: "sms", Name: "otp", Category: "transactional", Body: "Code\n{{code}}",
		Status: schemas.TemplateApproved, ChangedBy: "ada"}); r != nil {
		t.Fatal(r)
	}
}

// TestSendCarriesTheRenderedTemplate: a step's send carries the template
// params in the template's order, its language and provider id; the state
// keeps none of it once the step is sent.
func TestSendCarriesTheRenderedTemplate(t *testing.T) {
	in, r := catalogValidator(CatalogEnforce).ValidateSend(catalogRequest(), nil)
	if r != nil {
		t.Fatal(r)
	}
	in.Pos = Position{SourceRequests, 0, 1}
	st, out := Apply(nil, in, t0)
	first := expectSend(t, out, 0, "whatsapp", ReasonInitial)
	if !reflect.DeepEqual(first.TemplateParams, []string{"123456"}) || first.TemplateLanguage != "en" || first.ProviderTemplateID != "" {
		t.Fatalf("first send %+v", first)
	}
	if st.Steps[0].Args != nil || st.Steps[0].Language != "" || st.Steps[1].Args == nil {
		t.Fatalf("state keeps what only the sent step's send needed: %+v", st.Steps)
	}
	st, out = Apply(st, DeadlineElapsed{Step: 0}, st.DeadlineTime())
	second := expectSend(t, out, 1, "sms", ReasonTimeout)
	if !reflect.DeepEqual(second.TemplateParams, []string{"ACME", "123456"}) || second.ProviderTemplateID != "1107160000000012345" {
		t.Fatalf("second send %+v", second)
	}
	if st.Steps[1].Args != nil || st.Steps[1].ProviderTemplateID != "" {
		t.Fatalf("state after the last send: %+v", st.Steps)
	}
}

// TestFailureCodes: a failure the step lists falls back; another closes the
// flow FAILED with no second send, the reason on FLOW_CLOSED.
func TestFailureCodes(t *testing.T) {
	steps := twoSteps()
	steps[0].FailureCodes = []string{"131026", "FAILED"}
	cases := []struct {
		status, code string
		fallsBack    bool
	}{
		{"failed", "131026", true},
		{"failed", " 131026", true},
		{"FAILED", "", true}, // the raw status is listed
		{"undeliverable", "", false},
	}
	for _, c := range cases {
		rep := dlr(0, "failed", Failed)
		rep.Status, rep.ErrorCode = c.status, c.code
		st, out := Apply(started(t, steps), rep, t0.Add(time.Second))
		if c.fallsBack {
			expectSend(t, out, 1, "sms", ReasonFailure)
			continue
		}
		if len(out.Sends) != 0 {
			t.Fatalf("%s/%s: %d sends, want none", c.status, c.code, len(out.Sends))
		}
		expectClosed(t, st, OutcomeFailed)
		closed := out.Events[len(out.Events)-1]
		if closed.Type != EventFlowClosed || closed.Reason != CloseReasonFailureNotListed {
			t.Fatalf("%s/%s: last event %+v", c.status, c.code, closed)
		}
	}
	// A step without codes falls back on any failure, as before.
	rep := dlr(0, "undeliverable", Failed)
	_, out := Apply(started(t, twoSteps()), rep, t0.Add(time.Second))
	expectSend(t, out, 1, "sms", ReasonFailure)
}
