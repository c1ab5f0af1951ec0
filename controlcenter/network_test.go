package controlcenter

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// foreignBroker is a broker that is not the control center's own: another pirack's embedded
// broker, with a user for the control center (admin) and one agent.
func foreignBroker(t *testing.T) (addr, passwordFile string) {
	t.Helper()
	b, passwordFile := newForeignBroker(t, "127.0.0.1:0")
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return b.Addr(), passwordFile
}

// newForeignBroker builds the foreign broker on addr without starting it.
func newForeignBroker(t *testing.T, addr string) (b *broker.Broker, passwordFile string) {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = 4
	for _, u := range []auth.User{{Name: "cc", Role: auth.RoleAdmin}, {Role: auth.RoleAgent, MAC: "b827eb000001", Row: "r1"}} {
		if err := users.Add(u, "foreign-password"); err != nil {
			t.Fatal(err)
		}
	}
	b, err = broker.New(broker.Config{Addr: addr, DataDir: dir, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	passwordFile = filepath.Join(t.TempDir(), "broker.password")
	if err := os.WriteFile(passwordFile, []byte("foreign-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b, passwordFile
}

// A foreign broker that is down when the control center starts: the page is served at once and
// says the broker is lost, and the control center connects when the broker comes up.
func TestForeignBrokerDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	fb, pwFile := newForeignBroker(t, addr)
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.Broker = ExternalBroker{URL: "mqtt://" + addr, Username: "cc", PasswordFile: pwFile, MaxReconnectDelay: 300 * time.Millisecond}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cc.Run(t.Context()) }()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+cc.HTTPAddr()+"/api/events", nil)
	req.SetBasicAuth("admin", "admin-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the page is not served while the broker is down: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "event: broker" {
	}
	if sc.Scan(); !strings.Contains(sc.Text(), `"lost":true`) {
		t.Fatalf("live stream before the broker is reached: %q, want the broker lost", sc.Text())
	}
	select {
	case <-cc.Ready():
		t.Fatal("Ready before the broker is up")
	default:
	}
	if err := fb.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(wait):
		t.Fatal("not connected within the wait after the broker came up")
	}
	if deaf, _ := cc.hearing.Deaf(); deaf {
		t.Error("connected, but still deaf")
	}
}

// On a foreign broker the control center is one client: an agent's birth published there
// reaches the dashboard.
func TestRunsOnAForeignBroker(t *testing.T) {
	addr, pwFile := foreignBroker(t)
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.Broker = ExternalBroker{URL: "mqtt://" + addr, Username: "cc", PasswordFile: pwFile}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Broker() != nil || cc.Parts()[0] != PartNetworkBus {
		t.Fatalf("a control center on --broker runs its own broker: parts %v", cc.Parts())
	}
	run(t, cc)

	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("b827eb000001").
		SetUsername("b827eb000001").SetPassword("foreign-password").SetProtocolVersion(4))
	if tok := agent.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	defer agent.Disconnect(0)
	birth, _ := topics.Encode(topics.Status{V: topics.Version, State: topics.StateOnline, TS: time.Now().UTC(), Session: "s1", Hostname: "pi-a"})
	if tok := agent.Publish(topics.StatusTopic("r1", "b827eb000001"), 1, true, birth); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("agent publish: %v", tok.Error())
	}
	deadline := time.Now().Add(wait)
	for {
		if n := cc.Rack().Nodes(); len(n) == 1 && n[0].State == dashboard.StateOnline && n[0].Hostname == "pi-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's birth on the foreign broker never reached the dashboard: %+v", cc.Rack().Nodes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A foreign broker that refuses the control center's login stops Run at once with what to fix.
func TestForeignBrokerRefusal(t *testing.T) {
	addr, _ := foreignBroker(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.Broker = ExternalBroker{URL: "mqtt://" + addr, Username: "cc", PasswordFile: wrong}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	err = cc.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "--broker-password-file") || ctx.Err() != nil {
		t.Fatalf("Run with a wrong broker password = %v, want a prompt refusal naming --broker-password-file", err)
	}
}

func TestBrokerPasswordFileMustBePrivate(t *testing.T) {
	open := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(open, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Broker = ExternalBroker{URL: "mqtt://127.0.0.1:1", Username: "cc", PasswordFile: open}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "chmod") {
		t.Fatalf("New with a world-readable broker password file = %v, want a refusal naming chmod", err)
	}
}
