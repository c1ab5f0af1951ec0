package dashboard

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

// A kiosk link gives a read-only session: it reads the rack, may not command, its token is not
// stored in clear, a wrong token gets the login page, and a revoked link's session ends.
func TestKioskLink(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, func(c *Config) { c.AuditDir = dir })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi", "s"))
	admin := f.login(t, "admin", "admin-pw")
	w := f.do(t, "POST", "/api/kiosk", `{"name": "wall"}`, withCookie(admin))
	var made struct{ Name, Path string }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &made) != nil || !strings.HasPrefix(made.Path, "/kiosk/") {
		t.Fatalf("make a kiosk link: %d %s", w.Code, w.Body)
	}
	token := strings.TrimPrefix(made.Path, "/kiosk/")
	if b, _ := os.ReadFile(filepath.Join(dir, KioskFile)); strings.Contains(string(b), token) {
		t.Fatal("kiosk.json holds the token itself")
	}
	if w := f.do(t, "GET", "/kiosk/not-a-token", ""); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Fatalf("a wrong token: %d to %q", w.Code, w.Header().Get("Location"))
	}
	w = f.do(t, "GET", made.Path, "")
	var kiosk *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			kiosk = c
		}
	}
	if w.Code != http.StatusSeeOther || kiosk == nil {
		t.Fatalf("open the link: %d, cookie %v", w.Code, kiosk)
	}
	if w := f.do(t, "GET", "/api/nodes", "", withCookie(kiosk)); w.Code != http.StatusOK {
		t.Fatalf("the kiosk reads the rack: %d", w.Code)
	}
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(kiosk)); w.Code != http.StatusForbidden {
		t.Fatalf("the kiosk commands: %d, want 403", w.Code)
	}
	if w := f.do(t, "POST", "/api/kiosk", `{"name": "wall", "revoke": true}`, withCookie(admin)); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "GET", "/api/nodes", "", withCookie(kiosk)); w.Code != http.StatusUnauthorized {
		t.Fatalf("a revoked kiosk still reads: %d", w.Code)
	}
}
