package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/enroll"
	"github.com/pirack/pirack/hardware/sim"
)

const enrolWait = 15 * time.Second

func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// awaitNode waits until the control center shows mac as cond wants.
func awaitNode(t *testing.T, cc *controlcenter.ControlCenter, mac, what string, cond func(dashboard.Node) bool) dashboard.Node {
	t.Helper()
	deadline := time.Now().Add(enrolWait)
	var last dashboard.Node
	for time.Now().Before(deadline) {
		for _, n := range cc.Rack().Nodes() {
			if n.MAC == mac {
				last = n
				if cond(n) {
					return n
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("waited %v for %s to be %s; last: %+v", enrolWait, mac, what, last)
	return last
}

// startControlCenter runs a control center on a fresh data directory.
func startControlCenter(t *testing.T) (*controlcenter.ControlCenter, string) {
	t.Helper()
	dir := t.TempDir()
	cc, err := controlcenter.New(controlcenter.Config{DataDir: dir, MQTTAddr: loopbackAddr(t), HTTPAddr: loopbackAddr(t),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-cc.Ready()
	return cc, dir
}

// Enrolment end to end against a real control center: a token is issued, the agent enrols with
// it (config and secret written), connects, shows as pending, is approved by a press of its own
// button and takes the next free slot of its row; a used, an expired and an unknown token are
// refused with what to do.
func TestEnrolEndToEnd(t *testing.T) {
	cc, dir := startControlCenter(t)
	base := "http://" + cc.HTTPAddr()

	tokens := enroll.Open(dir)
	token, _, err := tokens.Issue("r2", 10*time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}

	// The Pi, with the packaged agent.toml.
	pi := t.TempDir()
	cfgPath, secretPath := filepath.Join(pi, "agent.toml"), filepath.Join(pi, "agent.secret")
	var tmpl bytes.Buffer
	if err := run(t.Context(), []string{"config", "example", "--packaged"}, &tmpl, &tmpl, noEnv); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, tmpl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	const mac = "b827eb000e01"
	var out, errs bytes.Buffer
	enrolAs := func(mac, token string) error {
		out.Reset()
		return run(t.Context(), []string{"enroll", "--config", cfgPath, "--secret", secretPath, "--mac", mac,
			"--start=false", base, token}, &out, &errs, noEnv)
	}
	enrol := func(token string) error { return enrolAs("b8:27:eb:00:0e:01", token) }
	if err := enrol(token); err != nil {
		t.Fatalf("enroll: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "Enrolled in row r2") || !strings.Contains(out.String(), "press this Pi's button") {
		t.Errorf("enroll said:\n%s", out.String())
	}
	if fi, err := os.Stat(secretPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if err := run(t.Context(), []string{"config", "check", cfgPath}, &out, &errs, noEnv); err != nil {
		t.Fatalf("config check after enrolment: %v", err)
	}

	// The agent as the service would run it: from the written config.
	opts, err := parseFlags([]string{"--config", cfgPath, "--gpio", "sim", "--interval", "200ms"}, &errs, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	acfg := opts.agent
	led, button := new(sim.LED), new(sim.Button)
	acfg.LED, acfg.Button, acfg.Collector = led, button, agent.NewSimCollector(1, nil)
	acfg.Logger = slog.New(slog.DiscardHandler)
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- agent.Run(actx, acfg) }()
	t.Cleanup(func() { acancel(); <-adone })

	n := awaitNode(t, cc, mac, "online and pending", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline && n.Pending })
	if n.Row != "r2" || n.Slot != 0 {
		t.Fatalf("pending Pi: row %q slot %d, want r2 and no slot yet", n.Row, n.Slot)
	}

	button.Press("short")
	n = awaitNode(t, cc, mac, "approved in slot 1", func(n dashboard.Node) bool { return !n.Pending && n.Slot == 1 })
	if n.Selected {
		t.Error("the approving press also selected the Pi")
	}
	if u, ok := cc.Users().Get(mac); !ok || u.Pending {
		t.Fatalf("users file after approval: %+v %v", u, ok)
	}

	// The approved Pi's MAC cannot be enrolled again with a fresh token: that would take its
	// identity over.
	fresh, _, err := tokens.Issue("r2", 10*time.Minute, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := enrol(fresh); err == nil || !strings.Contains(err.Error(), "(409 Conflict): a Pi with MAC "+mac+" is registered already") {
		t.Errorf("enrolling a registered MAC: %v", err)
	}
	for name, c := range map[string]struct{ token, says string }{
		"used":    {token, "enrolment token already used: by " + mac},
		"unknown": {"AAAA-BBBB-CCCC-DDDD", "unknown enrolment token"},
		"expired": {func() string {
			old := enroll.Open(dir)
			old.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
			tok, _, err := old.Issue("r2", time.Hour, "test")
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), "enrolment token expired"},
	} {
		err := enrolAs("b8:27:eb:00:0e:09", c.token) // another board: the token is what is refused
		if err == nil || !strings.Contains(err.Error(), "the Control Center refused to enrol this Pi (403 Forbidden): "+c.says) {
			t.Errorf("%s token: %v, want it refused saying %q", name, err, c.says)
		}
	}
}

// A Pi with an unknown MAC and one with a wrong secret are listed as refused, each with its
// reason, and a registered Pi that never connected as never seen; a refused one that then gets
// in leaves the list.
func TestRefusedAndNeverSeenListed(t *testing.T) {
	cc, _ := startControlCenter(t)
	users := cc.Users()
	users.Cost = bcrypt.MinCost
	if err := users.SetPassword("admin", "admin-password"); err != nil { // made at the first start
		t.Fatal(err)
	}
	secret := auth.GeneratePassword()
	if err := users.Add(auth.User{Role: auth.RoleAgent, MAC: "b827eb000e02", Row: "r1"}, secret); err != nil {
		t.Fatal(err)
	}
	connect := func(user, password string) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + cc.MQTTAddr()).SetClientID(user).
			SetUsername(user).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(100)
		}
		return tok.Error()
	}
	enrolment := func() dashboard.Joining {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+cc.HTTPAddr()+"/api/enrolment", nil)
		req.SetBasicAuth("admin", "admin-password")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j dashboard.Joining
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/enrolment: %d %v", resp.StatusCode, err)
		}
		return j
	}
	if j := enrolment(); len(j.NeverSeen) != 1 || j.NeverSeen[0].MAC != "b827eb000e02" || len(j.Refused) != 0 {
		t.Fatalf("before any attempt: %+v", j)
	}
	if err := connect("b827eb000e03", "whatever-password"); err == nil {
		t.Fatal("an unknown MAC got in")
	}
	for range 2 {
		if err := connect("b827eb000e02", "not-its-secret"); err == nil {
			t.Fatal("a wrong secret got in")
		}
	}
	j := enrolment()
	reasons := map[string]string{}
	for _, r := range j.Refused {
		reasons[r.Username] = fmt.Sprintf("%s x%d from %s", r.Reason, r.Count, r.Address)
	}
	if reasons["b827eb000e03"] != "unknown user x1 from 127.0.0.1" || reasons["b827eb000e02"] != "wrong password x2 from 127.0.0.1" {
		t.Fatalf("refused: %v", reasons)
	}
	if err := connect("b827eb000e02", secret); err != nil {
		t.Fatal(err)
	}
	for _, r := range enrolment().Refused {
		if r.Username == "b827eb000e02" {
			t.Fatalf("a Pi that got in is still listed as refused: %+v", r)
		}
	}
}
