// Package board opens a Pi's status LED and push button on the GPIO backend that suits the
// machine: it reads what the machine is (ReadProbe), picks a backend (Choose), parses the pin
// names against the board's header, and hands back hardware.LED and hardware.Button values for
// the agent. It is the one place that knows every backend; the backends know only their library.
package board

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/cdev"
	"github.com/pirack/pirack/hardware/header"
	"github.com/pirack/pirack/hardware/rpio"
	"github.com/pirack/pirack/hardware/sim"
)

// Default pins: the original rack's wiring.
const (
	DefaultLEDPin    = "17"    // BCM 17, header pin 11
	DefaultButtonPin = "pin10" // header pin 10, BCM 15 (the UART's RX line: see docs/hardware.md)
	// NoPin leaves the LED or the button out.
	NoPin = "none"
)

// Config says which backend and pins to use. The zero value picks the backend automatically
// and uses the original rack's pins and button timing.
type Config struct {
	// Backend is Auto, RPIO, CDev, Sim or None. "" means Auto.
	Backend string
	// LEDPin and ButtonPin are pins as header.Layout.Parse reads them ("17", "bcm17",
	// "gpio17", "pin11"), or NoPin. "" means DefaultLEDPin and DefaultButtonPin. With the cdev
	// backend and a Chip that is not a Pi's header chip they are line offsets of that chip.
	LEDPin, ButtonPin string
	// Chip is the GPIO chip of the cdev backend, such as gpiochip0. "" means the chip of the
	// Raspberry Pi header, found by its label.
	Chip string
	// Button is the button's timing and polarity; its zero value is the original circuit.
	Button button.Config
	// Root is where ReadProbe looks for proc/ and dev/. "" means "/".
	Root string
	// Logger receives which backend was chosen and why. nil means slog.Default().
	Logger *slog.Logger

	// openers replaces the hardware backends in tests; nil means the real ones.
	openers map[string]opener
}

// opener opens a backend's LED and button; led or btn is nil when that device is left out.
type opener func(cfg Config, led, btn *header.Pin) (hardware.LED, hardware.Button, []io.Closer, error)

var realOpeners = map[string]opener{RPIO: openRPIO, CDev: openCDev}

// Board is an opened LED and button. LED and Button are nil when there is none, which is what
// agent.Config expects.
type Board struct {
	// Backend is the backend in use: RPIO, CDev, Sim or None.
	Backend string
	// Reason says why Auto chose Backend; "" when it was configured.
	Reason string
	LED    hardware.LED
	Button hardware.Button

	closers []io.Closer
	halted  atomic.Bool // LeaveLEDLit was called
}

// LeaveLEDLit(true) makes Close leave the LED lit and its line as it is: the Pi is halting,
// and a steadily lit LED tells the operator at the rack that it may be pulled. A GPIO output
// keeps its level while the SoC is halted, until the power goes. LeaveLEDLit(false) undoes it
// (the shutdown failed).
func (b *Board) LeaveLEDLit(yes bool) { b.halted.Store(yes) }

