package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// waitLimit bounds every wait in these tests; they normally finish in milliseconds.
const waitLimit = 15 * time.Second

const (
	adminUser     = "admin"
	adminPassword = "admin-password-e2e"
)

// rig is a control center built by package controlcenter, exactly as `pirack serve` builds
// it, on 127.0.0.1 ports that stay the same across its restarts. Every message the control
// center ingests is also recorded, by (mac, seq) for presses.
type rig struct {
	dir      string
	users    *auth.Users // the control center's users file, opened by the rig too
	log      *slog.Logger
	mqttAddr string // where agents connect
	url      string // the Control Center's base URL
	seen     *pressLog

	base    controlcenter.Config         // every run's settings but the data directory and logger
	cc      *controlcenter.ControlCenter // the current run
	stopRun func()                       // stops the current run and waits for it
	// usersChanged, when set, runs after the rig adds a user: a foreign broker's access files
	// are regenerated from the users file there.
	usersChanged func(t *testing.T, u auth.User, password string)
	proxies      map[string]*tcpproxy.Proxy // links between agents and the broker, by name
}

// newDataDir makes a control center's data directory with the admin user, and a logger to t.
func newDataDir(t testing.TB) (dir string, users *auth.Users, log *slog.Logger) {
	t.Helper()
	logs := testlog.NewWriter(t)
	dir = t.TempDir()
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: adminUser, Role: auth.RoleAdmin}, adminPassword); err != nil {
		t.Fatal(err)
	}
	return dir, users, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// freeAddr reserves a loopback port and releases it, so that a control center can listen there
// in every run.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newRig starts a control center on a fresh data directory, changed by opts.
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	dir, users, log := newDataDir(t)
	r := &rig{dir: dir, users: users, log: log, mqttAddr: freeAddr(t), seen: newPressLog()}
	httpAddr := freeAddr(t)
	r.url = "http://" + httpAddr
	r.base = controlcenter.Config{HTTPAddr: httpAddr, MQTTAddr: r.mqttAddr}
	for _, o := range opts {
		o(t, r)
	}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

// start runs a control center with r.base on the rig's data directory, the rig's press log
// subscribed before MQTT is up, and returns once it is.
func (r *rig) start(t *testing.T) {
	t.Helper()
	cfg := r.base
	cfg.DataDir, cfg.Logger = r.dir, r.log
	cc, err := controlcenter.New(cfg)
	if err != nil {
		t.Fatalf("start the control center: %v", err)
	}
	if err := cc.Bus().Subscribe(topics.AllFilter, r.seen.ingest); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("control center stopped at start: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("control center not up within %v", waitLimit)
	}
	var once sync.Once
	r.cc = cc
	r.stopRun = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("control center stopped with: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("control center did not stop within %v", waitLimit)
			}
		})
	}
}

// stop stops the current run as Ctrl-C does: agents lose the broker, their Wills are published.
func (r *rig) stop() {
	if r.stopRun != nil {
		r.stopRun()
	}
}

// kill stops the control center, broker included; restart starts it again on the same data
// directory and ports, as after a crash or an upgrade.
func (r *rig) kill(t *testing.T) {
	t.Helper()
	r.stop()
}

func (r *rig) restart(t *testing.T) {
	t.Helper()
	r.start(t)
}

// rack is the current run's rack state.
func (r *rig) rack() *dashboard.Rack { return r.cc.Rack() }

// publish publishes in-process, as the control center itself does.
func (r *rig) publish(t testing.TB, m bus.Message) {
	t.Helper()
	if err := r.cc.Bus().Publish(t.Context(), m); err != nil {
		t.Fatalf("publish %s: %v", m.Topic, err)
	}
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
	r.addUser(t, auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: row}, password)
	p := &pi{mac: mac, row: row, password: password, led: new(sim.LED), button: new(sim.Button)}
	r.runPi(t, p, brokerAddr, opts...)
	return p
}

// addUser adds a user to the control center's users file (and the foreign broker's).
func (r *rig) addUser(t *testing.T, u auth.User, password string) {
	t.Helper()
	if err := r.users.Add(u, password); err != nil {
		t.Fatal(err)
	}
	if r.usersChanged != nil {
		r.usersChanged(t, u, password)
	}
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/api/events", nil)
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
		for _, n := range r.rack().Nodes() {
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
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url+path, strings.NewReader(body))
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
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+path, nil)
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
