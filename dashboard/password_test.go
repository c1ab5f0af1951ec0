package dashboard

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
)

// A signed-in user changes their own password, proving the current one; the old one then no
// longer works. Wrong current passwords count as failed logins.
func TestChangeOwnPassword(t *testing.T) {
	users, err := auth.Open(filepath.Join(t.TempDir(), "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "vera", Role: auth.RoleViewer}, "old-password"); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Auth = users; c.LoginLimit = 3 })
	change := func(as, current, next string) (int, string) {
		w := f.do(t, http.MethodPost, "/api/me/password", `{"current":"`+current+`","new":"`+next+`"}`, basic("vera", as))
		return w.Code, w.Body.String()
	}
	if code, body := change("old-password", "not-it", "new-password"); code != http.StatusUnauthorized || !strings.Contains(body, "the current password is wrong") {
		t.Fatalf("wrong current: %d %s", code, body)
	}
	if code, body := change("old-password", "old-password", "short"); code != http.StatusBadRequest || !strings.Contains(body, "8 to 72 bytes") {
		t.Fatalf("too short: %d %s", code, body)
	}
	if code, body := change("old-password", "old-password", "new-password"); code != http.StatusOK {
		t.Fatalf("change: %d %s", code, body)
	}
	if _, err := users.Authenticate("vera", "new-password"); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
	if _, err := users.Authenticate("vera", "old-password"); err == nil {
		t.Fatal("the old password still works")
	}
	// The limit: the wrong current passwords above and these count as failed logins.
	for range 3 {
		change("new-password", "guess", "another-password")
	}
	if code, _ := change("new-password", "guess", "another-password"); code != http.StatusTooManyRequests {
		t.Fatalf("guessing the current password past the login limit: %d, want 429", code)
	}
}
