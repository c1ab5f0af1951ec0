package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/rackclient"
)

// rackPi is a real agent with a simulated LED and button, run against the rig.
type rackPi struct {
	mac    string
	led    *sim.LED
	button *sim.Button
	stop   func()
}

// runRackPi runs one. It reports every 5 s, not faster: a retained sample arriving while a
// terminal tool subscribes to the rack's wildcards trips the race detector on Mochi's unlocked
// read of a retained topic (mochi-mqtt/server#200, docs/reliability.md), and these tests start
// a tool dozens of times.
func runRackPi(t *testing.T, r *restartRig, mac string) *rackPi {
	t.Helper()
	p := &rackPi{mac: mac, led: new(sim.LED), button: new(sim.Button)}
	log, err := newLogger(r.logs, "info")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{
		Broker: "tcp://" + r.mqttAddr, MAC: mac, Row: "r1", Password: r.addAgent(t, mac, "r1"),
		Interval: 5 * time.Second, KeepAlive: 2 * time.Second, MaxReconnectDelay: 300 * time.Millisecond,
		Collector: agent.NewSimCollector(1, nil), LED: p.led, Button: p.button, Hostname: "pi-" + mac[8:],
		Logger: log.With("component", "agent", "mac", mac),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(restartWait):
				t.Errorf("agent %s did not stop", mac)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// pirackCLI runs this test binary as the pirack command, with PIRACK_PASSWORD set.
func pirackCLI(t *testing.T, password string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "PIRACK_PASSWORD="+password)
	return cmd
}

// runCLI runs pirack with args to its end: its output and exit status.
func runCLI(t *testing.T, password string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := pirackCLI(t, password, args...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errs.String(), status
}

// The terminal tools as binaries against a running control center: what they print, --json,
// and the exit status of each failure an operator can act on.
func TestTerminalTools(t *testing.T) {
	rig := newRestartRig(t, "")
	rig.open(t).serve(t)
	broker := "tcp://" + rig.mqttAddr
	online := runRackPi(t, rig, "b827eb0000a1")
	gone := runRackPi(t, rig, "b827eb0000a2")

	// Both report, then one stops cleanly (retained offline).
	deadline := time.Now().Add(restartWait)
	for {
		out, _, status := runCLI(t, restartViewerPassword, "nodes", "--broker", broker, "--username", restartViewer, "--json")
		var pis []rackclient.Pi
		if status == 0 && json.Unmarshal([]byte(out), &pis) == nil && len(pis) == 2 && pis[0].Metrics != nil && pis[1].Metrics != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes never listed both Pis with metrics: %d %s", status, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone.stop()

	t.Run("nodes", func(t *testing.T) {
		var out string
		for end := time.Now().Add(restartWait); ; {
			var status int
			out, _, status = runCLI(t, restartViewerPassword, "nodes", "--broker", broker, "--username", restartViewer)
			if status != 0 {
				t.Fatalf("nodes: exit %d\n%s", status, out)
			}
			if strings.Contains(out, "offline") || time.Now().After(end) {
				break
			}
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "ROW") {
			t.Fatalf("nodes table:\n%s", out)
		}
		for i, want := range [][]string{{"r1", "b827eb0000a1", "pi-00a1", "online", "°C", "ago"}, {"r1", "b827eb0000a2", "pi-00a2", "offline"}} {
			for _, w := range want {
				if !strings.Contains(lines[i+1], w) {
					t.Errorf("line %d lacks %q: %s", i+1, w, lines[i+1])
				}
			}
		}
		out, _, _ = runCLI(t, restartViewerPassword, "nodes", "--broker", broker, "--username", restartViewer, "--json", "pi-00a2")
		var pis []rackclient.Pi
		if err := json.Unmarshal([]byte(out), &pis); err != nil || len(pis) != 1 || pis[0].MAC != "b827eb0000a2" || pis[0].Online || pis[0].Status.Hostname != "pi-00a2" {
			t.Fatalf("nodes --json pi-00a2: %v\n%s", err, out)
		}
	})

	t.Run("blink", func(t *testing.T) {
		before := online.led.Transitions()
		out, errs, status := runCLI(t, restartAdminPassword, "blink", "--broker", broker, "--username", restartAdmin, "--count", "2", "--period", "100ms", "pi-00a1")
		if status != 0 || !strings.Contains(out, "b827eb0000a1 (pi-00a1): blinking 2 x 100ms since ") {
			t.Fatalf("blink: exit %d\n%s%s", status, out, errs)
		}
		if online.led.Transitions() == before {
			t.Fatal("blink reported success, but the Pi's LED never changed")
		}
	})

	// The exit status of each failure, with what the message must say.
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "tcp://" + ln.Addr().String()
	}()
	for _, c := range []struct {
		name, password string
		args           []string
		status         int
		says           string
	}{
		{"broker unreachable", restartAdminPassword, []string{"blink", "--broker", closed, "--timeout", "2s", "b827eb0000a1"}, exitCannotConnect, "cannot connect to " + closed},
		{"wrong password", "not-the-password", []string{"nodes", "--broker", broker, "--username", restartViewer}, exitWrongLogin, "wrong user name or password"},
		{"unknown MAC", restartAdminPassword, []string{"blink", "--broker", broker, "b8:27:eb:00:00:ff"}, exitUnknownPi, "no Pi with MAC b827eb0000ff"},
		{"unknown name", restartAdminPassword, []string{"blink", "--broker", broker, "pi-nowhere"}, exitUnknownPi, `no Pi or row called "pi-nowhere"`},
		{"offline Pi", restartAdminPassword, []string{"blink", "--broker", broker, "b827eb0000a2"}, exitOffline, "is offline since"},
		{"viewer's command dropped", restartViewerPassword, []string{"blink", "--broker", broker, "--username", restartViewer, "--wait", "2s", "b827eb0000a1"}, exitNotExecuted, "may not send LED commands"},
		{"nobody finds it", restartAdminPassword, []string{"locate", "--broker", broker, "--for", "2s", "b827eb0000a1"}, exitNotFound, "nobody pressed its button within 2s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if !strings.Contains(strings.Join(args, " "), "--username") {
				args = append([]string{args[0], "--username", restartAdmin}, args[1:]...)
			}
			out, errs, status := runCLI(t, c.password, args...)
			if status != c.status || !strings.Contains(errs, c.says) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q); stdout %q", status, c.status, errs, c.says, out)
			}
		})
	}

	t.Run("locate until found", func(t *testing.T) {
		cmd := pirackCLI(t, restartAdminPassword, "locate", "--broker", broker, "--username", restartAdmin, "--for", "1m", "pi-00a1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errs bytes.Buffer
		cmd.Stderr = &errs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || !strings.Contains(lines.Text(), "LED flashing since") {
			t.Fatalf("locate's first line: %q, stderr %s", lines.Text(), errs.String())
		}
		if !online.led.On() && online.led.Transitions() == 0 {
			t.Fatal("the LED is not flashing")
		}
		time.Sleep(300 * time.Millisecond) // someone walks to the rack
		online.button.Press("short")
		if !lines.Scan() || !strings.Contains(lines.Text(), "b827eb0000a1 (pi-00a1): found at ") {
			t.Fatalf("locate's second line: %q, stderr %s", lines.Text(), errs.String())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("locate: %v, stderr %s", err, errs.String())
		}
	})

	t.Run("locate, then stop it", func(t *testing.T) {
		cmd := pirackCLI(t, restartAdminPassword, "locate", "--broker", broker, "--username", restartAdmin, "--for", "1m", "b827eb0000a1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		deadline := time.Now().Add(restartWait)
		for !online.led.On() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		out, errs, status := runCLI(t, restartAdminPassword, "locate", "--stop", "--broker", broker, "--username", restartAdmin, "pi-00a1")
		if status != 0 || !strings.Contains(out, "locate stopped, LED off") {
			t.Fatalf("locate --stop: exit %d\n%s%s", status, out, errs)
		}
		if online.led.On() {
			t.Fatal("locate --stop reported the LED off, but it is on")
		}
		// The first locate ends: the LED stopped without a press.
		var exit *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != exitNotFound {
			t.Fatalf("the stopped locate ended with %v, want exit %d", err, exitNotFound)
		}
	})
}

// pirack watch in a pseudo-terminal: it draws the rack row by row and slot by slot, and redraws
// in place when a Pi changes (a slot named, a Pi going offline); Ctrl-C ends it cleanly.
func TestWatchRedraws(t *testing.T) {
	rig := newRestartRig(t, "")
	run := rig.open(t)
	run.serve(t)
	p := runRackPi(t, rig, "b827eb0000b1")
	if _, err := run.cc.Layout().Put("r1", 2, p.mac); err != nil {
		t.Fatal(err)
	}
	cmd := pirackCLI(t, restartViewerPassword, "watch", "--broker", "tcp://"+rig.mqttAddr, "--username", restartViewer, "--every", "200ms")
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// lastFrame is what the terminal shows now: the text after the last clear.
	lastFrame := func() string {
		mu.Lock()
		defer mu.Unlock()
		frames := strings.Split(screen.String(), clearScreen)
		if len(frames) < 2 {
			return ""
		}
		return frames[len(frames)-2] // the last complete one
	}
	await := func(what string, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(restartWait)
		for time.Now().Before(deadline) {
			if f := lastFrame(); cond(f) {
				return f
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("watch never showed %s; last frame:\n%s", what, lastFrame())
		return ""
	}
	line := func(frame, prefix string) string {
		for _, l := range strings.Split(frame, "\n") {
			if strings.HasPrefix(strings.TrimSpace(strings.ReplaceAll(l, "\r", "")), prefix) {
				return l
			}
		}
		return ""
	}
	f := await("the Pi online in slot 2", func(f string) bool {
		l := line(f, "#2")
		return strings.Contains(f, "Row r1") && strings.Contains(l, "pi-00b1") && strings.Contains(l, "online") && strings.Contains(l, "°C")
	})
	if !strings.Contains(line(f, "#1"), "-- empty --") {
		t.Errorf("slot 1 is not drawn empty:\n%s", f)
	}
	if err := run.cc.Layout().Name("r1", 2, "db"); err != nil {
		t.Fatal(err)
	}
	await("slot 2 named db", func(f string) bool { return strings.Contains(line(f, "#2"), "db") })
	p.stop()
	await("the Pi offline", func(f string) bool { return strings.Contains(line(f, "#2"), "OFFLINE") })

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch ended with %v on Ctrl-C", err)
		}
	case <-time.After(restartWait):
		t.Fatal("watch did not end on Ctrl-C")
	}
}
