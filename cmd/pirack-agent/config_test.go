package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The packaged agent.toml names the secret enrolment writes and asks for a row; completed, it
// checks, and the agent reads it, with the environment over it.
func TestAgentConfigFile(t *testing.T) {
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if err := run(t.Context(), []string{"config", "example", "--packaged"}, &out, &errs, noEnv); err != nil {
		t.Fatal(err)
	}
	tmpl := out.String()
	for _, want := range []string{"\npassword-file = \"/etc/pirack/agent.secret\"\n", "\nstore-dir = \"/var/lib/pirack-agent\"\n", "\n# row = \"\"\n"} {
		if !strings.Contains(tmpl, want) {
			t.Fatalf("packaged agent.toml lacks %q", want)
		}
	}
	path := filepath.Join(dir, "agent.toml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(tmpl)
	err := run(t.Context(), []string{"config", "check", path}, &out, &errs, noEnv)
	if err == nil || !strings.Contains(err.Error(), `row is required`) {
		t.Fatalf("check of the template without a row: %v", err)
	}

	secret := filepath.Join(dir, "agent.secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(strings.NewReplacer(`password-file = "/etc/pirack/agent.secret"`, `password-file = "`+secret+`"`,
		`# row = ""`, `row = "row-2"`, `# interval = "5s"`, `interval = "2s"`, `# gpio = "auto"`, `gpio = "sim"`).Replace(tmpl))
	out.Reset()
	if err := run(t.Context(), []string{"config", "check", path}, &out, &errs, noEnv); err != nil {
		t.Fatalf("check of a completed file: %v", err)
	}
	env := map[string]string{"PIRACK_INTERVAL": "3s"}
	opts, err := parseFlags([]string{"--config", path, "--mac", "b8:27:eb:00:00:02"}, &errs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if opts.agent.Row != "row-2" || opts.agent.Interval != 3*time.Second || opts.agent.Password != "s3cret" || opts.board.Backend != "sim" {
		t.Fatalf("read row %q interval %v password %q gpio %q", opts.agent.Row, opts.agent.Interval, opts.agent.Password, opts.board.Backend)
	}

	// The secret's file must stay private, as on the command line.
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"config", "check", path}, &out, &errs, noEnv); err == nil || !strings.Contains(err.Error(), "chmod") {
		t.Fatalf("check with a readable secret: %v", err)
	}
}
