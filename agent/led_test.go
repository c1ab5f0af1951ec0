package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/hardware/hardwaretest"
	"github.com/pirack/pirack/topics"
)

// step is an expected LED change at an offset from the start of the test.
type step struct {
	at time.Duration
	on bool
}

// ledScript runs the LED driver in a synctest bubble, sends commands at the given offsets and
// returns the LED's changes after end, as offsets from the start.
func ledScript(t *testing.T, end time.Duration, cmds map[time.Duration]topics.LEDCommand) []step {
	t.Helper()
	var got []step
	synctest.Test(t, func(t *testing.T) {
		led := new(hardwaretest.LED)
		box := newMailbox[topics.LEDCommand]()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { newLEDDriver(led, box.ch, nil, time.Now, slog.New(slog.DiscardHandler)).run(ctx); close(done) }()

		start := time.Now()
		var offsets []time.Duration
		for at := range cmds {
			offsets = append(offsets, at)
		}
		slices.Sort(offsets)
		for _, at := range offsets {
			time.Sleep(at - time.Since(start))
			box.put(cmds[at])
		}
		time.Sleep(end - time.Since(start))
		synctest.Wait()
		for _, s := range led.Sets() {
			got = append(got, step{s.At.Sub(start), s.On})
		}
		cancel()
		<-done
		if last := led.Sets(); last[len(last)-1].On {
			t.Error("LED left on after the driver stopped")
		}
	})
	return got
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func blink(count, periodMS int) topics.LEDCommand {
	return topics.LEDCommand{V: 1, Action: topics.LEDBlink, Count: count, PeriodMS: periodMS}
}

func TestLEDDriver(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  time.Duration
		cmds map[time.Duration]topics.LEDCommand
		want []step
	}{{
		name: "blink count and period",
		end:  ms(2000),
		cmds: map[time.Duration]topics.LEDCommand{0: blink(3, 200)},
		want: []step{{0, false}, {0, true}, {ms(100), false}, {ms(200), true}, {ms(300), false}, {ms(400), true}, {ms(500), false}},
	}, {
		name: "defaults fill a bare blink",
		end:  ms(5000),
		cmds: map[time.Duration]topics.LEDCommand{0: {V: 1, Action: topics.LEDBlink, Count: 1}},
		want: []step{{0, false}, {0, true}, {ms(250), false}},
	}, {
		name: "newer blink replaces a running one",
		end:  ms(10000),
		cmds: map[time.Duration]topics.LEDCommand{0: blink(10, 1000), ms(1200): blink(1, 100)},
		// the first blink's second flash is cut at 1200 and nothing of it follows
		want: []step{{0, false}, {0, true}, {ms(500), false}, {ms(1000), true}, {ms(1250), false}},
	}, {
		name: "off stops identify",
		end:  ms(60000),
		cmds: map[time.Duration]topics.LEDCommand{
			0:        {V: 1, Action: topics.LEDIdentify, TimeoutS: 30, PeriodMS: 1000},
			ms(1700): {V: 1, Action: topics.LEDOff},
		},
		want: []step{{0, false}, {0, true}, {ms(500), false}, {ms(1000), true}, {ms(1500), false}},
	}, {
		name: "identify flashes for its timeout",
		end:  ms(10000),
		cmds: map[time.Duration]topics.LEDCommand{0: {V: 1, Action: topics.LEDIdentify, TimeoutS: 2, PeriodMS: 1000}},
		want: []step{{0, false}, {0, true}, {ms(500), false}, {ms(1000), true}, {ms(1500), false}},
	}, {
		name: "blink returns to steady on",
		end:  ms(5000),
		cmds: map[time.Duration]topics.LEDCommand{0: {V: 1, Action: topics.LEDOn}, ms(1000): blink(2, 100)},
		want: []step{{0, false}, {0, true}, {ms(1050), false}, {ms(1100), true}, {ms(1150), false}, {ms(1200), true}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := ledScript(t, tc.end, tc.cmds)
			if len(got) != len(tc.want) {
				t.Fatalf("LED changes\n got %v\nwant %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("LED change %d = %v, want %v\n got %v\nwant %v", i, got[i], tc.want[i], got, tc.want)
				}
			}
		})
	}
}

func TestLEDDriverKeepsGoingWhenTheLEDFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led := new(hardwaretest.LED)
		led.Fail(errors.New("gpio: permission denied"))
		box := newMailbox[topics.LEDCommand]()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go newLEDDriver(led, box.ch, nil, time.Now, slog.New(slog.DiscardHandler)).run(ctx)
		box.put(blink(2, 100))
		time.Sleep(time.Second)
		if n := len(led.Sets()); n != 5 { // initial off, then on off on off
			t.Errorf("%d calls of Set, want 5 despite the errors", n)
		}
	})
}

func TestMailboxKeepsNewest(t *testing.T) {
	m := newMailbox[topics.LEDCommand]()
	m.put(blink(1, 100))
	m.put(blink(2, 100))
	m.put(blink(3, 100))
	if c := <-m.ch; c.Count != 3 {
		t.Errorf("mailbox held count %d, want the newest (3)", c.Count)
	}
	select {
	case c := <-m.ch:
		t.Errorf("mailbox held a second command %+v", c)
	default:
	}
}

func TestFlashes(t *testing.T) {
	for _, tc := range []struct {
		cmd  topics.LEDCommand
		want int
	}{
		{blink(7, 100), 7},
		{topics.LEDCommand{V: 1, Action: topics.LEDIdentify}, 30}, // 15 s at 500 ms
		{topics.LEDCommand{V: 1, Action: topics.LEDIdentify, TimeoutS: 1, PeriodMS: 5000}, 1},
	} {
		if got := flashes(tc.cmd); got != tc.want {
			t.Errorf("flashes(%+v) = %d, want %d", tc.cmd, got, tc.want)
		}
	}
}

