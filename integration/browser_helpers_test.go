package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/console"
	"github.com/fallbackd/fallback/console/consolewire"
	"github.com/fallbackd/fallback/schemas"
)

// The web console in a real browser (docs/console.md, issue 18): headless
// Chromium driven with chromedp against a console served in-process on
// the harness's Kafka and Redis, next to a processor instance. The tests
// need two things from outside Go, which scripts/browser-deps.sh installs
// and names:
//
//	eval "$(scripts/browser-deps.sh)"   # exports FALLBACK_TEST_CHROMIUM, FALLBACK_TEST_AXE_JS
//	go test -count=1 -run Browser ./integration/
//
// Without them the tests skip, unless FALLBACK_TEST_BROWSER=required (CI),
// where they fail. FALLBACK_CONSOLE_SCREENSHOTS names the directory the
// screenshots go to (docs/console/ for the docs; else a temporary one).

// browserDeps are the browser and axe-core's source, or a skip (a failure
// when FALLBACK_TEST_BROWSER=required).
func browserDeps(t *testing.T) (chromium, axeSource string) {
	t.Helper()
	chromium, axePath := os.Getenv("FALLBACK_TEST_CHROMIUM"), os.Getenv("FALLBACK_TEST_AXE_JS")
	if chromium == "" || axePath == "" {
		msg := `browser test: FALLBACK_TEST_CHROMIUM and FALLBACK_TEST_AXE_JS are not both set; run eval "$(scripts/browser-deps.sh)"`
		if os.Getenv("FALLBACK_TEST_BROWSER") == "required" {
			t.Fatal(msg + " (FALLBACK_TEST_BROWSER=required)")
		}
		t.Skip(msg)
	}
	src, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("browser test: FALLBACK_TEST_AXE_JS: %v", err)
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("browser test: FALLBACK_TEST_CHROMIUM: %v", err)
	}
	return chromium, string(src)
}

// The console's users: an editor, a viewer and an admin. Their hashes are
// made once (bcrypt at the console's cost takes a quarter of a second).
const (
	editorName, editorPassword = "eve", "eve-editor-pw-1"
	viewerName, viewerPassword = "vic", "vic-viewer-pw-1"
	adminName, adminPassword   = "ada", "ada-admin-pw-1"
)

var consoleUsersOnce = sync.OnceValues(func() ([]console.User, error) {
	var users []console.User
	for _, u := range []struct {
		name, password string
		role           console.Role
	}{{editorName, editorPassword, console.RoleEditor}, {viewerName, viewerPassword, console.RoleViewer}, {adminName, adminPassword, console.RoleAdmin}} {
		hash, err := console.HashPassword(u.password)
		if err != nil {
			return nil, err
		}
		users = append(users, console.User{Name: u.name, Role: u.role, PasswordHash: hash})
	}
	return users, nil
})

// consoleRig is a console on the harness's topics and state store, served
// at url (http://127.0.0.1:port), with the processor's manual clock.
type consoleRig struct {
	h   *harness
	app *consolewire.App
	url string
}

// startConsole builds the console as `fallback console` does (package
// consolewire) and serves it. Store the catalog before: the console reads
// the configuration topics to their end when it opens, and follows them.
func startConsole(t *testing.T, h *harness) *consoleRig {
	t.Helper()
	users, err := consoleUsersOnce()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	app, err := consolewire.Open(ctx, consolewire.Options{Brokers: h.target.brokers, KafkaOpts: h.target.kafkaOpts, Names: h.names,
		States: h.store, Validator: client.DefaultValidator(), Users: users, Logger: h.log, Now: h.clock.Now})
	if err != nil {
		cancel()
		t.Fatalf("console: %v", err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); _ = app.Run(ctx) }()
	srv := httptest.NewServer(app.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-ran
		app.Close()
	})
	return &consoleRig{h: h, app: app, url: srv.URL}
}

