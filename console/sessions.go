package console

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// Sessions live in the server's memory: a restart logs everyone out,
// which for a configuration console is acceptable and keeps secrets off
// disk. Several console instances behind one address need sticky
// sessions (docs/console.md).

const (
	sessionCookie = "fallback_session"
	// sessionIdle is how long a session lasts without a request.
	sessionIdle = 8 * time.Hour
	// sessionSweepEvery bounds how often expired sessions are dropped
	// (on a login, so no goroutine runs for it).
	sessionSweepEvery = 10 * time.Minute
)

// session is one logged-in browser. Only lastSeen changes after creation.
type session struct {
	id       string // 32 random bytes, base64url: the cookie's value
	user     User
	csrf     string // the hidden form field every POST of the session carries
	lastSeen time.Time
}

type sessionStore struct {
	mu        sync.Mutex
	byID      map[string]*session
	now       func() time.Time
	lastSweep time.Time
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{byID: map[string]*session{}, now: now, lastSweep: now()}
}

// randomToken is 32 bytes from the system's CSPRNG, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for u: always a new id, so a session id known
// before the login (fixation) is worth nothing after it.
func (s *sessionStore) create(u User) session {
	u.PasswordHash = "" // the session never needs it
	now := s.now()
	ses := &session{id: randomToken(), user: u, csrf: randomToken(), lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= sessionSweepEvery {
		for id, old := range s.byID {
			if now.Sub(old.lastSeen) >= sessionIdle {
				delete(s.byID, id)
			}
		}
		s.lastSweep = now
	}
	s.byID[ses.id] = ses
	return *ses
}

// get returns the live session of id and marks it used; an expired one
// is dropped.
func (s *sessionStore) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	now := s.now()
	if now.Sub(ses.lastSeen) >= sessionIdle {
		delete(s.byID, id)
		return session{}, false
	}
	ses.lastSeen = now
	return *ses, true
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}
