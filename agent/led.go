package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/topics"
)

// mailbox holds the newest LED command not yet taken by the driver. Putting never blocks: a
// newer command replaces one still waiting, as it would replace a running one.
type mailbox struct{ ch chan topics.LEDCommand }

func newMailbox() *mailbox { return &mailbox{ch: make(chan topics.LEDCommand, 1)} }

func (m *mailbox) put(c topics.LEDCommand) {
	for {
		select {
		case m.ch <- c:
			return
		default:
			select {
			case <-m.ch: // drop the older waiting command and try again
			default:
			}
		}
	}
}

// runLED drives the LED from commands until ctx is done, then switches it off. blink flashes
// Count times, one flash per PeriodMS (on for half of it); identify flashes the same way for
// TimeoutS; on and off set the steady state, which the LED returns to after a blink or an
// identify. A new command replaces the running one at once.
func runLED(ctx context.Context, led hardware.LED, cmds <-chan topics.LEDCommand, log *slog.Logger) {
	var (
		lit    bool // what the LED shows now
		known  bool // lit has been set at least once
		steady bool // the state set by the last on or off
		halves int  // half periods still to run after the current one
		half   time.Duration
	)
	set := func(on bool) {
		if known && on == lit {
			return
		}
		if err := led.Set(on); err != nil {
			log.Warn("set LED", "on", on, "err", err)
		}
		lit, known = on, true
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
	stopTimer()
	set(false) // a known state to start from
	defer func() {
		stopTimer()
		set(false) // nobody is left to turn it off later
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case c := <-cmds:
			c = c.WithDefaults() // a zero period would spin
			stopTimer()
			halves = 0
			switch c.Action {
			case topics.LEDOn, topics.LEDOff:
				steady = c.Action == topics.LEDOn
				set(steady)
			case topics.LEDBlink, topics.LEDIdentify:
				n := flashes(c)
				half = time.Duration(c.PeriodMS) * time.Millisecond / 2
				halves = 2*n - 1
				set(true)
				timer.Reset(half)
			}
		case <-timer.C:
			if halves == 0 {
				set(steady)
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
