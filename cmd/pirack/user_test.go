package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pirack/pirack/auth"
)

// user runs `pirack user args...` against dataDir and returns its output.
func user(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runUser(t.Context(), append(args, "--data-dir", dataDir), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func TestUserAddListRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by add

	out, err := user(t, dir, "add", "alice", "--role", "viewer")
	if err != nil {
		t.Fatalf("add viewer: %v\n%s", err, out)
	}
	password := regexp.MustCompile(`(?m)^  (\S{20})$`).FindStringSubmatch(out)
	if password == nil {
		t.Fatalf("add viewer did not print a generated password:\n%s", out)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	out, err = user(t, dir, "add", "--role", "agent", "--mac", "B8:27:EB:3F:1A:2C", "--row", "r1", "--broker", "tcp://control:1883")
	if err != nil {
		t.Fatalf("add agent: %v\n%s", err, out)
	}
	for _, want := range []string{
		"--broker tcp://control:1883 --mac b827eb3f1a2c --row r1 --username b827eb3f1a2c --password-file",
		`broker = "tcp://control:1883" and row = "r1" in /etc/pirack/agent.toml`,
		"install -m 600 /dev/stdin /etc/pirack/agent.secret",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("add agent output lacks %q:\n%s", want, out)
		}
	}
	secret := regexp.MustCompile(`only a hash\):\n\n  (\S+)\n`).FindStringSubmatch(out)
	if secret == nil {
		t.Fatalf("add agent did not print the secret:\n%s", out)
	}
	// The secret is pasted at a prompt, never part of a command the shell keeps in its history.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, secret[1]) && strings.TrimSpace(line) != secret[1] {
			t.Errorf("the secret is part of a command line, which lands in shell history: %q", line)
		}
	}

	// What was printed is what authenticates.
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate("alice", password[1]); err != nil {
		t.Errorf("printed viewer password does not authenticate: %v", err)
	}
	if u, err := users.Authenticate("b827eb3f1a2c", secret[1]); err != nil || u.Row != "r1" {
		t.Errorf("printed agent secret does not authenticate: %+v, %v", u, err)
	}

	out, err = user(t, dir, "add", "alice", "--role", "admin", "--password", "chosen-password")
	if !errors.Is(err, auth.ErrUserExists) {
		t.Errorf("adding alice twice: %v, want ErrUserExists", err)
	}

	out, err = user(t, dir, "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], "alice") || !strings.Contains(lines[1], "viewer") ||
		!strings.HasPrefix(lines[2], "b827eb3f1a2c") || !strings.Contains(lines[2], "agent") {
		t.Errorf("list:\n%s", out)
	}
	if strings.Contains(out, "$2a$") {
		t.Errorf("list shows a hash:\n%s", out)
	}

	if out, err := user(t, dir, "remove", "alice"); err != nil {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if _, err := user(t, dir, "remove", "alice"); !errors.Is(err, auth.ErrNoSuchUser) {
		t.Errorf("removing alice twice: %v, want ErrNoSuchUser", err)
	}
	if out, _ := user(t, dir, "list"); strings.Contains(out, "alice") {
		t.Errorf("alice still listed:\n%s", out)
	}
}

func TestUserAddErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{"add", "bob"}, "--role is required"},
		{"bad role", []string{"add", "bob", "--role", "root"}, "invalid role"},
		{"no name", []string{"add", "--role", "viewer"}, "give the user's name"},
		{"agent without MAC", []string{"add", "--role", "agent", "--row", "r1"}, "MAC"},
		{"agent without row", []string{"add", "--role", "agent", "--mac", "b827eb000001"}, "row"},
		{"viewer with MAC", []string{"add", "bob", "--role", "viewer", "--mac", "b827eb000001"}, "only agents"},
		{"viewer with row", []string{"add", "bob", "--role", "viewer", "--row", "r1"}, "only agents and plugs have a row"},
		{"plug without row", []string{"add", "plug-r1", "--role", "plug"}, "a plug user needs --row"},
		{"plug with empty row", []string{"add", "plug-r1", "--role", "plug", "--row", ""}, "a plug user needs --row"},
		{"plug with bad row", []string{"add", "plug-r1", "--role", "plug", "--row", "Row 1"}, "invalid row name"},
		{"plug with MAC", []string{"add", "plug-r1", "--role", "plug", "--row", "r1", "--mac", "b827eb000001"}, "only agents"},
		{"short password", []string{"add", "bob", "--role", "viewer", "--password", "short"}, "invalid password"},
		{"two names", []string{"add", "bob", "carol", "--role", "viewer"}, "one name"},
		{"no subcommand", []string{}, "no subcommand"},
		{"unknown subcommand", []string{"rename"}, "unknown subcommand"},
		{"remove without name", []string{"remove"}, "exactly one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := tc.args
			if len(args) > 0 {
				args = append(args, "--data-dir", t.TempDir())
			}
			err := runUser(t.Context(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A plug user: a name, a password and its row, stored; told where the plug's MQTT settings and
// its row mapping go.
func TestUserAddPlug(t *testing.T) {
	dir := t.TempDir()
	out, err := user(t, dir, "add", "plug-r1", "--role", "plug", "--row", "r1")
	if err != nil {
		t.Fatalf("add plug: %v\n%s", err, out)
	}
	password := regexp.MustCompile(`(?m)^  (\S{20})$`).FindStringSubmatch(out)
	if password == nil {
		t.Fatalf("add plug did not print a generated password:\n%s", out)
	}
	for _, want := range []string{"Added user plug-r1 with role plug, for row r1.", "MqttUser", filepath.Join(dir, "power-bridge.json"),
		"map it to row r1", "topics that file maps to row r1"} {
		if !strings.Contains(out, want) {
			t.Errorf("add plug output lacks %q:\n%s", want, out)
		}
	}
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := users.Authenticate("plug-r1", password[1]); err != nil || u.Role != auth.RolePlug || u.Row != "r1" {
		t.Errorf("printed plug password: %+v, %v; want a plug user of row r1", u, err)
	}
	// Flags before the name work too, and the row shows in the list.
	if out, err := user(t, dir, "add", "--role", "plug", "--row", "r2", "plug-r2"); err != nil {
		t.Fatalf("add plug with flags first: %v\n%s", err, out)
	}
	out, err = user(t, dir, "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if !regexp.MustCompile(`(?m)^plug-r1\s+plug\s+-\s+r1\s`).MatchString(out) || !regexp.MustCompile(`(?m)^plug-r2\s+plug\s+-\s+r2\s`).MatchString(out) {
		t.Errorf("list does not show the plugs' rows:\n%s", out)
	}
	// Refused without --row, and nothing is stored.
	if _, err := user(t, dir, "add", "plug-r3", "--role", "plug"); err == nil || !strings.Contains(err.Error(), "--row") {
		t.Errorf("plug without a row: %v, want refused naming --row", err)
	}
	if _, ok := users.Get("plug-r3"); ok {
		t.Error("a plug refused for lack of a row was stored")
	}
}

func TestUserListEmpty(t *testing.T) {
	dir := t.TempDir()
	out, err := user(t, dir, "list")
	if err != nil || !strings.Contains(out, "No users") {
		t.Fatalf("list of an empty data dir: %q, %v", out, err)
	}
}

// passwd gives a new password and keeps the rest; a user made before pirack stored Mosquitto
// hashes gets one, so broker-config includes it.
func TestUserPasswd(t *testing.T) {
	dir := t.TempDir()
	if out, err := user(t, dir, "add", "--role", "agent", "--mac", "b8:27:eb:3f:1a:2c", "--row", "r2", "--password", "old-password-1"); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	rewriteUser(t, filepath.Join(dir, usersFileName), "b827eb3f1a2c", func(u *auth.User) { u.MosquittoHash = "" })

	out, err := user(t, dir, "passwd", "b827eb3f1a2c")
	if err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	var generated string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  ") {
			generated = strings.TrimSpace(l)
		}
	}
	users, err := auth.Open(filepath.Join(dir, usersFileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate("b827eb3f1a2c", "old-password-1"); err == nil {
		t.Error("the old password still works")
	}
	u, err := users.Authenticate("b827eb3f1a2c", generated)
	if err != nil {
		t.Fatalf("the printed password %q does not work: %v\n%s", generated, err, out)
	}
	if u.Role != auth.RoleAgent || u.MAC != "b827eb3f1a2c" || u.Row != "r2" || u.MosquittoHash == "" {
		t.Errorf("after passwd: %+v, want the agent of row r2 with a Mosquitto hash", u)
	}
	if _, err := user(t, dir, "passwd", "nobody"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Errorf("passwd of an unknown user = %v", err)
	}
}
