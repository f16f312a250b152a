package console

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/schemas"
)

// ---- an in-memory Store, as configstore.Store behaves ----

type fakeStore struct {
	mu        sync.Mutex
	now       func() time.Time
	history   map[string][]schemas.FlowDefinition // every version, oldest first
	titles    map[string]string                   // lower-case title: the flow that last took it
	deleted   map[string]bool
	senders   map[string]schemas.Sender
	templates map[string]schemas.Template
	writes    int
	failNext  error // the next PutFlow's answer
}

func newFakeStore(now func() time.Time) *fakeStore {
	return &fakeStore{now: now, history: map[string][]schemas.FlowDefinition{}, titles: map[string]string{}, deleted: map[string]bool{},
		senders: map[string]schemas.Sender{}, templates: map[string]schemas.Template{}}
}

// titleTakenError is the store's refusal of a duplicate title; it names
// its field.
type titleTakenError struct{ title, other string }

func (e titleTakenError) Error() string {
	return fmt.Sprintf("title %q is the title of flow %s", e.title, e.other)
}
func (e titleTakenError) Field() string { return "title" }

func (f *fakeStore) current(id string) (schemas.FlowDefinition, bool) {
	h := f.history[id]
	if len(h) == 0 || f.deleted[id] {
		return schemas.FlowDefinition{}, false
	}
	return h[len(h)-1], true
}

func (f *fakeStore) Flows() []schemas.FlowDefinition {
	f.mu.Lock()
	defer f.mu.Unlock()
	// As processor.ConfigTable: sorted by id, a fresh slice each call.
	out := make([]schemas.FlowDefinition, 0, len(f.history))
	for _, id := range slices.Sorted(maps.Keys(f.history)) {
		if d, ok := f.current(id); ok {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeStore) Lookup(id string) (schemas.FlowDefinition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current(id)
}

func (f *fakeStore) History(id string) []schemas.FlowDefinition {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history[id])
}

func (f *fakeStore) Senders() []schemas.Sender {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []schemas.Sender
	for _, s := range f.senders {
		out = append(out, s)
	}
	return out
}

func (f *fakeStore) Templates() []schemas.Template {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []schemas.Template
	for _, t := range f.templates {
		out = append(out, t)
	}
	return out
}

func (f *fakeStore) Sender(ch, id string) (schemas.Sender, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.senders[schemas.CatalogKey(ch, id)]
	return s, ok
}

func (f *fakeStore) Template(ch, name string) (schemas.Template, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.templates[schemas.CatalogKey(ch, name)]
	return t, ok
}

func (f *fakeStore) Empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.senders) == 0 && len(f.templates) == 0
}

func (f *fakeStore) PutFlow(_ context.Context, d schemas.FlowDefinition, by string) (schemas.FlowDefinition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if by == "" {
		return d, errors.New("no changed_by")
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		return d, err
	}
	if other, ok := f.titles[strings.ToLower(d.Title)]; ok && d.Title != "" && other != d.FlowID {
		if cur, live := f.current(other); live && strings.EqualFold(cur.Title, d.Title) {
			return d, titleTakenError{d.Title, other}
		}
	}
	cur, ok := f.current(d.FlowID)
	if f.deleted[d.FlowID] {
		delete(f.deleted, d.FlowID)
		f.history[d.FlowID] = nil
	}
	d.Version = 1
	if ok {
		d.Version = cur.Version + 1
	}
	at := f.now()
	d.ChangedBy, d.ChangedAt = by, &at
	f.history[d.FlowID] = append(f.history[d.FlowID], d)
	if d.Title != "" {
		f.titles[strings.ToLower(d.Title)] = d.FlowID
	}
	f.writes++
	return d, nil
}

func (f *fakeStore) Unpublish(_ context.Context, id, by string) (schemas.FlowDefinition, bool, error) {
	d, ok := f.Lookup(id)
	if !ok {
		return d, false, fmt.Errorf("no flow %q", id)
	}
	if !d.IsPublished() {
		return d, false, nil
	}
	d.Status, d.Version = schemas.FlowDraft, 0
	d, err := f.PutFlow(context.Background(), d, by)
	return d, err == nil, err
}

func (f *fakeStore) DeleteFlow(_ context.Context, id, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.current(id); !ok {
		return fmt.Errorf("no flow %q", id)
	}
	f.deleted[id] = true
	f.writes++
	return nil
}

