package controlcenter

import (
	"context"
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
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	passwordFile = filepath.Join(t.TempDir(), "broker.password")
	if err := os.WriteFile(passwordFile, []byte("foreign-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b.Addr(), passwordFile
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
		if n := cc.Dashboard().Nodes(); len(n) == 1 && n[0].State == dashboard.StateOnline && n[0].Hostname == "pi-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's birth on the foreign broker never reached the dashboard: %+v", cc.Dashboard().Nodes())
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
