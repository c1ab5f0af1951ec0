package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/pirack/pirack/hardware/powersensor"
	"github.com/pirack/pirack/internal/testcert"
)

func noEnv(string) string { return "" }

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("s3cret\n"), 0o644)
	os.Chmod(loose, 0o644) // umask may have narrowed it

	ca := testcert.NewCA(t, "pirack test CA")
	client := ca.Client(t, "b827eb000001")
	certFile, keyFile := client.WriteFiles(t, dir, "b827eb000001")
	looseKey := testcert.WriteFile(t, filepath.Join(dir, "loose.key"), client.KeyPEM, 0o644)
	_, otherKey := ca.Client(t, "other").WriteFiles(t, dir, "other")

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
	if opts, _ := parseFlags([]string{"--row=r"}, &bytes.Buffer{}, noEnv); opts.board.Backend != "auto" || opts.power.Chip != "" {
		t.Errorf("default --gpio = %q, want auto; default --power = %+v, want none", opts.board.Backend, opts.power)
	}
	opts, err = parseFlags([]string{"--row=r", "--power=ina226:addr=0x41,shunt-ohms=0.02,max-amps=4"}, &bytes.Buffer{}, noEnv)
	if want := (powersensor.Spec{Chip: "ina226", Bus: 1, Addr: 0x41, ShuntOhms: 0.02, MaxAmps: 4}); err != nil || opts.power != want {
		t.Errorf("--power: %+v, %v; want %+v", opts.power, err, want)
	}

	// A client certificate without a password: TLS is set up, the password left empty.
	opts, err = parseFlags([]string{"--row=r", "--broker=ssl://rack-host:8883", "--ca-file=" + certFile, "--cert-file=" + certFile, "--key-file=" + keyFile}, &bytes.Buffer{}, noEnv)
	if err != nil {
		t.Fatalf("TLS flags: %v", err)
	}
	if c := opts.agent.TLS; c == nil || c.ServerName != "rack-host" || c.RootCAs == nil || len(c.Certificates) != 1 || opts.agent.Password != "" {
		t.Errorf("TLS flags: config %+v, password %q", c, opts.agent.Password)
	}
	if opts, err := parseFlags([]string{"--row=r", "--broker=ssl://rack-host:8883"}, &bytes.Buffer{}, noEnv); err != nil || opts.agent.TLS != nil {
		t.Errorf("ssl:// without TLS flags: %v, TLS %+v; want the agent's default (system roots)", err, opts.agent.TLS)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no row":            {[]string{}, "row is required"},
		"loose password":    {[]string{"--row=r", "--password-file=" + loose}, "chmod 600"},
		"missing file":      {[]string{"--row=r", "--password-file=" + filepath.Join(dir, "nope")}, "password file"},
		"bad gpio":          {[]string{"--row=r", "--gpio=wiringpi"}, "want auto, rpio, cdev, sim or none"},
		"bad timing":        {[]string{"--row=r", "--debounce=3s"}, "--debounce"},
		"long before short": {[]string{"--row=r", "--long-press=300ms"}, "shorter than the long press"},
		"bad level":         {[]string{"--row=r", "--log-level=loud"}, "log-level"},
		"stray argument":    {[]string{"--row=r", "extra"}, "unexpected argument"},
		"bad power key":     {[]string{"--row=r", "--power=ina219:bus=1,address=0x40"}, `--power: power sensor "ina219:bus=1,address=0x40": unknown key "address"; want ina219 or ina226`},
		"bad power chip":    {[]string{"--row=r", "--power=ads1115"}, `unknown chip "ads1115"`},
		"power too much":    {[]string{"--row=r", "--power=ina226:max-amps=3"}, "at most 0.8192 A"},
		"cert without key":  {[]string{"--row=r", "--broker=ssl://h:8883", "--cert-file=" + certFile}, "TLS flags: client certificate " + certFile + " given without its key file"},
		"key without cert":  {[]string{"--row=r", "--broker=ssl://h:8883", "--key-file=" + keyFile}, "given without its certificate file"},
		"loose key":         {[]string{"--row=r", "--broker=ssl://h:8883", "--cert-file=" + certFile, "--key-file=" + looseKey}, "run chmod 600 " + looseKey},
		"tcp with TLS":      {[]string{"--row=r", "--broker=tcp://h:1883", "--cert-file=" + certFile, "--key-file=" + keyFile}, "use ssl://h:8883"},
		"default tcp, CA":   {[]string{"--row=r", "--ca-file=" + certFile}, "broker tcp://127.0.0.1:1883 is plain MQTT"},
		"missing CA":        {[]string{"--row=r", "--broker=ssl://h:8883", "--ca-file=" + filepath.Join(dir, "nope.pem")}, "broker CA file"},
		"CA not PEM":        {[]string{"--row=r", "--broker=ssl://h:8883", "--ca-file=" + good}, "holds no PEM certificate"},
		"key of other cert": {[]string{"--row=r", "--broker=ssl://h:8883", "--cert-file=" + certFile, "--key-file=" + otherKey}, "is not the key of certificate"},
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
		// The power sensor opens /dev/i2c-N through periph's sysfs driver alone: periph's SoC
		// drivers (host.Init) would map the GPIO registers the GPIO backends own.
		if rest, ok := strings.CutPrefix(p.ImportPath, "periph.io/x/host/v3"); ok && rest != "/sysfs" && rest != "/fs" {
			t.Errorf("pirack-agent links %s; only periph's sysfs I2C driver is wanted", p.ImportPath)
		}
	}
}

