package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestLoginRequired(t *testing.T) {
	f := newFixture(t)
	if w := f.do(t, "GET", "/", ""); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Errorf("GET / without login: %d to %q, want 303 to /login", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/api/nodes", "/api/nodes/" + macA, "/api/events", "/api/stats"} {
		w := f.do(t, "GET", path, "")
		if w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without login: %d, want 401", path, w.Code)
		}
		jsonError(t, w)
	}
	w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "")
	if w.Code != http.StatusUnauthorized {
		t.Errorf("POST blink without login: %d, want 401", w.Code)
	}
	if len(f.bus.Published()) != 0 {
		t.Error("unauthenticated blink published a command")
	}
	// A forged or expired session id is no session.
	forged := &http.Cookie{Name: sessionCookie, Value: "AAAA"}
	if w := f.do(t, "GET", "/api/nodes", "", withCookie(forged)); w.Code != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d, want 401", w.Code)
	}
}

func TestLogin(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		f := newFixture(t)
		w := f.postLogin(t, "admin", "nope")
		if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
			t.Errorf("status %d, cookies %v; want 401 and no cookie", w.Code, w.Result().Cookies())
		}
		if !strings.Contains(w.Body.String(), "Wrong user name or password") {
			t.Errorf("no error message in the page:\n%s", w.Body)
		}
	})
	t.Run("automation role refused", func(t *testing.T) {
		f := newFixture(t)
		if w := f.postLogin(t, "robot", "robot-pw"); w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
			t.Errorf("status %d, cookies %v; want 403 and no cookie", w.Code, w.Result().Cookies())
		}
		if w := f.do(t, "GET", "/api/nodes", "", basic("robot", "robot-pw")); w.Code != http.StatusForbidden {
			t.Errorf("automation Basic auth: %d, want 403", w.Code)
		}
	})
	t.Run("cookie attributes", func(t *testing.T) {
		for _, secure := range []bool{false, true} {
			f := newFixture(t, func(c *Config) { c.SecureCookies = secure })
			c := f.login(t, "viewer", "viewer-pw")
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure || c.Path != "/" {
				t.Errorf("SecureCookies=%v: cookie %+v", secure, c)
			}
			if len(c.Value) < 43 { // 32 bytes, base64
				t.Errorf("session id %q is shorter than 32 random bytes", c.Value)
			}
			if w := f.do(t, "GET", "/", "", withCookie(c)); w.Code != http.StatusOK {
				t.Errorf("GET / with session: %d", w.Code)
			}
		}
	})
	t.Run("session expires", func(t *testing.T) {
		f := newFixture(t)
		c := f.login(t, "viewer", "viewer-pw")
		f.clock.Advance(sessionTTL)
		if w := f.do(t, "GET", "/api/nodes", "", withCookie(c)); w.Code != http.StatusUnauthorized {
			t.Errorf("expired session: %d, want 401", w.Code)
		}
	})
	t.Run("logout ends the session", func(t *testing.T) {
		f := newFixture(t)
		c := f.login(t, "admin", "admin-pw")
		if w := f.do(t, "POST", "/logout", "", withCookie(c)); w.Code != http.StatusSeeOther {
			t.Fatalf("logout: %d", w.Code)
		}
		if w := f.do(t, "GET", "/api/nodes", "", withCookie(c)); w.Code != http.StatusUnauthorized {
			t.Errorf("after logout: %d, want 401", w.Code)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		f := newFixture(t)
		if w := f.do(t, "GET", "/api/nodes", "", basic("viewer", "viewer-pw")); w.Code != http.StatusOK {
			t.Errorf("good Basic auth: %d", w.Code)
		}
		if w := f.do(t, "GET", "/api/nodes", "", basic("viewer", "bad")); w.Code != http.StatusUnauthorized {
			t.Errorf("bad Basic auth: %d, want 401", w.Code)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t)
	for i := range DefaultLoginLimit {
		if w := f.postLogin(t, "admin", "guess", fromIP("198.51.100.9")); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, w.Code)
		}
	}
	// Blocked now, even with the right password, and for Basic auth too.
	if w := f.postLogin(t, "admin", "admin-pw", fromIP("198.51.100.9")); w.Code != http.StatusTooManyRequests {
		t.Errorf("after %d failures: %d, want 429", DefaultLoginLimit, w.Code)
	}
	if w := f.do(t, "GET", "/api/nodes", "", basic("admin", "admin-pw"), fromIP("198.51.100.9")); w.Code != http.StatusTooManyRequests {
		t.Errorf("Basic auth after %d failures: %d, want 429", DefaultLoginLimit, w.Code)
	}
	// Another address is not affected.
	if w := f.postLogin(t, "admin", "admin-pw", fromIP("198.51.100.10")); w.Code != http.StatusSeeOther {
		t.Errorf("other IP: %d, want 303", w.Code)
	}
	// The window passes.
	f.clock.Advance(loginWindow)
	if w := f.postLogin(t, "admin", "admin-pw", fromIP("198.51.100.9")); w.Code != http.StatusSeeOther {
		t.Errorf("after the window: %d, want 303", w.Code)
	}
}

