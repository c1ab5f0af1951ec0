package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/topics"
)

// mailbox holds the newest value not yet taken by its reader. Putting never blocks: a newer
// value replaces one still waiting, as a newer LED command replaces a running one and a newer
// LED state makes an older report pointless.
type mailbox[T any] struct{ ch chan T }

func newMailbox[T any]() *mailbox[T] { return &mailbox[T]{ch: make(chan T, 1)} }

func (m *mailbox[T]) put(v T) {
	for {
		select {
		case m.ch <- v:
			return
		default:
			select {
			case <-m.ch: // drop the older waiting value and try again
			default:
			}
		}
	}
}

// ledDriver drives the LED from commands and reports what it does. blink flashes Count times,
// one flash per PeriodMS (on for half of it); identify flashes the same way for TimeoutS; on
// and off set the steady state, which the LED returns to after a blink or an identify. A new
// command replaces the running one at once, and a found acknowledgement (a button press)
// stops a running blink or identify.
type ledDriver struct {
	// haltLit is set once the Pi is shutting down: the LED is left lit when the driver
	// stops, the Pi's "safe to pull" (docs/hardware.md).
	haltLit atomic.Bool

	led  hardware.LED
	cmds <-chan topics.LEDCommand
	acks chan chan bool // found requests; the reply says whether a blink was stopped
	// report receives each change of what the LED does. It must not block (the agent hands
	// the state to a mailbox); nil means no reports.
	report func(topics.LEDState)
	now    func() time.Time
	log    *slog.Logger
}

func newLEDDriver(led hardware.LED, cmds <-chan topics.LEDCommand, report func(topics.LEDState), now func() time.Time, log *slog.Logger) *ledDriver {
	if report == nil {
		report = func(topics.LEDState) {}
	}
	return &ledDriver{led: led, cmds: cmds, acks: make(chan chan bool), report: report, now: now, log: log}
}

// shutdownPattern is what the LED does while the Pi shuts down: a fast flicker, unlike any
// locate; the driver leaves it lit steadily once the agent stops.
func shutdownPattern(by string, now time.Time) topics.LEDCommand {
	return topics.LEDCommand{Action: topics.LEDIdentify, PeriodMS: 200, TimeoutS: 600, By: by + " (shutdown)", IssuedAt: now}
}

// found acknowledges a running blink or identify: the LED goes back to its steady state. It
// reports whether one was running. It waits for the driver, which never blocks for long, or
// for ctx.
func (d *ledDriver) found(ctx context.Context) bool {
	reply := make(chan bool, 1)
	select {
	case d.acks <- reply:
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-reply:
		return ok
	case <-ctx.Done():
		return false
	}
}

// run drives the LED until ctx is done, then switches it off. It reports the initial steady
// state (off) and every change after it.
func (d *ledDriver) run(ctx context.Context) {
	var (
		lit      bool // what the LED shows now
		known    bool // lit has been set at least once
		steady   topics.LEDCommand
		blinking bool
		halves   int // half periods still to run after the current one
		half     time.Duration
		last     topics.LEDState // the last report, TS left out
	)
	set := func(on bool) {
		if known && on == lit {
			return
		}
		if err := d.led.Set(on); err != nil {
			d.log.Warn("set LED", "on", on, "err", err)
		}
		lit, known = on, true
	}
	report := func(s topics.LEDState) {
		s.V = topics.Version
		if s == last {
			return // what the LED does has not changed
		}
		last = s
		s.TS = d.now().UTC()
		d.report(s)
	}
	reportSteady := func() {
		state := topics.LEDStateOff
		if steady.Action == topics.LEDOn {
			state = topics.LEDStateOn
		}
		report(topics.LEDState{State: state, Action: steady.Action, By: steady.By})
	}
	timer := time.NewTimer(0)
	stopTimer := func() {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
	endBlink := func() {
		stopTimer()
		halves, blinking = 0, false
		set(steady.Action == topics.LEDOn)
		reportSteady()
	}
	stopTimer()
	set(false) // a known state to start from
	reportSteady()
	defer func() {
		stopTimer()
		set(d.haltLit.Load()) // off: nobody is left to turn it off later; lit: halted
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case c := <-d.cmds:
			c = c.WithDefaults() // a zero period would spin
			switch c.Action {
			case topics.LEDOn, topics.LEDOff:
				steady = c
				endBlink()
			case topics.LEDBlink, topics.LEDIdentify:
				stopTimer()
				n := flashes(c)
				half = time.Duration(c.PeriodMS) * time.Millisecond / 2
				halves = 2*n - 1
				blinking = true
				set(true)
				timer.Reset(half)
				report(topics.LEDState{State: topics.LEDStateBlinking, Action: c.Action, By: c.By, Until: d.now().UTC().Add(c.Duration())})
			}
		case reply := <-d.acks:
			was := blinking
			if was {
				endBlink()
			}
			reply <- was // buffered: never blocks
		case <-timer.C:
			if halves == 0 {
				endBlink()
				continue
			}
			halves--
			set(!lit)
			timer.Reset(half)
		}
	}
}

// flashes is how many flashes a blink or identify command makes: Count for blink, as many as
// fit in TimeoutS for identify (at least one).
func flashes(c topics.LEDCommand) int {
	c = c.WithDefaults()
	if c.Action == topics.LEDBlink {
		return max(c.Count, 1)
	}
	return max(int(c.Duration()/(time.Duration(c.PeriodMS)*time.Millisecond)), 1)
}
