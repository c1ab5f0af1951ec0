package cdev

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/warthog618/go-gpiocdev"

	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/hardwaretest"
	"github.com/pirack/pirack/topics"
)

func TestPickHeaderChip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chips  []ChipInfo
		want   string
		errHas string
	}{
		{name: "Pi 1-3", chips: []ChipInfo{{"gpiochip0", "pinctrl-bcm2835", 54}, {"gpiochip1", "raspberrypi-exp-gpio", 8}}, want: "gpiochip0"},
		{name: "Pi 4", chips: []ChipInfo{{"gpiochip0", "pinctrl-bcm2711", 58}, {"gpiochip1", "raspberrypi-exp-gpio", 8}}, want: "gpiochip0"},
		{name: "Pi 5, kernel before 6.6.45", chips: []ChipInfo{
			{"gpiochip0", "gpio-brcmstb@107d508500", 32}, {"gpiochip1", "gpio-brcmstb@107d508520", 4},
			{"gpiochip2", "gpio-brcmstb@107d517c00", 17}, {"gpiochip3", "gpio-brcmstb@107d517c20", 6},
			{"gpiochip4", "pinctrl-rp1", 54},
		}, want: "gpiochip4"},
		{name: "Pi 5, kernel 6.6.45 on", chips: []ChipInfo{
			{"gpiochip0", "pinctrl-rp1", 54}, {"gpiochip10", "gpio-brcmstb@107d508500", 32},
		}, want: "gpiochip0"},
		{name: "not a Pi", chips: []ChipInfo{{"gpiochip0", "1f000d0000.gpio", 32}}, errHas: "gpiochip0 (1f000d0000.gpio)"},
		{name: "no chips", errHas: "no GPIO chip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := PickHeaderChip(tc.chips)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("PickHeaderChip = %v, %v; want an error mentioning %q", c, err, tc.errHas)
				}
				return
			}
			if err != nil || c.Name != tc.want {
				t.Errorf("PickHeaderChip = %v, %v; want %s", c, err, tc.want)
			}
		})
	}
}

func TestLineRange(t *testing.T) {
	c := &Chip{info: ChipInfo{"gpiochip0", "pinctrl-bcm2711", 58}}
	for _, off := range []int{-1, 58} {
		if _, err := c.LED(off); err == nil || !strings.Contains(err.Error(), "lines 0-57") {
			t.Errorf("LED(%d) = %v", off, err)
		}
		if _, err := c.Button(off, button.Config{}); err == nil || !strings.Contains(err.Error(), "lines 0-57") {
			t.Errorf("Button(%d) = %v", off, err)
		}
	}
}

func TestLevelAfter(t *testing.T) {
	if !levelAfter(gpiocdev.LineEvent{Type: gpiocdev.LineEventRisingEdge}) {
		t.Error("rising edge should leave the line high")
	}
	if levelAfter(gpiocdev.LineEvent{Type: gpiocdev.LineEventFallingEdge}) {
		t.Error("falling edge should leave the line low")
	}
}

// The request asks for what the circuit needs: an input, the right pull, both edges, our
// consumer name and a handler. Options are opaque values, so they are compared by kind.
func TestInputOptions(t *testing.T) {
	for _, tc := range []struct {
		activeHigh bool
		bias       gpiocdev.LineBias
	}{{false, gpiocdev.WithPullUp}, {true, gpiocdev.WithPullDown}} {
		var gotBias, gotEdges, gotInput, gotConsumer, gotHandler bool
		for _, o := range inputOptions(tc.activeHigh, func(gpiocdev.LineEvent) {}) {
			switch v := o.(type) {
			case gpiocdev.LineBias:
				gotBias = v == tc.bias
			case gpiocdev.LineEdge:
				gotEdges = v == gpiocdev.WithBothEdges
			case gpiocdev.InputOption:
				gotInput = true
			case gpiocdev.ConsumerOption:
				gotConsumer = v == gpiocdev.WithConsumer(Consumer)
			case gpiocdev.EventHandler:
				gotHandler = v != nil
			case gpiocdev.LevelOption:
				t.Errorf("active-low request: polarity belongs to package button, not the kernel")
			}
		}
		if !gotBias || !gotEdges || !gotInput || !gotConsumer || !gotHandler {
			t.Errorf("activeHigh=%v: bias %v edges %v input %v consumer %v handler %v", tc.activeHigh, gotBias, gotEdges, gotInput, gotConsumer, gotHandler)
		}
	}
	var out, low bool
	for _, o := range outputOptions() {
		if v, ok := o.(gpiocdev.OutputOption); ok {
			out, low = true, slices.Equal([]int(v), []int{0})
		}
	}
	if !out || !low {
		t.Error("the LED line must be requested as an output, initially low")
	}
}

func TestLED(t *testing.T) {
	pin := new(hardwaretest.Pin)
	led := &LED{p: pin}
	led.Set(true)
	led.Set(false)
	led.Set(true)
	led.Close()
	led.Close()
	if got, want := pin.Writes(), []bool{true, false, true, false, false}; !slices.Equal(got, want) || !pin.Closed() {
		t.Errorf("writes %v (want %v), closed %v", got, want, pin.Closed())
	}
	broken := errors.New("gone")
	pin.Fail(broken)
	if err := led.Set(true); !errors.Is(err, broken) {
		t.Errorf("Set on a failing line = %v", err)
	}
}

// The button uses the line's edge events: it is read once, at start, and never polled.
func TestButton(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := new(hardwaretest.Pin)
		pin.PullUp()
		b, err := newButton(pin, button.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var got []string
		done := make(chan error)
		go func() { done <- b.Run(ctx, func(k string) { got = append(got, k) }) }()
		synctest.Wait()
		for range 2 { // a double press, with a bounce on the first push
			pin.Drive(false)
			pin.Drive(true)
			pin.Drive(false)
			time.Sleep(80 * time.Millisecond)
			pin.Drive(true)
			time.Sleep(150 * time.Millisecond)
		}
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		b.Close()
		if !slices.Equal(got, []string{topics.PressDouble}) {
			t.Errorf("presses %v, want one double", got)
		}
		if pin.Reads() != 1 || !pin.Closed() {
			t.Errorf("reads %d (want 1), closed %v", pin.Reads(), pin.Closed())
		}
	})
}

func TestButtonBadConfigReleasesLine(t *testing.T) {
	pin := new(hardwaretest.Pin)
	if _, err := newButton(pin, button.Config{Debounce: -1}); err == nil || !pin.Closed() {
		t.Errorf("newButton = %v, closed %v; want an error and the line released", err, pin.Closed())
	}
}
