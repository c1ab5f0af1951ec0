package promexport

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pirack/pirack/dashboard"
)

const token = "0123456789abcdef0123456789abcdef"

// writeToken writes a token file with mode perm and returns its path.
func writeToken(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metrics.token")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestNewRefusesBadTokenFiles(t *testing.T) {
	for _, c := range []struct {
		name, content string
		perm          os.FileMode
		want          string
	}{
		{"readable by others", token + "\n", 0o644, "chmod 600"},
		{"too short", "hunter2\n", 0o600, "openssl rand -hex 32"},
		{"empty", "\n", 0o600, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(Config{Source: &source{}, TokenFile: writeToken(t, c.content, c.perm)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error saying %q", err, c.want)
			}
		})
	}
	if _, err := New(Config{Source: &source{}, TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New with a missing token file succeeded")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Source succeeded")
	}
}

// /metrics is protected like the API: 401 without credentials, 200 with the token or a
// dashboard user's Basic auth, and the token only when one is configured.
func TestRouteAuth(t *testing.T) {
	for _, withToken := range []bool{true, false} {
		src := &source{}
		cfg := Config{Source: src}
		if withToken {
			cfg.TokenFile = writeToken(t, token+"\n", 0o600)
		}
		exp, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The route is handed to the dashboard before the rack it reads exists, as the
		// control center does.
		r := newRig(t, nil, exp.Route())
		src.rack = r.src.rack
		r.fill(t)
		for _, c := range []struct {
			name string
			set  func(*http.Request)
			want int
		}{
			{"no credentials", func(*http.Request) {}, http.StatusUnauthorized},
			{"bearer token", func(q *http.Request) { q.Header.Set("Authorization", "Bearer "+token) }, map[bool]int{true: http.StatusOK, false: http.StatusUnauthorized}[withToken]},
			{"wrong token", func(q *http.Request) { q.Header.Set("Authorization", "Bearer "+strings.ToUpper(token)) }, http.StatusUnauthorized},
			{"token prefix", func(q *http.Request) { q.Header.Set("Authorization", "Bearer "+token[:20]) }, http.StatusUnauthorized},
			{"viewer", func(q *http.Request) { q.SetBasicAuth("viewer", "viewer-pw") }, http.StatusOK},
			{"viewer, wrong password", func(q *http.Request) { q.SetBasicAuth("viewer", "nope") }, http.StatusUnauthorized},
			{"automation user", func(q *http.Request) { q.SetBasicAuth("robot", "robot-pw") }, http.StatusForbidden},
		} {
			name := c.name
			if !withToken {
				name += ", no token configured"
			}
			t.Run(name, func(t *testing.T) {
				q := httptest.NewRequest(http.MethodGet, Path, nil)
				c.set(q)
				w := httptest.NewRecorder()
				r.srv.Handler().ServeHTTP(w, q)
				if w.Code != c.want {
					t.Fatalf("status %d, want %d; body %.200s", w.Code, c.want, w.Body)
				}
				if w.Code != http.StatusOK {
					return
				}
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q, want Prometheus's text format", ct)
				}
				for _, s := range []string{`pirack_pi_load1{mac="b827eb3f1a2c",name="db-1",row="r1",slot="1"} 0.5`, "go_goroutines ", "process_resident_memory_bytes "} {
					if !strings.Contains(w.Body.String(), s) {
						t.Errorf("body lacks %q", s)
					}
				}
			})
		}
	}
}

// The route asks for a user by default, never public by omission.
func TestRouteAccess(t *testing.T) {
	exp, err := New(Config{Source: &source{}})
	if err != nil {
		t.Fatal(err)
	}
	rt := exp.Route()
	if rt.Pattern != "GET /metrics" || rt.Access != dashboard.AccessUser || rt.Token != nil {
		t.Fatalf("Route() = %q, access %v, token set %v; want GET /metrics for users, no token", rt.Pattern, rt.Access, rt.Token != nil)
	}
}
