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

	opts, err := parseFlags([]string{"--row=row-1", "--mac=b8:27:eb:00:00:01", "--password-file=" + good, "--interval=2s", "--gpio=sim"}, &bytes.Buffer{}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := opts.agent
	if cfg.Row != "row-1" || cfg.Password != "s3cret" || cfg.Interval != 2*time.Second || cfg.Broker != "tcp://127.0.0.1:1883" {
		t.Errorf("config = %+v", cfg)
	}
	if hw := opts.board; hw.Backend != "sim" || hw.LEDPin != "17" || hw.ButtonPin != "pin10" || hw.Logger == nil ||
		hw.Button.Debounce != 30*time.Millisecond || hw.Button.LongPress != 2*time.Second || hw.Button.DoublePress != 400*time.Millisecond {
		t.Errorf("board config = %+v", hw)
	}

	opts, err = parseFlags([]string{"--row=r", "--led-pin=pin12", "--button-pin=gpio27", "--gpio=cdev", "--gpio-chip=gpiochip4",
		"--debounce=50ms", "--long-press=3s", "--double-press=-1s"}, &bytes.Buffer{}, func(k string) string {
		if k == passwordEnv {
			return "from-env"
		}
		return ""
	})
	if err != nil || opts.agent.Password != "from-env" {
		t.Errorf("env password: %v, %+v", err, opts.agent)
	}
	if hw := opts.board; hw.Backend != "cdev" || hw.Chip != "gpiochip4" || hw.LEDPin != "pin12" || hw.ButtonPin != "gpio27" ||
		hw.Button.Debounce != 50*time.Millisecond || hw.Button.LongPress != 3*time.Second || hw.Button.DoublePress != -time.Second {
		t.Errorf("board config = %+v", hw)
	}
	if opts, _ := parseFlags([]string{"--row=r"}, &bytes.Buffer{}, noEnv); opts.board.Backend != "auto" {
		t.Errorf("default --gpio = %q, want auto", opts.board.Backend)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no row":            {[]string{}, "--row is required"},
		"loose password":    {[]string{"--row=r", "--password-file=" + loose}, "chmod 600"},
		"missing file":      {[]string{"--row=r", "--password-file=" + filepath.Join(dir, "nope")}, "password file"},
		"bad gpio":          {[]string{"--row=r", "--gpio=wiringpi"}, "want auto, rpio, cdev, sim or none"},
		"bad timing":        {[]string{"--row=r", "--debounce=3s"}, "--debounce"},
		"long before short": {[]string{"--row=r", "--long-press=300ms"}, "shorter than the long press"},
		"bad level":         {[]string{"--row=r", "--log-level=loud"}, "log-level"},
		"stray argument":    {[]string{"--row=r", "extra"}, "unexpected argument"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(tc.args, &bytes.Buffer{}, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// run opens the board from the flags before starting the agent: a power pin stops it there.
func TestRunRefusesPowerPin(t *testing.T) {
	err := run(t.Context(), []string{"--row=r", "--gpio=rpio", "--led-pin=pin1"}, &bytes.Buffer{}, &bytes.Buffer{}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "--led-pin: header pin 1 is 3.3 V") {
		t.Errorf("run = %v, want the power pin refused", err)
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