func TestGetNodes(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(3, 0.25))
	auth := basic("viewer", "viewer-pw")

	w := f.do(t, "GET", "/api/nodes", "", auth)
	var nodes []Node
	if err := json.Unmarshal(w.Body.Bytes(), &nodes); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /api/nodes: %d %s: %v", w.Code, w.Body, err)
	}
	if len(nodes) != 1 || nodes[0].MAC != macA || nodes[0].Metrics == nil || nodes[0].Metrics.Seq != 3 {
		t.Errorf("nodes = %+v", nodes)
	}
	for _, key := range []string{`"mac":`, `"agent_version":`, `"last_seen":`, `"load_1":`, `"state":"online"`} {
		if !strings.Contains(w.Body.String(), key) {
			t.Errorf("JSON lacks %s: %s", key, w.Body)
		}
	}

	for _, form := range []string{macA, "b8:27:eb:3f:1a:2c", "B8-27-EB-3F-1A-2C", "b827.eb3f.1a2c"} {
		w := f.do(t, "GET", "/api/nodes/"+form, "", auth)
		var n Node
		if err := json.Unmarshal(w.Body.Bytes(), &n); err != nil || w.Code != http.StatusOK || n.MAC != macA {
			t.Errorf("GET /api/nodes/%s: %d %s", form, w.Code, w.Body)
		}
	}

	w = f.do(t, "GET", "/api/nodes/"+macB, "", auth)
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown MAC: %d, want 404", w.Code)
	}
	jsonError(t, w)

	w = f.do(t, "GET", "/api/nodes/b8:27:eb", "", auth)
	if w.Code != http.StatusBadRequest {
		t.Errorf("malformed MAC: %d, want 400", w.Code)
	}
	if msg := jsonError(t, w); !strings.Contains(msg, "b8:27:eb:3f:1a:2c") {
		t.Errorf("400 message %q does not show the expected form", msg)
	}
}