func (f *fakeStore) PutSender(_ context.Context, s schemas.Sender, by string) (schemas.Sender, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Version = f.senders[s.Key()].Version + 1
	s.ChangedBy, s.ChangedAt = by, f.now()
	f.senders[s.Key()] = s
	f.writes++
	return s, nil
}

func (f *fakeStore) PutTemplate(_ context.Context, t schemas.Template, by string) (schemas.Template, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Version = f.templates[t.Key()].Version + 1
	t.ChangedBy, t.ChangedAt = by, f.now()
	f.templates[t.Key()] = t
	f.writes++
	return t, nil
}

func (f *fakeStore) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// seedFlow stores a flow as if written by the CLI.
func (f *fakeStore) seedFlow(t testing.TB, d schemas.FlowDefinition, by string) schemas.FlowDefinition {
	t.Helper()
	w, err := f.PutFlow(context.Background(), d, by)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// The catalog of the tests: a WhatsApp number and an SMS sender id
// active, one of each disabled; WhatsApp templates of each kind.
const (
	waActive   = "+4915100000000"
	waDisabled = "+4915100000009"
)

func seedCatalog(f *fakeStore) {
	for _, s := range []schemas.Sender{
		{Channel: "whatsapp", ID: waActive, Label: "main", Status: schemas.SenderActive},
		{Channel: "whatsapp", ID: waDisabled, Status: schemas.SenderDisabled},
		{Channel: "sms", ID: "ACME", Status: schemas.SenderActive},
		{Channel: "sms", ID: "OLDCO", Status: schemas.SenderDisabled},
		{Channel: "rcs", ID: "acme_agent", Status: schemas.SenderActive},
	} {
		s.Version, s.ChangedBy = 1, "seed"
		f.senders[s.Key()] = s
	}
	for _, t := range []schemas.Template{
		{Channel: "whatsapp", Name: "otp_auth", Language: "en", Category: "authentication", Body: "{{1}} is your verification code.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "otp_text", Language: "en", Category: "text", Body: "Hello {{name}}, your code is {{code}}.", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "promo", Language: "en", Category: "marketing", Body: "Sale!", Status: schemas.TemplateApproved},
		{Channel: "whatsapp", Name: "otp_pending", Language: "en", Category: "text", Body: "Code {{1}}", Status: schemas.TemplatePending},
		{Channel: "sms", Name: "otp_sms", Language: "en", Category: "otp", Body: "Your ACME code is {{code}}", Status: schemas.TemplateApproved},
		{Channel: "sms", Name: "otp_sms_de", Language: "de", Category: "otp", Body: "Ihr Code: {{code}}", Status: schemas.TemplateRejected},
	} {
		t.Version, t.ChangedBy = 1, "seed"
		f.templates[t.Key()] = t
	}
}

// otpFlow is a WhatsApp then SMS flow the catalog allows.
func otpFlow(id string) schemas.FlowDefinition {
	return schemas.FlowDefinition{FlowID: id, Title: "OTP " + id, Status: schemas.FlowPublished, Steps: []schemas.Step{
		{Channel: "whatsapp", From: waActive, Template: "otp_auth", DelaySeconds: 30, Variables: map[string]string{"1": "code"}},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}}
}

// ---- stories and outcomes ----

type fakeStories struct {
	states map[string]flowstory.Story // in clear: the console must mask
}

func (f fakeStories) Story(_ context.Context, id string, opt flowstory.Options) (flowstory.Story, bool, error) {
	st, ok := f.states[id]
	if !ok {
		return flowstory.Story{}, false, nil
	}
	if !opt.ShowParams {
		st.Params, st.Metadata = nil, nil
	}
	return st, true, nil
}

type fakeOutcomes struct{}

func (fakeOutcomes) Summary(flowID string, _ time.Duration) OutcomeSummary {
	return OutcomeSummary{Started: 7, DeliveredFirst: 4, DeliveredAfterFallback: 2, FallbacksOnTimeout: 3, Expired: 1, Closed: 7,
		TimeToOutcome: []OutcomeBucket{{UpTo: 5 * time.Second, Count: 4}, {UpTo: time.Minute, Count: 2}, {Count: 1}}}
}
func (o fakeOutcomes) Total(w time.Duration) OutcomeSummary {
	s := o.Summary("", w)
	s.Started = 99
	return s
}
func (fakeOutcomes) Charts(title string, s OutcomeSummary) template.HTML {
	return template.HTML(`<svg role="img" aria-label="` + template.HTMLEscapeString(title) + `"><rect width="10" height="10" fill="#0969da"/></svg>`)
}

// ---- the server under test ----

// Test users; their hashes are made once at bcrypt's least cost.
var testUsers = sync.OnceValue(func() []User {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		return string(h)
	}
	return []User{
		{Name: "vera", Role: RoleViewer, PasswordHash: hash("vera-pw")},
		{Name: "eddie", Role: RoleEditor, PasswordHash: hash("eddie-pw")},
		{Name: "ada", Role: RoleAdmin, PasswordHash: hash("ada-pw")},
	}
})

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	srv   *Server
	h     http.Handler
	store *fakeStore
	clock *fakeClock
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func newHarness(t testing.TB, change ...func(*Config)) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	store := newFakeStore(clock.Now)
	seedCatalog(store)
	logs := &syncBuffer{}
	cfg := Config{Store: store, Users: testUsers(), Now: clock.Now, Outcomes: fakeOutcomes{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, c := range change {
		c(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, h: srv.Handler(), store: store, clock: clock, logs: logs}
}

// agent is a browser: a session cookie and the CSRF token of its forms.
type agent struct {
	h      *harness
	cookie *http.Cookie
	csrf   string
}

type reply struct {
	Code   int
	Body   string
	Header http.Header
}

func (r reply) Location() string { return r.Header.Get("Location") }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in through the form and reads the CSRF token off a page.
func (h *harness) login(name, password string) *agent {
	h.t.Helper()
	r := h.post(nil, "/login", url.Values{"name": {name}, "password": {password}})
	if r.Code != http.StatusSeeOther {
		h.t.Fatalf("login %s: %d\n%s", name, r.Code, r.Body)
	}
	a := &agent{h: h}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == sessionCookie {
			a.cookie = c
		}
	}
	if a.cookie == nil {
		h.t.Fatalf("login %s: no session cookie", name)
	}
	page := a.get("/flows")
	m := csrfField.FindStringSubmatch(page.Body)
	if m == nil {
		h.t.Fatalf("no csrf token on /flows")
	}
	a.csrf = m[1]
	return a
}

func (h *harness) do(req *http.Request) reply {
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return reply{Code: rec.Code, Body: rec.Body.String(), Header: rec.Header()}
}

func (h *harness) post(a *agent, path string, form url.Values, headers ...string) reply {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if a != nil && a.cookie != nil {
		req.AddCookie(a.cookie)
	}
	return h.do(req)
}

func (a *agent) get(path string) reply {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if a.cookie != nil {
		req.AddCookie(a.cookie)
	}
	return a.h.do(req)
}

// post sends a form with the session's CSRF token.
func (a *agent) post(path string, form url.Values, headers ...string) reply {
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", a.csrf)
	}
	return a.h.post(a, path, form, headers...)
}

// follow gets the page a redirect leads to.
func (a *agent) follow(r reply) reply {
	a.h.t.Helper()
	if r.Code != http.StatusSeeOther {
		a.h.t.Fatalf("want a redirect, got %d\n%s", r.Code, r.Body)
	}
	return a.get(r.Location())
}

// editorForm is the form a browser posts for the steps given.
func editorForm(id, title string, steps []schemas.Step) url.Values {
	v := url.Values{"flow_id": {id}, "title": {title}, "step_count": {fmt.Sprint(len(steps))}}
	for i, s := range steps {
		p := fmt.Sprintf("steps[%d].", i)
		v.Set(p+"channel", s.Channel)
		v.Set(p+"from", s.From)
		v.Set(p+"template", s.Template)
		v.Set(p+"delay_seconds", fmt.Sprint(s.DelaySeconds))
		v.Set(p+"success_on", cmp.Or(s.SuccessOn, "delivered"))
		v.Set(p+"failure_codes", strings.Join(s.FailureCodes, ","))
		j := 0
		for _, k := range slices.Sorted(maps.Keys(s.Variables)) {
			v.Set(fmt.Sprintf("%smap[%d].placeholder", p, j), k)
			v.Set(fmt.Sprintf("%smap[%d].kind", p, j), "param")
			v.Set(fmt.Sprintf("%smap[%d].value", p, j), s.Variables[k])
			j++
		}
	}
	return v
}

// text is a page with its tags taken out and its spaces collapsed, to
// look for what a person reads.
func text(html string) string {
	s := regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(html, " ")
	s = strings.NewReplacer("&#34;", `"`, "&quot;", `"`, "&#39;", "'", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#43;", "+").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}
