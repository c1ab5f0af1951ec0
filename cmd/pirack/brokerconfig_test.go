package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/powerbridge"
)

func brokerConfig(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append([]string{"broker-config"}, args...), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func TestBrokerConfigMosquitto(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"add", "alice", "--role", "viewer", "--password", "alice-password"},
		{"add", "--role", "agent", "--mac", "b8:27:eb:3f:1a:2c", "--row", "r1", "--password", "agent-password"},
		{"add", "plug-r1", "--role", "plug", "--row", "r1", "--password", "plug-password"},
		{"add", "old", "--role", "admin", "--password", "old-password"},
	} {
		if out, err := user(t, dir, args...); err != nil {
			t.Fatalf("user %v: %v\n%s", args, err, out)
		}
	}
	// "old" was made by an earlier pirack: no Mosquitto hash in the file.
	rewriteUser(t, filepath.Join(dir, usersFileName), "old", func(u *auth.User) { u.MosquittoHash = "" })
	bridge := `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"}]}`
	if err := os.WriteFile(filepath.Join(dir, powerbridge.FileName), []byte(bridge), 0o600); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "mosquitto")
	stdout, err := brokerConfig(t, "mosquitto", "--data-dir", dir, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	for _, want := range []string{
		"for 3 users: alice, b827eb3f1a2c, plug-r1.",
		"Left out, so they cannot log in to Mosquitto: old.",
		"pirack user passwd NAME",
		"per_listener_settings false\n  allow_anonymous false\n  password_file " + filepath.Join(out, "passwd") + "\n  acl_file " + filepath.Join(out, "acl"),
		"kill -HUP",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(out, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(out, "passwd")); fi.Mode().Perm() != 0o600 {
		t.Errorf("passwd mode %04o, want 0600", fi.Mode().Perm())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(passwd)), "\n") {
		name, hash, _ := strings.Cut(line, ":")
		if !auth.VerifyMosquittoHash(hash, map[string]string{"alice": "alice-password", "b827eb3f1a2c": "agent-password", "plug-r1": "plug-password"}[name]) {
			t.Errorf("passwd line %q does not hold the user's password", line)
		}
	}
	acl, err := os.ReadFile(filepath.Join(out, "acl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(acl), "user plug-r1\ntopic write tele/rack-r1/#\n") {
		t.Errorf("acl lacks the plug's folder from %s:\n%s", powerbridge.FileName, acl)
	}
}

func TestBrokerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no broker", nil, "no broker given"},
		{"unknown broker", []string{"emqx"}, "only mosquitto"},
		{"no out", []string{"mosquitto", "--data-dir", dir}, "--out is required"},
		{"no users file", []string{"mosquitto", "--data-dir", dir, "--out", dir}, "wrong --data-dir"},
		{"bad power bridge file", []string{"mosquitto", "--data-dir", dir, "--out", dir, "--power-bridge", filepath.Join(dir, "missing.json")}, "wrong --data-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := brokerConfig(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q\n%s", err, tc.want, out)
			}
		})
	}
	if _, err := user(t, dir, "add", "alice", "--role", "viewer", "--password", "alice-password"); err != nil {
		t.Fatal(err)
	}
	out, err := brokerConfig(t, "mosquitto", "--data-dir", dir, "--out", dir, "--power-bridge", filepath.Join(dir, "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing --power-bridge file: %v\n%s", err, out)
	}
}
