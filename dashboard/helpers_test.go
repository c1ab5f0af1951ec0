package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

const (
	macA = "b827eb3f1a2c"
	macB = "dca6320a0b0c"
	rowA = "r1"
	rowB = "r2"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var testUsers = dashboardtest.Users{
	"admin":  {Password: "admin-pw", Role: auth.RoleAdmin},
	"viewer": {Password: "viewer-pw", Role: auth.RoleViewer},
	"robot":  {Password: "robot-pw", Role: auth.RoleAutomation},
}

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	srv   *Server
	rack  *Rack // srv.Rack()
	bus   *dashboardtest.Bus
	clock *clock
	logs  *testlog.Buffer
}

func newFixture(t *testing.T, configure ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{bus: &dashboardtest.Bus{}, clock: &clock{t: t0}, logs: &testlog.Buffer{}}
	cfg := Config{
		Bus:    f.bus,
		Auth:   testUsers,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:    f.clock.Now,
	}
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv, f.rack = srv, srv.Rack()
	return f
}

// publish sends a payload through the fake broker: a string or []byte as is, anything else as
// JSON.
func (f *fixture) publish(t *testing.T, topic string, payload any) {
	t.Helper()
	var b []byte
	switch p := payload.(type) {
	case string:
		b = []byte(p)
	case []byte:
		b = p
	default:
		var err error
		if b, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.bus.Publish(context.Background(), bus.Message{Topic: topic, Payload: b, QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

func online(host, session string) topics.Status {
	return topics.Status{V: 1, State: topics.StateOnline, TS: t0, Session: session, Hostname: host,
		IP: "10.0.0.7", Model: "Raspberry Pi 4 Model B", AgentVersion: "0.1.0"}
}

func offline(session string) topics.Status {
	return topics.Status{V: 1, State: topics.StateOffline, TS: t0, Session: session}
}

func metrics(seq uint64, load float64) topics.Metrics {
	cpus := 4
	temp := 48.3
	total, avail := uint64(4<<30), uint64(3<<30)
	dtotal, dfree := uint64(32<<30), uint64(24<<30)
	return topics.Metrics{V: 1, Seq: seq, TS: t0, Load1: &load, CPUCount: &cpus, CPUTempC: &temp,
		MemTotalBytes: &total, MemAvailableBytes: &avail, DiskTotalBytes: &dtotal, DiskFreeBytes: &dfree}
}

func press(seq uint64) topics.ButtonEvent {
	return topics.ButtonEvent{V: 1, Press: topics.PressShort, Seq: seq, TS: t0}
}

// request builds a request; opts change it (auth, headers).
type reqOpt func(*http.Request)

func basic(user, pw string) reqOpt { return func(r *http.Request) { r.SetBasicAuth(user, pw) } }

func withCookie(c *http.Cookie) reqOpt { return func(r *http.Request) { r.AddCookie(c) } }

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func fromIP(ip string) reqOpt { return func(r *http.Request) { r.RemoteAddr = ip + ":40000" } }

func (f *fixture) do(t *testing.T, method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequestWithContext(t.Context(), method, path, rd)
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, r)
	return w
}

func (f *fixture) postLogin(t *testing.T, user, pw string, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	form := url.Values{"user": {user}, "password": {pw}}.Encode()
	opts = append([]reqOpt{header("Content-Type", "application/x-www-form-urlencoded")}, opts...)
	return f.do(t, http.MethodPost, "/login", form, opts...)
}

// login signs in through the form and returns the session cookie.
func (f *fixture) login(t *testing.T, user, pw string) *http.Cookie {
	t.Helper()
	w := f.postLogin(t, user, pw)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login %s: status %d, body %s", user, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatalf("login %s: no session cookie", user)
	return nil
}

// jsonError decodes an API error body, failing the test if it is not one.
func jsonError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q, want application/json; body %s", ct, w.Body)
	}
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error: %v", w.Body, err)
	}
	return e.Error
}
