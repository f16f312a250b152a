package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/schemas"
)

// Pages are html/template files: templates/layout.html is the frame (nav,
// landmarks, the error summary, flash messages) and defines "layout";
// each page file defines "content" and is parsed with the layout and the
// partials (templates/_*.html) into a set of its own.

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/*
var staticFiles embed.FS

type pages map[string]*template.Template

func parsePages() (pages, error) {
	base, err := template.New("").Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := pages{}
	for _, file := range names {
		name := strings.TrimSuffix(path.Base(file), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, file)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", file, err)
		}
		out[name] = t
	}
	return out, nil
}

// staticHandler serves the embedded stylesheet and script.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFiles, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// pageData is what the layout needs; Data is the page's own.
type pageData struct {
	Title   string // the <title> and the <h1>
	Section string // the nav entry that is the current page
	Flashes []flash
	// Errors are the summary at the top, each linking to its field.
	Errors []fieldError
	Data   any

	// Set by render.
	User  User
	Local bool
	CSRF  string
}

// fieldError is a message about one field of a form. ID is the input's
// id ("" when it names no input: then it is in the summary only).
type fieldError struct {
	Field   string
	ID      string
	Message string
}

// flash is a message carried across a redirect after a change.
type flash struct {
	Warn bool
	Text string
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render executes a page into a buffer first, so that a template error is
// a clean 500, not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p pageData) {
	v := visitorOf(r)
	p.User, p.Local, p.CSRF = v.user, s.local, v.csrf
	if token := r.URL.Query().Get("done"); token != "" && v.user.Name != "" {
		p.Flashes = append(s.flashes.take(token, v.user.Name), p.Flashes...)
	}
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := t.ExecuteTemplate(buf, "layout", p); err != nil {
		s.log.Error("console render", "page", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderFragment executes one template of a page's set alone: a part of
// the page for the script to swap in.
func (s *Server) renderFragment(w http.ResponseWriter, page, name string, data any) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := s.pages[page].ExecuteTemplate(buf, name, data); err != nil {
		s.log.Error("console render", "page", page, "part", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// renderStatus is a page with one message (403, 404, a store error).
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.render(w, r, status, "status", pageData{Title: http.StatusText(status), Data: message})
}

// redirectDone redirects after a change (post, redirect, get), carrying
// its messages to the next page.
func (s *Server) redirectDone(w http.ResponseWriter, r *http.Request, to string, msgs ...flash) {
	if len(msgs) > 0 {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "done=" + s.flashes.put(visitorOf(r).user.Name, msgs)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// flashStore keeps the messages of a redirect for a minute under a random
// token in the next page's URL. Nothing of the message is in the URL, so
// a crafted link cannot make the console say something, and a message
// shows only to the user it was made for.
type flashStore struct {
	mu  sync.Mutex
	m   map[string]flashEntry
	now func() time.Time
}

type flashEntry struct {
	user    string
	msgs    []flash
	expires time.Time
}

const flashTTL = time.Minute

func newFlashStore(now func() time.Time) *flashStore {
	return &flashStore{m: map[string]flashEntry{}, now: now}
}

func (f *flashStore) put(user string, msgs []flash) string {
	token := randomToken()[:22]
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, e := range f.m {
		if now.After(e.expires) {
			delete(f.m, k)
		}
	}
	f.m[token] = flashEntry{user: user, msgs: msgs, expires: now.Add(flashTTL)}
	return token
}

func (f *flashStore) take(token, user string) []flash {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[token]
	if !ok || e.user != user || f.now().After(e.expires) {
		return nil
	}
	delete(f.m, token)
	return e.msgs
}

// ---- template functions ----

var templateFuncs = template.FuncMap{
	"fieldID": fieldID,
	"flowURL": flowURL,
	"flowSub": flowSubURL,
	"when":    when,
	"whenPtr": whenPtr,
	"dur":     durationText,
	"mask":    processor.MaskPhone,
	"add":     func(a, b int) int { return a + b },
	"query":   url.QueryEscape,
	"join":    strings.Join,
	"canEdit": func(u User) bool { return u.Role.Can(RoleEditor) },
	"fe": func(id string, errs map[string][]string) fieldMessages {
		return fieldMessages{ID: id, Messages: errs[id]}
	},
	"tabs": func(id, current string, outcomes bool) flowTabs {
		return flowTabs{ID: id, Current: current, Outcomes: outcomes}
	},
	"status":   func(d any) string { return statusOf(d) },
	"deref":    deref[string],
	"deref64":  deref[int64],
	"derefInt": deref[int],
}

// fieldMessages are the messages about one input ("fielderr").
type fieldMessages struct {
	ID       string
	Messages []string
}

// flowTabs are the tabs of one stored flow's pages ("flowtabs").
type flowTabs struct {
	ID, Current string
	Outcomes    bool
}

func statusOf(d any) string {
	switch d := d.(type) {
	case schemas.FlowDefinition:
		return flowStatus(d)
	case *schemas.FlowDefinition:
		return flowStatus(*d)
	}
	return ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// stepField is a rule's field of a step: "steps[1].delay_seconds".
var stepField = regexp.MustCompile(`^steps\[(\d+)\]\.([a-z_]+)`)

// fieldID is the id of the input a rule's Rejection.Field names, so an
// error can be shown next to it and linked from the summary:
// "steps[1].delay_seconds" is "steps-1-delay_seconds". A step's template
// category is its template's (the editor has no input for it), and the
// variables and fixed text are its mapping's.
func fieldID(field string) string {
	m := stepField.FindStringSubmatch(field)
	if m == nil {
		switch field {
		case "flow_id", "title", "steps":
			return field
		case "channel", "id", "label", "status", "name", "language", "category", "body", "provider_template_id", "sender":
			return field // the catalog forms
		}
		return ""
	}
	name := m[2]
	switch name {
	case "template_category":
		name = "template"
	case "variables", "fixed_text":
		name = "mapping"
	}
	return "steps-" + m[1] + "-" + name
}

// flowURL is a flow's page. Ids are path-escaped (an id may hold a /);
// the one id the new-flow page's path takes, "new", goes by query.
func flowURL(id string) string {
	if id == "new" {
		return "/flows/new?id=new"
	}
	return "/flows/" + url.PathEscape(id)
}

// flowSubURL is a page of a flow: "/flows/{id}/history".
func flowSubURL(id, page string) string { return "/flows/" + url.PathEscape(id) + "/" + page }

func urlQuery(s string) string { return url.QueryEscape(s) }

// when is a time as the pages show it: UTC, to the second.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

// durationText is a duration for people: "1m30s", "2.5s", "450ms".
func durationText(d time.Duration) string {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.String()
}
