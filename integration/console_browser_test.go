package integration

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// The web console as a person uses it, in headless Chromium (issue 18's
// "Done means"); the helpers are in browser_helpers_test.go.

// TestBrowserBuildPublishAndLookUpAFlow: an editor builds a WhatsApp then
// SMS flow the way the source page describes it (the second channel
// defaulted, senders and templates filtered by channel, the preview, the
// delay refused as typed with the rules' message), publishes it; a request
// naming it, sent with client.Publisher, falls back to SMS and is
// delivered; the lookup tells its story with the recipient masked, and the
// outcome page counts it from fallback.events.
func TestBrowserBuildPublishAndLookUpAFlow(t *testing.T) {
	browserDeps(t)
	h := newHarness(t)
	h.browseCatalog()
	h.start(nil)
	c := startConsole(t, h)
	b := newBrowser(t, c.url)

	b.login(editorName, editorPassword)
	b.clickNav("New flow")
	b.waitFor("the editor", `document.getElementById("steps-1-channel")`)

	// The page's defaults: WhatsApp first, then the other channel, SMS.
	if first, second := b.value("steps-0-channel"), b.value("steps-1-channel"); first != "whatsapp" || second != "sms" {
		t.Fatalf("a new flow's channels: %q then %q, want whatsapp then sms", first, second)
	}
	// From: only the active senders of the step's channel; Template: only
	// its approved templates of a category a step may use.
	for id, want := range map[string][]string{
		"steps-0-from":     {"", "+4915100000000", "+4915100000001"}, // not the disabled +4915100000009, nor ACME
		"steps-0-template": {"", "otp_auth", "welcome"},              // not promo (marketing), otp_pending, otp_sms
		"steps-1-from":     {"", "ACME"},                             // not OLDCO (disabled)
		"steps-1-template": {"", "otp_sms"},
	} {
		if got := b.options(id); !reflect.DeepEqual(got, want) {
			t.Errorf("%s offers %q, want %q", id, got, want)
		}
	}

	// A later step's channel follows the step before while it keeps its
	// default: SMS first, then WhatsApp; and back.
	b.choose("steps-0-channel", "sms")
	if second, from := b.value("steps-1-channel"), b.options("steps-0-from"); second != "whatsapp" || !reflect.DeepEqual(from, []string{"", "ACME"}) {
		t.Errorf("after choosing SMS first: the second channel %q (want whatsapp), the first step's From offers %q", second, from)
	}
	b.choose("steps-0-channel", "whatsapp")
	if second := b.value("steps-1-channel"); second != "sms" {
		t.Errorf("after choosing WhatsApp first again: the second channel %q, want sms", second)
	}

	b.run("type the id and title", chromedp.SendKeys(chromedp.ID("flow_id"), "otp-login"), chromedp.SendKeys(chromedp.ID("title"), "Login code"))
	b.choose("steps-0-from", "+4915100000000")
	b.choose("steps-0-template", "otp_auth")
	b.waitText("#steps-0-preview", "is your ACME code")
	// The placeholder {{1}} from the param code, and a sample code for the
	// preview: typed, then Tab (the change re-renders the steps).
	b.markSteps()
	b.run("map {{1}} to code", chromedp.SendKeys(chromedp.ID("steps-0-map-0-value"), "code"+kb.Tab))
	b.waitSteps("the mapping")
	b.markSteps()
	b.run("type a sample param", chromedp.SendKeys(chromedp.ID("sample_params"), "code=123456"+kb.Tab))
	b.waitSteps("the sample params")
	b.waitText("#steps-0-preview .message", "123456 is your ACME code. Do not share it.")

	// The delay, checked by the server's rules as it is typed.
	for _, v := range []string{"4", "901"} {
		b.retype("steps-0-delay_seconds", v)
		want := fmt.Sprintf("delay_out_of_range: steps[0].delay_seconds: %s is outside 5..900", v)
		b.waitText("#steps-0-delay_seconds-error", want)
		if got := eval[string](b, `document.getElementById("steps-0-delay_seconds").getAttribute("aria-invalid")`); got != "true" {
			t.Errorf("delay %s: aria-invalid %q", v, got)
		}
	}
	if _, stored := c.app.Store.Lookup("otp-login"); stored || !strings.HasSuffix(b.location(), "/flows/new") {
		t.Fatalf("the delay's messages came from a submit, not from typing (at %s, stored %v)", b.location(), stored)
	}
	b.screenshot("editor-delay", "#steps-0-delay_seconds")
	b.retype("steps-0-delay_seconds", "30")
	b.waitFor("the delay's message to go", `document.getElementById("steps-0-delay_seconds-error").textContent.trim() === ""`)

	b.choose("steps-1-from", "ACME")
	b.choose("steps-1-template", "otp_sms")
	b.waitText("#steps-1-preview .message", "ACME: your code is 123456")
	b.screenshot("editor", "#steps-0")
	b.press("Publish")
	b.waitText(".flash", "Published flow otp-login: version 1.")
	def, ok := c.app.Store.Lookup("otp-login")
	if !ok || !def.IsPublished() || def.ChangedBy != editorName || def.Title != "Login code" || len(def.Steps) != 2 ||
		def.Steps[0].DelaySeconds != 30 || def.Steps[0].Variables["1"] != "code" || def.Steps[1].From != "ACME" {
		t.Fatalf("stored flow %+v", def)
	}

	// A request naming the flow, as an application sends it.
	if err := h.publisher(t).Send(h.ctx, h.namedRequest("web-1", "otp-login")); err != nil {
		t.Fatal(err)
	}
	if s := h.waitSend("web-1/0"); s.Channel != "whatsapp" || s.From != "+4915100000000" || s.Template != "otp_auth" ||
		!reflect.DeepEqual(s.TemplateParams, []string{"424242"}) {
		t.Fatalf("first send %+v", s)
	}

	// The lookup while it waits on WhatsApp: the recipient masked, the
	// params hidden from an editor.
	b.clickNav("Flow lookup")
	b.navigating("look up web-1", chromedp.SendKeys(chromedp.ID("request_id"), "web-1"+kb.Enter))
	b.waitText("dl.facts", "active: waiting on step 0")
	page := eval[string](b, "document.documentElement.outerHTML")
	if !strings.Contains(b.text("dl.facts"), "+49*********78 (masked)") || strings.Contains(page, "+4915112345678") || strings.Contains(page, "424242") {
		t.Errorf("the lookup shows the recipient or the params:\n%s", b.mainText())
	}
	b.screenshot("lookup", "")

	h.advance(7 * time.Second) // WhatsApp says it failed 7 s later, the SMS is delivered 2 s after
	h.status("web-1/0", "failed")
	if s := h.waitSend("web-1/1"); s.Channel != "sms" || s.Reason != flow.ReasonFailure {
		t.Fatalf("fallback send %+v", s)
	}
	h.advance(2 * time.Second)
	h.status("web-1/1", "DELIVRD")
	if closed := h.waitClosed("web-1"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("closed %+v", closed)
	}
	b.press("Look up")
	b.waitText("dl.facts", flow.OutcomeDelivered)
	steps := eval[[]string](b, `[...document.querySelectorAll("table.list tbody tr")].map(r => r.innerText.replace(/\s+/g, " "))`)
	if len(steps) != 2 || !strings.Contains(steps[0], "web-1/0") || !strings.Contains(steps[0], "failed") ||
		!strings.Contains(steps[1], "web-1/1") || !strings.Contains(steps[1], "DELIVRD") || !strings.Contains(steps[1], "succeeded") {
		t.Errorf("the story's steps: %q", steps)
	}
	if facts := b.text("dl.facts"); !strings.Contains(facts, "delivered by step 1") || !strings.Contains(facts, "otp-login version 1") {
		t.Errorf("the story: %s", facts)
	}
	if ttl := eval[string](b, `[...document.querySelectorAll("dl.facts dt")].find(e => e.textContent === "Time to outcome").nextElementSibling.textContent`); ttl != "9s" {
		t.Errorf("time to outcome %q, want 9s", ttl)
	}
	b.screenshot("lookup-closed", "")

	// The outcome page counts the flow once the console's consumer of
	// fallback.events has read its FLOW_CLOSED.
	b.clickNav("Outcomes")
	b.navigating("show the flow's outcomes", chromedp.SendKeys(chromedp.ID("flow"), "otp-login"+kb.Enter))
	b.waitOutcomes("otp-login", map[string]int{"flows started": 1, "flows closed": 1, "delivered after a fallback": 1,
		"fallbacks on a failure": 1, "delivered on the first channel": 0})
	if svg := eval[int](b, `document.querySelectorAll("figure.charts svg").length`); svg == 0 {
		t.Errorf("no chart on the outcome page")
	}
	b.screenshot("outcomes", "")
}