// browseCatalog is the catalog the browser tests build flows from: two
// active WhatsApp numbers and a disabled one, an SMS sender id and a
// disabled one; WhatsApp templates a step may use (authentication, text)
// and ones it may not (marketing, pending), and an SMS template.
func (h *harness) browseCatalog() {
	for _, s := range []schemas.Sender{
		{Channel: "whatsapp", ID: "+4915100000000", Label: "ACME OTP", Status: schemas.SenderActive},
		{Channel: "whatsapp", ID: "+4915100000001", Label: "ACME Support", Status: schemas.SenderActive},
		{Channel: "whatsapp", ID: "+4915100000009", Label: "old number", Status: schemas.SenderDisabled},
		{Channel: "sms", ID: "ACME", Status: schemas.SenderActive},
		{Channel: "sms", ID: "OLDCO", Status: schemas.SenderDisabled},
	} {
		h.storeSender(s)
	}
	for _, tp := range []schemas.Template{
		{Channel: "whatsapp", Name: "otp_auth", Language: "en", Category: "authentication", Body: "{{1}} is your ACME code. Do not share it.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "welcome", Language: "en", Category: "text", Body: "Welcome to ACME, {{1}}!", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "promo", Language: "en", Category: "marketing", Body: "Sale! 20% off today.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "otp_pending", Language: "en", Category: "authentication", Body: "Code {{1}}", Status: schemas.TemplatePending},
		{Channel: "sms", Name: "otp_sms", Language: "en", Body: "ACME: your code is {{code}}", Status: schemas.TemplateApproved},
	} {
		h.storeTemplate(tp)
	}
}

// browserFlow is the WhatsApp then SMS flow the tests store without the
// editor: the first step waits firstDelay seconds.
func browserFlow(id, title string, firstDelay int32) schemas.FlowDefinition {
	return schemas.FlowDefinition{FlowID: id, Title: title, Status: schemas.FlowPublished, Steps: []schemas.Step{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_auth", DelaySeconds: firstDelay, Variables: map[string]string{"1": "code"}},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}}
}

// namedRequest is a request naming a stored flow, at the clock's time.
func (h *harness) namedRequest(id, flowID string) schemas.SendRequest {
	return schemas.SendRequest{RequestID: id, Kind: schemas.KindSend, FlowID: flowID, Recipient: "+4915112345678",
		Params: map[string]string{"code": "424242"}, RequestedAt: h.clock.Now()}
}

// ---- the browser ----

// browserWait bounds each wait for the page; waitLimit bounds the rest.
const browserWait = 30 * time.Second

// browser is one headless Chromium with one tab, on the console at base.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	axe   string
	shots string // where screenshots go
}

// newBrowser starts Chromium (a 1280x900 window) for the test; it ends
// with the test.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	chromium, axe := browserDeps(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.Flag("hide-scrollbars", true), chromedp.Flag("lang", "en-US"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first action starts the browser; the viewport is what the
	// screenshots show.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	shots := os.Getenv("FALLBACK_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: ctx, base: base, axe: axe, shots: shots}
}

// run runs actions with a bound; a failure says where the page was.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page %s)", what, err, b.location())
	}
}

// eval evaluates a JavaScript expression in the page (promises awaited).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	v, err := runAcrossNavigation(ctx, func() (T, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	})
	if err != nil {
		b.t.Fatalf("evaluate %.80q: %v (page %s)", expr, err, b.location())
	}
	return v
}

// runAcrossNavigation runs do again while it fails because the page's
// JavaScript context it used is gone: a navigation replaced it, and
// chromedp had not yet heard of the new page's context (seen in CI on a
// loaded machine: "Cannot find context with specified id", right after the
// load event of a form's navigation). Any other error, or the end of ctx,
// ends it.
func runAcrossNavigation[T any](ctx context.Context, do func() (T, error)) (T, error) {
	for {
		v, err := do()
		if err == nil || ctx.Err() != nil || !contextGone(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func contextGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") || strings.Contains(msg, "Execution context was destroyed")
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// js is s as a JavaScript string literal.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// open navigates to a path of the console.
func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path))
}

// navigating runs trigger (a click, an Enter) and waits for the page it
// loads.
func (b *browser) navigating(what string, trigger chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, trigger)); err != nil {
		b.t.Fatalf("%s: %v (page %s)", what, err, b.location())
	}
}

// waitFor polls a JavaScript condition until it is true; the failure
// shows what the page said meanwhile.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	_, err := runAcrossNavigation(ctx, func() (chromedp.Void, error) {
		return chromedp.Run(ctx, chromedp.Poll[chromedp.Void]("(() => { try { return !!("+cond+"); } catch (e) { return false; } })()",
			chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(browserWait)))
	})
	if err != nil {
		b.t.Fatalf("waiting for %s: %v\npage %s says:\n%s", what, err, b.location(), b.mainText())
	}
}

// waitText waits until the element sel (CSS) holds text.
func (b *browser) waitText(sel, text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%q in %s", text, sel),
		fmt.Sprintf("[...document.querySelectorAll(%s)].some(e => e.textContent.includes(%s))", js(sel), js(text)))
}

// text is the text of the first element sel (CSS) matches, "" if none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf("(document.querySelector(%s) || {textContent: ''}).textContent", js(sel)))
}

