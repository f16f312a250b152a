package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/schemas"
)

func TestSenders(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	// Refused by ValidateSender, with its message next to the field.
	r := a.post("/senders", url.Values{"channel": {"sms"}, "id": {"A"}})
	want := `sender_invalid: id: "A" is not an alphanumeric sender id (3 to 11 letters and digits) or a number (E.164, or 3 to 15 digits)`
	if r.Code != http.StatusUnprocessableEntity || errorAt(r.Body, "id") != want {
		t.Fatalf("bad id: %d %q", r.Code, errorAt(r.Body, "id"))
	}
	r = a.post("/senders", url.Values{"channel": {"whatsapp"}, "id": {"+4915100000077"}, "label": {"support"}})
	snd, _ := h.store.Sender("whatsapp", "+4915100000077")
	if r.Code != http.StatusSeeOther || snd.Status != schemas.SenderActive || snd.ChangedBy != "eddie" || snd.Label != "support" {
		t.Fatalf("add: %d %+v", r.Code, snd)
	}
	if page := text(a.follow(r).Body); !strings.Contains(page, "Stored whatsapp sender +4915100000077 version 1 (active).") {
		t.Errorf("add message:\n%s", page)
	}
	r = a.post("/senders/disable", url.Values{"channel": {"sms"}, "id": {"ACME"}})
	if snd, _ := h.store.Sender("sms", "ACME"); r.Code != http.StatusSeeOther || snd.Status != schemas.SenderDisabled || snd.Version != 2 {
		t.Fatalf("disable: %d %+v", r.Code, snd)
	}
	if page := text(a.follow(a.post("/senders/disable", url.Values{"channel": {"sms"}, "id": {"ACME"}})).Body); !strings.Contains(page, "sms sender ACME is already disabled (version 2); nothing written.") {
		t.Errorf("disable again:\n%s", page)
	}
	// A disabled sender is no longer offered to a step.
	page := a.get("/flows/new").Body
	if got := options(t, page, "steps-1-from"); len(got) != 1 || !strings.Contains(text(page), "No active sender of this channel: add one on the Senders page.") {
		t.Errorf("sms From after disabling ACME: %v", got)
	}
	page = text(a.get("/senders").Body)
	if !strings.Contains(page, "Enable ACME") || !strings.Contains(page, "Disable +4915100000077") {
		t.Errorf("buttons")
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `action="put sender" what="whatsapp sender +49*********77" version=1`) ||
		!strings.Contains(logs, `action="disable sender" what="sms sender ACME" version=2`) {
		t.Errorf("log:\n%s", logs)
	}
}

func TestTemplates(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	form := url.Values{"channel": {"whatsapp"}, "name": {"otp2"}, "language": {"en"}, "category": {"text"},
		"body": {"{{1}} and {{3}}"}, "status": {"approved"}}
	r := a.post("/templates", form)
	if r.Code != http.StatusUnprocessableEntity || errorAt(r.Body, "body") != "template_invalid: body: positional placeholders must be {{1}} to {{2}} without gaps" {
		t.Fatalf("gap: %d %q", r.Code, errorAt(r.Body, "body"))
	}
	form.Set("category", "promotion")
	form.Set("body", "{{1}} is your code")
	if got := errorAt(a.post("/templates", form).Body, "category"); !strings.HasPrefix(got, `template_invalid: category: "promotion" is not a whatsapp category`) {
		t.Errorf("category: %q", got)
	}
	form.Set("category", "Authentication")
	r = a.post("/templates", form)
	tm, _ := h.store.Template("whatsapp", "otp2")
	if r.Code != http.StatusSeeOther || tm.Category != "authentication" || tm.ChangedBy != "eddie" || tm.Version != 1 {
		t.Fatalf("add: %d %+v\n%s", r.Code, tm, summary(r.Body))
	}
	if got := options(t, a.get("/flows/new").Body, "steps-0-template"); !strings.Contains(strings.Join(got, ","), "otp2") {
		t.Errorf("the new template is not offered: %v", got)
	}
	// The preview fills it; a missing param is named.
	txt := text(a.get("/templates/preview?channel=whatsapp&name=otp2&params=1%3D424242").Body)
	if !strings.Contains(txt, "The message 424242 is your code") {
		t.Errorf("preview:\n%s", txt)
	}
	txt = text(a.get("/templates/preview?channel=sms&name=otp_sms&params=other%3D1").Body)
	if !strings.Contains(txt, `template otp_sms needs "code" (add code=... to the sample params)`) || !strings.Contains(txt, "Your ACME code is {{code}}") {
		t.Errorf("missing param:\n%s", txt)
	}
	if r := a.get("/templates/preview?channel=sms&name=nope"); r.Code != http.StatusNotFound {
		t.Errorf("unknown template: %d", r.Code)
	}
}

