package console

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLogin(t *testing.T) {
	h := newHarness(t)
	// Without a session every page leads to the login, to come back.
	r := (&agent{h: h}).get("/flows?q=otp")
	if r.Code != http.StatusSeeOther || r.Location() != "/login?next="+url.QueryEscape("/flows?q=otp") {
		t.Fatalf("no session: %d %q", r.Code, r.Location())
	}
	r = h.post(nil, "/login", url.Values{"name": {"eddie"}, "password": {"eddie-pw"}, "next": {"/flows?q=otp"}})
	if r.Code != http.StatusSeeOther || r.Location() != "/flows?q=otp" {
		t.Fatalf("login: %d %q", r.Code, r.Location())
	}
	// next never leads to another site.
	for _, next := range []string{"//evil.example/", "https://evil.example/", `/\evil.example`} {
		r = h.post(nil, "/login", url.Values{"name": {"eddie"}, "password": {"eddie-pw"}, "next": {next}})
		if r.Location() != "/flows" {
			t.Errorf("next %q: redirected to %q", next, r.Location())
		}
	}
	a := h.login("eddie", "eddie-pw")
	if r := a.get("/flows"); r.Code != http.StatusOK || !strings.Contains(r.Body, "eddie (editor)") {
		t.Fatalf("logged in: %d", r.Code)
	}
	if !strings.Contains(h.logs.String(), `msg="console login" user=eddie role=editor`) {
		t.Errorf("no login line:\n%s", h.logs)
	}
	// Logging out ends the session on the server: the old cookie is worth nothing.
	if r := a.post("/logout", nil); r.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.Code)
	}
	if r := a.get("/flows"); r.Code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", r.Code)
	}
}

func TestLoginFailed(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ name, pw string }{{"eddie", "wrong"}, {"nobody", "eddie-pw"}, {"eddie", ""}} {
		r := h.post(nil, "/login", url.Values{"name": {c.name}, "password": {c.pw}})
		if r.Code != http.StatusUnauthorized || !strings.Contains(r.Body, "Wrong user name or password.") {
			t.Errorf("%s/%s: %d", c.name, c.pw, r.Code)
		}
		if strings.Contains(r.Header.Get("Set-Cookie"), sessionCookie+"=") {
			t.Errorf("%s/%s: a session cookie", c.name, c.pw)
		}
	}
	logs := h.logs.String()
	if strings.Contains(logs, "nobody") || strings.Contains(logs, "wrong") {
		t.Errorf("the log holds what was typed:\n%s", logs)
	}
}

// TestLoginRateLimit: after 5 wrong passwords for a user, the 6th attempt
// is answered 429 with Retry-After, without the password being checked
// (the right one too); the wait doubles with each further failure.
func TestLoginRateLimit(t *testing.T) {
	h := newHarness(t)
	try := func(pw, addr string) reply {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"name": {"eddie"}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = addr
		return h.do(req)
	}
	for i := 1; i <= 5; i++ {
		if r := try("guess", "192.0.2.1:1000"); r.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.Code)
		}
	}
	r := try("guess", "192.0.2.1:1000")
	if r.Code != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "5" {
		t.Fatalf("6th attempt: %d, Retry-After %q", r.Code, r.Header.Get("Retry-After"))
	}
	if !strings.Contains(r.Body, "Too many failed logins. Try again in 5 seconds.") {
		t.Errorf("6th attempt page:\n%s", text(r.Body))
	}
	// Another address does not help: the count is the user's too.
	if r := try("eddie-pw", "198.51.100.7:2000"); r.Code != http.StatusTooManyRequests {
		t.Fatalf("right password, other address, during the wait: %d", r.Code)
	}
	h.clock.Advance(5 * time.Second)
	if r := try("guess", "192.0.2.1:1000"); r.Code != http.StatusUnauthorized {
		t.Fatalf("after the wait: %d", r.Code)
	}
	r = try("guess", "192.0.2.1:1000")
	if got, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.Code != http.StatusTooManyRequests || got != 10 {
		t.Fatalf("7th failure: %d, Retry-After %q: want 429 and 10", r.Code, r.Header.Get("Retry-After"))
	}
	h.clock.Advance(10 * time.Second)
	if r := try("eddie-pw", "192.0.2.1:1000"); r.Code != http.StatusSeeOther {
		t.Fatalf("right password after the wait: %d", r.Code)
	}
	// The success cleared the user's count.
	if r := try("guess", "192.0.2.1:1000"); r.Code != http.StatusUnauthorized {
		t.Fatalf("after a success: %d", r.Code)
	}
	if !strings.Contains(h.logs.String(), "console login refused") {
		t.Errorf("no refused line:\n%s", h.logs)
	}
}

