// Package cdev drives the button and LED through the Linux GPIO character device
// (/dev/gpiochipN) with go-gpiocdev. It is the only way to a Raspberry Pi 5's GPIO (behind the
// RP1 chip) and works on every Pi and any Linux board with a kernel from 5.10 on: the kernel
// arbitrates which process owns a line, and the button gets edge events from interrupts
// instead of being polled.
//
// This is the only package that imports go-gpiocdev. Line offsets on the Pi's header chip are
// BCM GPIO numbers on every model, the Pi 5 included.
package cdev

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warthog618/go-gpiocdev"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/hardware/button"
)

var (
	_ hardware.LED    = (*LED)(nil)
	_ hardware.Button = (*Button)(nil)
)

// Consumer is the name the agent's lines carry in the kernel (gpioinfo shows it).
const Consumer = "pirack-agent"

// HeaderChipLabels are the labels of the GPIO chips wired to a Raspberry Pi's header: RP1 on the
// Pi 5, the SoC's own controller on the others.
var HeaderChipLabels = []string{"pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"}

// ChipInfo describes a GPIO chip.
type ChipInfo struct {
	Name  string // gpiochip0
	Label string // pinctrl-bcm2711
	Lines int
}

// PickHeaderChip returns the chip carrying the Raspberry Pi header among chips: the first whose
// label is one of HeaderChipLabels (the Pi 5's is gpiochip4 on kernels before 6.6.45 and
// gpiochip0 after, so names cannot be trusted).
func PickHeaderChip(chips []ChipInfo) (ChipInfo, error) {
	for _, want := range HeaderChipLabels {
		for _, c := range chips {
			if c.Label == want {
				return c, nil
			}
		}
	}
	var seen []string
	for _, c := range chips {
		seen = append(seen, fmt.Sprintf("%s (%s)", c.Name, c.Label))
	}
	if len(seen) == 0 {
		return ChipInfo{}, fmt.Errorf("cdev: no GPIO chip in /dev; is this a board with GPIO, and a kernel from 5.10 on?")
	}
	return ChipInfo{}, fmt.Errorf("cdev: none of the GPIO chips is a Raspberry Pi header (%s); name the chip with --gpio-chip and give line offsets as pins", strings.Join(seen, ", "))
}

// Chips lists this machine's GPIO chips.
func Chips() []ChipInfo {
	var out []ChipInfo
	for _, name := range gpiocdev.Chips() {
		c, err := gpiocdev.NewChip(name)
		if err != nil {
			continue
		}
		out = append(out, ChipInfo{Name: c.Name, Label: c.Label, Lines: c.Lines()})
		c.Close()
	}
	return out
}

// Chip is a GPIO chip whose lines the agent requests.
type Chip struct{ info ChipInfo }

// Open opens the chip called name (gpiochip0, or a path such as /dev/gpiochip0); "" finds the
// Raspberry Pi's header chip by its label.
func Open(name string) (*Chip, error) {
	if name == "" {
		info, err := PickHeaderChip(Chips())
		if err != nil {
			return nil, err
		}
		return &Chip{info: info}, nil
	}
	c, err := gpiocdev.NewChip(name)
	if err != nil {
		return nil, fmt.Errorf("cdev: open GPIO chip %s: %w", name, err)
	}
	defer c.Close()
	return &Chip{info: ChipInfo{Name: c.Name, Label: c.Label, Lines: c.Lines()}}, nil
}

// Info describes the chip.
func (c *Chip) Info() ChipInfo { return c.info }

func (c *Chip) check(offset int) error {
	if offset < 0 || offset >= c.info.Lines {
		return fmt.Errorf("cdev: line %d: %s (%s) has lines 0-%d", offset, c.info.Name, c.info.Label, c.info.Lines-1)
	}
	return nil
}

// pin is what this backend needs of a requested line. The go-gpiocdev lines implement it;
// tests use *hardwaretest.Pin.
type pin interface {
	Read() (high bool, err error)
	Write(high bool) error
	Close() error
}

// inputPin is a pin that also delivers edges.
type inputPin interface {
	pin
	Watch(fn func(high bool, at time.Time)) (stop func(), err error)
}

// LED is an LED on a GPIO output line, active high.
type LED struct{ p pin }

