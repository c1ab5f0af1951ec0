package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/testlog"
)

// waitLimit bounds every wait in these tests; they normally finish in milliseconds.
const waitLimit = 15 * time.Second

const (
	adminUser     = "admin"
	adminPassword = "admin-password-e2e"
)

// rig is a control center wired like `pirack serve`: dashboard subscribed before the broker
// listens, both sharing one users file.
type rig struct {
	users  *auth.Users
	broker *broker.Broker
	dash   *dashboard.Server
	web    *httptest.Server
	log    *slog.Logger
}

// newDataDir makes a control center's data directory with the admin user, and a logger to t.
func newDataDir(t *testing.T) (dir string, users *auth.Users, log *slog.Logger) {
	t.Helper()
	logs := testlog.NewWriter(t)
	dir = t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: adminUser, Role: auth.RoleAdmin}, adminPassword); err != nil {
		t.Fatal(err)
	}
	return dir, users, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir, users, log := newDataDir(t)
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Users: users, Logger: log.With("component", "broker")})
	if err != nil {
		t.Fatal(err)
	}
	dash, err := dashboard.New(dashboard.Config{Bus: b, Auth: users, Logger: log.With("component", "dashboard")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(dash.Handler())
	r := &rig{users: users, broker: b, dash: dash, web: web, log: log}
	t.Cleanup(func() {
		web.Close()
		b.Close()
	})
	return r
}

// pi is one agent with simulated GPIO, running against the rig's broker.
type pi struct {
	mac, row string
	password string
	led      *sim.LED
	button   *sim.Button
	stop     func() // cancels the agent and waits for it to return
}

// startPi creates the agent's account and runs the agent, connecting to brokerAddr (the
// broker's own address, or a proxy in front of it). opts adjust the agent's Config.
func (r *rig) startPi(t *testing.T, mac, row, brokerAddr string, opts ...func(*agent.Config)) *pi {
	t.Helper()
	password := auth.GeneratePassword()
	if err := r.users.Add(auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: row}, password); err != nil {
		t.Fatal(err)
	}
	p := &pi{mac: mac, row: row, password: password, led: new(sim.LED), button: new(sim.Button)}
	r.runPi(t, p, brokerAddr, opts...)
	return p
}

// runPi runs p's agent (again, after p.stop: the same account, LED and button).
func (r *rig) runPi(t *testing.T, p *pi, brokerAddr string, opts ...func(*agent.Config)) {
	t.Helper()
	cfg := agent.Config{
		Broker:    "tcp://" + brokerAddr,
		MAC:       p.mac,
		Row:       p.row,
		Password:  p.password,
		Interval:  50 * time.Millisecond,
		KeepAlive: 2 * time.Second,
		Collector: agent.NewSimCollector(1, nil),
		LED:       p.led,
		Button:    p.button,
		Hostname:  "pi-" + p.mac[8:],
		Logger:    r.log.With("component", "agent"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: %v", p.mac, err)
				}
			case <-time.After(waitLimit):
				t.Errorf("agent %s did not stop within %v", p.mac, waitLimit)
			}
		})
	}
	t.Cleanup(p.stop)
}

// awaitNode follows the dashboard's live event stream, as a browser does, until the node
// satisfies cond, and returns it. It fails the test after waitLimit.
func (r *rig) awaitNode(t *testing.T, mac, what string, cond func(dashboard.Node) bool) dashboard.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.web.URL+"/api/events", nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open event stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: HTTP %d", resp.StatusCode)
	}
	var last dashboard.Node
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "data: ") {
			continue
		}
		for _, n := range r.dash.Nodes() {
			if n.MAC == mac {
				last = n
				if cond(n) {
					return n
				}
			}
		}
	}
	t.Fatalf("waited %v for %s to be %s; last seen: %+v", waitLimit, mac, what, last)
	return last
}

// post sends an authenticated API request as the admin.
func (r *rig) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, r.web.URL+path, strings.NewReader(body))
	req.SetBasicAuth(adminUser, adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.web.URL+path, nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return resp.StatusCode
}

// proxy is a TCP relay between an agent and the broker whose links can be cut, to kill a
// connection the way a crashed Pi does (no DISCONNECT packet), or frozen, the way a pulled
// cable does (no packet at all, and no FIN either).
type proxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.relay(up, c)
		go p.relay(c, up)
	}
}

// relay copies src to dst, dropping what arrives while the proxy is frozen.
func (p *proxy) relay(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze stops forwarding bytes, both ways and on every link, without closing anything.
func (p *proxy) freeze() { p.frozen.Store(true) }

// cut stops accepting and drops every relayed connection.
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
