package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/brokerconfig"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/internal/testlog"
)

// pirack serve --broker, as an operator types it: the control center on Debian's Mosquitto
// with the access files pirack broker-config writes, its page served and its login accepted.
func TestServeOnMosquitto(t *testing.T) {
	dir := dataDirWithAdmin(t)
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := users.SetWithCost(auth.User{Name: "pirack-cc", Role: auth.RoleAdmin}, "cc-password-1", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	access := t.TempDir()
	m, err := brokerconfig.GenerateMosquitto(users.List(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := brokerconfig.WriteMosquitto(access, m); err != nil {
		t.Fatal(err)
	}
	mq := mosquittotest.Start(t, mosquittotest.Options{PasswordFile: filepath.Join(access, "passwd"), ACLFile: filepath.Join(access, "acl")})
	secret := filepath.Join(t.TempDir(), "cc.secret")
	if err := os.WriteFile(secret, []byte("cc-password-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()

	logs := new(testlog.Buffer)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data-dir", dir, "--http", httpAddr, "--broker", "mqtt://" + mq.Addr(),
			"--broker-user", "pirack-cc", "--broker-password-file", secret}, logs, logs)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "connected to broker") {
		select {
		case err := <-done:
			t.Fatalf("serve --broker stopped: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve --broker did not connect to Mosquitto:\n%s", logs.String())
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+httpAddr+"/api/nodes", nil)
	req.SetBasicAuth("admin", "admin-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/nodes on serve --broker: %v %v", resp, err)
	}
	resp.Body.Close()
	if !mq.WaitLog("u'pirack-cc'", 5*time.Second) {
		t.Errorf("Mosquitto did not see the control center log in as pirack-cc:\n%s", mq.Log())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve --broker: %v", err)
	}
}

func TestServeBrokerFlagErrors(t *testing.T) {
	dir := dataDirWithAdmin(t)
	open := filepath.Join(t.TempDir(), "open.secret")
	if err := os.WriteFile(open, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"--mqtt with --broker", []string{"--broker", "mqtt://127.0.0.1:1", "--mqtt", ":1884"}, "--mqtt configures the embedded broker"},
		{"--mqtt-ws with --broker", []string{"--broker", "mqtt://127.0.0.1:1", "--mqtt-ws", ":9001"}, "--mqtt-ws configures the embedded broker"},
		{"a password file others can read", []string{"--broker", "mqtt://127.0.0.1:1", "--broker-user", "cc", "--broker-password-file", open}, "chmod"},
		{"not an MQTT URL", []string{"--broker", "http://127.0.0.1:1"}, `scheme "http"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", dir, "--http", "127.0.0.1:0"}, c.args...)
			var out strings.Builder
			err := run(t.Context(), args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("serve %v = %v, want an error containing %q", c.args, err, c.want)
			}
		})
	}
}
