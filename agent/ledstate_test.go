package agent

import (
	"testing"
	"time"

	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/topics"
)

// nextLEDState returns the next led_state report with the given state, checking that every
// report is valid, retained-worthy QoS 1.
func (b *testBroker) nextLEDState(t *testing.T, state string) topics.LEDState {
	t.Helper()
	var got topics.LEDState
	b.next(t, topics.LEDStateTopic(row, mac), func(m message) bool {
		s, err := topics.DecodeLEDState(m.payload)
		if err != nil {
			t.Errorf("led_state payload %s: %v", m.payload, err)
			return false
		}
		if m.qos != 1 {
			t.Errorf("led_state %s at qos %d, want 1", m.payload, m.qos)
		}
		got = s
		return s.State == state
	})
	return got
}

func TestLEDStateReportsBlink(t *testing.T) {
	b := startBroker(t)
	led := new(sim.LED)
	runAgent(t, Config{Broker: b.url, LED: led, Interval: time.Hour})
	ready(t, b)

	sent := time.Now()
	b.sendLED(t, `{"action":"blink","count":2,"period_ms":100,"by":"ana"}`)
	s := b.nextLEDState(t, topics.LEDStateBlinking)
	if s.Action != topics.LEDBlink || s.By != "ana" || s.Until.Before(sent.Add(150*time.Millisecond)) {
		t.Errorf("blinking report %+v, want action blink by ana until about 200 ms after the command", s)
	}
	if s := b.nextLEDState(t, topics.LEDStateOff); !s.Until.IsZero() {
		t.Errorf("off report %+v has an until", s)
	}
	r := b.srv.Topics.Messages(topics.LEDStateTopic(row, mac))
	if len(r) != 1 {
		t.Fatalf("%d retained led_state messages, want 1", len(r))
	}
	if s, err := topics.DecodeLEDState(r[0].Payload); err != nil || s.State != topics.LEDStateOff {
		t.Errorf("retained led_state %s (%v), want off", r[0].Payload, err)
	}
}

func TestButtonPressAcknowledgesLocate(t *testing.T) {
	b := startBroker(t)
	led := new(sim.LED)
	btn := newSyncButton()
	runAgent(t, Config{Broker: b.url, LED: led, Button: btn, Interval: time.Hour})
	ready(t, b)

	// Not locating: an ordinary press.
	btn.press(t, topics.PressShort)
	ev, err := topics.DecodeButton(b.next(t, topics.ButtonTopic(row, mac), nil).payload)
	if err != nil || ev.Found {
		t.Fatalf("press while idle: %+v, %v; want found false", ev, err)
	}

	b.sendLED(t, `{"action":"identify","timeout_s":600}`)
	b.nextLEDState(t, topics.LEDStateBlinking)
	btn.press(t, topics.PressLong)
	// The press and the LED state travel separately: either may arrive first.
	var gotPress, gotOff bool
	timeout := time.After(waitFor)
	for !gotPress || !gotOff {
		select {
		case m := <-b.msgs:
			switch m.topic {
			case topics.ButtonTopic(row, mac):
				ev, err := topics.DecodeButton(m.payload)
				if err != nil || !ev.Found || ev.Press != topics.PressLong {
					t.Fatalf("press while identifying: %+v, %v; want a long press with found true", ev, err)
				}
				gotPress = true
			case topics.LEDStateTopic(row, mac):
				s, err := topics.DecodeLEDState(m.payload)
				if err != nil {
					t.Fatal(err)
				}
				gotOff = s.State == topics.LEDStateOff
			}
		case <-timeout:
			t.Fatalf("within %v: found press %v, led_state off %v", waitFor, gotPress, gotOff)
		}
	}
	if led.On() {
		t.Error("LED still on after found")
	}
}