// TestLoginRateLimitPerAddress: one address guessing over many names is
// slowed too (unknown names count only against the address).
func TestLoginRateLimitPerAddress(t *testing.T) {
	h := newHarness(t)
	var last reply
	for i := range freeFailuresPerAddr + 1 {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"name": {"user" + strconv.Itoa(i)}, "password": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "[2001:db8::1]:5000"
		last = h.do(req)
	}
	if last.Code != http.StatusTooManyRequests {
		t.Fatalf("attempt %d from one address: %d", freeFailuresPerAddr+1, last.Code)
	}
	if n := len(h.srv.limiter.entries); n != 1 {
		t.Errorf("%d limiter keys for unknown names from one address, want 1", n)
	}
}

func TestSessionCookie(t *testing.T) {
	h := newHarness(t)
	r := h.post(nil, "/login", url.Values{"name": {"eddie"}, "password": {"eddie-pw"}})
	cookies := (&http.Response{Header: r.Header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != "fallback_session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" ||
		c.MaxAge != 0 || !c.Expires.IsZero() || len(c.Value) != 43 {
		t.Fatalf("cookie %+v", c)
	}
	// Eight idle hours end the session; a request within them renews it.
	a := &agent{h: h, cookie: c}
	h.clock.Advance(7 * time.Hour)
	if r := a.get("/flows"); r.Code != http.StatusOK {
		t.Fatalf("after 7 h: %d", r.Code)
	}
	h.clock.Advance(7 * time.Hour)
	if r := a.get("/flows"); r.Code != http.StatusOK {
		t.Fatalf("7 h after the last request: %d", r.Code)
	}
	h.clock.Advance(8 * time.Hour)
	if r := a.get("/flows"); r.Code != http.StatusSeeOther {
		t.Fatalf("8 idle hours: %d", r.Code)
	}
}

// TestSecureCookieOverLoopbackHTTP: the Secure cookie works on plain
// http://127.0.0.1, as in browsers (Go's cookie jar too), so the console
// sets Secure always.
func TestSecureCookieOverLoopbackHTTP(t *testing.T) {
	h := newHarness(t)
	ts := httptest.NewServer(h.h)
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.PostForm(ts.URL+"/login", url.Values{"name": {"vera"}, "password": {"vera-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/flows" {
		t.Fatalf("after login over %s: %d at %s", ts.URL, resp.StatusCode, resp.Request.URL)
	}
}

// TestViewerCannotChange: a viewer's change is refused by the server (403)
// even when forged: a post with a valid viewer session and its CSRF token
// to each change endpoint. Nothing is written.
func TestViewerCannotChange(t *testing.T) {
	h := newHarness(t)
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	before := h.store.writeCount()
	vera := h.login("vera", "vera-pw")
	forms := map[string]url.Values{
		"/flows/new":           mergeForm(editorForm("x", "", otpFlow("x").Steps), "action", "publish"),
		"/flows/otp":           mergeForm(editorForm("otp", "", otpFlow("otp").Steps), "action", "save_draft"),
		"/flows/new?id=new":    {"action": {"save_draft"}},
		"/flows/otp/unpublish": {},
		"/flows/otp/delete":    {"confirm": {"yes"}},
		"/flows/otp/restore":   {"version": {"1"}},
		"/senders":             {"channel": {"sms"}, "id": {"NEWCO"}},
		"/senders/disable":     {"channel": {"sms"}, "id": {"ACME"}},
		"/templates":           {"channel": {"sms"}, "name": {"t"}, "body": {"hi"}},
	}
	for path, form := range forms {
		if r := vera.post(path, form); r.Code != http.StatusForbidden || !strings.Contains(r.Body, "Your role (viewer) may not do this") {
			t.Errorf("viewer POST %s: %d", path, r.Code)
		}
	}
	if n := h.store.writeCount(); n != before {
		t.Fatalf("%d writes by a viewer", n-before)
	}
	if !strings.Contains(h.logs.String(), `msg="console refused" user=vera role=viewer path=/senders`) {
		t.Errorf("no refused line:\n%s", h.logs)
	}
	// The pages offer a viewer no change either.
	if r := vera.get("/flows/otp"); strings.Contains(r.Body, `value="publish"`) || !strings.Contains(r.Body, "<fieldset class=\"plain\" disabled>") {
		t.Errorf("a viewer's editor offers changes")
	}
}

func mergeForm(v url.Values, kv ...string) url.Values {
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// TestCrossOriginPostRefused: a form posted from another origin is
// refused before any handler, whatever the session; so is a post without
// the session's CSRF token.
func TestCrossOriginPostRefused(t *testing.T) {
	h := newHarness(t)
	eddie := h.login("eddie", "eddie-pw")
	form := mergeForm(editorForm("x", "", otpFlow("x").Steps), "action", "publish")
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://evil.example"},
	} {
		if r := eddie.post("/flows/new", form, hdr...); r.Code != http.StatusForbidden {
			t.Errorf("%s: %s: %d", hdr[0], hdr[1], r.Code)
		}
	}
	stale := mergeForm(editorForm("x", "", otpFlow("x").Steps), "action", "publish", "csrf", "not-the-token")
	if r := eddie.post("/flows/new", stale); r.Code != http.StatusForbidden || !strings.Contains(r.Body, "out of date") {
		t.Errorf("stale token: %d", r.Code)
	}
	if n := h.store.writeCount(); n != 0 {
		t.Fatalf("%d writes", n)
	}
	// The same post from the console's own page goes through.
	if r := eddie.post("/flows/new", form, "Sec-Fetch-Site", "same-origin"); r.Code != http.StatusSeeOther {
		t.Fatalf("same origin: %d\n%s", r.Code, text(r.Body))
	}
}

func TestInsecureLocal(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Users, c.InsecureLocal = nil, true })
	a := &agent{h: h}
	r := a.get("/flows")
	if r.Code != http.StatusOK || !strings.Contains(r.Body, "local (admin)") || !strings.Contains(r.Body, "Insecure local mode") {
		t.Fatalf("local: %d", r.Code)
	}
	r = a.post("/flows/new", mergeForm(editorForm("loc", "", otpFlow("loc").Steps), "action", "save_draft"))
	if r.Code != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", r.Code, text(r.Body))
	}
	if d, _ := h.store.Lookup("loc"); d.ChangedBy != "local" {
		t.Fatalf("changed_by %q", d.ChangedBy)
	}
	// Cross-origin posts are still refused.
	r = a.post("/flows/new", mergeForm(editorForm("loc2", "", otpFlow("loc2").Steps), "action", "save_draft"), "Sec-Fetch-Site", "cross-site")
	if r.Code != http.StatusForbidden {
		t.Fatalf("cross-origin in local mode: %d", r.Code)
	}
}

func TestNew(t *testing.T) {
	store := newFakeStore(time.Now)
	if _, err := New(Config{Store: store}); err == nil || !strings.Contains(err.Error(), "no users") {
		t.Errorf("no users: %v", err)
	}
	if _, err := New(Config{Store: store, Users: testUsers(), InsecureLocal: true}); err == nil {
		t.Errorf("users and insecure-local")
	}
	if _, err := New(Config{Users: testUsers()}); err == nil {
		t.Errorf("no store")
	}
	bad := []User{{Name: "x", Role: "root", PasswordHash: testUsers()[0].PasswordHash}}
	if _, err := New(Config{Store: store, Users: bad}); err == nil || !strings.Contains(err.Error(), `role "root"`) {
		t.Errorf("bad role: %v", err)
	}
}

func TestCheckListenAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.1.2.3:80": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "192.168.1.5:8080": false, "example.com:8080": false, "nonsense": false,
	} {
		if err := CheckListenAddr(addr, true); (err == nil) != ok {
			t.Errorf("%s with insecure-local: %v", addr, err)
		}
		if err := CheckListenAddr(addr, false); err != nil {
			t.Errorf("%s with users: %v", addr, err)
		}
	}
}

func TestUsersFile(t *testing.T) {
	hash := testUsers()[0].PasswordHash
	users, err := ParseUsers(strings.NewReader("# the console's users\n\nann:admin:" + hash + "\n  bob:viewer:" + hash + "  \n"))
	if err != nil || len(users) != 2 || users[0].Name != "ann" || users[1].Role != RoleViewer {
		t.Fatalf("%v %+v", err, users)
	}
	for in, want := range map[string]string{
		"ann:admin":           "line 1: want name:role:bcrypt-hash",
		"ann:boss:" + hash:    `role "boss"`,
		"ann:admin:plaintext": "not a bcrypt hash",
		"a n:admin:" + hash:   "user name",
		"ann:admin:" + hash + "\nann:viewer:" + hash: "line 2: user \"ann\" is listed twice",
	} {
		if _, err := ParseUsers(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "plaintext") {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	h, err := HashPassword("s3cret")
	if err != nil || !strings.HasPrefix(h, "$2a$12$") {
		t.Fatalf("HashPassword: %q %v", h, err)
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Errorf("a 73-byte password was hashed (bcrypt reads 72)")
	}
}
