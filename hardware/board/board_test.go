package board

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/hardwaretest"
	"github.com/pirack/pirack/hardware/header"
	"github.com/pirack/pirack/hardware/sim"
)

// Each testdata directory is the /proc and /dev of a real machine, reduced to what the probe
// reads; device nodes are empty files.
func TestChooseOnMachines(t *testing.T) {
	for _, tc := range []struct {
		dir     string
		backend string
		layout  header.Layout
		why     string // words the reason must contain
	}{
		{"pi1-model-b", RPIO, header.Header26Rev2, "/dev/gpiomem"},
		{"pi1-model-b-rev1", RPIO, header.Header26Rev1, "/dev/gpiomem"},
		{"pi3", RPIO, header.Header40, "Raspberry Pi 3 Model B"},
		{"pi4", RPIO, header.Header40, "Raspberry Pi 4 Model B"},
		{"zero2w", RPIO, header.Header40, "Zero 2 W"},
		{"pi4-gpiomem0", CDev, header.Header40, "without /dev/gpiomem"},
		{"pi5", CDev, header.Header40, "RP1"},
		{"x86", None, header.Header40, "no GPIO"},
		{"rockpro64", None, header.Header40, "--gpio=cdev --gpio-chip=gpiochip0"},
		{"container-pi4", None, header.Header40, "container"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			p := ReadProbe(filepath.Join("testdata", tc.dir))
			c := Choose(p)
			if c.Backend != tc.backend || !strings.Contains(c.Reason, tc.why) {
				t.Errorf("Choose = %s (%s), want %s because of %q; probe %+v", c.Backend, c.Reason, tc.backend, tc.why, p)
			}
			if l := p.Layout(); l != tc.layout {
				t.Errorf("layout %v, want %v", l, tc.layout)
			}
		})
	}
}

func TestReadProbe(t *testing.T) {
	p := ReadProbe(filepath.Join("testdata", "pi5"))
	want := Probe{Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: 0xd04170,
		Chips: []string{"gpiochip0", "gpiochip10", "gpiochip11", "gpiochip12", "gpiochip13"}}
	if p.Model != want.Model || p.Revision != want.Revision || p.GPIOMem || !slices.Equal(p.Chips, want.Chips) {
		t.Errorf("pi5 probe %+v, want %+v", p, want)
	}
	p = ReadProbe(filepath.Join("testdata", "pi1-model-b-rev1")) // revision only in cpuinfo
	if p.Revision != 2 || !p.GPIOMem {
		t.Errorf("rev1 probe %+v", p)
	}
	if p := ReadProbe(filepath.Join("testdata", "nowhere")); p.Model != "" || p.GPIOMem || p.Chips != nil {
		t.Errorf("empty root probe %+v", p)
	}
}

func TestGeneration(t *testing.T) {
	for model, want := range map[string]int{
		"Raspberry Pi Model B Rev 2":               1,
		"Raspberry Pi Model B Plus Rev 1.2":        1,
		"Raspberry Pi Model A Plus Rev 1.1":        1,
		"Raspberry Pi Compute Module Rev 1.0":      1,
		"Raspberry Pi Zero Rev 1.3":                1,
		"Raspberry Pi Zero W Rev 1.1":              1,
		"Raspberry Pi Zero 2 W Rev 1.0":            3,
		"Raspberry Pi 2 Model B Rev 1.1":           2,
		"Raspberry Pi 3 Model B Plus Rev 1.3":      3,
		"Raspberry Pi 3 Model A Plus Rev 1.0":      3,
		"Raspberry Pi Compute Module 3 Plus Rev 1": 3,
		"Raspberry Pi 4 Model B Rev 1.5":           4,
		"Raspberry Pi 400 Rev 1.0":                 4,
		"Raspberry Pi Compute Module 4 Rev 1.0":    4,
		"Raspberry Pi 5 Model B Rev 1.0":           5,
		"Raspberry Pi 500 Rev 1.0":                 5,
		"Raspberry Pi Compute Module 5 Rev 1.0":    5,
		"Pine64 RockPro64 v2.1":                    -1,
		"":                                         -1,
	} {
		if got := generation(model); got != want {
			t.Errorf("generation(%q) = %d, want %d", model, got, want)
		}
	}
}