// reportScript runs the LED driver in a synctest bubble with the given actions at their offsets
// (a command, or a found acknowledgement) and returns the driver's state reports, with TS and
// Until as offsets from the start, and the found replies in order.
type ledEvent struct {
	cmd   topics.LEDCommand
	found bool // acknowledge instead of sending cmd
}

type gotState struct {
	at     time.Duration
	state  string
	action string
	by     string
	until  time.Duration // 0 when not blinking
}

func reportScript(t *testing.T, end time.Duration, events map[time.Duration]ledEvent) (states []gotState, founds []bool) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		var reports []topics.LEDState // appended on the driver's goroutine, read after Wait
		box := newMailbox[topics.LEDCommand]()
		d := newLEDDriver(new(hardwaretest.LED), box.ch, func(s topics.LEDState) { reports = append(reports, s) }, time.Now, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { d.run(ctx); close(done) }()

		start := time.Now()
		offsets := slices.Sorted(func(yield func(time.Duration) bool) {
			for at := range events {
				if !yield(at) {
					return
				}
			}
		})
		for _, at := range offsets {
			time.Sleep(at - time.Since(start))
			if e := events[at]; e.found {
				founds = append(founds, d.found(t.Context()))
			} else {
				box.put(e.cmd)
			}
			synctest.Wait()
		}
		time.Sleep(end - time.Since(start))
		synctest.Wait()
		cancel()
		<-done
		for _, s := range reports {
			if _, err := topics.Encode(s); err != nil {
				t.Errorf("report %+v does not validate: %v", s, err)
			}
			g := gotState{at: s.TS.Sub(start), state: s.State, action: s.Action, by: s.By}
			if !s.Until.IsZero() {
				g.until = s.Until.Sub(start)
			}
			states = append(states, g)
		}
	})
	return states, founds
}

func TestLEDDriverReports(t *testing.T) {
	cmd := func(c topics.LEDCommand) ledEvent { return ledEvent{cmd: c} }
	found := ledEvent{found: true}
	identify := topics.LEDCommand{V: 1, Action: topics.LEDIdentify, TimeoutS: 30, By: "ana"}
	for _, tc := range []struct {
		name       string
		end        time.Duration
		events     map[time.Duration]ledEvent
		want       []gotState
		wantFounds []bool
	}{{
		name:   "blink then back to off",
		end:    ms(2000),
		events: map[time.Duration]ledEvent{ms(100): cmd(topics.LEDCommand{V: 1, Action: topics.LEDBlink, Count: 3, PeriodMS: 200, By: "ana"})},
		want: []gotState{
			{0, topics.LEDStateOff, "", "", 0},
			{ms(100), topics.LEDStateBlinking, topics.LEDBlink, "ana", ms(700)},
			{ms(700), topics.LEDStateOff, "", "", 0},
		},
	}, {
		name: "identify returns to steady on",
		end:  ms(60000),
		events: map[time.Duration]ledEvent{
			0:        cmd(topics.LEDCommand{V: 1, Action: topics.LEDOn, By: "bo"}),
			ms(1000): cmd(identify),
		},
		want: []gotState{
			{0, topics.LEDStateOff, "", "", 0},
			{0, topics.LEDStateOn, topics.LEDOn, "bo", 0},
			{ms(1000), topics.LEDStateBlinking, topics.LEDIdentify, "ana", ms(31000)},
			{ms(31000), topics.LEDStateOn, topics.LEDOn, "bo", 0},
		},
	}, {
		name: "repeated steady command is not reported again",
		end:  ms(1000),
		events: map[time.Duration]ledEvent{
			0:       cmd(topics.LEDCommand{V: 1, Action: topics.LEDOff}),
			ms(500): cmd(topics.LEDCommand{V: 1, Action: topics.LEDOff}),
		},
		want: []gotState{
			{0, topics.LEDStateOff, "", "", 0},
			{0, topics.LEDStateOff, topics.LEDOff, "", 0},
		},
	}, {
		name: "found stops identify",
		end:  ms(60000),
		events: map[time.Duration]ledEvent{
			0:        found, // nothing running: not a found
			ms(1000): cmd(identify),
			ms(4000): found,
			ms(5000): found, // already stopped
		},
		want: []gotState{
			{0, topics.LEDStateOff, "", "", 0},
			{ms(1000), topics.LEDStateBlinking, topics.LEDIdentify, "ana", ms(31000)},
			{ms(4000), topics.LEDStateOff, "", "", 0},
		},
		wantFounds: []bool{false, true, false},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, founds := reportScript(t, tc.end, tc.events)
			if !slices.Equal(got, tc.want) {
				t.Errorf("reports\n got %v\nwant %v", got, tc.want)
			}
			if !slices.Equal(founds, tc.wantFounds) {
				t.Errorf("found replies = %v, want %v", founds, tc.wantFounds)
			}
		})
	}
}

func TestLEDDriverFoundTurnsTheLEDOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led := new(hardwaretest.LED)
		box := newMailbox[topics.LEDCommand]()
		d := newLEDDriver(led, box.ch, nil, time.Now, slog.New(slog.DiscardHandler))
		go d.run(t.Context())
		box.put(topics.LEDCommand{V: 1, Action: topics.LEDIdentify})
		synctest.Wait()
		if !d.found(t.Context()) {
			t.Fatal("found during identify = false")
		}
		synctest.Wait()
		sets := led.Sets()
		if n := len(sets); n != 3 || sets[n-1].On { // off, on, off
			t.Errorf("LED sets %v, want it back off at once", sets)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(led.Sets()); n != 3 {
			t.Errorf("LED changed %d more times after found", n-3)
		}
	})
}
