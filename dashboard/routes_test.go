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