// A power sensor that cannot be opened at start is not fatal: the agent runs, says why in its
// log, and tries again at each reading.
func TestRunWithUnopenablePowerSensor(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // run returns as soon as it has started
	var stderr bytes.Buffer
	err := run(ctx, []string{"--row=r", "--mac=b8:27:eb:00:00:01", "--broker=tcp://127.0.0.1:1", "--gpio=none", "--power=ina219:bus=99"}, &bytes.Buffer{}, &stderr, noEnv)
	if err != nil {
		t.Fatalf("run = %v, want the agent to run without its power sensor", err)
	}
	if log := stderr.String(); !strings.Contains(log, "cannot open the power sensor; trying again at each reading") || !strings.Contains(log, "/dev/i2c-99") {
		t.Errorf("log does not say which sensor could not be opened and why:\n%s", log)
	}
}

func TestPowerSensorOpensLater(t *testing.T) {
	spec := powersensor.Spec{Chip: powersensor.INA219, Bus: 1}
	var logs bytes.Buffer
	p := newPowerSensor(spec, slog.New(slog.NewTextHandler(&logs, nil)))
	opens := 0
	enabled := errors.New("open I2C bus 1: no /dev/i2c-1: I2C is not enabled")
	p.open = func(s powersensor.Spec) (*powersensor.Sensor, error) {
		if opens++; opens < 3 {
			return nil, enabled
		}
		reg := func(r byte, v uint16) i2ctest.IO {
			return i2ctest.IO{Addr: 0x40, W: []byte{r}, R: []byte{byte(v >> 8), byte(v)}}
		}
		return powersensor.New(&i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
			{Addr: 0x40, W: []byte{0x00, 0x1f, 0xff}}, {Addr: 0x40, W: []byte{0x05, 0x10, 0x62}}, reg(0x00, 0x1fff), reg(0x05, 0x1062),
			reg(0x05, 0x1062), reg(0x01, 30000), reg(0x02, 1275<<3), reg(0x04, 30717), reg(0x03, 7832),
		}}, s)
	}
	p.start()
	if !strings.Contains(logs.String(), "cannot open the power sensor") {
		t.Errorf("start did not log the failed open: %s", logs.String())
	}
	if _, err := p.Read(); !errors.Is(err, enabled) {
		t.Fatalf("Read before the sensor opens = %v, want the open error", err)
	}
	got, err := p.Read()
	if err != nil || got.Amps == nil || *got.Amps < 2.99 || got.Source != "ina219" {
		t.Fatalf("Read once the sensor opens = %+v, %v", got, err)
	}
	if opens != 3 || !strings.Contains(logs.String(), "power sensor ready") || !strings.Contains(logs.String(), "ina219 at 0x40 on /dev/i2c-1") {
		t.Errorf("opened %d times; log:\n%s", opens, logs.String())
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
