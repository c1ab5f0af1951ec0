package main

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/topics"
)

// `pirack remove` takes a Pi out from a terminal, as Remove… does on the page: it starts the
// removal of the Pi in slot r1/2 and prints each step as it comes; the press at the rack shuts
// the real agent down, its clean stop makes it SAFE TO PULL, and the new board's press takes
// the slot, where the command ends (exit 0). The refusals say what to do.
func TestRemoveFromTheTerminal(t *testing.T) {
	rig := newRestartRig(t, "")
	rig.remoteSystem = true
	run := rig.open(t)
	run.serve(t)

	startPi := func(mac string, system func(string) error) (*sim.Button, context.CancelFunc) {
		t.Helper()
		log, err := newLogger(rig.logs, "info")
		if err != nil {
			t.Fatal(err)
		}
		button := new(sim.Button)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		cfg := agent.Config{
			Broker: "tcp://" + rig.mqttAddr, MAC: mac, Row: "r1", Password: rig.addAgent(t, mac, "r1"),
			Interval: time.Second, KeepAlive: 2 * time.Second, MaxReconnectDelay: 300 * time.Millisecond,
			Collector: agent.NewSimCollector(2, nil), LED: new(sim.LED), Button: button, Hostname: "pi-" + mac[8:],
			Logger: log.With("component", "agent", "mac", mac), System: system,
		}
		go func() { done <- agent.Run(ctx, cfg) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				<-done
			})
		}
		t.Cleanup(stop)
		return button, func() { go stop() }
	}
	var stopOld context.CancelFunc
	var oldButton *sim.Button
	oldButton, stopOld = startPi("b827eb00d0a1", func(string) error { stopOld(); return nil })
	newButton, _ := startPi("b827eb00d0a2", nil)
	for _, mac := range []string{"b827eb00d0a1", "b827eb00d0a2"} {
		run.awaitNode(t, mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	if code, body := run.do(t, http.MethodPost, "/api/rows/r1/slots/2", restartAdmin, restartAdminPassword, `{"mac": "b827eb00d0a1", "name": "db-2"}`); code != http.StatusOK {
		t.Fatalf("place: %d %s", code, body)
	}

	// Refusals first: a viewer, a whole row, an unknown Pi.
	for _, tc := range []struct {
		user, password, pi, want string
	}{
		{restartViewer, restartViewerPassword, "r1/2", "this needs an admin account"},
		{restartAdmin, restartAdminPassword, "r1", "is a whole row"},
		{restartAdmin, restartAdminPassword, "pi-nowhere", `no Pi or row called "pi-nowhere"`},
		{restartAdmin, "wrong-password", "r1/2", "check --username and the password"},
	} {
		_, errs, status := runCLI(t, tc.password, "remove", "--url", run.base, "--username", tc.user, tc.pi)
		if tc.pi == "pi-nowhere" && status != exitUnknownPi {
			t.Errorf("remove of an unknown Pi: exit %d, want %d", status, exitUnknownPi)
		}
		if status == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("remove %s as %s: exit %d, %q; want a failure saying %q", tc.pi, tc.user, status, errs, tc.want)
		}
	}

	cmd := pirackCLI(t, restartAdminPassword, "remove", "--url", run.base, "--username", restartAdmin, "db-2")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errs strings.Builder
	cmd.Stderr = &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var printed []string
	await := func(want string) {
		t.Helper()
		deadline := time.After(restartWait)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("pirack remove ended before printing %q:\n%s\n%s", want, strings.Join(printed, "\n"), errs.String())
				}
				printed = append(printed, l)
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("pirack remove did not print %q:\n%s", want, strings.Join(printed, "\n"))
			}
		}
	}
	// The row's supply reads 10 W for its two Pis, and 5 W once the old one is off.
	power := func(w float64) {
		t.Helper()
		p, err := topics.Encode(topics.Power{V: 1, TS: time.Now(), Watts: &w, Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := run.cc.Bus().Publish(t.Context(), bus.Message{Topic: topics.PowerTopic("r1"), Payload: p, QoS: 1, Retained: true}); err != nil {
			t.Fatal(err)
		}
	}
	power(10)
	await("r1 b827eb00d0a1 (db-2): [1/4 press at the rack] its LED flashes")
	if !oldButton.Press(topics.PressShort) {
		t.Fatal("the simulated button refused the press")
	}
	await("[3/4 check it is off] offline through a clean stop; waiting for the row's power to drop")
	power(5)
	await("[4/4 SAFE TO PULL] safe to pull (the row's power dropped from 10.0 W to 5.0 W)")
	if !newButton.Press(topics.PressShort) {
		t.Fatal("the simulated button refused the press")
	}
	await("[done] replaced by b8:27:eb:00:d0:a2 in slot 2")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pirack remove: %v\n%s", err, errs.String())
	}
	t.Logf("pirack remove printed:\n%s", strings.Join(printed, "\n"))

	// --cancel: the new board in slot 2 has no removal, then one started on the page.
	if _, errs, status := runCLI(t, restartAdminPassword, "remove", "--url", run.base, "--username", restartAdmin, "--cancel", "r1/2"); status == 0 || !strings.Contains(errs, "has no removal running") {
		t.Errorf("--cancel without a removal: exit %d, %q", status, errs)
	}
	if code, body := run.do(t, http.MethodPost, "/api/nodes/b827eb00d0a2/removal", restartAdmin, restartAdminPassword, ""); code != http.StatusAccepted {
		t.Fatalf("start a removal: %d %s", code, body)
	}
	if out, errs, status := runCLI(t, restartAdminPassword, "remove", "--url", run.base, "--username", restartAdmin, "--cancel", "r1/2"); status != 0 || !strings.Contains(out, "cancelled by admin") {
		t.Errorf("--cancel: exit %d, %q %q", status, out, errs)
	}
}
