package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// options are the values a select offers, in order.
func options(t *testing.T, page, id string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<select id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</select>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no select %s", id)
	}
	var out []string
	for _, o := range regexp.MustCompile(`<option value="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, strings.ReplaceAll(o[1], "&#43;", "+"))
	}
	return out
}

func selected(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<select id="` + regexp.QuoteMeta(id) + `"[^>]*>.*?<option value="([^"]*)" selected>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return strings.ReplaceAll(m[1], "&#43;", "+")
}

// errorAt is the message shown next to an input.
func errorAt(page, id string) string {
	m := regexp.MustCompile(`(?s)<p class="error" id="` + regexp.QuoteMeta(id) + `-error"[^>]*>(.*?)</p>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return text(m[1])
}

// summary is the error summary's text.
func summary(page string) string {
	m := regexp.MustCompile(`(?s)<div class="error-summary".*?</div>`).FindString(page)
	return text(m)
}

// TestEditorNewFlow: the page describes the seed's pane: the second
// channel is the other one by default, From lists only the channel's
// active senders, Template only its approved templates (WhatsApp: text
// and authentication).
func TestEditorNewFlow(t *testing.T) {
	h := newHarness(t)
	page := h.login("eddie", "eddie-pw").get("/flows/new").Body
	if got := selected(t, page, "steps-0-channel"); got != "whatsapp" {
		t.Errorf("first channel %q", got)
	}
	if got := selected(t, page, "steps-1-channel"); got != "sms" {
		t.Errorf("second channel %q, want sms (the other channel)", got)
	}
	if got := options(t, page, "steps-0-from"); !slices.Equal(got, []string{"", waActive}) {
		t.Errorf("whatsapp From offers %v, want the active number only", got)
	}
	if got := options(t, page, "steps-0-template"); !slices.Equal(got, []string{"", "otp_auth", "otp_text"}) {
		t.Errorf("whatsapp Template offers %v, want approved text/authentication only (no promo, no otp_pending)", got)
	}
	if got := options(t, page, "steps-1-from"); !slices.Equal(got, []string{"", "ACME"}) {
		t.Errorf("sms From offers %v", got)
	}
	if got := options(t, page, "steps-1-template"); !slices.Equal(got, []string{"", "otp_sms"}) {
		t.Errorf("sms Template offers %v (otp_sms_de is rejected)", got)
	}
	if got := options(t, page, "steps-0-success_on"); !slices.Equal(got, []string{"delivered", "read"}) {
		t.Errorf("whatsapp success %v", got)
	}
	if got := options(t, page, "steps-1-success_on"); !slices.Equal(got, []string{"delivered"}) {
		t.Errorf("sms success %v: sms has no read receipts", got)
	}
	if !strings.Contains(page, `min="5" max="900"`) {
		t.Errorf("the delay input has no min and max")
	}
}

// TestEditorChannelDefaults: the second channel follows the first while
// it has its default; adding a step after RCS leaves the choice open.
func TestEditorChannelDefaults(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	form := url.Values{"step_count": {"2"}, "action": {"refresh"},
		"steps[0].channel": {"sms"}, "steps[0].delay_seconds": {"30"},
		"steps[1].channel": {"sms"}, "steps[1].channel_default": {"sms"}, "steps[1].delay_seconds": {"60"}}
	page := a.post("/flows/new", form).Body
	if got := selected(t, page, "steps-1-channel"); got != "whatsapp" {
		t.Errorf("first channel sms: second %q, want whatsapp", got)
	}
	if got := options(t, page, "steps-1-from"); !slices.Equal(got, []string{"", waActive}) {
		t.Errorf("second step From %v after the channel changed", got)
	}
	// A step whose channel changed drops the old channel's sender and template.
	changed := mergeForm(editorForm("c", "", otpFlow("c").Steps), "action", "refresh", "steps[0].channel", "rcs", "steps[0].channel_was", "whatsapp")
	page = a.post("/flows/new", changed).Body
	if got := selected(t, page, "steps-0-from"); got != "" {
		t.Errorf("whatsapp sender kept on rcs: %q", got)
	}
	if got := options(t, page, "steps-0-from"); !slices.Equal(got, []string{"", "acme_agent"}) {
		t.Errorf("rcs From %v", got)
	}
	// A channel the person chose stays.
	form.Set("steps[1].channel", "rcs")
	if got := selected(t, a.post("/flows/new", form).Body, "steps-1-channel"); got != "rcs" {
		t.Errorf("chosen rcs became %q", got)
	}
	// After RCS there is no single other channel.
	form.Set("action", "add_step")
	page = a.post("/flows/new", form).Body
	if got := selected(t, page, "steps-2-channel"); got != "" {
		t.Errorf("after rcs: %q, want no default", got)
	}
	if !strings.Contains(page, "The step before has no single other channel: choose one.") {
		t.Errorf("no hint after rcs")
	}
	// The JS fragment renders the same steps.
	frag := a.post("/editor/steps", form)
	if frag.Code != http.StatusOK || !strings.Contains(frag.Body, `id="steps-1-channel"`) || strings.Contains(frag.Body, "<html") {
		t.Errorf("fragment: %d", frag.Code)
	}
}

