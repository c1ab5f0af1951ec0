package button

import (
	"time"

	"github.com/pirack/pirack/topics"
)

// state is where the classifier is in a press sequence.
type state int

const (
	idle    state = iota
	down          // pressed; a long press if it lasts until since+LongPress
	held          // a long press already reported; waiting for the release
	pending       // a short press released at since; a double if a second press starts in time
	down2         // second press of a possible double, pressed at since
)

// machine debounces a line's level changes and classifies the settled presses. It is pure: the
// caller feeds it edges and the time, and asks it when it next needs the time (wake).
//
// Debouncing: a change of level is accepted once the line has kept it for Debounce. Any edge
// restarts that wait, so contact bounce and glitches shorter than Debounce never reach the
// classifier. A settled change takes effect at the time of its last edge (when the contact came
// to rest), not when the wait ended, so press durations are measured on the line's own timing.
type machine struct {
	cfg Config

	raw      bool      // latest level seen, as pressed (true) or released
	rawAt    time.Time // time of the latest edge
	settling bool      // raw has not yet been stable for Debounce
	pressed  bool      // debounced state

	state state
	since time.Time
}

// newMachine starts in idle with the line's current state. A button held (or a line stuck low)
// at start is therefore not a press: idle ignores its release and waits for the next push.
func newMachine(cfg Config, pressed bool) *machine {
	return &machine{cfg: cfg, raw: pressed, pressed: pressed}
}

// edge records the line's level at time at.
func (m *machine) edge(high bool, at time.Time) {
	m.raw = high == m.cfg.ActiveHigh
	m.rawAt = at
	m.settling = true
}

// deadline is when the classifier acts on its own: a long press, or the end of a double window.
func (m *machine) deadline() (time.Time, bool) {
	switch m.state {
	case down, down2:
		return m.since.Add(m.cfg.LongPress), true
	case pending:
		return m.since.Add(m.cfg.DoublePress), true
	}
	return time.Time{}, false
}

// settleFirst reports whether a settling edge comes before the classifier's deadline in time,
// so that it must be resolved first: a release at 1.99 s is a short press even though it is
// only known to be a release at 2.02 s.
func (m *machine) settleFirst() bool {
	if !m.settling {
		return false
	}
	d, ok := m.deadline()
	return !ok || !d.Before(m.rawAt)
}

// wake returns when tick must next be called, if ever.
func (m *machine) wake() (time.Time, bool) {
	if m.settleFirst() {
		return m.rawAt.Add(m.cfg.Debounce), true
	}
	return m.deadline()
}

// tick advances the machine to now and returns the presses completed, in order.
func (m *machine) tick(now time.Time) (kinds []string) {
	for {
		if m.settleFirst() {
			if now.Before(m.rawAt.Add(m.cfg.Debounce)) {
				return kinds
			}
			m.settling = false
			if m.raw != m.pressed {
				m.pressed = m.raw
				kinds = m.transition(m.pressed, m.rawAt, kinds)
			}
			continue
		}
		d, ok := m.deadline()
		if !ok || now.Before(d) {
			return kinds
		}
		kinds = m.expire(kinds)
	}
}

// transition applies a debounced press (pressed) or release at time at.
func (m *machine) transition(pressed bool, at time.Time, kinds []string) []string {
	switch {
	case m.state == idle && pressed:
		m.state, m.since = down, at
	case m.state == down && !pressed:
		switch {
		case at.Sub(m.since) >= m.cfg.LongPress:
			kinds = append(kinds, topics.PressLong)
			m.state = idle
		case m.cfg.DoublePress < 0:
			kinds = append(kinds, topics.PressShort)
			m.state = idle
		default:
			m.state, m.since = pending, at
		}
	case m.state == pending && pressed:
		m.state, m.since = down2, at
	case m.state == down2 && !pressed:
		if at.Sub(m.since) >= m.cfg.LongPress {
			kinds = append(kinds, topics.PressShort, topics.PressLong)
		} else {
			kinds = append(kinds, topics.PressDouble)
		}
		m.state = idle
	case m.state == held && !pressed:
		m.state = idle
	}
	return kinds
}

// expire applies the classifier's deadline.
func (m *machine) expire(kinds []string) []string {
	switch m.state {
	case down:
		kinds = append(kinds, topics.PressLong)
		m.state = held
	case pending:
		kinds = append(kinds, topics.PressShort)
		m.state = idle
	case down2: // a short, then a second press held long: two presses, not a double
		kinds = append(kinds, topics.PressShort, topics.PressLong)
		m.state = held
	}
	return kinds
}

// flush returns a press that is complete but still waiting for its double window: at shutdown it
// is reported rather than lost. A press still held is not complete and is dropped.
func (m *machine) flush() []string {
	if m.state == pending {
		m.state = idle
		return []string{topics.PressShort}
	}
	return nil
}
