package dashboard

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pirack/pirack/dashboard/dashboardtest"
)

// Extra routes get the dashboard's authentication by their Access, its security headers and
// its cross-origin protection.
func TestExtraRoutes(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("extra")) })
	f := newFixture(t, func(c *Config) {
		c.Routes = []Route{
			{Pattern: "GET /metrics", Handler: ok},
			{Pattern: "GET /admin-only", Handler: ok, Access: AccessAdmin},
			{Pattern: "GET /healthz", Handler: ok, Access: AccessPublic},
			{Pattern: "POST /hook", Handler: ok, Access: AccessPublic},
		}
	})
	for _, c := range []struct {
		name, method, path string
		opts               []reqOpt
		want               int
	}{
		{"user route, anonymous", http.MethodGet, "/metrics", nil, http.StatusUnauthorized},
		{"user route, viewer", http.MethodGet, "/metrics", []reqOpt{basic("viewer", "viewer-pw")}, http.StatusOK},
		{"user route, wrong password", http.MethodGet, "/metrics", []reqOpt{basic("viewer", "nope")}, http.StatusUnauthorized},
		{"admin route, viewer", http.MethodGet, "/admin-only", []reqOpt{basic("viewer", "viewer-pw")}, http.StatusForbidden},
		{"admin route, admin", http.MethodGet, "/admin-only", []reqOpt{basic("admin", "admin-pw")}, http.StatusOK},
		{"public route", http.MethodGet, "/healthz", nil, http.StatusOK},
		{"public POST, cross-origin", http.MethodPost, "/hook", []reqOpt{header("Sec-Fetch-Site", "cross-site")}, http.StatusForbidden},
		{"public POST, same origin", http.MethodPost, "/hook", []reqOpt{header("Sec-Fetch-Site", "same-origin")}, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(t, c.method, c.path, "", c.opts...)
			if w.Code != c.want {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, w.Code, c.want, w.Body)
			}
			if w.Header().Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy: the security headers were skipped")
			}
			if c.want == http.StatusOK && w.Body.String() != "extra" {
				t.Errorf("body %q, want the route's own", w.Body)
			}
		})
	}
}

func TestExtraRouteClashRefused(t *testing.T) {
	_, err := New(Config{Bus: new(dashboardtest.Bus), Auth: testUsers,
		Routes: []Route{{Pattern: "GET /api/nodes", Handler: http.NotFoundHandler()}}})
	if err == nil || !strings.Contains(err.Error(), "GET /api/nodes") {
		t.Fatalf("New with a route clashing with the dashboard's = %v, want an error naming it", err)
	}
}

// A route with a Token admits its bearer token whatever its Access, still admits the route's
// users without one, and counts wrong tokens against the login limit like wrong passwords.
func TestExtraRouteToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("extra")) })
	f := newFixture(t, func(c *Config) {
		c.Routes = []Route{{Pattern: "GET /metrics", Handler: ok, Token: func(tok string) bool { return tok == "s3cret" }}}
	})
	for _, c := range []struct {
		name string
		opts []reqOpt
		want int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"right token", []reqOpt{header("Authorization", "Bearer s3cret")}, http.StatusOK},
		{"scheme in lower case", []reqOpt{header("Authorization", "bearer s3cret")}, http.StatusOK},
		{"viewer by Basic auth", []reqOpt{basic("viewer", "viewer-pw")}, http.StatusOK},
		{"automation by Basic auth", []reqOpt{basic("robot", "robot-pw")}, http.StatusForbidden},
		{"wrong token", []reqOpt{header("Authorization", "Bearer nope"), fromIP("192.0.2.7")}, http.StatusUnauthorized},
		{"empty token", []reqOpt{header("Authorization", "Bearer"), fromIP("192.0.2.7")}, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, "/metrics", "", c.opts...)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, c.want, w.Body)
			}
			if c.want == http.StatusOK && w.Body.String() != "extra" {
				t.Errorf("body %q, want the route's own", w.Body)
			}
		})
	}
	// Two failures above; the limit is DefaultLoginLimit a minute per address.
	for range DefaultLoginLimit - 2 {
		f.do(t, http.MethodGet, "/metrics", "", header("Authorization", "Bearer guess"), fromIP("192.0.2.7"))
	}
	w := f.do(t, http.MethodGet, "/metrics", "", header("Authorization", "Bearer s3cret"), fromIP("192.0.2.7"))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("right token after %d wrong ones from one address: status %d, want 429", DefaultLoginLimit, w.Code)
	}
	if got := f.srv.Rack().Stats().LoginsRateLimited; got != 1 {
		t.Errorf("LoginsRateLimited = %d, want 1", got)
	}
}
