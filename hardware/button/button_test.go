package button_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/hardwaretest"
	"github.com/pirack/pirack/topics"
)

const ms = time.Millisecond

// step waits on the fake clock, then drives the line.
type step struct {
	after time.Duration
	high  bool
}

// Shorthands for an active-low button: down pulls the line low, up lets the pull-up win.
func down(after time.Duration) step { return step{after, false} }
func up(after time.Duration) step   { return step{after, true} }

// report is a press and when it was reported, counted from the first step.
type report struct {
	kind string
	at   time.Duration
}

func (r report) String() string { return fmt.Sprintf("%s@%v", r.kind, r.at) }

var pressTable = []struct {
	name    string
	cfg     button.Config
	initial *bool         // level driven before Run starts; nil leaves the pull-up
	steps   []step        // relative waits
	cancel  time.Duration // when to stop Run, from the first step; 0 means 3s after the last step
	want    []report
}{
	{
		name:  "clean short press: reported when the double window has passed",
		steps: []step{down(0), up(100 * ms)},
		want:  []report{{topics.PressShort, 500 * ms}},
	},
	{
		name: "bounce on press and on release is one short press",
		steps: []step{
			down(0), up(1 * ms), down(1 * ms), up(2 * ms), down(1 * ms), // contact settles at 5ms
			up(150 * ms), down(1 * ms), up(2 * ms), down(1 * ms), up(1 * ms), // settles at 160ms
		},
		want: []report{{topics.PressShort, 560 * ms}},
	},
	{
		name:  "glitch shorter than the debounce time is ignored",
		steps: []step{down(0), up(10 * ms)},
		want:  nil,
	},
	{
		name:  "two glitches in a row are still no press",
		steps: []step{down(0), up(12 * ms), down(12 * ms), up(12 * ms)},
		want:  nil,
	},
	{
		name:  "long press is reported at the threshold, while still held",
		steps: []step{down(0), up(2500 * ms)},
		want:  []report{{topics.PressLong, 2000 * ms}},
	},
	{
		name:  "release bouncing across the long threshold is measured from the contact's first edge",
		steps: []step{down(0), up(1990 * ms), down(1 * ms), up(1 * ms)},
		want:  []report{{topics.PressShort, 2392 * ms}},
	},
	{
		name:  "double press",
		steps: []step{down(0), up(80 * ms), down(200 * ms), up(80 * ms)},
		want:  []report{{topics.PressDouble, 390 * ms}},
	},
	{
		name:  "triple press is a double then a short",
		steps: []step{down(0), up(80 * ms), down(200 * ms), up(80 * ms), down(120 * ms), up(80 * ms)},
		want:  []report{{topics.PressDouble, 390 * ms}, {topics.PressShort, 960 * ms}},
	},
	{
		name:  "two shorts further apart than the window are two shorts",
		steps: []step{down(0), up(100 * ms), down(500 * ms), up(100 * ms)},
		want:  []report{{topics.PressShort, 500 * ms}, {topics.PressShort, 1100 * ms}},
	},
	{
		name:  "short then a long second press is a short and a long",
		steps: []step{down(0), up(100 * ms), down(200 * ms), up(2500 * ms)},
		want:  []report{{topics.PressShort, 2300 * ms}, {topics.PressLong, 2300 * ms}},
	},
	{
		name:   "press held across shutdown is not reported",
		steps:  []step{down(0)},
		cancel: 1500 * ms,
		want:   nil,
	},
	{
		name:   "short press waiting for its double window is reported at shutdown",
		steps:  []step{down(0), up(100 * ms)},
		cancel: 200 * ms,
		want:   []report{{topics.PressShort, 200 * ms}},
	},
	{
		name:    "button held at start is ignored until released",
		initial: new(false),
		steps:   []step{up(3000 * ms), down(500 * ms), up(100 * ms)},
		want:    []report{{topics.PressShort, 4000 * ms}},
	},
	{
		name:  "double presses off: a short press is reported on release, without waiting",
		cfg:   button.Config{DoublePress: -1},
		steps: []step{down(0), up(100 * ms), down(80 * ms), up(80 * ms)},
		want:  []report{{topics.PressShort, 130 * ms}, {topics.PressShort, 290 * ms}},
	},
	{
		name:    "active-high wiring",
		cfg:     button.Config{ActiveHigh: true},
		initial: new(false),
		steps:   []step{up(0), down(100 * ms)},
		want:    []report{{topics.PressShort, 500 * ms}},
	},
	{
		name:  "longer debounce swallows a 40 ms glitch",
		cfg:   button.Config{Debounce: 50 * ms},
		steps: []step{down(0), up(40 * ms), down(1000 * ms), up(100 * ms)},
		want:  []report{{topics.PressShort, 1540 * ms}},
	},
	{
		name:  "shorter long press",
		cfg:   button.Config{LongPress: 1 * time.Second},
		steps: []step{down(0), up(1200 * ms)},
		want:  []report{{topics.PressLong, 1000 * ms}},
	},
	{
		name:  "wider double window",
		cfg:   button.Config{DoublePress: 800 * ms},
		steps: []step{down(0), up(100 * ms), down(600 * ms), up(100 * ms)},
		want:  []report{{topics.PressDouble, 830 * ms}},
	},
}