// LED requests line offset as an output, initially low, and returns its LED.
func (c *Chip) LED(offset int) (*LED, error) {
	if err := c.check(offset); err != nil {
		return nil, err
	}
	l, err := gpiocdev.RequestLine(c.info.Name, offset, outputOptions()...)
	if err != nil {
		return nil, fmt.Errorf("cdev: request line %d of %s as the LED: %w%s", offset, c.info.Name, err, busyHint(err))
	}
	return &LED{p: outLine{l}}, nil
}

func outputOptions() []gpiocdev.LineReqOption {
	return []gpiocdev.LineReqOption{gpiocdev.WithConsumer(Consumer), gpiocdev.AsOutput(0)}
}

// Set switches the LED.
func (l *LED) Set(on bool) error { return l.p.Write(on) }

// Close switches the LED off and releases the line. It may be called more than once.
func (l *LED) Close() error {
	l.p.Write(false)
	return l.p.Close()
}

// Button is a debounced button on a GPIO input line with edge events.
type Button struct {
	*button.Button
	p pin
}

// Button requests line offset as an input with edge detection on both edges and the pull
// matching cfg.ActiveHigh (a pull-up for the original active-low circuit), and returns its
// debounced button. Debouncing is package button's, not the kernel's, so that every backend
// presses alike.
func (c *Chip) Button(offset int, cfg button.Config) (*Button, error) {
	if err := c.check(offset); err != nil {
		return nil, err
	}
	in := new(inLine)
	l, err := gpiocdev.RequestLine(c.info.Name, offset, inputOptions(cfg.ActiveHigh, in.event)...)
	if err != nil {
		return nil, fmt.Errorf("cdev: request line %d of %s as the button: %w%s", offset, c.info.Name, err, busyHint(err))
	}
	in.l = l
	return newButton(in, cfg)
}

func newButton(p inputPin, cfg button.Config) (*Button, error) {
	b, err := button.New(p, cfg)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &Button{Button: b, p: p}, nil
}

// Close releases the line. Call it after Run has returned.
func (b *Button) Close() error { return b.p.Close() }

func inputOptions(activeHigh bool, h gpiocdev.EventHandler) []gpiocdev.LineReqOption {
	bias := gpiocdev.WithPullUp
	if activeHigh {
		bias = gpiocdev.WithPullDown
	}
	return []gpiocdev.LineReqOption{
		gpiocdev.WithConsumer(Consumer), gpiocdev.AsInput, bias, gpiocdev.WithBothEdges,
		gpiocdev.WithEventHandler(h),
	}
}

func busyHint(err error) string {
	if strings.Contains(err.Error(), "busy") {
		return " (another program or a kernel driver holds it: gpioinfo shows which)"
	}
	return ""
}

// outLine is a requested output line.
type outLine struct{ l *gpiocdev.Line }

func (o outLine) Read() (bool, error) { v, err := o.l.Value(); return v == 1, err }
func (o outLine) Write(high bool) error {
	v := 0
	if high {
		v = 1
	}
	return o.l.SetValue(v)
}
func (o outLine) Close() error { return o.l.Close() }

// inLine is a requested input line whose edge events go to the current watcher.
type inLine struct {
	l  *gpiocdev.Line
	mu sync.Mutex
	fn func(high bool, at time.Time)
}

func (i *inLine) Read() (bool, error) { v, err := i.l.Value(); return v == 1, err }
func (i *inLine) Write(bool) error    { return fmt.Errorf("cdev: the button line is an input") }
func (i *inLine) Close() error        { return i.l.Close() }

func (i *inLine) Watch(fn func(high bool, at time.Time)) (func(), error) {
	i.mu.Lock()
	i.fn = fn
	i.mu.Unlock()
	return func() {
		i.mu.Lock()
		i.fn = nil
		i.mu.Unlock()
	}, nil
}

// event runs on go-gpiocdev's event goroutine.
func (i *inLine) event(e gpiocdev.LineEvent) {
	i.mu.Lock()
	fn := i.fn
	i.mu.Unlock()
	if fn != nil {
		fn(levelAfter(e), time.Now())
	}
}

// levelAfter is the line's level after an edge event. The line is requested active high, so a
// rising edge leaves it high.
//
// The event's own timestamp is on the kernel's monotonic clock, which Go does not expose as a
// time.Time; the time of receipt is used instead, late by the event goroutine's wake-up (well
// under a millisecond, against 30 ms of debounce).
func levelAfter(e gpiocdev.LineEvent) bool { return e.Type == gpiocdev.LineEventRisingEdge }