// TestEditorPreview: the template's text, filled through the step's
// mapping with the sample params.
func TestEditorPreview(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	form := editorForm("p", "", []schemas.Step{
		{Channel: "whatsapp", From: waActive, Template: "otp_auth", DelaySeconds: 30, Variables: map[string]string{"1": "code"}},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	})
	form.Set("sample_params", "code=123456\n")
	form.Set("action", "refresh")
	page := a.post("/flows/new", form).Body
	if !strings.Contains(page, `<p class="message">123456 is your verification code.</p>`) {
		t.Errorf("whatsapp preview:\n%s", text(page))
	}
	if !strings.Contains(page, `<p class="message">Your ACME code is 123456</p>`) {
		t.Errorf("sms preview (a named placeholder takes its own param)")
	}
	// The SMS step's one template is chosen: the hint says what the list
	// holds, not that there is nothing to choose.
	if hint := regexp.MustCompile(`(?s)<p class="hint" id="steps-1-template-hint">(.*?)</p>`).FindStringSubmatch(page); hint == nil ||
		!strings.HasPrefix(text(hint[1]), "The approved templates of this channel") {
		t.Errorf("sms template hint %q", hint)
	}
	// Fixed text, and a positional placeholder left unmapped.
	form.Set("steps[0].map[0].kind", "fixed")
	form.Set("steps[0].map[0].value", "000000")
	form.Set("steps[1].map[0].placeholder", "code")
	form.Set("steps[1].map[0].value", "otp")
	form.Set("sample_params", "")
	page = a.post("/flows/new", form).Body
	if !strings.Contains(page, `<p class="message">000000 is your verification code.</p>`) || !strings.Contains(page, `<p class="message">Your ACME code is [otp]</p>`) {
		t.Errorf("fixed text and a mapped param:\n%s", text(page))
	}
	form.Set("steps[0].map[0].kind", "param")
	form.Set("steps[0].map[0].value", "")
	page = a.post("/flows/new", form).Body
	if !strings.Contains(text(page), "Not filled in yet: variables: template otp_auth needs {{1}} mapped to a request param or fixed text") {
		t.Errorf("unmapped positional:\n%s", text(page))
	}
	// The mapping rows follow the template chosen.
	form.Set("steps[0].template", "otp_text")
	page = a.post("/flows/new", form).Body
	if !strings.Contains(page, `name="steps[0].map[1].placeholder" value="code"`) || !strings.Contains(page, `<p class="message">Hello [name], your code is [code].</p>`) {
		t.Errorf("otp_text rows:\n%s", text(page))
	}
}

