package rpio

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/hardwaretest"
	"github.com/pirack/pirack/topics"
)

func TestLED(t *testing.T) {
	pin := new(hardwaretest.Pin)
	pin.Write(true) // the latch holds a 1 from a previous run
	led, err := newLED(pin)
	if err != nil {
		t.Fatal(err)
	}
	if pin.Mode() != "output" || pin.Level() {
		t.Fatalf("after newLED: mode %q, level %v; want an output driven low", pin.Mode(), pin.Level())
	}
	led.Set(true)
	led.Set(false)
	led.Set(true)
	led.Close()
	if got, want := pin.Writes(), []bool{true, false, true, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}

	broken := errors.New("gone")
	pin.Fail(broken)
	if err := led.Set(true); !errors.Is(err, broken) {
		t.Errorf("Set on a failing pin = %v", err)
	}
	if _, err := newLED(pin); !errors.Is(err, broken) {
		t.Errorf("newLED on a failing pin = %v", err)
	}
}

// The button is configured as an input with a pull-up and polled, never watched, even when the
// pin could deliver edges.
func TestButton(t *testing.T) {
	for _, tc := range []struct {
		name       string
		activeHigh bool
		pull       string
		press      bool // level while pressed
	}{
		{"active low, pull-up (the original circuit)", false, "up", false},
		{"active high, pull-down", true, "down", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pin := new(hardwaretest.Pin)
				b, err := newButton(pin, button.Config{ActiveHigh: tc.activeHigh})
				if err != nil {
					t.Fatal(err)
				}
				if pin.Mode() != "input" || pin.Pull() != tc.pull {
					t.Fatalf("mode %q pull %q, want input pull %s", pin.Mode(), pin.Pull(), tc.pull)
				}
				ctx, cancel := context.WithCancel(t.Context())
				var got []string
				done := make(chan error)
				go func() { done <- b.Run(ctx, func(k string) { got = append(got, k) }) }()
				synctest.Wait()
				pin.Drive(tc.press)
				time.Sleep(100 * time.Millisecond)
				pin.Drive(!tc.press)
				time.Sleep(time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, []string{topics.PressShort}) {
					t.Errorf("presses %v, want one short", got)
				}
				if pin.Watchers() != 0 || pin.Reads() < 200 {
					t.Errorf("watchers %d, reads %d: want a polled pin", pin.Watchers(), pin.Reads())
				}
			})
		})
	}
}

func TestPinRange(t *testing.T) {
	for _, bcm := range []int{-1, MaxBCM + 1} {
		if _, err := NewLED(bcm); err == nil {
			t.Errorf("NewLED(%d) succeeded", bcm)
		}
		if _, err := NewButton(bcm, button.Config{}); err == nil {
			t.Errorf("NewButton(%d) succeeded", bcm)
		}
	}
}