// polled hides the fake pin's Watch method, so that Run polls it as it would a go-rpio pin.
type polled struct{ button.Line }

func TestPresses(t *testing.T) {
	for _, mode := range []string{"evented", "polled"} {
		for _, tc := range pressTable {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					pin := new(hardwaretest.Pin)
					pin.Input()
					if tc.cfg.ActiveHigh {
						pin.PullDown()
					} else {
						pin.PullUp()
					}
					if tc.initial != nil {
						pin.Drive(*tc.initial)
					}
					var line button.Line = pin
					if mode == "polled" {
						line = polled{pin}
					}
					b, err := button.New(line, tc.cfg)
					if err != nil {
						t.Fatal(err)
					}

					ctx, cancel := context.WithCancel(t.Context())
					start := time.Now()
					var got []report
					done := make(chan error)
					go func() {
						done <- b.Run(ctx, func(kind string) { got = append(got, report{kind, time.Since(start)}) })
					}()
					synctest.Wait() // Run has read the line and is waiting

					var elapsed time.Duration
					for _, s := range tc.steps {
						time.Sleep(s.after)
						elapsed += s.after
						pin.Drive(s.high)
					}
					end := tc.cancel
					if end == 0 {
						end = elapsed + 3*time.Second
					}
					time.Sleep(end - elapsed)
					cancel()
					if err := <-done; err != nil {
						t.Fatalf("Run: %v", err)
					}

					// Polling sees an edge up to one PollInterval late, or, when the edge and
					// the poll fall on the same instant, maybe early.
					slack := time.Duration(0)
					if mode == "polled" {
						slack = button.PollInterval
					}
					if !matches(got, tc.want, slack) {
						t.Errorf("presses %v, want %v (within %v)", got, tc.want, slack)
					}
				})
			})
		}
	}
}

func matches(got, want []report, slack time.Duration) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].kind != want[i].kind || got[i].at < want[i].at-slack || got[i].at > want[i].at+slack {
			return false
		}
	}
	return true
}

// Run stops watching the line when it returns, in both modes, and polls only without a Watcher.
func TestRunReleasesTheLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := new(hardwaretest.Pin)
		pin.PullUp()
		b, _ := button.New(pin, button.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx, func(string) {}) }()
		synctest.Wait()
		if pin.Watchers() != 1 {
			t.Errorf("watchers while running = %d, want 1", pin.Watchers())
		}
		time.Sleep(time.Second)
		if pin.Reads() != 1 {
			t.Errorf("an evented line was read %d times, want once at start", pin.Reads())
		}
		cancel()
		<-done
		if pin.Watchers() != 0 {
			t.Errorf("watchers after Run = %d, want 0", pin.Watchers())
		}

		// Polled: about one read per PollInterval, and none once Run has returned.
		ctx, cancel = context.WithCancel(t.Context())
		b2, _ := button.New(polled{pin}, button.Config{})
		before := pin.Reads()
		go func() { done <- b2.Run(ctx, func(string) {}) }()
		time.Sleep(100 * ms)
		synctest.Wait()
		want := int(100 * ms / button.PollInterval)
		if n := pin.Reads() - before; n < want || n > want+2 {
			t.Errorf("polled %d times in 100ms, want about %d", n, want)
		}
		cancel()
		<-done
		after := pin.Reads()
		time.Sleep(time.Second)
		if pin.Reads() != after {
			t.Errorf("line still polled after Run returned")
		}
	})
}

