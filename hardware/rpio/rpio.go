// Package rpio drives the button and LED through memory-mapped GPIO registers with go-rpio
// (/dev/gpiomem): the Raspberry Pi 1, 2, 3, 4, 400, Zero, Zero 2 and Compute Modules 1-4. It
// needs no kernel GPIO driver, only membership of the gpio group. It cannot reach a Pi 5's GPIO,
// which sit behind the RP1 chip: use package cdev there.
//
// This is the only package that imports go-rpio. Registers give no edge events that are safe to
// use without root, so the button is polled every button.PollInterval.
//
// go-rpio keeps its mapping in package state: one mapping serves every pin of the process, and
// it is never unmapped (go-rpio's Close also writes interrupt-enable registers, which through
// /dev/gpiomem land in the GPIO block); the kernel unmaps it when the process exits.
package rpio

import (
	"fmt"
	"sync"

	gorpio "github.com/stianeikeland/go-rpio/v4"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/hardware/button"
)

var _ hardware.LED = (*LED)(nil)

// MaxBCM is the highest GPIO number of the BCM283x and BCM2711 register blocks.
const MaxBCM = 53

// pin is what this backend needs of a GPIO pin. gpioPin implements it on the registers;
// tests use *hardwaretest.Pin.
type pin interface {
	Input()
	Output()
	PullUp()
	PullDown()
	Read() (high bool, err error)
	Write(high bool) error
}

// gpioPin is a pin in go-rpio's register mapping.
type gpioPin gorpio.Pin

func (p gpioPin) Input()    { gorpio.Pin(p).Input() }
func (p gpioPin) Output()   { gorpio.Pin(p).Output() }
func (p gpioPin) PullUp()   { gorpio.Pin(p).PullUp() }
func (p gpioPin) PullDown() { gorpio.Pin(p).PullDown() }

func (p gpioPin) Read() (bool, error) { return gorpio.Pin(p).Read() == gorpio.High, nil }

func (p gpioPin) Write(high bool) error {
	if high {
		gorpio.Pin(p).High()
	} else {
		gorpio.Pin(p).Low()
	}
	return nil
}

var (
	mapOnce sync.Once
	mapErr  error
)

// mapRegisters maps the GPIO registers once per process. go-rpio tries /dev/mem first and
// falls back to /dev/gpiomem only on a permission error: run unprivileged (or under the
// systemd unit, whose DeviceAllow denies /dev/mem) so that it uses /dev/gpiomem.
func mapRegisters() error {
	mapOnce.Do(func() {
		if err := gorpio.Open(); err != nil {
			mapErr = fmt.Errorf("rpio: map the GPIO registers through /dev/gpiomem: %w; "+
				"the user must be in the gpio group (usermod -aG gpio USER), or try --gpio=cdev", err)
		}
	})
	return mapErr
}

func gpio(bcm int) (gpioPin, error) {
	if bcm < 0 || bcm > MaxBCM {
		return 0, fmt.Errorf("rpio: BCM %d: want 0-%d", bcm, MaxBCM)
	}
	if err := mapRegisters(); err != nil {
		return 0, err
	}
	return gpioPin(bcm), nil
}

// LED is an LED on a GPIO output, active high: the pin sources current through the LED and its
// series resistor to ground.
type LED struct{ p pin }

// NewLED configures BCM GPIO bcm as an output, switched off, and returns its LED.
func NewLED(bcm int) (*LED, error) {
	p, err := gpio(bcm)
	if err != nil {
		return nil, err
	}
	return newLED(p)
}

func newLED(p pin) (*LED, error) {
	// Latch the level before switching to output, so that the LED does not flash at start.
	if err := p.Write(false); err != nil {
		return nil, fmt.Errorf("rpio: LED: %w", err)
	}
	p.Output()
	return &LED{p: p}, nil
}

// Set switches the LED.
func (l *LED) Set(on bool) error { return l.p.Write(on) }

// Close switches the LED off; the pin stays an output, driven low.
func (l *LED) Close() error { return l.p.Write(false) }

// NewButton configures BCM GPIO bcm as an input with the pull matching cfg.ActiveHigh (a
// pull-up for the original active-low circuit; the internal 50 kΩ in parallel with the board's
// 10 kΩ does no harm) and returns a polled, debounced button on it.
func NewButton(bcm int, cfg button.Config) (*button.Button, error) {
	p, err := gpio(bcm)
	if err != nil {
		return nil, err
	}
	return newButton(p, cfg)
}

func newButton(p pin, cfg button.Config) (*button.Button, error) {
	p.Input()
	if cfg.ActiveHigh {
		p.PullDown()
	} else {
		p.PullUp()
	}
	return button.New(levelOnly{p}, cfg)
}

// levelOnly exposes only Read, so that package button polls the pin: register reads are the
// only input this backend has, even if the pin value could do more (a test fake can).
type levelOnly struct{ p pin }

func (l levelOnly) Read() (bool, error) { return l.p.Read() }
