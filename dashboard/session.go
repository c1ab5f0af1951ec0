package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"sync"
	"time"

	"github.com/pirack/pirack/auth"
)

// sessionTTL is how long a login lasts. It is absolute, not sliding: an operator logs in once a
// working day.
const sessionTTL = 12 * time.Hour

// session is what a session cookie stands for.
type session struct {
	user    string
	role    auth.Role
	expires time.Time
}

// sessions keeps login sessions in memory: a restart logs everybody out, which is acceptable for
// a control host and keeps secrets off the disk.
type sessions struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: make(map[string]session)}
}

// create starts a session and returns its id: 32 random bytes, base64url-encoded.
func (s *sessions) create(u auth.User) (string, time.Time) {
	var b [32]byte
	rand.Read(b[:]) // never returns an error since Go 1.24; it crashes the program instead
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	exp := now.Add(sessionTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sweep expired sessions here, the only place the map grows.
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[id] = session{user: u.Name, role: u.Role, expires: exp}
	return id, exp
}

// get returns the live session for id.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(v.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return v, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// Failed-login limits: per remote IPv4 address or IPv6 /64, a fixed window. Small and simple on
// purpose; it slows a password guesser down to a few tries a minute without any state on disk.
// Memory is bounded: at maxLimiterEntries, expired windows are pruned, and if every window is
// still live the map is cleared (a spray from that many networks is not stopped per address
// anyway).
const (
	maxLoginFailures  = 5
	loginWindow       = time.Minute
	maxLimiterEntries = 10000
)

// limiterKey is the address a failure counts against: an IPv6 host owns at least a /64, so
// counting per address would let it try 2^64 times.
func limiterKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

type loginLimiter struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]*window
}

// size returns how many windows are held.
func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

type window struct {
	start    time.Time
	failures int
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, m: make(map[string]*window)}
}

// blocked reports whether ip has used up its failures in the current window.
func (l *loginLimiter) blocked(ip string) bool {
	ip = limiterKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[ip]
	if !ok {
		return false
	}
	if l.now().Sub(w.start) >= loginWindow {
		delete(l.m, ip)
		return false
	}
	return w.failures >= maxLoginFailures
}

// fail records a failed login from ip.
func (l *loginLimiter) fail(ip string) {
	ip = limiterKey(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[ip]
	if !ok || now.Sub(w.start) >= loginWindow {
		if len(l.m) >= maxLimiterEntries {
			for k, v := range l.m {
				if now.Sub(v.start) >= loginWindow {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxLimiterEntries {
				clear(l.m) // a spray this wide is not stopped per IP anyway
			}
		}
		w = &window{start: now}
		l.m[ip] = w
	}
	w.failures++
}