func TestOutcomesPages(t *testing.T) {
	h := newHarness(t)
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	a := h.login("vera", "vera-pw")
	page := a.get("/outcomes?window=24h").Body
	txt := text(page)
	if !strings.Contains(txt, "Outcomes of every flow, last day") || !strings.Contains(txt, "flows started 99") ||
		!strings.Contains(page, `<figure class="charts">`) || !strings.Contains(page, `<svg role="img" aria-label="Outcomes of every flow, last day">`) ||
		!strings.Contains(page, "<figcaption>") {
		t.Errorf("total:\n%s", txt)
	}
	if txt := text(a.get("/outcomes?flow=otp").Body); !strings.Contains(txt, "Outcomes of flow otp, last hour") || !strings.Contains(txt, "flows started 7") ||
		!strings.Contains(txt, "5s to 1m0s 2") || !strings.Contains(txt, "1m0s or more 1") {
		t.Errorf("one flow:\n%s", txt)
	}
	if txt := text(a.get("/flows/otp").Body); !strings.Contains(txt, "Outcomes of this flow, last hour") || !strings.Contains(txt, "delivered after a fallback 2") {
		t.Errorf("flow page:\n%s", txt)
	}
	h2 := newHarness(t, func(c *Config) { c.Outcomes = nil })
	if txt := text(h2.login("vera", "vera-pw").get("/outcomes").Body); !strings.Contains(txt, "Outcomes are not configured") {
		t.Errorf("not configured:\n%s", txt)
	}
}

// TestNoPersonalDataInLogs: a session of changes and lookups logs no
// recipient, no param value, no password.
func TestNoPersonalDataInLogs(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Stories = fakeStories{states: map[string]flowstory.Story{"r1": activeStory()}}
	})
	h.post(nil, "/login", url.Values{"name": {"ada"}, "password": {"wrong-" + secretCode}})
	a := h.login("ada", "ada-pw")
	steps := otpFlow("otp").Steps
	form := mergeForm(editorForm("otp", "", steps), "action", "publish", "sample_params", "code="+secretCode)
	a.post("/flows/new", form)
	a.post("/flows/otp/unpublish", nil)
	a.get("/flows/otp/test?run=1&params=code%3D" + secretCode)
	a.get("/lookup?request_id=r1")
	a.post("/senders", url.Values{"channel": {"whatsapp"}, "id": {recipient}})
	logs := h.logs.String()
	for _, secret := range []string{recipient, secretCode, "ada-pw"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	if n := strings.Count(logs, "console change"); n != 3 {
		t.Errorf("%d change lines, want 3:\n%s", n, logs)
	}
}

// TestStartedUnderLeanEvents: a window with closes and no FLOW_STARTED
// (the processor runs with --events=lean) says the figure is not
// recorded, instead of showing 0 flows started.
func TestStartedUnderLeanEvents(t *testing.T) {
	for _, tc := range []struct {
		sum         OutcomeSummary
		wantUnknown bool
	}{
		{OutcomeSummary{Started: 0, Closed: 3}, true},
		{OutcomeSummary{Started: 0, Closed: 0}, false},
		{OutcomeSummary{Started: 2, Closed: 3}, false},
	} {
		row := newOutcomeTable(tc.sum, "c").Rows[0]
		if row.Label != "flows started" || (row.Unknown != "") != tc.wantUnknown || row.Value != tc.sum.Started {
			t.Errorf("%+v: row %+v, want unknown %v", tc.sum, row, tc.wantUnknown)
		}
	}
}
