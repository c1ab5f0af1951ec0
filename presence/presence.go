// Package presence decides whether a Pi is online, offline, stale or unknown. It is the one
// place that rule lives: the dashboard's tiles and the alert engine's offline and stale rules
// both keep a Tracker per Pi, feed it the same statuses and metrics, and ask it with the same
// Rule, so a tile shows stale exactly when the stale alert's condition holds.
//
// The package is pure: no goroutines, no I/O, no clock. Time is whatever the caller passes.
//
// # The rule
//
// A status applies unless it is older than the one held: an offline of another session than
// the current one (a Will or clean stop of an earlier connection, delivered or replayed late),
// or, within one session, a status whose ts is before the last applied one's. A birth of
// another session always applies: Pi clocks (no RTC) cannot be compared across reboots.
//
// A Pi that is not offline is stale once nothing has refreshed it for Rule.Threshold of its
// telemetry interval: its last new metrics or its last birth, whichever is later (a Pi that
// just connected gets the same grace to send its first sample). Offline is never stale:
// offline says more. A Pi never heard from (no birth, no metrics) is never stale.
//
// Silence the control center could not hear is nobody's fault: on a network bus it hears
// nothing while its broker is lost (Rule.Hearing). Meanwhile presence is judged as of the
// moment it was lost, and once it hears again every Pi gets a full threshold to be heard
// from, as after a restart of the control center, so a broker outage turns no Pi stale.
//
// The telemetry interval is learned from consecutive metrics: ts difference over seq
// difference, clamped to MinInterval - MaxInterval so that a Pi with a broken clock can neither
// make itself stale at once nor never; DefaultInterval is assumed until two have arrived.
package presence

import (
	"cmp"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pirack/pirack/topics"
)

// States. Unknown is a Pi seen (through telemetry, say) before any status; Stale is a Pi that
// is not offline but whose telemetry stopped.
const (
	Online  = topics.StateOnline
	Offline = topics.StateOffline
	Unknown = "unknown"
	Stale   = "stale"
)

// Interval learning and the default threshold.
const (
	// StaleIntervals is how many telemetry intervals without news make a Pi stale, when
	// Rule.StaleAfter is 0.
	StaleIntervals = 3
	// DefaultInterval is assumed until a Pi's interval is learned; it is the agent's default.
	DefaultInterval = 5 * time.Second
	// MinInterval and MaxInterval clamp a learned interval.
	MinInterval = time.Second
	MaxInterval = 10 * time.Minute
	// maxSeqGap is the largest seq difference an interval is learned from: past it, the
	// counter more likely restarted than a million samples went missing.
	maxSeqGap = 1 << 20
)

// ErrInvalidRule is returned by Rule.Validate.
var ErrInvalidRule = errors.New("invalid presence rule")

// Rule is the one presence setting, shared by the tiles and the alerts. Its zero value is the
// default: stale after StaleIntervals of the Pi's own learned interval.
type Rule struct {
	// StaleAfter is how long a Pi that is not offline may go without news before it is stale.
	// 0 means StaleIntervals times the Pi's learned interval (DefaultInterval until learned).
	StaleAfter time.Duration
	// Hearing, when set, says when the control center could not hear the Pis at all (its
	// broker lost); nil means it always hears, as on the embedded broker. The tiles and the
	// alert engine share one.
	Hearing *Hearing
}

// Hearing records whether the control center can hear the Pis. Its zero value hears; a nil
// *Hearing always hears and ignores Lost and Back. It is safe for concurrent use.
type Hearing struct {
	mu        sync.Mutex
	deafSince time.Time // zero while hearing
	since     time.Time // when it last began to hear again; zero if it never stopped
}

// Lost records that nothing can be heard from at on (the broker connection was lost).
func (h *Hearing) Lost(at time.Time) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deafSince.IsZero() {
		h.deafSince = at
	}
}

// Back records that the Pis can be heard again from at on.
func (h *Hearing) Back(at time.Time) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.deafSince.IsZero() {
		h.deafSince, h.since = time.Time{}, at
	}
}

