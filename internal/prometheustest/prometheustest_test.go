package prometheustest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The config Start writes is one promtool accepts, with both ways of authenticating.
func TestConfigChecks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	text := config(Options{Targets: []Target{
		{Job: "token", Addr: "127.0.0.1:8080", BearerTokenFile: secret},
		{Job: "basic", Addr: "127.0.0.1:8080", Path: "/other", Username: "prometheus", PasswordFile: secret},
	}})
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t, "promtool"), "check", "config", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s\nconfig:\n%s", err, out, text)
	}
	for _, s := range []string{"scrape_interval: 1s", "credentials_file: ", "password_file: ", `metrics_path: "/other"`} {
		if !strings.Contains(text, s) {
			t.Errorf("config lacks %q:\n%s", s, text)
		}
	}
}