func TestBlink(t *testing.T) {
	setup := func(t *testing.T) *fixture {
		f := newFixture(t, func(c *Config) { c.CommandTTL = 90 * time.Second })
		f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
		return f
	}
	// ledCommands returns what was published on the LED topic, failing on any other publish.
	ledCommands := func(t *testing.T, f *fixture) []topics.LEDCommand {
		t.Helper()
		var out []topics.LEDCommand
		for _, m := range f.bus.Published() {
			if m.Topic != topics.LEDTopic(macA) {
				continue
			}
			if m.QoS != 1 || m.Retained {
				t.Errorf("LED command published with QoS %d, retain %v; want QoS 1, not retained", m.QoS, m.Retained)
			}
			c, err := topics.ParseLEDCommand(m.Payload)
			if err != nil {
				t.Fatalf("published LED command %s is invalid: %v", m.Payload, err)
			}
			out = append(out, c)
		}
		return out
	}

	t.Run("admin blinks", func(t *testing.T) {
		f := setup(t)
		c := f.login(t, "admin", "admin-pw")
		w := f.do(t, "POST", "/api/nodes/b8:27:eb:3f:1a:2c/blink", "", withCookie(c))
		if w.Code != http.StatusAccepted {
			t.Fatalf("blink: %d %s", w.Code, w.Body)
		}
		cmds := ledCommands(t, f)
		if len(cmds) != 1 {
			t.Fatalf("published %d LED commands, want 1", len(cmds))
		}
		got := cmds[0]
		if got.Action != topics.LEDBlink || got.By != "admin" || got.Count != topics.DefaultBlinkCount ||
			!got.IssuedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(90*time.Second)) {
			t.Errorf("command = %+v", got)
		}
		var echoed topics.LEDCommand
		if err := json.Unmarshal(w.Body.Bytes(), &echoed); err != nil || echoed.By != "admin" || echoed.Action != topics.LEDBlink {
			t.Errorf("response %s: %v", w.Body, err)
		}
	})
	t.Run("body sets count and period", func(t *testing.T) {
		f := setup(t)
		w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", `{"count":3,"period_ms":200}`, basic("admin", "admin-pw"))
		if w.Code != http.StatusAccepted {
			t.Fatalf("blink: %d %s", w.Code, w.Body)
		}
		if cmds := ledCommands(t, f); len(cmds) != 1 || cmds[0].Count != 3 || cmds[0].PeriodMS != 200 {
			t.Errorf("commands = %+v", cmds)
		}
	})
	t.Run("invalid body", func(t *testing.T) {
		for _, body := range []string{`{"count":1000}`, `{"period_ms":1}`, `{"colour":"red"}`, `not json`} {
			f := setup(t)
			w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", body, basic("admin", "admin-pw"))
			if w.Code != http.StatusBadRequest {
				t.Errorf("body %s: %d, want 400", body, w.Code)
			}
			jsonError(t, w)
			if n := len(ledCommands(t, f)); n != 0 {
				t.Errorf("body %s: published %d commands", body, n)
			}
		}
	})
	t.Run("viewer forbidden", func(t *testing.T) {
		f := setup(t)
		c := f.login(t, "viewer", "viewer-pw")
		for _, action := range []string{"blink", "clear"} {
			w := f.do(t, "POST", "/api/nodes/"+macA+"/"+action, "", withCookie(c))
			if w.Code != http.StatusForbidden {
				t.Errorf("viewer %s: %d, want 403", action, w.Code)
			}
			jsonError(t, w)
		}
		if n := len(ledCommands(t, f)); n != 0 {
			t.Errorf("viewer published %d commands", n)
		}
	})
	t.Run("unknown and malformed MAC", func(t *testing.T) {
		f := setup(t)
		if w := f.do(t, "POST", "/api/nodes/"+macB+"/blink", "", basic("admin", "admin-pw")); w.Code != http.StatusNotFound {
			t.Errorf("unknown MAC: %d, want 404", w.Code)
		}
		if w := f.do(t, "POST", "/api/nodes/zz/blink", "", basic("admin", "admin-pw")); w.Code != http.StatusBadRequest {
			t.Errorf("malformed MAC: %d, want 400", w.Code)
		}
		if n := len(ledCommands(t, f)); n != 0 {
			t.Errorf("published %d commands", n)
		}
	})
	t.Run("broker failure", func(t *testing.T) {
		f := setup(t)
		f.bus.PublishErr = errors.New("broker down")
		w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", basic("admin", "admin-pw"))
		if w.Code != http.StatusBadGateway {
			t.Errorf("publish failure: %d, want 502", w.Code)
		}
		jsonError(t, w)
	})
	t.Run("cross-origin POST refused", func(t *testing.T) {
		f := setup(t)
		c := f.login(t, "admin", "admin-pw")
		w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(c), header("Sec-Fetch-Site", "cross-site"))
		if w.Code != http.StatusForbidden {
			t.Errorf("cross-site blink: %d, want 403", w.Code)
		}
		w = f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(c), header("Origin", "https://evil.example"))
		if w.Code != http.StatusForbidden {
			t.Errorf("foreign Origin blink: %d, want 403", w.Code)
		}
		if n := len(ledCommands(t, f)); n != 0 {
			t.Errorf("cross-origin request published %d commands", n)
		}
		// The browser's own same-origin fetch passes.
		w = f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(c), header("Sec-Fetch-Site", "same-origin"))
		if w.Code != http.StatusAccepted {
			t.Errorf("same-origin blink: %d, want 202", w.Code)
		}
	})
}