func TestLayoutFromRevision(t *testing.T) {
	for _, tc := range []struct {
		p    Probe
		want header.Layout
	}{
		{Probe{Revision: 0x0003}, header.Header26Rev1},
		{Probe{Revision: 0x1000002}, header.Header26Rev1}, // over-volted rev 1
		{Probe{Revision: 0x0008}, header.Header26Rev2},    // Model A
		{Probe{Revision: 0x0010}, header.Header40},        // B+
		{Probe{Revision: 0x900032}, header.Header40},      // B+ new-style
		{Probe{Revision: 0x900021}, header.Header40},      // A+ new-style
		{Probe{Revision: 0x800010}, header.Header26Rev2},  // new-style code of a Model B
		{Probe{Model: "Raspberry Pi Model B Rev 1"}, header.Header26Rev1},
		{Probe{Model: "Raspberry Pi Model A Rev 2"}, header.Header26Rev2},
		{Probe{Model: "Raspberry Pi Model B Plus Rev 1.2"}, header.Header40},
		{Probe{}, header.Header40},
	} {
		if got := tc.p.Layout(); got != tc.want {
			t.Errorf("%+v: layout %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestParsers(t *testing.T) {
	if m := parseModel([]byte("Raspberry Pi 4 Model B Rev 1.4\x00")); m != "Raspberry Pi 4 Model B Rev 1.4" {
		t.Errorf("model %q", m)
	}
	if _, err := parseDTRevision([]byte{1, 2}); err == nil {
		t.Error("short revision cell accepted")
	}
	if r, err := parseCPUInfoRevision([]byte("Hardware\t: BCM2835\nRevision\t: a02082\n")); r != 0xa02082 || err != nil {
		t.Errorf("cpuinfo revision %x, %v", r, err)
	}
	if _, err := parseCPUInfoRevision([]byte("Revision : zz\n")); err == nil {
		t.Error("bad revision accepted")
	}
	mem, chips := parseDev([]string{"gpiochip10", "gpiomem0", "gpiochip2", "gpiochipx", "gpiomem", "gpiochip0"})
	if !mem || !slices.Equal(chips, []string{"gpiochip0", "gpiochip2", "gpiochip10"}) {
		t.Errorf("parseDev = %v %v", mem, chips)
	}
}

// fakeOpener records the pins Open passes and hands back fakes.
type fakeOpener struct {
	led, btn *header.Pin
	cfg      Config
	err      error
}

func (f *fakeOpener) open(cfg Config, led, btn *header.Pin) (hardware.LED, hardware.Button, []io.Closer, error) {
	f.cfg, f.led, f.btn = cfg, led, btn
	if f.err != nil {
		return nil, nil, nil, f.err
	}
	pin := new(hardwaretest.Pin)
	return new(hardwaretest.LED), new(hardwaretest.Button), []io.Closer{pin}, nil
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		backend string // opened, "" for an error
		led     string // Pin.String of what the backend got
		btn     string
		errHas  string
		logHas  string
	}{
		{name: "auto on a Pi 4: rpio with the original pins", cfg: Config{Root: "testdata/pi4"},
			backend: RPIO, led: "BCM 17 (header pin 11)", btn: "BCM 15 (header pin 10, UART RX)", logHas: "/dev/gpiomem"},
		{name: "auto on a Pi 5: cdev", cfg: Config{Root: "testdata/pi5"}, backend: CDev, led: "BCM 17 (header pin 11)", logHas: "RP1"},
		{name: "auto on a rev 1 Model B maps header pins its way", cfg: Config{Root: "testdata/pi1-model-b-rev1", LEDPin: "pin13"},
			backend: RPIO, led: "BCM 21 (header pin 13)", logHas: "26-pin header (rev 1)"},
		{name: "auto on x86: telemetry only", cfg: Config{Root: "testdata/x86"}, backend: None, logHas: "telemetry only"},
		{name: "none", cfg: Config{Backend: None, Root: "testdata/pi4"}, backend: None, logHas: "--gpio=none"},
		{name: "sim", cfg: Config{Backend: Sim, Root: "testdata/x86"}, backend: Sim},
		{name: "explicit cdev on a Pi 4", cfg: Config{Backend: CDev, Root: "testdata/pi4", ButtonPin: "gpio27"}, backend: CDev, btn: "BCM 27 (header pin 13)"},
		{name: "led left out", cfg: Config{Backend: RPIO, Root: "testdata/pi4", LEDPin: NoPin}, backend: RPIO, led: "none", btn: "BCM 15 (header pin 10, UART RX)"},
		{name: "named chip takes line offsets", cfg: Config{Backend: CDev, Chip: "gpiochip1", Root: "testdata/rockpro64", LEDPin: "40", ButtonPin: "gpio33"},
			backend: CDev, led: "line 40", btn: "line 33"},
		{name: "power pin refused", cfg: Config{Backend: RPIO, Root: "testdata/pi4", LEDPin: "pin2"}, errHas: "--led-pin: header pin 2 is 5 V"},
		{name: "ground pin refused", cfg: Config{Backend: CDev, Root: "testdata/pi5", ButtonPin: "pin9"}, errHas: "--button-pin: header pin 9 is ground"},
		{name: "pin off a 26-pin header", cfg: Config{Root: "testdata/pi1-model-b", ButtonPin: "pin40"}, errHas: "1-26"},
		{name: "same pin twice", cfg: Config{Backend: RPIO, Root: "testdata/pi4", LEDPin: "15"}, errHas: "both BCM 15"},
		{name: "bad backend", cfg: Config{Backend: "wiringpi"}, errHas: "want auto, rpio, cdev, sim or none"},
		{name: "bad timing", cfg: Config{Backend: Sim, Button: button.Config{Debounce: 5e9}}, errHas: "debounce"},
		{name: "backend fails", cfg: Config{Backend: RPIO, Root: "testdata/pi4", openers: map[string]opener{RPIO: (&fakeOpener{err: errors.New("permission denied")}).open}}, errHas: "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			tc.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			fake := new(fakeOpener)
			if tc.cfg.openers == nil {
				tc.cfg.openers = map[string]opener{RPIO: fake.open, CDev: fake.open}
			}
			b, err := Open(tc.cfg)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Open = %v, want an error mentioning %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Backend != tc.backend {
				t.Errorf("backend %s, want %s", b.Backend, tc.backend)
			}
			if !strings.Contains(logs.String(), tc.logHas) {
				t.Errorf("log lacks %q:\n%s", tc.logHas, logs.String())
			}
			switch tc.backend {
			case None:
				if b.LED != nil || b.Button != nil {
					t.Error("backend none handed out devices")
				}
			case Sim:
				if _, ok := b.LED.(*sim.LED); !ok {
					t.Errorf("sim LED is %T", b.LED)
				}
			default:
				if tc.led != "" && pinString(fake.led) != tc.led {
					t.Errorf("LED pin %s, want %s", pinString(fake.led), tc.led)
				}
				if tc.btn != "" && pinString(fake.btn) != tc.btn {
					t.Errorf("button pin %s, want %s", pinString(fake.btn), tc.btn)
				}
				if fake.cfg.Button.Debounce != button.DefaultDebounce {
					t.Errorf("backend got button config %+v, want defaults applied", fake.cfg.Button)
				}
			}
		})
	}
}

func TestOpenWarnsAboutUART(t *testing.T) {
	var logs bytes.Buffer
	fake := new(fakeOpener)
	b, err := Open(Config{Backend: RPIO, Root: "testdata/pi4", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		openers: map[string]opener{RPIO: fake.open}})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "UART RX") {
		t.Errorf("no warning about BCM 15 being the UART's RX:\n%s", logs.String())
	}
}

func TestClose(t *testing.T) {
	pin := new(hardwaretest.Pin)
	b := &Board{closers: []io.Closer{pin}}
	if err := b.Close(); err != nil || !pin.Closed() {
		t.Errorf("Close = %v, closed %v", err, pin.Closed())
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// After LeaveLEDLit(true), as when the Pi shuts down, Close leaves the LED lit: the rack's
// "safe to pull". LeaveLEDLit(false) (the shutdown failed) restores the usual switch-off.
func TestLeaveLEDLit(t *testing.T) {
	for _, lit := range []bool{true, false} {
		b, err := Open(Config{Backend: Sim, LEDPin: DefaultLEDPin, ButtonPin: DefaultButtonPin})
		if err != nil {
			t.Fatal(err)
		}
		b.LeaveLEDLit(true)
		b.LeaveLEDLit(lit)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if on := b.LED.(*sim.LED).On(); on != lit {
			t.Errorf("LeaveLEDLit(%v): after Close the LED is on=%v", lit, on)
		}
	}
}