func TestRunErrors(t *testing.T) {
	broken := errors.New("line gone")
	t.Run("watch fails", func(t *testing.T) {
		pin := new(hardwaretest.Pin)
		pin.Fail(broken)
		b, _ := button.New(pin, button.Config{})
		if err := b.Run(t.Context(), func(string) {}); !errors.Is(err, broken) {
			t.Errorf("Run = %v, want %v", err, broken)
		}
	})
	t.Run("poll fails later", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pin := new(hardwaretest.Pin)
			b, _ := button.New(polled{pin}, button.Config{})
			done := make(chan error)
			go func() { done <- b.Run(t.Context(), func(string) {}) }()
			time.Sleep(time.Second)
			pin.Fail(broken)
			if err := <-done; !errors.Is(err, broken) || !strings.Contains(err.Error(), "read button line") {
				t.Errorf("Run = %v, want a read error wrapping %v", err, broken)
			}
		})
	})
}

// A storm of edges while Run is busy in a press callback neither blocks the pin's event reader
// nor distorts the presses that follow it: bounce collapses into one queued edge, so a later
// press keeps its own timing instead of being measured from somewhere inside the storm.
func TestEdgeStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := new(hardwaretest.Pin)
		pin.PullUp()
		b, _ := button.New(pin, button.Config{DoublePress: -1})
		var got []string
		release := make(chan struct{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			done <- b.Run(ctx, func(kind string) {
				got = append(got, kind)
				if len(got) == 1 {
					<-release // a slow consumer: Run reads no edges meanwhile
				}
			})
		}()
		synctest.Wait()
		pin.Drive(false)
		time.Sleep(100 * ms)
		pin.Drive(true)
		time.Sleep(100 * ms) // first short reported; Run is now stuck in the callback
		for range 1000 {     // a burst far beyond the queue's capacity, ending released
			pin.Drive(false)
			pin.Drive(true)
		}
		time.Sleep(3 * time.Second)
		pin.Drive(false) // a short press, 3 s after the burst
		time.Sleep(100 * ms)
		pin.Drive(true)
		close(release)
		time.Sleep(time.Second)
		cancel()
		<-done
		if !slices.Equal(got, []string{topics.PressShort, topics.PressShort}) {
			t.Errorf("presses %v, want two shorts", got)
		}
	})
}

func TestConfig(t *testing.T) {
	pin := new(hardwaretest.Pin)
	b, err := button.New(pin, button.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c := b.Config(); c.Debounce != button.DefaultDebounce || c.LongPress != button.DefaultLongPress || c.DoublePress != button.DefaultDoublePress || c.ActiveHigh {
		t.Errorf("defaults = %+v", c)
	}
	for name, tc := range map[string]struct {
		cfg  button.Config
		want string
	}{
		"negative debounce":          {button.Config{Debounce: -1}, "debounce"},
		"huge debounce":              {button.Config{Debounce: 2 * time.Second, LongPress: 5 * time.Second}, "debounce"},
		"long shorter than bounce":   {button.Config{Debounce: 100 * ms, LongPress: 50 * ms}, "long press"},
		"window shorter than bounce": {button.Config{Debounce: 100 * ms, DoublePress: 50 * ms}, "double-press window"},
		"window longer than long":    {button.Config{LongPress: 500 * ms, DoublePress: 600 * ms}, "shorter than the long press"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := button.New(pin, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %q", err, tc.want)
			}
		})
	}
}
