package dashboard

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// examplePath turns a mux pattern's path into a request path: {mac} becomes a known MAC.
func examplePath(p string) string {
	p = wildcard.ReplaceAllStringFunc(p, func(w string) string {
		switch w {
		case "{$}":
			return ""
		case "{mac}":
			return macA
		}
		return "x"
	})
	if strings.HasSuffix(p, "/") {
		p += "x" // a subtree pattern
	}
	return p
}

// TestEveryStateChangingRouteRefusesCrossOrigin walks the route table: every route that
// accepts POST, PUT, PATCH or DELETE (explicitly or by having no method) refuses a
// cross-origin request from an admin's browser before its handler runs.
func TestEveryStateChangingRouteRefusesCrossOrigin(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuditDir = t.TempDir() })
	t.Cleanup(func() { f.srv.Close() })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	c := f.login(t, "admin", "admin-pw")
	auditBefore, _ := f.srv.audit.Tail(maxAuditLimit)
	published := len(f.bus.Published())

	unsafe := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	checked := map[string]bool{}
	for _, rt := range f.srv.routeTable() {
		method, path, hasMethod := strings.Cut(rt.pattern, " ")
		methods := []string{method}
		if !hasMethod {
			path, methods = rt.pattern, unsafe
		}
		for _, m := range methods {
			if m == http.MethodGet || m == http.MethodHead {
				continue
			}
			target := examplePath(path)
			for name, opt := range map[string]reqOpt{
				"Sec-Fetch-Site": header("Sec-Fetch-Site", "cross-site"),
				"Origin":         header("Origin", "https://evil.example"),
			} {
				for _, auth := range []reqOpt{withCookie(c), basic("admin", "admin-pw")} {
					w := f.do(t, m, target, `{}`, auth, opt, header("Content-Type", "application/json"))
					if w.Code != http.StatusForbidden || jsonError(t, w) != csrfRefused {
						t.Errorf("%s %s (route %q) with a foreign %s: %d %s; want 403 from CrossOriginProtection",
							m, target, rt.pattern, name, w.Code, w.Body)
					}
				}
			}
			checked[m+" "+path] = true
		}
	}
	for _, want := range []string{"POST /login", "POST /logout", "POST /api/nodes/{mac}/blink", "POST /api/nodes/{mac}/clear"} {
		if !checked[want] {
			t.Errorf("route %s was not found in the route table", want)
		}
	}
	if n := len(f.bus.Published()) - published; n != 0 {
		t.Errorf("cross-origin requests published %d messages", n)
	}
	if !only(t, f.rack.Nodes()).Selected {
		t.Error("a cross-origin clear cleared the selection")
	}
	if after, _ := f.srv.audit.Tail(maxAuditLimit); len(after) != len(auditBefore) {
		t.Errorf("cross-origin requests reached handlers: %d audit entries, had %d", len(after), len(auditBefore))
	}
	// The session survived the cross-origin logout.
	if w := f.do(t, "GET", "/api/nodes", "", withCookie(c)); w.Code != http.StatusOK {
		t.Errorf("session after a cross-origin logout: %d, want 200", w.Code)
	}
}