// Deaf reports whether nothing can be heard now, and since when.
func (h *Hearing) Deaf() (deaf bool, since time.Time) {
	if h == nil {
		return false, time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.deafSince.IsZero(), h.deafSince
}

// HeardSince is when the control center last began to hear again after losing its broker;
// zero if it never lost it. Time before it does not count toward an alert's "for".
func (h *Hearing) HeardSince() time.Time {
	if h == nil {
		return time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since
}

// judge returns the moment to judge presence at instead of now (the moment hearing was lost,
// while it is), and the earliest a Pi counts as heard from (when hearing came back).
func (h *Hearing) judge(now time.Time) (at, heardFloor time.Time) {
	if h == nil {
		return now, time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.deafSince.IsZero() && h.deafSince.Before(now) {
		now = h.deafSince
	}
	return now, h.since
}

// Validate reports a negative StaleAfter, wrapping ErrInvalidRule.
func (r Rule) Validate() error {
	if r.StaleAfter < 0 {
		return fmt.Errorf("%w: stale after %v is negative", ErrInvalidRule, r.StaleAfter)
	}
	return nil
}

// Threshold is how long a Pi whose learned interval is interval (0: not learned yet) may go
// without news before it is stale.
func (r Rule) Threshold(interval time.Duration) time.Duration {
	if r.StaleAfter > 0 {
		return r.StaleAfter
	}
	return StaleIntervals * cmp.Or(interval, DefaultInterval)
}

// Tracker is one Pi's presence. Its zero value is a Pi never heard from: Unknown, never stale.
// It is not safe for concurrent use; its owner locks.
type Tracker struct {
	state    string    // Online, Offline or "" (Unknown)
	since    time.Time // when state last changed; zero while Unknown
	session  string    // Session of the current status, "" if unknown
	statusTS time.Time // TS of the last applied status of session, zero if it had none

	birthAt   time.Time // when the last online birth arrived
	metricsAt time.Time // when the last new metrics arrived
	metrics   bool      // a sample has arrived
	seq       uint64    // of the last metrics
	ts        time.Time // of the last metrics
	interval  time.Duration
}

// Status applies a status received at now. applied is false for a status older than the one
// held (see the package doc), which changes nothing; changed reports whether the presence
// (online, offline) changed. A status whose state is neither online nor offline is not applied.
func (t *Tracker) Status(st topics.Status, now time.Time) (applied, changed bool) {
	if st.State != Online && st.State != Offline {
		return false, false
	}
	sameSession := st.Session != "" && st.Session == t.session
	if sameSession && !st.TS.IsZero() && st.TS.Before(t.statusTS) {
		return false, false
	}
	if st.State == Offline && st.Session != "" && t.session != "" && !sameSession {
		return false, false
	}
	switch {
	case sameSession && !st.TS.IsZero():
		t.statusTS = st.TS
	case !sameSession && st.Session != "":
		// The first status of a session: a birth, or an offline seen before any birth (a
		// retained one, after a restart); either way, later statuses are ordered against it.
		t.session, t.statusTS = st.Session, st.TS
	}
	if st.State == Online {
		t.session = st.Session
		t.birthAt = now
	}
	if t.state != st.State {
		t.state, t.since = st.State, now
		changed = true
	}
	return true, changed
}

// Metrics records a metrics sample received at now and learns the telemetry interval from the
// one before. It returns false for a copy of the last sample (same seq and ts: a retained
// message replayed), which must not make a silent Pi look fresh. Presence is left alone:
// retained metrics of a Pi that is offline must not make it look online.
func (t *Tracker) Metrics(m topics.Metrics, now time.Time) bool {
	if t.metrics {
		if m.Seq == t.seq && m.TS.Equal(t.ts) {
			return false
		}
		if m.Seq > t.seq && m.Seq-t.seq <= maxSeqGap && m.TS.After(t.ts) {
			iv := m.TS.Sub(t.ts) / time.Duration(m.Seq-t.seq)
			t.interval = min(max(iv, MinInterval), MaxInterval)
		}
	}
	t.metrics, t.seq, t.ts, t.metricsAt = true, m.Seq, m.TS, now
	return true
}

// Interval is the learned telemetry interval, 0 until two samples have arrived.
func (t *Tracker) Interval() time.Duration { return t.interval }

// Known reports whether a status has been applied: until then the Pi's presence is unknown.
func (t *Tracker) Known() bool { return t.state != "" }

// Offline reports whether the last applied status said offline.
func (t *Tracker) Offline() bool { return t.state == Offline }

// Heard is when the Pi last refreshed its presence: its last new metrics or its last birth,
// whichever is later; zero if never.
func (t *Tracker) Heard() time.Time {
	if t.birthAt.After(t.metricsAt) {
		return t.birthAt
	}
	return t.metricsAt
}

// StaleAt returns when the Pi becomes (or became) stale under r, and false when it cannot be
// stale: offline, or never heard from.
func (t *Tracker) StaleAt(r Rule) (time.Time, bool) {
	_, floor := r.Hearing.judge(time.Time{})
	return t.staleAt(r, floor)
}

func (t *Tracker) staleAt(r Rule, heardFloor time.Time) (time.Time, bool) {
	if t.state == Offline {
		return time.Time{}, false
	}
	heard := t.Heard()
	if heard.IsZero() {
		return time.Time{}, false
	}
	if heard.Before(heardFloor) {
		heard = heardFloor // the broker was lost meanwhile: a full threshold from its return
	}
	return heard.Add(r.Threshold(t.interval)), true
}

// IsStale reports whether the Pi is stale at now under r. This is the condition both the
// tiles and the stale alert use.
func (t *Tracker) IsStale(r Rule, now time.Time) bool {
	now, floor := r.Hearing.judge(now)
	at, ok := t.staleAt(r, floor)
	return ok && !now.Before(at)
}

// State returns the Pi's state at now under r, and since when: for Stale, the moment the
// telemetry became overdue; for Unknown, zero.
func (t *Tracker) State(r Rule, now time.Time) (state string, since time.Time) {
	now, floor := r.Hearing.judge(now)
	if at, ok := t.staleAt(r, floor); ok && !now.Before(at) {
		return Stale, at
	}
	if t.state == "" {
		return Unknown, time.Time{}
	}
	return t.state, t.since
}
