package console

import (
	"net/netip"
	"sync"
	"time"
)

// Login attempts are limited per user name and per client address, so
// that neither guessing one user's password nor trying one password on
// many users goes fast. A key has a few free failures; after them each
// attempt must wait a delay that doubles with every further failure, and
// an attempt that comes too early is answered 429 without the password
// being checked. A success clears its user name's count (not the
// address's: a user logging into their own account must not reset a
// guesser's count on the same address).
const (
	freeFailuresPerUser = 5
	// Higher per address: an office behind one NAT, or a proxy whose
	// address stands for every client (docs/console.md).
	freeFailuresPerAddr = 20
	firstLoginDelay     = 5 * time.Second
	maxLoginDelay       = 15 * time.Minute
	// forgetFailuresAfter: a key without a failure for this long starts
	// afresh.
	forgetFailuresAfter = time.Hour
	// maxLimiterKeys bounds the memory a flood of addresses can take;
	// only known user names get a key of their own.
	maxLimiterKeys = 100_000
)

type loginLimiter struct {
	mu      sync.Mutex
	entries map[string]*failureCount
	now     func() time.Time
}

type failureCount struct {
	n    int
	free int // failures allowed before delays start
	last time.Time
}

// limitKey is one thing attempts are counted against.
type limitKey struct {
	key  string
	free int
}

func userKey(name string) limitKey { return limitKey{"user " + name, freeFailuresPerUser} }

// addrKey counts an address; an IPv6 address counts as its /64, which one
// client usually holds whole.
func addrKey(addr string) limitKey {
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		addr = p.String()
	}
	return limitKey{"addr " + addr, freeFailuresPerAddr}
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{entries: map[string]*failureCount{}, now: now}
}

// delay is the wait after n failures with free allowed.
func (f *failureCount) delay() time.Duration {
	over := f.n - f.free
	if over < 0 {
		return 0
	}
	d := firstLoginDelay
	for range over {
		if d >= maxLoginDelay {
			break
		}
		d *= 2
	}
	return min(d, maxLoginDelay)
}

// wait is how long the caller must wait before an attempt counted
// against keys; 0 allows it now.
func (l *loginLimiter) wait(keys ...limitKey) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var longest time.Duration
	for _, k := range keys {
		f, ok := l.entries[k.key]
		if !ok {
			continue
		}
		if now.Sub(f.last) >= forgetFailuresAfter {
			delete(l.entries, k.key)
			continue
		}
		if w := f.last.Add(f.delay()).Sub(now); w > longest {
			longest = w
		}
	}
	return longest
}

// failed counts a failed attempt against keys.
func (l *loginLimiter) failed(keys ...limitKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.entries) >= maxLimiterKeys {
		for k, f := range l.entries {
			if now.Sub(f.last) >= forgetFailuresAfter {
				delete(l.entries, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := l.entries[k.key]
		if !ok {
			if len(l.entries) >= maxLimiterKeys {
				continue
			}
			f = &failureCount{free: k.free}
			l.entries[k.key] = f
		}
		f.n++
		f.last = now
	}
}

// succeeded clears a key's failures.
func (l *loginLimiter) succeeded(k limitKey) {
	l.mu.Lock()
	delete(l.entries, k.key)
	l.mu.Unlock()
}
