package dashboard

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
)

// loginTCP signs in through the login form over TCP and returns the session cookie.
func loginTCP(t *testing.T, c *http.Client, base, user, pw string) *http.Cookie {
	t.Helper()
	form := url.Values{"user": {user}, "password": {pw}}.Encode()
	resp, err := c.Post(base+"/login", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatalf("POST /login: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d, want 303", user, resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			return ck
		}
	}
	t.Fatalf("login %s: no session cookie", user)
	return nil
}

// setRoleByHand rewrites the users file with user's role changed and its hash kept, as an
// operator editing users.json would, and as a later `pirack user` command that changes a role
// alone might.
func setRoleByHand(t *testing.T, path, user string, role auth.Role) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		V     int         `json:"v"`
		Users []auth.User `json:"users"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for i := range f.Users {
		if f.Users[i].Name == user {
			f.Users[i].Role = role
		}
	}
	if b, err = json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "users.json.new")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSessionFollowsUsersStore logs an admin in through the form, over TCP, against a real
// users file, then changes the user the way `pirack user` does (another auth.Open of the same
// file, as the command is another process): the very next request sees the change.
func TestSessionFollowsUsersStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, cli *auth.Users, path string)
		// what the admin's session may do afterwards: 0 means the session has ended
		audit, nodes, blink int
	}{
		{"removed (pirack user remove)", func(t *testing.T, cli *auth.Users, _ string) {
			if err := cli.Remove("ops"); err != nil {
				t.Fatal(err)
			}
		}, 0, 0, 0},
		{"made again as a viewer (remove, then add)", func(t *testing.T, cli *auth.Users, _ string) {
			if err := cli.Remove("ops"); err != nil {
				t.Fatal(err)
			}
			if err := cli.Add(auth.User{Name: "ops", Role: auth.RoleViewer}, "ops-password"); err != nil {
				t.Fatal(err)
			}
		}, 0, 0, 0},
		{"new password (pirack user passwd)", func(t *testing.T, cli *auth.Users, _ string) {
			if err := cli.Set(auth.User{Name: "ops", Role: auth.RoleAdmin}, "a-new-password"); err != nil {
				t.Fatal(err)
			}
		}, 0, 0, 0},
		{"demoted to viewer in users.json", func(t *testing.T, _ *auth.Users, path string) {
			setRoleByHand(t, path, "ops", auth.RoleViewer)
		}, http.StatusForbidden, http.StatusOK, http.StatusForbidden},
		{"made an automation in users.json", func(t *testing.T, _ *auth.Users, path string) {
			setRoleByHand(t, path, "ops", auth.RoleAutomation)
		}, 0, 0, 0},
		{"unchanged", func(*testing.T, *auth.Users, string) {}, http.StatusOK, http.StatusOK, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, path := realUsers(t)
			auditDir := t.TempDir()
			f := newFixture(t, func(c *Config) { c.Auth = users; c.AuditDir = auditDir })
			t.Cleanup(func() { f.srv.Close() })
			f.publish(t, statusTopicA, online("pi-a", "s1"))
			base := serveTCP(t, f)
			client := noRedirects(t)

			ck := loginTCP(t, client, base, "ops", "ops-password")
			if st, _, _ := send(t, client, "GET", base+"/api/audit", "", withCookie(ck)); st != http.StatusOK {
				t.Fatalf("admin reads the audit log: %d, want 200", st)
			}

			cli, err := auth.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			cli.Cost, cli.MosquittoIterations = users.Cost, users.MosquittoIterations
			tc.change(t, cli, path)

			ended := tc.audit == 0
			check := func(what string, got, want int) {
				t.Helper()
				if ended {
					want = http.StatusUnauthorized
				}
				if got != want {
					t.Errorf("%s: %d, want %d", what, got, want)
				}
			}
			before := len(f.bus.Published())
			st, _, _ := send(t, client, "POST", base+"/api/nodes/"+macA+"/blink", "", withCookie(ck))
			check("blink", st, tc.blink)
			if st != http.StatusAccepted && len(f.bus.Published()) != before {
				t.Error("a refused blink published a command")
			}
			st, _, _ = send(t, client, "GET", base+"/api/audit", "", withCookie(ck))
			check("GET /api/audit", st, tc.audit)
			st, _, _ = send(t, client, "GET", base+"/api/nodes", "", withCookie(ck))
			check("GET /api/nodes", st, tc.nodes)
			st, _, h := send(t, client, "GET", base+"/", "", withCookie(ck))
			if ended && (st != http.StatusSeeOther || h.Get("Location") != "/login") {
				t.Errorf("GET / after the session ended: %d to %q, want 303 to /login", st, h.Get("Location"))
			}
			if !ended && st != http.StatusOK {
				t.Errorf("GET /: %d, want 200", st)
			}
			var endings int
			for _, e := range readAudit(t, auditDir) {
				if e.Action == AuditLogout && e.User == "ops" && strings.HasPrefix(e.Reason, "session ended: ") {
					endings++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[ended]; endings != want {
				t.Errorf("%d audit entries for the session's end, want %d", endings, want)
			}
		})
	}
}

// TestLiveStreamEndsForARemovedUser: a user removed while its page (session) or script (Basic
// auth) is watching the live stream stops receiving the rack at the next heartbeat: the stream
// ends, and its reconnection is refused. Without the check it ran until the client left.
func TestLiveStreamEndsForARemovedUser(t *testing.T) {
	for _, via := range []string{"session", "basic"} {
		t.Run(via, func(t *testing.T) {
			users, path := realUsers(t)
			f := newFixture(t, func(c *Config) { c.Auth = users })
			t.Cleanup(func() { f.srv.Close() })
			f.srv.heartbeat = 20 * time.Millisecond
			base := serveTCP(t, f)
			client := noRedirects(t)

			req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/api/events", nil)
			if err != nil {
				t.Fatal(err)
			}
			if via == "session" {
				req.AddCookie(loginTCP(t, client, base, "ops", "ops-password"))
			} else {
				req.SetBasicAuth("ops", "ops-password")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /api/events: %d", resp.StatusCode)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			awaitLine := func() (string, bool) {
				select {
				case l, ok := <-lines:
					return l, ok
				case <-time.After(5 * time.Second):
					t.Fatal("the live stream neither sent anything nor ended within 5 s")
				}
				return "", false
			}
			for l, ok := awaitLine(); !strings.HasPrefix(l, ": ping"); l, ok = awaitLine() {
				if !ok {
					t.Fatal("the stream ended before the user was removed")
				}
			}

			cli, err := auth.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := cli.Remove("ops"); err != nil {
				t.Fatal(err)
			}
			for n := 0; ; n++ {
				if _, ok := awaitLine(); !ok {
					break // ended
				}
				if n > 50 {
					t.Fatal("the removed user's live stream still runs")
				}
			}
		})
	}
}

// Sessions survive a restart of the control center: a second Server on the same directory
// admits the cookie, the file never holds it, and a logout is remembered too.
func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, func(c *Config) { c.AuditDir = dir })
	c := f.login(t, "viewer", "viewer-pw")
	b, err := os.ReadFile(filepath.Join(dir, SessionsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), c.Value) {
		t.Fatal("the sessions file holds the cookie itself")
	}
	if fi, _ := os.Stat(filepath.Join(dir, SessionsFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("sessions file mode %v, want 0600", fi.Mode().Perm())
	}
	again := newFixture(t, func(cfg *Config) { cfg.AuditDir = dir })
	if w := again.do(t, "GET", "/api/nodes", "", withCookie(c)); w.Code != http.StatusOK {
		t.Fatalf("after a restart, the session gets %d", w.Code)
	}
	if w := again.do(t, "POST", "/logout", "", withCookie(c)); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	third := newFixture(t, func(cfg *Config) { cfg.AuditDir = dir })
	if w := third.do(t, "GET", "/api/nodes", "", withCookie(c)); w.Code != http.StatusUnauthorized {
		t.Fatalf("a logged-out session came back after a restart: %d", w.Code)
	}
}
