// Package hardwaretest provides fakes of the hardware interfaces for tests, in the way
// net/http/httptest serves net/http. They record what was done to them and can be told to fail.
// Nothing here belongs in a production build; the runtime simulator is package sim.
package hardwaretest

import (
	"context"
	"sync"
	"time"

	"github.com/pirack/pirack/hardware"
)

var (
	_ hardware.LED    = (*LED)(nil)
	_ hardware.Button = (*Button)(nil)
)

// Set is one recorded call of LED.Set.
type Set struct {
	On bool
	At time.Time // time.Now() at the call; inside a testing/synctest bubble, the fake clock
}

// LED records every call of Set. The zero value is ready to use.
type LED struct {
	mu   sync.Mutex
	sets []Set
	err  error
}

// Set records the call and returns the error given to Fail, if any.
func (l *LED) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets = append(l.sets, Set{On: on, At: time.Now()})
	return l.err
}

// Fail makes every later Set return err (nil restores success). Calls are still recorded.
func (l *LED) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

// Sets returns a copy of the calls recorded so far.
func (l *LED) Sets() []Set {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Set(nil), l.sets...)
}

// Button is a button whose Run fails with Err at once, or, when Err is nil, delivers the kinds in
// Presses in order and then waits for its context. It is for testing how a consumer copes with a
// fixed script or a broken button; package sim injects presses at any time.
type Button struct {
	Presses []string
	Err     error
}

// Run implements hardware.Button.
func (b *Button) Run(ctx context.Context, press func(kind string)) error {
	if b.Err != nil {
		return b.Err
	}
	for _, k := range b.Presses {
		if ctx.Err() != nil {
			return nil
		}
		press(k)
	}
	<-ctx.Done()
	return nil
}

// Pin is a fake GPIO line for testing backends and package button, in the way periph's
// gpiotest.Pin is: the code under test configures it, reads it and writes it; the test drives
// it from the outside as a button or a glitch would. Its level follows, in order: the last value
// written (as an output) or driven (by the test), else its pull (high with PullUp, low
// otherwise). Drive notifies watchers on every change of level, synchronously, stamped with
// time.Now() (the fake clock inside a testing/synctest bubble). The zero value is a floating
// input. Pin is safe for concurrent use.
type Pin struct {
	mu       sync.Mutex
	mode     string // "", "input" or "output"
	pull     string // "", "up" or "down"
	level    bool
	set      bool // level was written or driven, so the pull no longer decides it
	writes   []bool
	reads    int
	err      error
	closed   bool
	watchers map[int]func(high bool, at time.Time)
	nextID   int
}

// Input configures the pin as an input.
func (p *Pin) Input() { p.mu.Lock(); p.mode = "input"; p.mu.Unlock() }

// Output configures the pin as an output.
func (p *Pin) Output() { p.mu.Lock(); p.mode = "output"; p.mu.Unlock() }

// PullUp enables the pin's pull-up; an undriven pin then reads high.
func (p *Pin) PullUp() { p.setPull("up") }

// PullDown enables the pin's pull-down; an undriven pin then reads low.
func (p *Pin) PullDown() { p.setPull("down") }

func (p *Pin) setPull(pull string) {
	p.mu.Lock()
	p.pull = pull
	if p.set {
		p.mu.Unlock()
		return
	}
	p.change(pull == "up") // unlocks
}

// Mode returns "input", "output", or "" if the pin was never configured.
func (p *Pin) Mode() string { p.mu.Lock(); defer p.mu.Unlock(); return p.mode }

// Pull returns "up", "down" or "".
func (p *Pin) Pull() string { p.mu.Lock(); defer p.mu.Unlock(); return p.pull }

// Read returns the pin's level, or the error given to Fail.
func (p *Pin) Read() (high bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	return p.level, p.err
}

// Reads counts calls of Read.
func (p *Pin) Reads() int { p.mu.Lock(); defer p.mu.Unlock(); return p.reads }

// Write records the value and sets the level, or returns the error given to Fail.
func (p *Pin) Write(high bool) error {
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	p.writes = append(p.writes, high)
	p.set = true
	p.change(high) // unlocks
	return nil
}

// Writes returns a copy of the values written so far.
func (p *Pin) Writes() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.writes...)
}

// Drive sets the level from outside, as a button pulling the line low would, and notifies
// watchers if the level changed.
func (p *Pin) Drive(high bool) {
	p.mu.Lock()
	p.set = true
	p.change(high) // unlocks
}

// Level returns the current level without counting as a Read.
func (p *Pin) Level() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.level }

// change sets the level with p.mu held, then unlocks and notifies the watchers of a change.
func (p *Pin) change(high bool) {
	changed := p.level != high
	p.level = high
	var fns []func(bool, time.Time)
	if changed {
		for _, fn := range p.watchers {
			fns = append(fns, fn)
		}
	}
	p.mu.Unlock()
	now := time.Now()
	for _, fn := range fns {
		fn(high, now)
	}
}

// Watch calls fn on every change of level until stop is called. It returns the error given to
// Fail, if any.
func (p *Pin) Watch(fn func(high bool, at time.Time)) (stop func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	if p.watchers == nil {
		p.watchers = make(map[int]func(bool, time.Time))
	}
	id := p.nextID
	p.nextID++
	p.watchers[id] = fn
	return func() {
		p.mu.Lock()
		delete(p.watchers, id)
		p.mu.Unlock()
	}, nil
}

// Watchers counts the watches not yet stopped.
func (p *Pin) Watchers() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.watchers) }

// Fail makes later Read, Write and Watch calls return err (nil restores success).
func (p *Pin) Fail(err error) { p.mu.Lock(); p.err = err; p.mu.Unlock() }

// Close marks the pin closed; it may be called more than once.
func (p *Pin) Close() error { p.mu.Lock(); p.closed = true; p.mu.Unlock(); return nil }

// Closed reports whether Close was called.
func (p *Pin) Closed() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.closed }
