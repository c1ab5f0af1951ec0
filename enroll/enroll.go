// Package enroll lets a new Pi join the rack in one step: the control center issues a
// short-lived, single-use token (pirack enroll, or the page), `pirack-agent enroll <host>
// <token>` on the Pi trades it for an agent account over HTTP, and the Pi then waits as
// *pending* until an operator approves it on the page or by pressing the Pi's own button,
// physical proof of which board it is.
//
// Tokens are kept hashed (SHA-256) in <data-dir>/enroll.json, so the file does not hold a
// usable token; each is 80 random bits, typed as four groups of four characters.
package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileName is the token store inside the data directory.
const FileName = "enroll.json"

// DefaultTTL is how long a token is valid when nobody says.
const DefaultTTL = 30 * time.Minute

// MaxTTL bounds a token's life: a token is a password that anyone who reads it may use once.
const MaxTTL = 24 * time.Hour

// Why a token is refused; each is wrapped with what the operator needs to know.
var (
	ErrUnknown = errors.New("unknown enrolment token")
	ErrExpired = errors.New("enrolment token expired")
	ErrUsed    = errors.New("enrolment token already used")
)

// token is one issued token, as stored.
type token struct {
	Hash    string    `json:"hash"` // SHA-256 of the normalised token
	Row     string    `json:"row"`
	By      string    `json:"by"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	UsedBy  string    `json:"used_by,omitempty"` // the MAC that redeemed it
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// Store holds the issued tokens.
type Store struct {
	path string
	Now  func() time.Time // nil means time.Now

	mu sync.Mutex
}

// Open returns the store of the data directory dir; the file is made at the first token.
func Open(dir string) *Store { return &Store{path: filepath.Join(dir, FileName)} }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// alphabet is Crockford's base 32: no I, L, O or U to misread.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// checkTTL refuses a token life out of bounds.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Minute || ttl > MaxTTL {
		return fmt.Errorf("a token lives 1 minute to %v, not %v", MaxTTL, ttl)
	}
	return nil
}

// Issue makes a token for a Pi of row, valid for ttl (0: DefaultTTL), and returns it with its
// expiry. by is who asked, for the audit.
func (s *Store) Issue(row string, ttl time.Duration, by string) (string, time.Time, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if err := checkTTL(ttl); err != nil {
		return "", time.Time{}, err
	}
	b := make([]byte, 16)
	rand.Read(b)
	var t strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			t.WriteByte('-')
		}
		t.WriteByte(alphabet[x&31])
	}
	text := t.String()
	now := s.now().UTC()
	exp := now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.load()
	if err != nil {
		return "", time.Time{}, err
	}
	all = append(prune(all, now), token{Hash: hash(text), Row: row, By: by, Created: now.Truncate(time.Second), Expires: exp})
	if err := s.save(all); err != nil {
		return "", time.Time{}, err
	}
	return text, exp, nil
}

// Redeem uses text up for mac and returns the row it was issued for. A token works once.
func (s *Store) Redeem(text, mac string) (row string, err error) {
	h := hash(text)
	now := s.now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.load()
	if err != nil {
		return "", err
	}
	for i := range all {
		t := &all[i]
		if t.Hash != h {
			continue
		}
		switch {
		case t.UsedBy != "":
			return "", fmt.Errorf("%w: by %s at %s; issue a new one (pirack enroll)", ErrUsed, t.UsedBy, t.UsedAt.Format(time.RFC3339))
		case !now.Before(t.Expires):
			return "", fmt.Errorf("%w at %s; issue a new one (pirack enroll)", ErrExpired, t.Expires.Format(time.RFC3339))
		}
		t.UsedBy, t.UsedAt = mac, now.Truncate(time.Second)
		if err := s.save(all); err != nil {
			return "", err
		}
		return t.Row, nil
	}
	return "", fmt.Errorf("%w: check it was typed as printed (pirack enroll issues one)", ErrUnknown)
}

// hash is the stored form of a token: case, spaces and dashes do not matter when typed.
func hash(text string) string {
	t := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(text)))
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// prune drops tokens expired more than a day ago.
func prune(all []token, now time.Time) []token {
	out := all[:0]
	for _, t := range all {
		if now.Sub(t.Expires) < 24*time.Hour {
			out = append(out, t)
		}
	}
	return out
}

func (s *Store) load() ([]token, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enrolment tokens: %w", err)
	}
	var all []token
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("enrolment tokens: %s is damaged (%v); remove it and issue new tokens", s.path, err)
	}
	return all, nil
}

// save writes the tokens atomically, readable by the service only.
func (s *Store) save(all []token) error {
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".enroll-*")
	if err != nil {
		return fmt.Errorf("enrolment tokens: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("enrolment tokens: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("enrolment tokens: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("enrolment tokens: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