// TestEditorDelay: 4 and 901 are refused with the rules' message, next to
// the field and in the summary (linked to it); the check the script asks
// as the person types says the same.
func TestEditorDelay(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	for delay, want := range map[int32]string{
		4:   "delay_out_of_range: steps[1].delay_seconds: 4 is outside 5..900",
		901: "delay_out_of_range: steps[1].delay_seconds: 901 is outside 5..900",
	} {
		steps := otpFlow("d").Steps
		steps[1].DelaySeconds = delay
		r := a.post("/flows/new", mergeForm(editorForm("d", "", steps), "action", "save_draft"))
		if r.Code != http.StatusUnprocessableEntity {
			t.Fatalf("delay %d: %d", delay, r.Code)
		}
		if got := errorAt(r.Body, "steps-1-delay_seconds"); got != want {
			t.Errorf("delay %d next to the field: %q, want %q", delay, got, want)
		}
		if !strings.Contains(r.Body, `<a href="#steps-1-delay_seconds">`+want+`</a>`) {
			t.Errorf("delay %d: not in the summary, linked:\n%s", delay, summary(r.Body))
		}
		if !strings.Contains(r.Body, `value="`+itoa(delay)+`" data-check-delay="1" aria-describedby="steps-1-delay_seconds-hint steps-1-delay_seconds-error" aria-invalid="true"`) {
			t.Errorf("delay %d: the input is not kept and marked invalid", delay)
		}
		var check delayCheck
		if err := json.Unmarshal([]byte(a.get("/check/delay?step=1&value="+itoa(delay)).Body), &check); err != nil || check.Message != want {
			t.Errorf("check %d: %+v %v", delay, check, err)
		}
	}
	var check delayCheck
	json.Unmarshal([]byte(a.get("/check/delay?step=0&value=5").Body), &check)
	if check.Message != "" {
		t.Errorf("5 refused: %q", check.Message)
	}
	json.Unmarshal([]byte(a.get("/check/delay?step=0&value=abc").Body), &check)
	if check.Message != `steps[0].delay_seconds: "abc" is not a whole number of seconds` {
		t.Errorf("abc: %q", check.Message)
	}
	if h.store.writeCount() != 0 {
		t.Fatal("a refused flow was written")
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestEditorSaveDraft: a draft is written with status draft, changed_by
// the user, and one log line.
func TestEditorSaveDraft(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	steps := otpFlow("otp").Steps
	steps[1].FailureCodes = []string{"undeliv", " EXPIRED"}
	r := a.post("/flows/new", mergeForm(editorForm("otp", "One-time code", steps), "action", "save_draft"))
	if r.Code != http.StatusSeeOther || r.Location() != "/flows/otp?done="+strings.TrimPrefix(r.Location(), "/flows/otp?done=") {
		t.Fatalf("save: %d %q\n%s", r.Code, r.Location(), text(r.Body))
	}
	d, ok := h.store.Lookup("otp")
	if !ok || d.Status != schemas.FlowDraft || d.ChangedBy != "eddie" || d.Version != 1 || d.Title != "One-time code" {
		t.Fatalf("stored %+v", d)
	}
	if !slices.Equal(d.Steps[1].FailureCodes, []string{"undeliv", "EXPIRED"}) || d.Steps[0].Variables["1"] != "code" {
		t.Errorf("steps %+v", d.Steps)
	}
	page := a.follow(r).Body
	if !strings.Contains(page, "Stored flow otp version 1 (draft).") {
		t.Errorf("no message:\n%s", text(page))
	}
	if !strings.Contains(h.logs.String(), `msg="console change" user=eddie action="save draft" what="flow otp" version=1`) {
		t.Errorf("log:\n%s", h.logs)
	}
	// The message is the user's only, and only once.
	if p := h.login("ada", "ada-pw").get(r.Location()).Body; strings.Contains(p, "Stored flow otp") {
		t.Errorf("another user sees the message")
	}
	// A draft over a published flow says it takes it out of service.
	h.store.seedFlow(t, otpFlow("live"), "cli")
	r = a.post("/flows/live", mergeForm(editorForm("live", "OTP live", otpFlow("live").Steps), "action", "save_draft", "base_version", "1"))
	if page := a.follow(r).Body; !strings.Contains(page, "Flow live was published (version 1): until you publish it again, requests naming it are rejected flow_not_published.") {
		t.Errorf("no out-of-service note:\n%s", text(page))
	}
}

// TestEditorPublish: publishing checks the catalog with the rules'
// message; a flow the catalog allows is written published.
func TestEditorPublish(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	steps := otpFlow("otp").Steps
	steps[0].From = waDisabled // what an old flow or a forged form can name
	form := mergeForm(editorForm("otp", "", steps), "action", "publish")
	r := a.post("/flows/new", form)
	want := `sender_disabled: steps[0].from: whatsapp sender "+4915100000009" is disabled`
	if r.Code != http.StatusUnprocessableEntity || errorAt(r.Body, "steps-0-from") != want || !strings.Contains(summary(r.Body), want) {
		t.Fatalf("publish with a disabled sender: %d, field %q\n%s", r.Code, errorAt(r.Body, "steps-0-from"), summary(r.Body))
	}
	// The form keeps the sender, marked, rather than change it silently.
	if got := selected(t, r.Body, "steps-0-from"); got != waDisabled {
		t.Errorf("From became %q", got)
	}
	// A draft may name a disabled SMS sender (the catalog warns, refuses
	// nothing); the note says what publish would say. (A WhatsApp draft
	// cannot: without the catalog's template the category is missing, and
	// the draft gets publish's message, as with fallback flows put.)
	steps = otpFlow("otp").Steps
	steps[1].From = "OLDCO"
	r = a.post("/flows/new", mergeForm(editorForm("otp", "", steps), "action", "save_draft"))
	if page := text(a.follow(r).Body); !strings.Contains(page, `Publish would refuse this draft now: sender_disabled: steps[1].from: sms sender "OLDCO" is disabled`) {
		t.Errorf("draft note:\n%s", text(page))
	}
	// A WhatsApp marketing template: refused with the rules' words, at the template.
	steps = otpFlow("m").Steps
	steps[0].Template, steps[0].Variables = "promo", nil
	r = a.post("/flows/new", mergeForm(editorForm("m", "", steps), "action", "publish"))
	if got := errorAt(r.Body, "steps-0-template"); !strings.HasPrefix(got, "template_category_not_allowed: steps[0].template_category:") {
		t.Errorf("marketing: %q", got)
	}
	// The fixed flow publishes.
	form = mergeForm(editorForm("otp", "", otpFlow("otp").Steps), "action", "publish", "base_version", "1")
	r = a.post("/flows/otp", form)
	if d, _ := h.store.Lookup("otp"); r.Code != http.StatusSeeOther || d.Status != schemas.FlowPublished || d.Version != 2 {
		t.Fatalf("publish: %d %+v\n%s", r.Code, d, text(r.Body))
	}
	if page := a.follow(r).Body; !strings.Contains(page, "Published flow otp: version 2.") {
		t.Errorf("publish message:\n%s", text(page))
	}
	// Publishing it again changes nothing.
	r = a.post("/flows/otp", mergeForm(form, "base_version", "2"))
	if page := a.follow(r).Body; !strings.Contains(page, "Flow otp version 2 is already published; nothing written.") {
		t.Errorf("again:\n%s", text(page))
	}
	if d, _ := h.store.Lookup("otp"); d.Version != 2 {
		t.Errorf("version %d after publishing a published flow", d.Version)
	}
}

// TestEditorConflicts: a new flow's id must be free; a title unique; a
// form opened on an older version is not written over a newer one
// without the person knowing.
func TestEditorConflicts(t *testing.T) {
	h := newHarness(t)
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	a := h.login("eddie", "eddie-pw")
	r := a.post("/flows/new", mergeForm(editorForm("otp", "", otpFlow("otp").Steps), "action", "save_draft"))
	if got := errorAt(r.Body, "flow_id"); !strings.Contains(got, `flow_id: a flow "otp" already exists (version 1)`) {
		t.Errorf("taken id: %q", got)
	}
	r = a.post("/flows/new", mergeForm(editorForm("otp2", "otp OTP", otpFlow("otp2").Steps), "action", "save_draft"))
	if got := errorAt(r.Body, "title"); got != `title_taken: title: "otp OTP" is the title of flow "otp"` {
		t.Errorf("taken title: %q", got)
	}
	r = a.post("/flows/new", mergeForm(editorForm("", "", otpFlow("").Steps), "action", "save_draft"))
	if got := errorAt(r.Body, "flow_id"); got != "flow_id: is required" {
		t.Errorf("no id: %q", got)
	}
	h.store.seedFlow(t, otpFlow("otp"), "bob") // version 2, while eddie edits version 1
	form := mergeForm(editorForm("otp", "OTP otp", otpFlow("otp").Steps), "action", "save_draft", "base_version", "1")
	r = a.post("/flows/otp", form)
	if r.Code != http.StatusUnprocessableEntity || !strings.Contains(summary(r.Body), "Flow otp changed since you opened it: version 2, by bob") {
		t.Fatalf("stale form: %d\n%s", r.Code, summary(r.Body))
	}
	if !strings.Contains(r.Body, `name="base_version" value="2"`) {
		t.Fatalf("the form does not take the new base")
	}
	if r = a.post("/flows/otp", mergeForm(form, "base_version", "2")); r.Code != http.StatusSeeOther {
		t.Fatalf("saving again: %d", r.Code)
	}
}

// TestEditorSteps: steps are added up to the limit and removed down to 2.
func TestEditorSteps(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	form := mergeForm(editorForm("s", "", otpFlow("s").Steps), "action", "add_step")
	page := a.post("/flows/new", form).Body
	if got := selected(t, page, "steps-2-channel"); got != "whatsapp" {
		t.Errorf("third step after sms: %q", got)
	}
	if !strings.Contains(page, `name="step_count" value="3"`) {
		t.Fatal("no third step")
	}
	form = mergeForm(editorForm("s", "", otpFlow("s").Steps), "action", "remove_step_0")
	if page := a.post("/flows/new", form).Body; !strings.Contains(page, `name="step_count" value="2"`) {
		t.Errorf("a 2-step flow lost a step")
	}
	form.Set("step_count", "1")
	form.Set("action", "save_draft")
	r := a.post("/flows/new", form)
	if got := errorAt(r.Body, "steps"); got != "too_few_steps: steps: a fallback flow needs at least 2 steps, got 1" {
		t.Errorf("one step: %q", got)
	}
}

// TestEditorStoreRefuses: what the store refuses is shown, next to its
// field when it names one (a title taken between the check and the write).
func TestEditorStoreRefuses(t *testing.T) {
	h := newHarness(t)
	a := h.login("eddie", "eddie-pw")
	form := mergeForm(editorForm("otp", "Codes", otpFlow("otp").Steps), "action", "save_draft")
	h.store.failNext = &configstore.InvalidError{Err: &flow.Rejection{Code: configstore.RejectTitleTaken, Field: "title", Detail: `"Codes" is the title of flow "x"`}}
	r := a.post("/flows/new", form)
	if r.Code != http.StatusUnprocessableEntity || errorAt(r.Body, "title") != `title_taken: title: "Codes" is the title of flow "x"` {
		t.Errorf("title refused by the store: %d %q", r.Code, errorAt(r.Body, "title"))
	}
	h.store.failNext = &configstore.WriteError{Op: "store flow otp", Err: errors.New("NOT_ENOUGH_REPLICAS")}
	r = a.post("/flows/new", form)
	if r.Code != http.StatusUnprocessableEntity || !strings.Contains(summary(r.Body), "The change was not stored: store flow otp: NOT_ENOUGH_REPLICAS") {
		t.Errorf("write error: %d\n%s", r.Code, summary(r.Body))
	}
	if strings.Contains(h.logs.String(), "console change") {
		t.Errorf("a change logged that was not stored")
	}
}

func TestStaticAndHeaders(t *testing.T) {
	h := newHarness(t)
	for path, ctype := range map[string]string{"/static/console.css": "text/css", "/static/console.js": "text/javascript"} {
		r := (&agent{h: h}).get(path)
		if r.Code != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %q", path, r.Code, r.Header.Get("Content-Type"))
		}
	}
	r := h.login("vera", "vera-pw").get("/flows")
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", r.Header)
	}
	// Nothing is fetched from elsewhere: every src and href is local.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(r.Body, -1) {
		if strings.Contains(m[1], "//") {
			t.Errorf("external reference %s", m[1])
		}
	}
}
