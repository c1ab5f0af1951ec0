package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The file the pirack package installs is valid and keeps the data in /var/lib/pirack.
func TestPackagedServeConfigChecks(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(t.Context(), []string{"config", "example", "--packaged"}, &out, &errs); err != nil {
		t.Fatal(err, errs.String())
	}
	if !strings.Contains(out.String(), "\ndata-dir = \"/var/lib/pirack\"\n") {
		t.Fatalf("packaged config does not set data-dir:\n%s", out.String())
	}
	path := filepath.Join(t.TempDir(), "pirack.toml")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"config", "check", path}, &out, &errs); err != nil {
		t.Fatalf("config check of the packaged file: %v", err)
	}
	if got := out.String(); got != path+": ok\n" {
		t.Fatalf("config check said %q", got)
	}
}

func TestServeConfigCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ file, want string }{
		"embedded limits with a foreign broker": {"broker = \"mqtt://127.0.0.1:1883\"\nmqtt-max-clients = 10\n", "--mqtt-max-clients configures the embedded broker"},
		"log level":                             {"log-level = \"loud\"\n", `--log-level "loud": want debug, info, warn or error`},
		"unknown key with its line":             {"# comment\nhttp-addr = \":80\"\n", "pirack.toml:2: http-addr: unknown setting; did you mean http?"},
		"inline secret":                         {"broker-password = \"hunter2\"\n", "broker-password: secrets are not written in a config file"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "pirack.toml")
			if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run(t.Context(), []string{"config", "check", path}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("config check = %v, want %q", err, c.want)
			}
		})
	}
}

// pirack serve takes its settings from the command line, PIRACK_... and --config, in that order.
func TestServeSettingsFromFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pirack.toml")
	if err := os.WriteFile(path, []byte("http = \"127.0.0.1:18081\"\nlogin-limit = 3\nstale-after = \"9s\"\nhome-assistant = true\ndata-dir = \"/from/file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PIRACK_CONFIG": path, "PIRACK_LOGIN_LIMIT": "7", "PIRACK_DATA_DIR": "/from/env"}
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.register(fs)
	if err := parseSettings(fs, []string{"--data-dir", "/from/flag"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:18081" || cfg.LoginLimit != 7 || cfg.StaleAfter != 9*time.Second || !cfg.HomeAssistant || cfg.DataDir != "/from/flag" {
		t.Fatalf("settings: http %q login-limit %d stale-after %v home-assistant %t data-dir %q",
			cfg.HTTPAddr, cfg.LoginLimit, cfg.StaleAfter, cfg.HomeAssistant, cfg.DataDir)
	}
	if cfg.MQTTAddr != ":1883" {
		t.Fatalf("a setting in none of them kept its default? mqtt %q", cfg.MQTTAddr)
	}
}
