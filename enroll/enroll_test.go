package enroll

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	for _, ttl := range []time.Duration{time.Second, 25 * time.Hour} {
		if _, _, err := s.Issue("r1", ttl, "t"); err == nil {
			t.Errorf("Issue with ttl %v: no error", ttl)
		}
	}
	tok, exp, err := s.Issue("r1", 0, "t")
	if err != nil || time.Until(exp) < DefaultTTL-time.Minute {
		t.Fatalf("Issue: %q %v %v", tok, exp, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.Contains(string(b), strings.ReplaceAll(tok, "-", "")) || strings.Contains(string(b), tok) {
		t.Fatal("the token is stored in clear")
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileName)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode %v, want 0600", FileName, fi.Mode().Perm())
	}
	if _, err := s.Redeem(" "+strings.ReplaceAll(tok, "-", " ")+" ", "b827eb000001"); err != nil {
		t.Fatalf("a token typed with spaces: %v", err)
	}
	if _, err := s.Redeem(tok, "b827eb000002"); !errors.Is(err, ErrUsed) {
		t.Fatalf("second use: %v", err)
	}
}

// A guesser gets 10 tries per address, then 429; a control center on a foreign broker refuses.
// A token issued from the page is audited first; when the audit log cannot be written, no
// token is issued, and an invalid life is refused before anything is recorded.
func TestTokenHandlerAudits(t *testing.T) {
	store := Open(t.TempDir())
	var audited []string
	auditErr := error(nil)
	h := TokenHandler(store, func(*http.Request) string { return "alice" }, func(_ *http.Request, row string, ttl time.Duration) error {
		audited = append(audited, fmt.Sprintf("%s %v", row, ttl))
		return auditErr
	}, "not done: unaudited", slog.New(slog.DiscardHandler))
	post := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/enroll/tokens", strings.NewReader(body)))
		return w
	}
	if w := post(`{"row": "r2"}`); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"token"`) {
		t.Fatalf("issue: %d %s", w.Code, w.Body)
	}
	if w := post(`{"row": "r2", "ttl_s": 5}`); w.Code != http.StatusBadRequest {
		t.Fatalf("a 5 s token: %d %s, want 400", w.Code, w.Body)
	}
	auditErr = errors.New("disk full")
	if w := post(`{"row": "r3"}`); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "unaudited") {
		t.Fatalf("with the audit log failing: %d %s, want 503", w.Code, w.Body)
	}
	if want := []string{"r2 30m0s", "r3 30m0s"}; !slices.Equal(audited, want) {
		t.Errorf("audited %q, want %q (the refused life not at all)", audited, want)
	}
}

func TestHandlerLimits(t *testing.T) {
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Open(dir), users, func() (int, int, bool) { return 1883, 0, true }, slog.New(slog.DiscardHandler))
	post := func(h http.Handler) int {
		r := httptest.NewRequest(http.MethodPost, "/api/enroll", strings.NewReader(`{"token":"AAAA-AAAA-AAAA-AAAA","mac":"b827eb000001"}`))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i := range failLimit {
		if code := post(h); code != http.StatusForbidden {
			t.Fatalf("guess %d: %d, want 403", i+1, code)
		}
	}
	if code := post(h); code != http.StatusTooManyRequests {
		t.Fatalf("guess %d: %d, want 429", failLimit+1, code)
	}
	foreign := Handler(Open(dir), users, func() (int, int, bool) { return 0, 0, false }, slog.New(slog.DiscardHandler))
	if code := post(foreign); code != http.StatusServiceUnavailable {
		t.Fatalf("on a foreign broker: %d, want 503", code)
	}
}