// waitOutcomes reloads the outcome page until its table has the counts
// want (the console counts what it reads of fallback.events).
func (b *browser) waitOutcomes(flowID string, want map[string]int) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		rows := eval[map[string]int](b, `Object.fromEntries([...document.querySelectorAll("table.counts tbody tr")]
			.map(r => [r.querySelector("th").textContent.trim(), Number(r.querySelector("td").textContent)]))`)
		ok := true
		for k, v := range want {
			if n, found := rows[k]; !found || n != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the outcomes of %s: %v, want %v", flowID, rows, want)
		}
		time.Sleep(100 * time.Millisecond) // the polling interval
		b.run("reload the outcomes", chromedp.Reload())
	}
}

// TestBrowserUnpublishWithFlowsRunning: an editor presses Unpublish while
// a flow started from the published flow waits on its silent first step.
// That flow still finishes (its delay runs out, the SMS goes out and is
// delivered); a new request naming the flow is rejected flow_not_published,
// and the console's lookup of that request says so.
func TestBrowserUnpublishWithFlowsRunning(t *testing.T) {
	browserDeps(t)
	h := newHarness(t)
	h.browseCatalog()
	inst := h.start(nil)
	c := startConsole(t, h)
	if _, err := c.app.Store.PutFlow(h.ctx, browserFlow("otp-signup", "Signup code", 30), "ops"); err != nil {
		t.Fatal(err)
	}
	pub := h.publisher(t)
	if err := pub.Send(h.ctx, h.namedRequest("run-1", "otp-signup")); err != nil {
		t.Fatal(err)
	}
	h.waitSend("run-1/0") // and WhatsApp says nothing

	b := newBrowser(t, c.url)
	b.login(editorName, editorPassword)
	b.navigating("open the flow from the list", chromedp.Click(chromedp.JSPath(
		`[...document.querySelectorAll("table.list a")].find(a => a.textContent === "Signup code")`)))
	b.waitText(".meta", "published")
	b.press("Unpublish")
	b.waitText(".flash", "Unpublished flow otp-signup: version 2 is a draft.")
	b.waitText(".meta", "draft")
	if def, _ := c.app.Store.Lookup("otp-signup"); def.IsPublished() || def.Version != 2 || def.ChangedBy != editorName {
		t.Fatalf("after Unpublish the store holds %+v", def)
	}

	// Once the processor has read version 2, a new request is rejected.
	if err := inst.p.ConfigTable().Refresh(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Send(h.ctx, h.namedRequest("run-2", "otp-signup")); err != nil {
		t.Fatal(err)
	}
	h.expectRejected("run-2", flow.RejectNotPublished)

	// The running flow finishes with the version it started with.
	h.advance(30 * time.Second)
	if s := h.waitSend("run-1/1"); s.Channel != "sms" || s.Reason != flow.ReasonTimeout {
		t.Fatalf("fallback send %+v", s)
	}
	h.status("run-1/1", "DELIVRD")
	if closed := h.waitClosed("run-1"); closed.Outcome != flow.OutcomeDelivered || closed.Summary.StepsUsed != 2 {
		t.Fatalf("run-1 closed %+v", closed)
	}

	b.clickNav("Flow lookup")
	b.navigating("look up run-1", chromedp.SendKeys(chromedp.ID("request_id"), "run-1"+kb.Enter))
	b.waitText("dl.facts", flow.OutcomeDelivered)
	if facts := b.text("dl.facts"); !strings.Contains(facts, "otp-signup version 1") {
		t.Errorf("run-1's story: %s", facts)
	}
	// The lookup of the rejected request: the console remembers the
	// rejection from fallback.events once its consumer has read it.
	b.navigating("look up run-2", retyping("request_id", "run-2"+kb.Enter))
	b.reloadUntil("the lookup to say run-2 was rejected", `document.querySelector("main").textContent.includes("The request was rejected: flow_not_published")`)
	if txt := b.mainText(); !strings.Contains(txt, "No flow for request run-2") || !strings.Contains(txt, "Nothing was sent.") {
		t.Errorf("the lookup of run-2 says:\n%s", txt)
	}
	b.screenshot("lookup-rejected", "")
}

// publisher is a client.Publisher on the harness's topics and clock: what
// an application sends requests with.
func (h *harness) publisher(t *testing.T) *client.Publisher {
	t.Helper()
	cl, err := h.target.kafkaClient()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.NewPublisher(cl, client.WithTopics(h.names), client.WithClock(h.clock.Now))
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return pub
}

// TestBrowserWhoMayDoWhat: the server, not the page, decides who may
// change what. A viewer's change is refused (403) even when forged with
// the viewer's own session and CSRF token, from the page's script or from
// another client; a post from another origin is refused whoever is logged
// in; the sixth wrong password in a row is refused (429) until the wait
// is over.
func TestBrowserWhoMayDoWhat(t *testing.T) {
	browserDeps(t)
	h := newHarness(t)
	h.browseCatalog()
	c := startConsole(t, h)
	if _, err := c.app.Store.PutFlow(h.ctx, browserFlow("otp-login", "Login code", 30), "ops"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, c.url)

	// A viewer reads a flow; the page offers no change.
	b.login(viewerName, viewerPassword)
	b.open("/flows/otp-login")
	b.waitText("main", "You can read this flow; changing it needs the role editor.")
	if n := eval[int](b, `[...document.querySelectorAll("main button")].filter(e => !e.disabled && !e.closest("fieldset[disabled]") && e.textContent.trim() !== "Update").length`); n != 0 {
		t.Errorf("a viewer's flow page has %d usable buttons:\n%s", n, b.mainText())
	}
	b.open("/flows/new")
	b.waitText("main", "Your role (viewer) may not create flows.")

	// Forged from the page: the viewer's session, the page's own token.
	b.open("/flows/otp-login")
	csrf := eval[string](b, `document.querySelector("input[name=csrf]").value`)
	status := eval[int](b, `fetch("/flows/otp-login/unpublish", {method: "POST", credentials: "same-origin",
		body: new URLSearchParams({csrf: `+js(csrf)+`})}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("a viewer's Unpublish posted by the page's script: %d, want 403", status)
	}
	// Forged from another client with the viewer's session cookie.
	viewer := b.sessionCookie()
	flowForm := url.Values{"csrf": {csrf}, "flow_id": {"forged"}, "base_version": {"1"}, "step_count": {"2"},
		"steps[0].channel": {"whatsapp"}, "steps[0].from": {"+4915100000000"}, "steps[0].template": {"otp_auth"},
		"steps[0].delay_seconds": {"30"}, "steps[0].map[0].placeholder": {"1"}, "steps[0].map[0].value": {"code"},
		"steps[1].channel": {"sms"}, "steps[1].from": {"ACME"}, "steps[1].template": {"otp_sms"}, "steps[1].delay_seconds": {"60"}}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{"csrf": {csrf}}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	forged := []struct {
		path string
		form url.Values
	}{
		{"/flows/new", with(flowForm, "action", "publish")},
		{"/flows/new", with(flowForm, "action", "save_draft")},
		{"/flows/otp-login", with(flowForm, "action", "publish", "steps[0].delay_seconds", "45")},
		{"/flows/otp-login/unpublish", with(nil)},
		{"/flows/otp-login/delete", with(nil, "confirm", "yes")},
		{"/flows/otp-login/restore", with(nil, "version", "1")},
		{"/senders", with(nil, "channel", "sms", "id", "FORGED", "status", "active")},
		{"/senders/disable", with(nil, "channel", "sms", "id", "ACME")},
		{"/templates", with(nil, "channel", "sms", "name", "forged", "body", "Send money to {{code}}", "status", "approved")},
	}
	for _, f := range forged {
		if code, body := postForm(t, c.url, f.path, f.form, viewer, nil); code != 403 || !strings.Contains(body, "Your role (viewer) may not do this") {
			t.Errorf("a viewer's forged POST %s: %d, want 403 for the role:\n%.300s", f.path, code, body)
		}
	}
	if def, _ := c.app.Store.Lookup("otp-login"); def.Version != 1 || !def.IsPublished() || def.Steps[0].DelaySeconds != 30 {
		t.Errorf("after the viewer's forged posts the flow is %+v", def)
	}
	_, forgedFlow := c.app.Store.Lookup("forged")
	_, forgedSender := c.app.Store.Sender("sms", "FORGED")
	_, forgedTemplate := c.app.Store.Template("sms", "forged")
	acme, _ := c.app.Store.Sender("sms", "ACME")
	if forgedFlow || forgedSender || forgedTemplate || acme.Status != "active" {
		t.Errorf("a viewer's forged post changed the store: flow %v, sender %v, template %v, ACME %s", forgedFlow, forgedSender, forgedTemplate, acme.Status)
	}

	// An editor's session: the same kind of post from another origin is
	// refused before any page runs; from the console's own origin it works.
	b.logout()
	b.login(editorName, editorPassword)
	csrf = eval[string](b, `document.querySelector("input[name=csrf]").value`)
	editor := b.sessionCookie()
	sender := func(id string) url.Values {
		return url.Values{"csrf": {csrf}, "channel": {"sms"}, "id": {id}, "status": {"active"}}
	}
	evil := http.Header{"Origin": {"http://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
	if code, body := postForm(t, c.url, "/senders", sender("EVILCO"), editor, evil); code != 403 || !strings.Contains(body, "cross-origin") {
		t.Errorf("a cross-origin POST with an editor's session: %d, want 403:\n%.300s", code, body)
	}
	if code, body := postForm(t, c.url, "/senders", sender("GOODCO"), editor, nil); code != http.StatusSeeOther {
		t.Errorf("the same POST from the console's origin: %d, want 303:\n%.300s", code, body)
	}
	// A page of another origin whose form posts to the console, with the
	// editor's token in it: the browser sends the session cookie (the two
	// origins are the same site, 127.0.0.1) and Sec-Fetch-Site, and the
	// console refuses it.
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>Prize</title><form method="post" action="%s/senders">
<input type="hidden" name="csrf" value="%s"><input type="hidden" name="channel" value="sms">
<input type="hidden" name="id" value="EVILCO"><input type="hidden" name="status" value="active">
<button type="submit">Claim your prize</button></form></html>`, c.url, csrf)
	}))
	defer attacker.Close()
	b.run("open the attacker's page", chromedp.Navigate(attacker.URL))
	resp := b.navigatingResponse("press the attacker's button", chromedp.Click(chromedp.JSPath(buttonPath("Claim your prize"))))
	if resp.Status != 403 || !strings.Contains(b.mainText(), "cross-origin request detected") {
		t.Errorf("the attacker's form: %d at %s:\n%s", resp.Status, resp.URL, b.mainText())
	}
	if err := c.app.Store.Refresh(h.ctx); err != nil {
		t.Fatal(err)
	}
	_, evilStored := c.app.Store.Sender("sms", "EVILCO")
	good, goodStored := c.app.Store.Sender("sms", "GOODCO")
	if evilStored || !goodStored || good.ChangedBy != editorName {
		t.Errorf("EVILCO stored %v (want false), GOODCO stored %v by %q (want true, by %s)", evilStored, goodStored, good.ChangedBy, editorName)
	}

	// Wrong passwords: five are answered, the sixth must wait (the clock
	// is the test's: nothing passes until it moves).
	b.open("/flows")
	b.logout()
	for i := 1; i <= 5; i++ {
		b.retype("name", editorName)
		resp := b.navigatingResponse(fmt.Sprintf("wrong password %d", i), retyping("password", "not-the-password"+kb.Enter))
		if resp.Status != 401 {
			t.Fatalf("wrong password %d: %d, want 401", i, resp.Status)
		}
		b.waitText("#login-error", "Wrong user name or password.")
	}
	b.retype("name", editorName)
	resp = b.navigatingResponse("wrong password 6", retyping("password", "not-the-password"+kb.Enter))
	b.waitText("#login-error", "Too many failed logins. Try again in 5 seconds.")
	if resp.Status != 429 {
		t.Errorf("the sixth wrong password: %d, want 429", resp.Status)
	}
	b.screenshot("login-wait", "")
	// Even the right password waits, and is not checked.
	code, _ := postForm(t, c.url, "/login", url.Values{"name": {editorName}, "password": {editorPassword}}, nil, nil)
	if code != http.StatusTooManyRequests {
		t.Errorf("the right password during the wait: %d, want 429", code)
	}
	h.advance(5 * time.Second)
	b.login(editorName, editorPassword)
}

