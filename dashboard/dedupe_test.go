package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func pressTS(seq uint64, ts time.Time) topics.ButtonEvent {
	return topics.ButtonEvent{V: 1, Press: topics.PressShort, Seq: seq, TS: ts}
}

// TestPressDedupe: a press is a duplicate when its MAC, seq and ts were seen among the last
// pressMemory presses of that Pi.
func TestPressDedupe(t *testing.T) {
	button := topics.ButtonTopic(rowA, macA)
	status := topics.StatusTopic(rowA, macA)
	first := t0                 // presses of the agent's first store
	second := t0.Add(time.Hour) // presses after the store was lost
	type step struct {
		msg     any
		applied bool // selected the Pi (a new press)
	}
	tests := []struct {
		name   string
		steps  []step
		dups   uint64
		resets uint64
	}{
		{
			name: "agent restart that keeps its store: redelivery dropped, numbering continues",
			steps: []step{
				{pressTS(1, first), true}, {pressTS(2, first.Add(time.Second)), true},
				{online("pi", "s2"), false},                 // the restarted agent's birth
				{pressTS(2, first.Add(time.Second)), false}, // paho re-sends the unacknowledged press
				{pressTS(3, first.Add(time.Minute)), true},
			},
			dups: 1,
		},
		{
			name: "seq reset by a new store: the new numbering is not swallowed",
			steps: []step{
				{pressTS(1, first), true}, {pressTS(2, first), true}, {pressTS(3, first), true},
				{online("pi", "s2"), false},
				{pressTS(1, second), true}, // same seq, another press
				{pressTS(2, second), true},
				{pressTS(3, second), true},
				{pressTS(3, second), false}, // and redeliveries of the new numbering are still caught
			},
			dups:   1,
			resets: 1,
		},
		{
			name: "a reset without any birth in between (same session) is caught too",
			steps: []step{
				{pressTS(5, first), true},
				{pressTS(5, second), true},
				{pressTS(5, second), false},
			},
			dups:   1,
			resets: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for i, s := range tt.steps {
				ev, isPress := s.msg.(topics.ButtonEvent)
				if !isPress {
					f.publish(t, status, s.msg)
					continue
				}
				f.rack.state.clearSelection(macA)
				f.publish(t, button, ev)
				if n := only(t, f.rack.Nodes()); n.Selected != s.applied {
					t.Errorf("step %d (seq %d): selected = %v, want %v", i, ev.Seq, n.Selected, s.applied)
				}
			}
			st := f.rack.Stats()
			if st.Duplicates != tt.dups || st.PressCounterResets != tt.resets {
				t.Errorf("Duplicates %d, PressCounterResets %d; want %d, %d", st.Duplicates, st.PressCounterResets, tt.dups, tt.resets)
			}
		})
	}
}

// TestPressDedupeIsPerMAC: the same seq and ts from two Pis are two presses.
func TestPressDedupeIsPerMAC(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	f.publish(t, topics.ButtonTopic(rowA, macB), press(1))
	if st := f.rack.Stats(); st.Duplicates != 0 || st.Applied != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestDuplicatesInAPIStats: the counters are visible to operators and scripts.
func TestDuplicatesInAPIStats(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	body := f.do(t, "GET", "/api/stats", "", basic("viewer", "viewer-pw")).Body.String()
	for _, want := range []string{`"duplicates":1`, `"press_counter_resets":0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/stats lacks %s: %s", want, body)
		}
	}
}
