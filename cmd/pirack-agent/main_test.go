package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("s3cret\n"), 0o644)
	os.Chmod(loose, 0o644) // umask may have narrowed it

	cfg, _, err := parseFlags([]string{"--row=row-1", "--mac=b8:27:eb:00:00:01", "--password-file=" + good, "--interval=2s", "--gpio=sim"}, &bytes.Buffer{}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Row != "row-1" || cfg.Password != "s3cret" || cfg.Interval != 2*time.Second || cfg.LED == nil || cfg.Button == nil || cfg.Broker != "tcp://127.0.0.1:1883" {
		t.Errorf("config = %+v", cfg)
	}

	cfg, _, err = parseFlags([]string{"--row=r"}, &bytes.Buffer{}, func(k string) string {
		if k == passwordEnv {
			return "from-env"
		}
		return ""
	})
	if err != nil || cfg.Password != "from-env" || cfg.LED != nil {
		t.Errorf("env password: %v, %+v", err, cfg)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no row":         {[]string{}, "--row is required"},
		"loose password": {[]string{"--row=r", "--password-file=" + loose}, "chmod 600"},
		"missing file":   {[]string{"--row=r", "--password-file=" + filepath.Join(dir, "nope")}, "password file"},
		"bad gpio":       {[]string{"--row=r", "--gpio=rpio"}, "want none or sim"},
		"bad level":      {[]string{"--row=r", "--log-level=loud"}, "log-level"},
		"stray argument": {[]string{"--row=r", "extra"}, "unexpected argument"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := parseFlags(tc.args, &bytes.Buffer{}, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--version"}, &out, &bytes.Buffer{}, noEnv); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "pirack-agent ") {
		t.Errorf("version output %q", out.String())
	}
}

// TestDependencies fences what the agent binary links: it runs on small boards and must never
// carry the broker, the dashboard or their dependencies.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/pirack/pirack/broker", "github.com/pirack/pirack/dashboard", "github.com/pirack/pirack/auth",
		"github.com/mochi-mqtt/", "net/http/pprof", "html/template", "embed",
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for _, f := range forbidden {
			if p.ImportPath == f || strings.HasPrefix(p.ImportPath, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(p.ImportPath, f)) {
				t.Errorf("pirack-agent links %s", p.ImportPath)
			}
		}
	}
}