func TestClearSelection(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	if n := only(t, f.rack.Nodes()); !n.Selected {
		t.Fatal("press did not select")
	}
	w := f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw"))
	var n Node
	if err := json.Unmarshal(w.Body.Bytes(), &n); err != nil || w.Code != http.StatusOK || n.Selected {
		t.Errorf("clear: %d %s", w.Code, w.Body)
	}
	if n := only(t, f.rack.Nodes()); n.Selected || n.SelectedBy != "" {
		t.Errorf("after clear: %+v", n)
	}
	if w := f.do(t, "POST", "/api/nodes/"+macB+"/clear", "", basic("admin", "admin-pw")); w.Code != http.StatusNotFound {
		t.Errorf("clear unknown MAC: %d, want 404", w.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "viewer", "viewer-pw")
	for _, path := range []string{"/", "/login", "/api/nodes", "/static/app.js"} {
		w := f.do(t, "GET", path, "", withCookie(c))
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestUnknownAPIPathIsJSON404(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, "GET", "/api/nope", "", basic("viewer", "viewer-pw"))
	if w.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", w.Code)
	}
	jsonError(t, w)
}

// fail records a failed attempt from ip, as a wrong password does.
func (l *loginLimiter) fail(ip string) {
	if done, _ := l.begin(ip); done != nil {
		done(false)
	}
}

// blocked reports whether an attempt from ip would be refused now.
func (l *loginLimiter) blocked(ip string) bool {
	key := limiterKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	return ok && l.now().Sub(w.start) < loginWindow && w.attempts >= l.limit
}

func TestLoginLimiterMemoryIsBounded(t *testing.T) {
	c := &clock{t: t0}
	l := newLoginLimiter(c.Now, DefaultLoginLimit)
	ip := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

	// Half the table expires; the other half is live, with one blocked address.
	for i := range maxLimiterEntries / 2 {
		l.fail(ip(i))
	}
	c.Advance(loginWindow)
	for i := maxLimiterEntries / 2; i < maxLimiterEntries; i++ {
		l.fail(ip(i))
	}
	blockedIP := ip(maxLimiterEntries - 1)
	for range DefaultLoginLimit - 1 {
		l.fail(blockedIP)
	}
	if got := l.size(); got != maxLimiterEntries {
		t.Fatalf("size = %d, want %d", got, maxLimiterEntries)
	}
	// A new address at the limit prunes the expired windows and keeps the live ones.
	l.fail("198.51.100.1")
	if got, want := l.size(), maxLimiterEntries/2+1; got != want {
		t.Errorf("after pruning: size = %d, want %d", got, want)
	}
	if !l.blocked(blockedIP) {
		t.Error("pruning forgot a live, blocked address")
	}

	// A table full of live windows is cleared rather than grown.
	for i := range maxLimiterEntries {
		l.fail(ip(i + maxLimiterEntries))
	}
	if got := l.size(); got > maxLimiterEntries {
		t.Errorf("size = %d, over the bound of %d", got, maxLimiterEntries)
	}
}

func TestLoginLimiterKeysIPv6ByNetwork(t *testing.T) {
	c := &clock{t: t0}
	l := newLoginLimiter(c.Now, DefaultLoginLimit)
	for i := range DefaultLoginLimit {
		l.fail(fmt.Sprintf("2001:db8:1:2::%x", i+1)) // a new address per guess, same /64
	}
	if !l.blocked("2001:db8:1:2:ffff::1") {
		t.Error("another address of the same /64 is not blocked")
	}
	if l.blocked("2001:db8:1:3::1") {
		t.Error("another /64 is blocked")
	}
	for range DefaultLoginLimit {
		l.fail("::ffff:198.51.100.9")
	}
	if !l.blocked("198.51.100.9") {
		t.Error("an IPv4-mapped address is counted apart from its IPv4 form")
	}
}
