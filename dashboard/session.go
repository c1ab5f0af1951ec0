package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pirack/pirack/auth"
)

// sessionTTL is how long a login lasts. It is absolute, not sliding: an operator logs in once a
// working day.
const sessionTTL = 12 * time.Hour

// session is what a session cookie stands for.
type session struct {
	User    string    `json:"user"`
	Role    auth.Role `json:"role"`    // at login; each request uses the role the users store holds now
	Hash    string    `json:"pw"`      // SHA-256 of the user's password hash at login: a new password ends the session
	Expires time.Time `json:"expires"` //
}

// SessionsFile is where sessions survive a restart, inside the data directory.
const SessionsFile = "sessions.json"

// sessions keeps login sessions in memory and, when path is set, in a file, so that a restart
// of the control center signs nobody out (a wall display included). The file holds each
// session by the SHA-256 of its id, never the id itself: reading it does not give a usable
// cookie. It is written atomically, mode 0600, at each login and logout.
type sessions struct {
	now  func() time.Time
	path string // "" keeps sessions in memory only
	log  *slog.Logger

	mu sync.Mutex
	m  map[string]session // by SHA-256 of the id, hex
}

func newSessions(now func() time.Time, path string, log *slog.Logger) *sessions {
	s := &sessions{now: now, path: path, log: log, m: make(map[string]session)}
	if path == "" {
		return s
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		log.Warn("cannot read the saved sessions; everybody signs in again", "file", path, "err", err)
	default:
		if err := json.Unmarshal(b, &s.m); err != nil {
			log.Warn("saved sessions unreadable; everybody signs in again", "file", path, "err", err)
			s.m = make(map[string]session)
		}
	}
	now2 := now()
	for k, v := range s.m {
		if !now2.Before(v.Expires) {
			delete(s.m, k)
		}
	}
	return s
}

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// pwTag is what a session remembers of the user's password hash.
func pwTag(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(sum[:])
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
		if !now.Before(v.Expires) {
			delete(s.m, k)
		}
	}
	s.m[sessionKey(id)] = session{User: u.Name, Role: u.Role, Hash: pwTag(u.Hash), Expires: exp}
	s.saveLocked()
	return id, exp
}

// get returns the live session for id.
func (s *sessions) get(id string) (session, bool) {
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(v.Expires) {
		delete(s.m, k)
		return session{}, false
	}
	return v, true
}

// keep updates session id to the user's new password hash: the session that changed the
// password stays, while the user's other sessions end at their next request.
func (s *sessions) keep(id, hash string) {
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok {
		v.Hash = pwTag(hash)
		s.m[k] = v
		s.saveLocked()
	}
}

// extend makes session id last d from now (a kiosk's).
func (s *sessions) extend(id string, d time.Duration) {
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok {
		v.Expires = s.now().Add(d)
		s.m[k] = v
		s.saveLocked()
	}
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[sessionKey(id)]; ok {
		delete(s.m, sessionKey(id))
		s.saveLocked()
	}
}

// saveLocked writes the sessions file; a failure is logged (sessions then last only until the
// next restart). s.mu is held.
func (s *sessions) saveLocked() {
	if s.path == "" {
		return
	}
	b, err := json.Marshal(s.m)
	if err == nil {
		err = writeFileAtomic(s.path, b, 0o600)
	}
	if err != nil {
		s.log.Warn("cannot save the sessions; a restart will sign everybody out", "file", s.path, "err", err)
	}
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Failed-login limits: per remote IPv4 address or IPv6 /64, a fixed window. Small and simple on
// purpose; it slows a password guesser down to a few tries a minute without any state on disk.
// An attempt counts when it starts, before its password is checked (bcrypt takes ~50 ms), and a
// successful one is given back when it ends: counting after the check let 200 concurrent
// guesses through a limit of 5. Memory is bounded: at maxLimiterEntries, expired windows are
// pruned, and if every window is still live the map is cleared (a spray from that many
// networks is not stopped per address anyway).
const (
	DefaultLoginLimit = 5 // Config.LoginLimit when zero
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
	now   func() time.Time
	limit int // attempts per window that are failures or still being checked

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
	attempts int  // failed, or still being checked
	refused  bool // an attempt was refused in this window (and audited, once)
}

func newLoginLimiter(now func() time.Time, limit int) *loginLimiter {
	return &loginLimiter{now: now, limit: limit, m: make(map[string]*window)}
}

// refusal says why begin refused an attempt.
type refusal struct {
	retryAfter time.Duration // until the window ends
	first      bool          // the first refusal of this address in its window: audit this one only
}

// begin admits a login attempt from ip and counts it at once. It returns done, to be called
// with whether the credentials were right (a success is given back), or, past the limit, nil
// and why: the caller must then refuse without checking the password.
func (l *loginLimiter) begin(ip string) (done func(ok bool), r refusal) {
	key := limiterKey(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	if !ok || now.Sub(w.start) >= loginWindow {
		l.makeRoom(now)
		w = &window{start: now}
		l.m[key] = w
	}
	if w.attempts >= l.limit {
		r = refusal{retryAfter: w.start.Add(loginWindow).Sub(now), first: !w.refused}
		w.refused = true
		return nil, r
	}
	w.attempts++
	return func(ok bool) {
		if !ok {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.m[key] == w && w.attempts > 0 { // not if the window was replaced meanwhile
			w.attempts--
		}
	}, refusal{}
}

// makeRoom bounds the map before a window is added. l.mu is held.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.m) < maxLimiterEntries {
		return
	}
	for k, v := range l.m {
		if now.Sub(v.start) >= loginWindow {
			delete(l.m, k)
		}
	}
	if len(l.m) >= maxLimiterEntries {
		clear(l.m) // a spray this wide is not stopped per IP anyway
	}
}