// mainText is the page's main text, for failure messages.
func (b *browser) mainText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("main") || document.body || {innerText: ""}).innerText`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// value is an input's or a select's value.
func (b *browser) value(id string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf("document.getElementById(%s).value", js(id)))
}

// options are the values of a select's options, in order.
func (b *browser) options(id string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf("[...document.getElementById(%s).options].map(o => o.value)", js(id)))
}

// focused is the id of the element that has the focus.
func (b *browser) focused() string {
	b.t.Helper()
	return eval[string](b, "document.activeElement ? document.activeElement.id : ''")
}

// login types the user's name and password and presses Enter.
func (b *browser) login(name, password string) {
	b.t.Helper()
	b.open("/login")
	b.run("type the name", chromedp.WaitVisible(chromedp.ID("name")), chromedp.SendKeys(chromedp.ID("name"), name))
	b.navigating("log in as "+name, chromedp.SendKeys(chromedp.ID("password"), password+kb.Enter))
	b.waitText(".who", name)
}

// logout presses Log out.
func (b *browser) logout() {
	b.t.Helper()
	b.navigating("log out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
	b.waitFor("the login page", `document.getElementById("password") !== null`)
}

// clickNav follows the first link whose text is label (the main
// navigation, a flow's tabs, "New flow"), as a person would.
func (b *browser) clickNav(label string) {
	b.t.Helper()
	b.navigating("follow "+label, chromedp.Click(chromedp.JSPath(
		fmt.Sprintf(`[...document.querySelectorAll("a")].find(a => a.textContent.trim() === %s)`, js(label)))))
}

// press presses the button whose text is label and waits for the page it
// loads.
func (b *browser) press(label string) {
	b.t.Helper()
	b.navigating("press "+label, chromedp.Click(chromedp.JSPath(buttonPath(label))))
}

func buttonPath(label string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("button")].find(e => e.textContent.trim() === %s)`, js(label))
}

// markSteps marks the editor's steps so that waitSteps sees them replaced
// by the script (a channel, sender, template or mapping changed).
func (b *browser) markSteps() {
	b.t.Helper()
	eval[chromedp.Void](b, `(() => { for (const e of document.querySelectorAll("#steps > *")) e.setAttribute("data-stale", ""); })()`)
}

func (b *browser) waitSteps(why string) {
	b.t.Helper()
	b.waitFor("the steps re-rendered after "+why, `!document.querySelector("#steps [data-stale]") && document.querySelector("#steps fieldset")`)
}

// choose picks the option value of the select id with the keyboard: focus
// and the arrow keys, as a person does without a mouse, waiting after each
// change for the steps the script re-renders (a select marked
// data-refresh).
func (b *browser) choose(id, value string) {
	b.t.Helper()
	var opts []string
	for range 16 {
		// The options again each time: a re-rendered select may have lost
		// its "Choose" entry.
		opts = b.options(id)
		cur := eval[int](b, fmt.Sprintf("document.getElementById(%s).selectedIndex", js(id)))
		want := slices.Index(opts, value)
		switch {
		case want < 0:
			b.t.Fatalf("%s offers %q, not %q", id, opts, value)
		case cur == want:
			return
		}
		key := kb.ArrowDown
		if cur > want {
			key = kb.ArrowUp
		}
		refresh := eval[bool](b, fmt.Sprintf("document.getElementById(%s).hasAttribute('data-refresh')", js(id)))
		if refresh {
			b.markSteps()
		}
		if b.focused() != id {
			b.run("focus "+id, chromedp.Focus(chromedp.ID(id)))
		}
		b.run("press an arrow key on "+id, chromedp.KeyEvent(key))
		if refresh {
			b.waitSteps("choosing in " + id)
		}
	}
	b.t.Fatalf("%s: the arrow keys did not reach %q (at %q of %q)", id, value, b.value(id), opts)
}

// tabTo presses Tab until the focus is on what cond (a JavaScript
// condition on the variable el, the focused element) describes, at most
// max times.
func (b *browser) tabTo(what, cond string, max int) {
	b.t.Helper()
	test := fmt.Sprintf("(() => { const el = document.activeElement; return !!el && !!(%s); })()", cond)
	for range max {
		b.run("press Tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](b, test) {
			return
		}
	}
	b.t.Fatalf("%d presses of Tab did not reach %s (focus on %s)", max, what,
		eval[string](b, "document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : 'nothing'"))
}

// typeKeys types text into whatever has the focus.
func (b *browser) typeKeys(text string) {
	b.t.Helper()
	b.run("type "+text, chromedp.KeyEvent(text))
}

// sessionCookie is the browser's console session cookie (HttpOnly: the
// page's scripts cannot read it, the DevTools protocol can).
func (b *browser) sessionCookie() *http.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "fallback_session" {
			if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict {
				b.t.Errorf("session cookie: HttpOnly %v, Secure %v, SameSite %q", c.HTTPOnly, c.Secure, c.SameSite)
			}
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	b.t.Fatalf("no session cookie in the browser: %+v", res.Cookies)
	return nil
}

