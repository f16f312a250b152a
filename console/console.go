package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fallbackd/fallback/processor/flow"
)

// Config is what a console needs. Store is required; so are Users unless
// InsecureLocal.
type Config struct {
	Store Store
	// Stories answers the flow lookup; nil: the lookup page says it is not
	// configured.
	Stories Stories
	// Rejections let the lookup say why a request started no flow; nil:
	// it says only that there is none.
	Rejections Rejections
	// Outcomes are the outcome aggregates; nil: the outcome pages say they
	// are not configured.
	Outcomes Outcomes
	// Validator holds the processor's rules (Channels, Limits): those of
	// `fallback run`, so the console refuses what the processor refuses.
	// Its Catalog is set to Store; CatalogMode is set per check (drafts:
	// warn, publishing: auto). Zero: flow.DefaultChannels and
	// flow.DefaultLimits.
	Validator flow.Validator
	// Users who may log in (LoadUsers reads them from a file).
	Users []User
	// InsecureLocal serves without users: everyone is user "local" with
	// role admin. Only for a loopback listener (CheckListenAddr).
	InsecureLocal bool
	// Logger receives one "console change" line per change and the login
	// lines; nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock of sessions and the login limiter; nil: time.Now.
	Now func() time.Time
	// ClientAddr is the client's address that login attempts are limited
	// by; nil: the host of the request's RemoteAddr. Behind a proxy, the
	// command may read the proxy's X-Forwarded-For here.
	ClientAddr func(*http.Request) string
}

// LocalUser is who makes every change with InsecureLocal.
const LocalUser = "local"

// Server is a console. Its Handler serves every page.
type Server struct {
	store      Store
	stories    Stories
	rejections Rejections
	outcomes   Outcomes
	rules      flow.Validator // Catalog = store
	local      bool
	users      map[string]User
	// dummyHash is compared against for an unknown user name, so that a
	// login takes as long whether or not the name exists.
	dummyHash  []byte
	sessions   *sessionStore
	limiter    *loginLimiter
	flashes    *flashStore
	pages      pages
	log        *slog.Logger
	now        func() time.Time
	clientAddr func(*http.Request) string
	handler    http.Handler
}

// New checks cfg and builds a console.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: no Store")
	}
	switch {
	case len(cfg.Users) == 0 && !cfg.InsecureLocal:
		return nil, errors.New("console: no users: give a users file (fallback console --users FILE; " +
			"fallback console hash-password makes a hash), or --insecure-local on a loopback address")
	case len(cfg.Users) > 0 && cfg.InsecureLocal:
		return nil, errors.New("console: users and insecure-local exclude each other: with insecure-local nobody logs in")
	}
	s := &Server{store: cfg.Store, stories: cfg.Stories, rejections: cfg.Rejections, outcomes: cfg.Outcomes, rules: cfg.Validator,
		local: cfg.InsecureLocal, users: map[string]User{}, log: cfg.Logger, now: cfg.Now, clientAddr: cfg.ClientAddr}
	if s.rules.Channels == nil {
		s.rules.Channels = flow.DefaultChannels()
	}
	if s.rules.Limits == (flow.Limits{}) {
		s.rules.Limits = flow.DefaultLimits()
	}
	s.rules.Catalog = cfg.Store
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.clientAddr == nil {
		s.clientAddr = remoteHost
	}
	cost := HashCost
	for i, u := range cfg.Users {
		if err := checkUser(u); err != nil {
			return nil, fmt.Errorf("console: users[%d]: %w", i, err)
		}
		if _, dup := s.users[u.Name]; dup {
			return nil, fmt.Errorf("console: user %q is listed twice", u.Name)
		}
		s.users[u.Name] = u
		if i == 0 {
			cost, _ = bcrypt.Cost([]byte(u.PasswordHash))
		}
	}
	var err error
	if len(s.users) > 0 {
		if s.dummyHash, err = bcrypt.GenerateFromPassword([]byte(randomToken()[:32]), cost); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.sessions = newSessionStore(s.now)
	s.limiter = newLoginLimiter(s.now)
	s.flashes = newFlashStore(s.now)
	s.handler = s.routes()
	return s, nil
}

// Handler serves the console: the pages, wrapped so that a cross-origin
// form post is refused (403) before any handler runs.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	view, edit := RoleViewer, RoleEditor
	handle := func(pattern string, need Role, h http.HandlerFunc) {
		mux.Handle(pattern, s.authed(need, h))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/flows", http.StatusSeeOther) })
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	handle("POST /logout", view, s.logout)

	handle("GET /flows", view, s.flowsPage)
	handle("GET /flows/new", view, s.newFlowPage)
	handle("POST /flows/new", edit, s.newFlowAction)
	handle("GET /flows/{id}", view, s.flowPage)
	handle("POST /flows/{id}", edit, s.flowAction)
	handle("POST /flows/{id}/unpublish", edit, s.unpublishFlow)
	handle("GET /flows/{id}/delete", edit, s.deleteFlowPage)
	handle("POST /flows/{id}/delete", edit, s.deleteFlow)
	handle("GET /flows/{id}/history", view, s.historyPage)
	handle("POST /flows/{id}/restore", edit, s.restoreFlow)
	handle("GET /flows/{id}/test", view, s.testRunPage)
	// The editor's script: rules asked as the person types, fragments
	// re-rendered when a step's channel or template changes.
	handle("GET /check/delay", view, s.checkDelay)
	handle("POST /editor/steps", view, s.stepFragment)

	handle("GET /senders", view, s.sendersPage)
	handle("POST /senders", edit, s.addSender)
	handle("POST /senders/disable", edit, s.disableSender)
	handle("GET /templates", view, s.templatesPage)
	handle("POST /templates", edit, s.addTemplate)
	handle("GET /templates/preview", view, s.templatePreviewPage)

	handle("GET /lookup", view, s.lookupPage)
	handle("GET /outcomes", view, s.outcomesPage)

	// Browsers send Sec-Fetch-Site (or at least Origin) with a form post:
	// one from another origin is refused here, whatever the cookies.
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// securityHeaders: no framing, no inline script or style, nothing from
// elsewhere (the console works air-gapped), no caching of pages that may
// show params to an admin.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// remoteHost is the host of the request's RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
