package dashboard

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
	"golang.org/x/crypto/bcrypt"
)

// realUsers opens a users file in a temporary directory holding an admin and a viewer, hashed
// with real bcrypt (at its lowest cost: the tests that need checks in flight together hold
// them with gatedAuth rather than rely on bcrypt being slow). It returns the store and the file's
// path, which another auth.Open (as `pirack user` does) can change under the server.
func realUsers(t *testing.T) (*auth.Users, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	users, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	users.MosquittoIterations = 101 // mosquitto_passwd's default: fast enough under -race
	for _, u := range []auth.User{{Name: "ops", Role: auth.RoleAdmin}, {Name: "watcher", Role: auth.RoleViewer}} {
		if err := users.Add(u, u.Name+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	return users, path
}

// serveTCP runs f's Server on a loopback listener until the test ends, and returns its base URL.
func serveTCP(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects(t *testing.T) *http.Client {
	c := &http.Client{
		Transport:     &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// send makes a request and returns its status and Retry-After header, closing the body.
func send(t *testing.T, c *http.Client, method, u, body string, opts ...reqOpt) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return 0, "", nil
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return 0, "", nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header
}

// gatedAuth hands every check to a real users store, but holds it until release is closed,
// so that all attempts are in flight together; overrun is closed by the check that starts
// past limit, which the login limiter must never let through.
type gatedAuth struct {
	Authenticator
	limit   int32
	calls   atomic.Int32
	release chan struct{}
	overrun chan struct{}
	once    sync.Once
}

func (g *gatedAuth) Authenticate(name, password string) (auth.User, error) {
	if g.calls.Add(1) > g.limit {
		g.once.Do(func() { close(g.overrun) })
	}
	<-g.release
	return g.Authenticator.Authenticate(name, password)
}

// TestConcurrentGuessesAreLimited sends many wrong passwords at once from one address, over
// TCP, against real bcrypt: only the limit's worth may be checked, the rest get 429 with
// Retry-After before any bcrypt, and the refusals take one audit line, not one each.
func TestConcurrentGuessesAreLimited(t *testing.T) {
	const attempts = 200
	for _, tc := range []struct {
		name  string
		limit int // Config.LoginLimit; 0 is the default
		via   string
	}{
		{"login form, default limit", 0, "form"},
		{"basic auth, limit 3", 3, "basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, _ := realUsers(t)
			limit := tc.limit
			if limit == 0 {
				limit = DefaultLoginLimit
			}
			gate := &gatedAuth{Authenticator: users, limit: int32(limit), release: make(chan struct{}), overrun: make(chan struct{})}
			auditDir := t.TempDir()
			f := newFixture(t, func(c *Config) {
				c.Auth = gate
				c.LoginLimit = tc.limit
				c.AuditDir = auditDir
			})
			t.Cleanup(func() { f.srv.Close() })
			base := serveTCP(t, f)
			client := noRedirects(t)

			type answer struct {
				status     int
				retryAfter string
			}
			answers := make(chan answer, attempts)
			for range attempts {
				go func() {
					var a answer
					if tc.via == "form" {
						form := url.Values{"user": {"ops"}, "password": {"a-wrong-guess"}}.Encode()
						a.status, a.retryAfter, _ = send(t, client, "POST", base+"/login", form)
					} else {
						a.status, a.retryAfter, _ = send(t, client, "GET", base+"/api/nodes", "", basic("ops", "a-wrong-guess"))
					}
					answers <- a
				}()
			}

			count := map[int]int{}
			released, overrun := false, gate.overrun
			for range attempts {
				var a answer
				select {
				case a = <-answers:
				case <-overrun:
					t.Errorf("more than %d password checks started at once from one address", limit)
					close(gate.release)
					released, overrun = true, nil // a nil channel: wait for answers only
					a = <-answers
				}
				count[a.status]++
				if a.status == http.StatusTooManyRequests {
					if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 || s > 60 {
						t.Errorf("429 with Retry-After %q, want 1-60 seconds", a.retryAfter)
					}
				}
				// Every attempt past the limit is answered while the first ones are still
				// being checked: nobody waits for bcrypt to be refused.
				if !released && count[http.StatusTooManyRequests] == attempts-limit {
					close(gate.release)
					released = true
				}
			}
			if !released {
				close(gate.release)
			}
			want := map[int]int{http.StatusUnauthorized: limit, http.StatusTooManyRequests: attempts - limit}
			if len(count) != len(want) || count[401] != want[401] || count[429] != want[429] {
				t.Errorf("answers by status = %v, want %v", count, want)
			}
			if got := gate.calls.Load(); got != int32(limit) {
				t.Errorf("%d passwords checked, want %d", got, limit)
			}
			if got := f.rack.Stats().LoginsRateLimited; got != uint64(attempts-limit) {
				t.Errorf("Stats.LoginsRateLimited = %d, want %d", got, attempts-limit)
			}

			// One line per checked guess and one for all the refusals of this minute.
			var wrong, limited int
			for _, e := range readAudit(t, auditDir) {
				switch {
				case e.Action != AuditLogin || e.Outcome != AuditDenied || e.Via != tc.via || e.Remote != "127.0.0.1":
					t.Errorf("unexpected audit entry %+v", e)
				case strings.HasPrefix(e.Reason, "too many failed logins"):
					limited++
				default:
					wrong++
				}
			}
			if wrong != limit || limited != 1 {
				t.Errorf("audit: %d wrong-password and %d rate-limit entries, want %d and 1", wrong, limited, limit)
			}

			// Still refused a little later in the same minute, right password or not, and
			// not audited again.
			f.clock.Advance(30 * time.Second)
			st, ra, _ := send(t, client, "GET", base+"/api/nodes", "", basic("ops", "ops-password"))
			if st != http.StatusTooManyRequests || ra != "30" {
				t.Errorf("right password 30 s later: %d, Retry-After %q; want 429 and 30", st, ra)
			}
			if n := len(readAudit(t, auditDir)); n != limit+1 {
				t.Errorf("audit has %d entries after another refusal, want %d", n, limit+1)
			}
			// The next minute, the right password works again.
			f.clock.Advance(30 * time.Second)
			if st, _, _ := send(t, client, "GET", base+"/api/nodes", "", basic("ops", "ops-password")); st != http.StatusOK {
				t.Errorf("right password in the next window: %d, want 200", st)
			}
		})
	}
}

// TestSuccessfulLoginsDoNotUseUpTheLimit: a right password is given back, so a script making
// more requests than the limit with Basic auth is never refused.
func TestSuccessfulLoginsDoNotUseUpTheLimit(t *testing.T) {
	f := newFixture(t)
	for i := range 3 * DefaultLoginLimit {
		if w := f.do(t, "GET", "/api/nodes", "", basic("viewer", "viewer-pw")); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d, want 200", i+1, w.Code)
		}
	}
	for range DefaultLoginLimit - 1 {
		f.postLogin(t, "viewer", "wrong")
	}
	if w := f.postLogin(t, "viewer", "viewer-pw"); w.Code != http.StatusSeeOther {
		t.Errorf("right password after %d failures: %d, want 303", DefaultLoginLimit-1, w.Code)
	}
}

// rawGet sends path exactly as given, unclean, over a new TCP connection, and returns the
// status, the Location header and the body.
func rawGet(t *testing.T, base, path string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: pirack\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestStaticServesOnlyStaticFiles asks the static route for directories and for what lies
// beside web/static (the templates), with raw paths no client would clean first.
func TestStaticServesOnlyStaticFiles(t *testing.T) {
	f := newFixture(t)
	base := serveTCP(t, f)
	for _, path := range []string{
		"/static/",
		"/static",
		"/static/%2e%2e/",
		"/static/%2e%2e",
		"/static/%2e%2e/templates/",
		"/static/%2e%2e/templates/login.html",
		"/static/%2e%2e%2ftemplates%2flogin.html",
		"/static/%2e%2e/static/app.js/..",
		"/static/../templates/login.html",
		"/static/./../templates/login.html",
		"/static//",
		"/static/.",
	} {
		// ServeMux answers some with a redirect to the cleaned path: follow those too.
		for hop, p := 0, path; ; hop++ {
			status, loc, body := rawGet(t, base, p)
			if status/100 == 3 && loc != "" && hop < 3 {
				p = loc
				continue
			}
			if status == http.StatusOK || strings.Contains(body, "{{") || strings.Contains(body, "<a href") {
				t.Errorf("GET %s (%s): %d, body %.200q; want no file, listing nor template", path, p, status, body)
			}
			break
		}
	}
	for _, path := range []string{"/static/app.js", "/static/%61pp.js", "/static/style.css"} {
		if status, _, body := rawGet(t, base, path); status != http.StatusOK || body == "" {
			t.Errorf("GET %s: %d, want 200 with the file", path, status)
		}
	}
}

// TestSlowBodyIsCutOff sends a request's headers, then trickles its body a byte at a time,
// over TCP: the server must give up on the body after its body timeout and close the
// connection, though bytes keep arriving.
func TestSlowBodyIsCutOff(t *testing.T) {
	for _, tc := range []struct{ name, head string }{
		{"login form", "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"},
		{"API command", "POST /api/nodes/" + macA + "/blink HTTP/1.1\r\nAuthorization: Basic YWRtaW46YWRtaW4tcHc=\r\nContent-Type: application/json\r\n"}, // admin:admin-pw
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.publish(t, statusTopicA, online("pi-a", "s1"))
			f.srv.bodyTimeout = 200 * time.Millisecond
			base := serveTCP(t, f)
			published := len(f.bus.Published())

			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.head+"Host: pirack\r\nContent-Length: 10000\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() {
				defer close(trickled)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.Write([]byte{'x'}); err != nil {
							return
						}
					}
				}
			}()
			defer func() { close(stop); <-trickled }()

			// Well past the test's body timeout, well short of the trickle's 100 s.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			answer, err := io.ReadAll(conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server was still reading a trickled body after 5 s (answered %q)", answer)
			}
			if !strings.HasPrefix(string(answer), "HTTP/1.1 400") {
				t.Errorf("answered %.80q, want 400 for a body that never arrived", answer)
			}
			if len(f.bus.Published()) != published {
				t.Error("a command was published from a body that never arrived")
			}
		})
	}
}
