package console

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Who is asking: every page but the login runs behind authed, which puts
// the user (and the session's CSRF token) in the request's context.

type visitorKey struct{}

// visitor is the user of a request.
type visitor struct {
	user      User
	sessionID string // "" with InsecureLocal
	csrf      string // "" with InsecureLocal
}

func visitorOf(r *http.Request) visitor {
	v, _ := r.Context().Value(visitorKey{}).(visitor)
	return v
}

// maxFormBytes bounds a posted form: a flow of 8 steps with its mapping
// is a few kilobytes, a template body at most 4 KB.
const maxFormBytes = 1 << 20

// authed serves h to a logged-in user whose role includes need. A user
// without a session is sent to the login page; a post must carry the
// session's CSRF token; a role short of need gets 403 whatever the page
// offered (a forged request included).
func (s *Server) authed(need Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v visitor
		if s.local {
			v = visitor{user: User{Name: LocalUser, Role: RoleAdmin}}
		} else {
			c, err := r.Cookie(sessionCookie)
			var ses session
			ok := err == nil
			if ok {
				ses, ok = s.sessions.get(c.Value)
			}
			if !ok {
				s.toLogin(w, r)
				return
			}
			v = visitor{user: ses.user, sessionID: ses.id, csrf: ses.csrf}
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
				return
			}
			// SameSite=Strict and the cross-origin check already stop a
			// forged post from a browser; the token also covers a browser
			// that sends neither Sec-Fetch-Site nor Origin.
			if v.csrf != "" && subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(v.csrf)) != 1 &&
				subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(v.csrf)) != 1 {
				s.log.Warn("console refused", "user", v.user.Name, "path", r.URL.Path, "reason", "csrf token missing or stale")
				s.renderStatus(w, r.WithContext(context.WithValue(r.Context(), visitorKey{}, v)), http.StatusForbidden,
					"This form is out of date (its security token does not match your session). Go back, reload the page and try again.")
				return
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), visitorKey{}, v))
		if !v.user.Role.Can(need) {
			s.log.Warn("console refused", "user", v.user.Name, "role", string(v.user.Role), "path", r.URL.Path, "reason", "role")
			s.renderStatus(w, r, http.StatusForbidden,
				fmt.Sprintf("Your role (%s) may not do this: changes need the role %s.", v.user.Role, need))
			return
		}
		h(w, r)
	})
}

// toLogin sends a visitor without a session to the login page, to come
// back to the page asked for.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.Header.Get("Accept") == "application/json" {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// safeNext is a local path to go to after logging in: never another site
// ("//evil", "/\evil", "https://evil").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n") {
		return "/flows"
	}
	return next
}

type loginView struct {
	Name    string
	Next    string
	Message string
	Local   bool
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.local {
		http.Redirect(w, r, "/flows", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: loginView{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.local {
		http.Redirect(w, r, "/flows", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	name, password := r.PostForm.Get("name"), r.PostForm.Get("password")
	view := loginView{Name: name, Next: safeNext(r.PostForm.Get("next"))}
	user, known := s.users[name]
	keys := []limitKey{addrKey(s.clientAddr(r))}
	if known { // only real names get a count: junk names cannot fill memory
		keys = append(keys, userKey(name))
	}
	if wait := s.limiter.wait(keys...); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		view.Message = fmt.Sprintf("Too many failed logins. Try again in %d seconds.", secs)
		s.log.Warn("console login refused", "user", logName(name, known), "addr", s.clientAddr(r), "retry_after_s", secs)
		s.render(w, r, http.StatusTooManyRequests, "login", pageData{Title: "Log in", Data: view})
		return
	}
	hash := s.dummyHash
	if known {
		hash = []byte(user.PasswordHash)
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !known {
		s.limiter.failed(keys...)
		s.log.Warn("console login failed", "user", logName(name, known), "addr", s.clientAddr(r))
		view.Message = "Wrong user name or password."
		s.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in", Data: view})
		return
	}
	s.limiter.succeeded(userKey(name))
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.delete(c.Value)
	}
	ses := s.sessions.create(user)
	http.SetCookie(w, sessionCookieFor(ses.id, 0))
	s.log.Info("console login", "user", user.Name, "role", string(user.Role), "addr", s.clientAddr(r))
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

// logName is a login's user name as logged: an unknown one may be a
// password typed in the wrong field, so it is not written down.
func logName(name string, known bool) string {
	if known {
		return name
	}
	return "(unknown)"
}

// sessionCookieFor is the session cookie: Secure always (browsers take a
// Secure cookie from http://127.0.0.1 and http://localhost too, and Go's
// cookie jar does), HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it). maxAge 0 makes it a browser-session cookie:
// the server ends the session after 8 idle hours, and a cookie with a
// lifetime of its own would end an active session 8 hours after login.
// A negative maxAge deletes it.
func sessionCookieFor(id string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	v := visitorOf(r)
	if v.sessionID != "" {
		s.sessions.delete(v.sessionID)
		s.log.Info("console logout", "user", v.user.Name)
	}
	http.SetCookie(w, sessionCookieFor("", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
