package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pirack/pirack/auth"
)

// Kiosk links let a wall display show the rack without anyone's password: an admin makes a
// link (/kiosk/<token>) with a name, the display opens it once and gets a read-only session
// (a viewer's rights), which survives restarts like any session; revoking the link ends it at
// its next request. Links are kept by the SHA-256 of their token in <data-dir>/kiosk.json.

// KioskFile is where kiosk links live, in the data directory.
const KioskFile = "kiosk.json"

// kioskPrefix marks a kiosk's session: its user is "kiosk:<name>", which no user can be called
// (a colon is not allowed in user names).
const kioskPrefix = "kiosk:"

// Kiosk is one kiosk link, as listed.
type Kiosk struct {
	Name    string    `json:"name"`
	By      string    `json:"by"`
	Created time.Time `json:"created"`
	Hash    string    `json:"hash"` // SHA-256 of the token
}

type kiosks struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	l  []Kiosk
}

func openKiosks(path string, log *slog.Logger) *kiosks {
	k := &kiosks{path: path, log: log}
	if path == "" {
		return k
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot read the kiosk links; none work", "file", path, "err", err)
		}
		return k
	}
	if err := json.Unmarshal(b, &k.l); err != nil {
		log.Warn("kiosk links unreadable; none work", "file", path, "err", err)
		k.l = nil
	}
	return k
}

func kioskPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, KioskFile)
}

var kioskName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// add makes a link named name and returns its token.
func (k *kiosks) add(name, by string, now time.Time) (string, error) {
	if !kioskName.MatchString(name) {
		return "", fmt.Errorf("kiosk name %q: 1-32 characters of a-z, 0-9, _ and -", clipLog(name))
	}
	var b [32]byte
	rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	k.mu.Lock()
	defer k.mu.Unlock()
	if slices.ContainsFunc(k.l, func(x Kiosk) bool { return x.Name == name }) {
		return "", fmt.Errorf("a kiosk link called %q exists; revoke it first, or pick another name", name)
	}
	k.l = append(k.l, Kiosk{Name: name, By: by, Created: now, Hash: tokenHash(token)})
	return token, k.saveLocked()
}

func (k *kiosks) revoke(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := len(k.l)
	k.l = slices.DeleteFunc(k.l, func(x Kiosk) bool { return x.Name == name })
	if len(k.l) == n {
		return false
	}
	if err := k.saveLocked(); err != nil {
		k.log.Error("cannot save the kiosk links: the revoked one works again after a restart", "err", err)
	}
	return true
}

// byToken finds the link of a token.
func (k *kiosks) byToken(token string) (Kiosk, bool) {
	h := tokenHash(token)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range k.l {
		if subtle.ConstantTimeCompare([]byte(x.Hash), []byte(h)) == 1 {
			return x, true
		}
	}
	return Kiosk{}, false
}

func (k *kiosks) exists(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.ContainsFunc(k.l, func(x Kiosk) bool { return x.Name == name })
}

func (k *kiosks) list() []Kiosk {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(k.l)
	for i := range out {
		out[i].Hash = ""
	}
	return out
}

func (k *kiosks) saveLocked() error {
	if k.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(k.l, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(k.path, b, 0o600)
}

// handleKioskOpen serves GET /kiosk/{token}: a valid link signs the display in, read-only, and
// shows the rack; anything else is the login page.
func (s *Server) handleKioskOpen(w http.ResponseWriter, r *http.Request) {
	k, ok := s.kiosks.byToken(r.PathValue("token"))
	if !ok {
		s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, Via: "kiosk", Reason: "unknown or revoked kiosk link"})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	u := auth.User{Name: kioskPrefix + k.Name, Role: auth.RoleViewer, Hash: k.Hash}
	if err := s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditAllowed, User: u.Name, Role: string(u.Role), Via: "kiosk"}); err != nil {
		http.Error(w, "the sign-in could not be audited, so it is refused; see the server log", http.StatusServiceUnavailable)
		return
	}
	id, exp := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", Expires: exp.Add(kioskSessionTTL - sessionTTL),
		HttpOnly: true, Secure: s.secureCookies, SameSite: http.SameSiteLaxMode})
	s.sessions.extend(id, kioskSessionTTL)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// kioskSessionTTL is how long a wall display stays signed in: a year, since nobody is there to
// sign it in again; revoking its link ends it at once.
const kioskSessionTTL = 365 * 24 * time.Hour

// checkKiosk is checkSession for a kiosk's session: its link must still exist.
func (s *Server) checkKiosk(id string, sess session) (principal, *authFailure) {
	name := strings.TrimPrefix(sess.User, kioskPrefix)
	if !s.kiosks.exists(name) {
		s.sessions.delete(id)
		return principal{}, &authFailure{status: http.StatusUnauthorized, msg: "this kiosk link was revoked; sign in at /login"}
	}
	return principal{name: sess.User, role: auth.RoleViewer, via: "kiosk"}, nil
}

// kioskRequest is the body of POST /api/kiosk.
type kioskRequest struct {
	Name   string `json:"name"`
	Revoke bool   `json:"revoke"`
}

// handleKiosk serves POST /api/kiosk: {"name": "wall"} makes a kiosk link and answers its path
// once; {"name": "wall", "revoke": true} revokes it. GET /api/kiosk lists the links.
func (s *Server) handleKiosk(w http.ResponseWriter, r *http.Request) {
	var req kioskRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"name": "wall-display"} (and "revoke": true to revoke it)`)
		return
	}
	if err := s.record(r, commandEntry(r, AuditKiosk, "", map[string]any{"name": clipAudit(req.Name), "revoke": req.Revoke})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if req.Revoke {
		if !s.kiosks.revoke(req.Name) {
			writeError(w, http.StatusNotFound, "no kiosk link called "+clipLog(req.Name))
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Revoked string `json:"revoked"`
		}{req.Name})
		return
	}
	token, err := s.kiosks.add(req.Name, principalFrom(r.Context()).name, s.cfg.Now().UTC())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}{req.Name, "/kiosk/" + token})
}