// TestBrowserAccessibility: axe-core, run inside each page, finds no
// serious or critical violation on any page of the console, and every
// input, select and textarea has a label; each page's screenshot is saved.
// Then the editor is used with the keyboard alone: Tab from the top of the
// page to each field, the arrow keys in the lists, Enter on Save draft.
func TestBrowserAccessibility(t *testing.T) {
	browserDeps(t)
	h := newHarness(t)
	// Closed flows compacted as soon as the compactor runs: a11y-1's
	// lookup is a compacted flow's page (docs/closed-flows.md).
	h.store = statestore.New(h.rc, statestore.Config{Prefix: h.id, Shards: 4, TombstoneTTL: time.Hour, ClosedDetailTTL: time.Millisecond})
	h.browseCatalog()
	h.start(nil)
	c := startConsole(t, h)
	// A flow with two versions (its history has a diff), a draft, and two
	// requests: one closed after a fallback, one waiting on WhatsApp.
	login := browserFlow("otp-login", "Login code", 30)
	for _, title := range []string{"Login code", "Login code (WhatsApp first)"} {
		login.Title = title
		if _, err := c.app.Store.PutFlow(h.ctx, login, editorName); err != nil {
			t.Fatal(err)
		}
		login.Steps[0].DelaySeconds = 45
		h.advance(17 * time.Minute) // a later change; the requests below are in the last hour
	}
	reset := browserFlow("otp-reset", "Password reset", 60)
	reset.Status = schemas.FlowDraft
	if _, err := c.app.Store.PutFlow(h.ctx, reset, editorName); err != nil {
		t.Fatal(err)
	}
	pub := h.publisher(t)
	for _, id := range []string{"a11y-1", "a11y-2"} {
		if err := pub.Send(h.ctx, h.namedRequest(id, "otp-login")); err != nil {
			t.Fatal(err)
		}
		h.waitSend(id + "/0")
	}
	h.advance(45 * time.Second) // both time out on WhatsApp
	h.waitSend("a11y-1/1")
	h.waitSend("a11y-2/1")
	h.advance(3 * time.Second)
	h.status("a11y-1/1", "DELIVRD")
	h.waitClosed("a11y-1")
	h.until("a11y-1 to be compacted", func() error {
		snaps, err := h.store.Load(h.ctx, []string{"a11y-1"})
		if err == nil && !snaps[0].Compacted {
			err = errors.New("still whole")
		}
		return err
	})

	b := newBrowser(t, c.url)
	t.Run("every page", func(t *testing.T) {
		b.t = t
		b.open("/login")
		b.checkA11y("login")
		b.screenshot("login", "")
		b.login(editorName, editorPassword)

		b.checkA11y("flows")
		b.screenshot("flows", "")

		b.open("/flows/new")
		b.checkA11y("editor, new flow")
		b.choose("steps-0-template", "otp_auth")
		b.waitText("#steps-0-preview", "is your ACME code")
		b.checkA11y("editor, new flow with a template chosen")
		b.press("Publish") // nothing filled in: the refusals
		b.waitText("#error-summary", "There is a problem")
		b.checkA11y("editor, refused")
		b.screenshot("editor-errors", "")

		b.open("/flows/otp-login")
		b.checkA11y("editor, stored flow")
		b.screenshot("flow", "")

		b.clickNav("History")
		b.press("Compare")
		b.waitFor("the diff", `document.querySelector("table.diff")`)
		b.checkA11y("history")
		b.screenshot("history", "")

		b.clickNav("Test run")
		b.choose("story-0", "failed")
		b.choose("story-1", "delivered")
		b.run("type a sample param", chromedp.SendKeys(chromedp.ID("params"), "code=424242"))
		b.press("Run the test")
		b.waitText("#result-title", "Result: DELIVERED")
		b.waitText("#result", "424242 is your ACME code. Do not share it.")
		b.checkA11y("test run")
		b.screenshot("test-run", "#result")

		b.clickNav("Senders")
		b.checkA11y("senders")
		b.screenshot("senders", "")

		b.clickNav("Templates")
		b.checkA11y("templates")
		b.screenshot("templates", "")
		b.navigating("open a template's preview", chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll("table.list a")].find(a => a.textContent === "otp_auth")`)))
		b.run("type a sample param", chromedp.SendKeys(chromedp.ID("params"), "1=123456"))
		b.press("Preview")
		b.waitText("p.message", "123456 is your ACME code.")
		b.checkA11y("template preview")
		b.screenshot("template-preview", "")

		b.clickNav("Flow lookup")
		b.checkA11y("lookup, empty")
		for _, id := range []string{"a11y-2", "a11y-1", "nobody"} {
			b.navigating("look up "+id, retyping("request_id", id+kb.Enter))
			b.waitText("main", id)
			b.checkA11y("lookup of " + id)
			if id == "a11y-1" {
				b.waitText("dl.facts", "details expired")
				b.screenshot("lookup-compacted", "")
			}
		}

		b.clickNav("Outcomes")
		b.waitOutcomes("every flow", map[string]int{"flows started": 2, "flows closed": 1})
		b.checkA11y("outcomes")
		b.navigating("the inline flows' outcomes", chromedp.Click(chromedp.JSPath(`document.querySelector('a[href^="/outcomes?inline=1"]')`)))
		b.checkA11y("outcomes of inline flows")

		b.open("/flows/otp-reset/delete")
		b.checkA11y("delete")
		b.open("/flows/nobody")
		b.checkA11y("not found")

		// An admin's lookup shows the params too; the recipient stays masked.
		b.logout()
		b.login(adminName, adminPassword)
		b.open("/lookup?request_id=a11y-2")
		b.waitText("dl.facts", "code = 424242")
		if page := eval[string](b, "document.documentElement.outerHTML"); strings.Contains(page, "+4915112345678") {
			t.Errorf("an admin's lookup shows the recipient unmasked")
		}
		b.checkA11y("lookup by an admin")
		b.logout()
		b.login(editorName, editorPassword)
	})

	t.Run("the editor by keyboard", func(t *testing.T) {
		b.t = t
		b.open("/flows/new")
		// From the top of the page: the skip link, then Enter, then Tab
		// into the form.
		b.tabTo("the skip link", `el.classList.contains("skip-link")`, 1)
		b.run("follow the skip link", chromedp.KeyEvent(kb.Enter))
		b.waitFor("the focus on main", `document.activeElement.id === "main"`)
		b.tabTo("the flow id", `el.id === "flow_id"`, 3)
		b.typeKeys("otp-keys")
		b.tabTo("the title", `el.id === "title"`, 1)
		b.typeKeys("Keyboard code")
		b.tabTo("the first step's From", `el.id === "steps-0-from"`, 2)
		b.keyChoose("steps-0-from", "+4915100000001")
		b.tabTo("the first step's template", `el.id === "steps-0-template"`, 1)
		b.keyChoose("steps-0-template", "welcome")
		b.tabTo("the placeholder's param", `el.id === "steps-0-map-0-value"`, 2)
		b.markSteps()
		b.typeKeys("name" + kb.Tab) // the change re-renders the steps; the focus stays on the next field
		b.waitSteps("the mapping")
		b.waitFor("the focus on the delay", `document.activeElement.id === "steps-0-delay_seconds"`)
		b.tabTo("the first step's success condition", `el.id === "steps-0-success_on"`, 1)
		b.keyChoose("steps-0-success_on", "read")
		b.tabTo("the second step's From", `el.id === "steps-1-from"`, 4)
		if ch := b.value("steps-1-channel"); ch != "sms" {
			t.Errorf("the second step's channel %q, want sms", ch)
		}
		b.keyChoose("steps-1-from", "ACME")
		b.tabTo("the second step's template", `el.id === "steps-1-template"`, 1)
		b.keyChoose("steps-1-template", "otp_sms")
		b.tabTo("Save draft", `el.textContent.trim() === "Save draft"`, 12)
		b.navigating("press Enter on Save draft", chromedp.KeyEvent(kb.Enter))
		b.waitText(".flash", "Stored flow otp-keys version 1 (draft).")
		def, ok := c.app.Store.Lookup("otp-keys")
		want := []string{"whatsapp +4915100000001 welcome read name", "sms ACME otp_sms  "}
		var got []string
		for _, st := range def.Steps {
			got = append(got, strings.Join([]string{st.Channel, st.From, st.Template, st.SuccessOn, st.Variables["1"]}, " "))
		}
		if !ok || def.IsPublished() || def.Title != "Keyboard code" || def.ChangedBy != editorName || !reflect.DeepEqual(got, want) {
			t.Errorf("the draft stored: %+v\nsteps %q, want %q", def, got, want)
		}
		b.clickNav("Flows")
		b.waitText("table.list", "Keyboard code")
	})
}