// ---- accessibility and screenshots ----

// axeViolation is what the test prints of an axe-core violation.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	URL    string   `json:"helpUrl"`
	Nodes  []string `json:"nodes"`
}

// checkA11y runs axe-core in the page (injected from FALLBACK_TEST_AXE_JS,
// never served by the console) and fails on a serious or critical
// violation; it also checks that every input, select and textarea has a
// label with text.
func (b *browser) checkA11y(pageName string) {
	b.t.Helper()
	if !eval[bool](b, `typeof window.axe === "object"`) {
		eval[chromedp.Void](b, b.axe+"\n;void 0")
	}
	violations := eval[[]axeViolation](b, `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
			nodes: v.nodes.map(n => n.target.join(" ") + (n.failureSummary ? ": " + n.failureSummary.replace(/\s+/g, " ") : ""))})))`)
	for _, v := range violations {
		b.t.Errorf("%s: axe %s (%s): %s <%s>\n\t%s", pageName, v.ID, v.Impact, v.Help, v.URL, strings.Join(v.Nodes, "\n\t"))
	}
	unlabelled := eval[[]string](b, `[...document.querySelectorAll("input, select, textarea")]
		.filter(el => el.type !== "hidden")
		.filter(el => !([...(el.labels || [])].some(l => l.textContent.trim() !== "") ||
			(el.getAttribute("aria-label") || "").trim() !== "" || el.hasAttribute("aria-labelledby")))
		.map(el => el.outerHTML.slice(0, 160))`)
	for _, u := range unlabelled {
		b.t.Errorf("%s: a field without a label: %s", pageName, u)
	}
}

// screenshot saves the viewport (1280x900) as name.png, scrolled so that
// the element sel (CSS; "" for the page's top) is in view. A viewport, not
// the full page: the pictures in docs/console.md stay readable and small.
func (b *browser) screenshot(name, sel string) {
	b.t.Helper()
	if sel == "" {
		eval[chromedp.Void](b, "window.scrollTo(0, 0)")
	} else {
		// A tall element from its top, a small one in the middle.
		eval[chromedp.Void](b, fmt.Sprintf(`(() => { const e = document.querySelector(%s);
			const tall = e.getBoundingClientRect().height > window.innerHeight * 0.6;
			e.scrollIntoView({block: tall ? "start" : "center"}); if (tall) window.scrollBy(0, -16); })()`, js(sel)))
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s (%d KB)", path, len(png)/1024)
}

// ---- requests a person's browser would not send ----

// postForm posts a form to the console as a script or a forger would,
// with the cookie and headers given; it returns the status and body.
func postForm(t *testing.T, base, path string, form url.Values, cookie *http.Cookie, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	cl := &http.Client{Timeout: browserWait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// reloadUntil reloads the page until a JavaScript condition holds: for
// what the console learns from Kafka a moment after the test does.
func (b *browser) reloadUntil(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	test := "(() => { try { return !!(" + cond + "); } catch (e) { return false; } })()"
	for !eval[bool](b, test) {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %s; page %s says:\n%s", waitLimit, what, b.location(), b.mainText())
		}
		time.Sleep(100 * time.Millisecond) // the polling interval
		b.run("reload", chromedp.Reload())
	}
}

// retype replaces what the input id holds with text, typed: its text
// selected (as Ctrl+A does), then the keys.
func (b *browser) retype(id, text string) {
	b.t.Helper()
	b.run("type "+text+" into "+id, retyping(id, text))
}

// retyping is retype as an action (for navigating).
func retyping(id, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		sel := fmt.Sprintf("(() => { const e = document.getElementById(%s); e.focus(); e.select(); })()", js(id))
		if _, err := chromedp.Evaluate[chromedp.Void](sel)(ctx, t); err != nil {
			return err
		}
		_, err := chromedp.KeyEvent(text)(ctx, t)
		return err
	})
}

// navigatingResponse is navigating that returns the response of the page
// loaded.
func (b *browser) navigatingResponse(what string, trigger chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, trigger)
	if err != nil || resp == nil {
		b.t.Fatalf("%s: %v (page %s)", what, err, b.location())
	}
	return resp
}

// keyChoose is choose on the select that already has the focus: only
// keys, no focusing by the test.
func (b *browser) keyChoose(id, value string) {
	b.t.Helper()
	if f := b.focused(); f != id {
		b.t.Fatalf("choosing in %s: the focus is on %q", id, f)
	}
	b.choose(id, value)
}