// Open opens the LED and button cfg describes. It returns an error for a pin or a timing that
// makes no sense, and for a backend that cannot open its GPIO; with Auto, a machine without
// GPIO is not an error but a Board with Backend None.
func Open(cfg Config) (*Board, error) {
	if cfg.Backend == "" {
		cfg.Backend = Auto
	}
	if cfg.LEDPin == "" {
		cfg.LEDPin = DefaultLEDPin
	}
	if cfg.ButtonPin == "" {
		cfg.ButtonPin = DefaultButtonPin
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.openers == nil {
		cfg.openers = realOpeners
	}
	log := cfg.Logger
	var err error
	if cfg.Button, err = cfg.Button.WithDefaults(); err != nil { // whatever the backend
		return nil, err
	}

	b := &Board{Backend: cfg.Backend}
	probe := ReadProbe(cfg.Root)
	switch cfg.Backend {
	case Auto:
		c := Choose(probe)
		b.Backend, b.Reason = c.Backend, c.Reason
		log.Info("GPIO backend chosen", "gpio", c.Backend, "why", c.Reason)
	case RPIO, CDev, Sim, None:
	default:
		return nil, fmt.Errorf("--gpio %q: want auto, rpio, cdev, sim or none", cfg.Backend)
	}

	switch b.Backend {
	case None:
		if cfg.Backend == None {
			log.Info("GPIO off (--gpio=none): telemetry only, no button or LED")
		} else {
			log.Warn("no usable GPIO: running telemetry only, without the button and LED; --gpio picks a backend by hand")
		}
		return b, nil
	case Sim:
		b.LED, b.Button = new(sim.LED), new(sim.Button)
		log.Info("GPIO simulated: the LED and button exist only in memory")
		return b, nil
	}

	layout := probe.Layout()
	offsets := b.Backend == CDev && cfg.Chip != "" // a named chip may not be a Pi's
	led, err := parsePin(layout, offsets, "--led-pin", cfg.LEDPin)
	if err != nil {
		return nil, err
	}
	btn, err := parsePin(layout, offsets, "--button-pin", cfg.ButtonPin)
	if err != nil {
		return nil, err
	}
	if led != nil && btn != nil && led.BCM == btn.BCM {
		return nil, fmt.Errorf("--led-pin and --button-pin are both %v: give each its own pin", led)
	}
	for _, p := range []struct {
		what string
		pin  *header.Pin
	}{{"LED", led}, {"button", btn}} {
		if p.pin != nil && p.pin.Function != "" {
			log.Warn("GPIO pin has another use: make sure it is free", "device", p.what, "pin", p.pin.String(), "see", "docs/hardware.md")
		}
	}

	b.LED, b.Button, b.closers, err = cfg.openers[b.Backend](cfg, led, btn)
	if err != nil {
		return nil, err
	}
	log.Info("GPIO ready", "gpio", b.Backend, "header", layout.String(),
		"led", pinString(led), "button", pinString(btn),
		"debounce", cfg.Button.Debounce, "long_press", cfg.Button.LongPress, "double_press", cfg.Button.DoublePress)
	return b, nil
}

// parsePin reads a pin flag. With offsets, a number off the Pi header is taken as a line offset
// of the named chip, which checks it.
func parsePin(l header.Layout, offsets bool, flag, s string) (*header.Pin, error) {
	if s == NoPin {
		return nil, nil
	}
	p, err := l.Parse(s)
	if offsets && errors.Is(err, header.ErrNoSuchPin) {
		if n, ok := header.LineOffset(s); ok {
			return &header.Pin{BCM: n}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return &p, nil
}

func pinString(p *header.Pin) string {
	if p == nil {
		return NoPin
	}
	return p.String()
}

// Close releases the lines and switches the LED off (see LeaveLEDLit). It may be called more
// than once.
func (b *Board) Close() error {
	if b.halted.Load() {
		if b.LED != nil {
			return b.LED.Set(true) // the lines are released by the process's exit
		}
		return nil
	}
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c.Close())
	}
	b.closers = nil
	return errors.Join(errs...)
}

func openRPIO(cfg Config, led, btn *header.Pin) (l hardware.LED, b hardware.Button, closers []io.Closer, err error) {
	if led != nil {
		rl, err := rpio.NewLED(led.BCM)
		if err != nil {
			return nil, nil, nil, err
		}
		l, closers = rl, append(closers, rl)
	}
	if btn != nil {
		if b, err = rpio.NewButton(btn.BCM, cfg.Button); err != nil {
			return nil, nil, nil, err
		}
	}
	return l, b, closers, nil
}

func openCDev(cfg Config, led, btn *header.Pin) (l hardware.LED, b hardware.Button, closers []io.Closer, err error) {
	chip, err := cdev.Open(cfg.Chip)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.Logger.Info("GPIO chip", "chip", chip.Info().Name, "label", chip.Info().Label, "lines", chip.Info().Lines)
	if led != nil {
		cl, err := chip.LED(led.BCM)
		if err != nil {
			return nil, nil, nil, err
		}
		l, closers = cl, append(closers, cl)
	}
	if btn != nil {
		cb, err := chip.Button(btn.BCM, cfg.Button)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, nil, nil, err
		}
		b, closers = cb, append(closers, cb)
	}
	return l, b, closers, nil
}
