package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/internal/testlog"
)

// buildPirack builds the real `pirack` binary into a temporary directory.
func buildPirack(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build pirack with")
	}
	bin := filepath.Join(t.TempDir(), "pirack")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "github.com/pirack/pirack/cmd/pirack")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pirack: %v\n%s", err, out)
	}
	return bin
}

// serveProc is a `pirack serve` subprocess.
type serveProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startServe runs `pirack serve` and returns once it logs that it is running.
func startServe(t *testing.T, bin, dataDir, mqttAddr, httpAddr string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--mqtt", mqttAddr, "--http", httpAddr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, done: make(chan struct{})}
	logs := testlog.NewWriter(t)
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			logs.Write([]byte("serve: " + sc.Text()))
			if !seen && strings.Contains(sc.Text(), "control center running") {
				seen = true
				close(running)
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case <-running:
	case <-p.done:
		t.Fatal("pirack serve exited at start")
	case <-time.After(waitLimit):
		t.Fatalf("pirack serve not running after %v", waitLimit)
	}
	return p
}

// kill sends SIGKILL, as the OOM killer or a power cut would: nothing is flushed or closed.
func (p *serveProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Errorf("pirack serve did not exit after SIGKILL")
	}
}

// httpNodes reads GET /api/nodes of a Control Center as the admin.
func httpNodes(t *testing.T, base string) map[string]dashboard.Node {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/nodes", nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var nodes []dashboard.Node
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		t.Fatalf("GET /api/nodes: HTTP %d: %v", resp.StatusCode, err)
	}
	m := map[string]dashboard.Node{}
	for _, n := range nodes {
		m[n.MAC] = n
	}
	return m
}

// awaitNodeAt follows a Control Center's live event stream until the node satisfies cond.
func awaitNodeAt(t *testing.T, base, mac, what string, cond func(dashboard.Node) bool) dashboard.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open event stream: %v", err)
	}
	defer resp.Body.Close()
	var last dashboard.Node
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "data: ") {
			continue
		}
		if n, ok := httpNodes(t, base)[mac]; ok {
			last = n
			if cond(n) {
				return n
			}
		}
	}
	t.Fatalf("waited %v for %s to be %s; last seen: %+v", waitLimit, mac, what, last)
	return last
}

// TestStateSurvivesSIGKILLOfServe kills `pirack serve` with SIGKILL while an agent is offline
// with an LED command queued for it. After a restart on the same data directory, the Pi's
// retained status is back on the dashboard, and the agent, once it connects, receives the
// command (issued with the dashboard's 2-minute expiry, which has not passed).
func TestStateSurvivesSIGKILLOfServe(t *testing.T) {
	bin := buildPirack(t)
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: adminUser, Role: auth.RoleAdmin}, adminPassword); err != nil {
		t.Fatal(err)
	}
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	base := "http://" + httpAddr
	serve := startServe(t, bin, dir, mqttAddr, httpAddr)

	// The agent's account lives in the same users file; serve reads it when it changes.
	log := slog.New(slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := &rig{users: users, log: log}
	p := r.startPi(t, macA, "r1", mqttAddr, durablePi(t.TempDir(), newSyncButton()))
	awaitNodeAt(t, base, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	p.stop() // a persistent session: the broker keeps queuing its LED commands
	awaitNodeAt(t, base, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })

	code, body := httpPost(t, base, "/api/nodes/"+macA+"/blink", `{"count":3,"period_ms":100}`)
	if code != http.StatusAccepted {
		t.Fatalf("blink: HTTP %d %s", code, body)
	}

	serve.kill(t)
	startServe(t, bin, dir, mqttAddr, httpAddr)

	n, ok := httpNodes(t, base)[macA]
	// The retained status is the clean stop's offline, which carries no identity: the new
	// dashboard knows the Pi and its state, not its hostname, until its next birth.
	if !ok || n.State != dashboard.StateOffline || n.Row != "r1" {
		t.Fatalf("after SIGKILL and restart the dashboard shows %+v (known: %v); want the retained offline status", n, ok)
	}

	changes, unwatch := p.led.Watch()
	defer unwatch()
	r.runPi(t, p, mqttAddr, durablePi(t.TempDir(), newSyncButton()))
	deadline := time.After(waitLimit)
	for p.led.Transitions() < 3 {
		select {
		case <-changes:
		case <-deadline:
			t.Fatalf("LED flashed %d times, want 3: the command queued before the SIGKILL was not delivered", p.led.Transitions())
		}
	}
}

func httpPost(t *testing.T, base, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(body))
	req.SetBasicAuth(adminUser, adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	bufio.NewReader(resp.Body).WriteTo(b)
	return resp.StatusCode, b.String()
}
