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
		box := newMailbox()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { runLED(ctx, led, box.ch, slog.New(slog.DiscardHandler)); close(done) }()

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
		box := newMailbox()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go runLED(ctx, led, box.ch, slog.New(slog.DiscardHandler))
		box.put(blink(2, 100))
		time.Sleep(time.Second)
		if n := len(led.Sets()); n != 5 { // initial off, then on off on off
			t.Errorf("%d calls of Set, want 5 despite the errors", n)
		}
	})
}

func TestMailboxKeepsNewest(t *testing.T) {
	m := newMailbox()
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
