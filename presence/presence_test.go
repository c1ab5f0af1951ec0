package presence

import (
	"errors"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func status(state, session string, ts time.Time) topics.Status {
	return topics.Status{V: 1, State: state, Session: session, TS: ts}
}

func sample(seq uint64, ts time.Time) topics.Metrics { return topics.Metrics{V: 1, Seq: seq, TS: ts} }

func TestRule(t *testing.T) {
	tests := []struct {
		name     string
		rule     Rule
		interval time.Duration
		want     time.Duration
	}{
		{"default before learning", Rule{}, 0, 15 * time.Second},
		{"learned", Rule{}, 2 * time.Second, 6 * time.Second},
		{"fixed wins over learned", Rule{StaleAfter: time.Minute}, 2 * time.Second, time.Minute},
	}
	for _, c := range tests {
		if got := c.rule.Threshold(c.interval); got != c.want {
			t.Errorf("%s: Threshold(%v) = %v, want %v", c.name, c.interval, got, c.want)
		}
	}
	if err := (Rule{StaleAfter: -1}).Validate(); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("Validate of a negative StaleAfter = %v, want ErrInvalidRule", err)
	}
	if err := (Rule{}).Validate(); err != nil {
		t.Errorf("Validate of the zero Rule = %v", err)
	}
}

func TestLearnedInterval(t *testing.T) {
	tests := []struct {
		name    string
		samples []topics.Metrics
		want    time.Duration
	}{
		{"one sample", []topics.Metrics{sample(1, t0)}, 0},
		{"ts over seq", []topics.Metrics{sample(1, t0), sample(4, t0.Add(6*time.Second))}, 2 * time.Second},
		{"clamped up", []topics.Metrics{sample(1, t0), sample(2, t0.Add(time.Millisecond))}, MinInterval},
		{"clamped down", []topics.Metrics{sample(1, t0), sample(2, t0.Add(time.Hour))}, MaxInterval},
		{"counter restarted: kept", []topics.Metrics{sample(1, t0), sample(2, t0.Add(3*time.Second)), sample(1, t0.Add(time.Hour))}, 3 * time.Second},
		{"clock went back: kept", []topics.Metrics{sample(1, t0), sample(2, t0.Add(3*time.Second)), sample(3, t0)}, 3 * time.Second},
		{"huge seq gap: not learned", []topics.Metrics{sample(1, t0), sample(1<<21, t0.Add(time.Hour))}, 0},
	}
	for _, c := range tests {
		var tr Tracker
		for _, m := range c.samples {
			tr.Metrics(m, t0)
		}
		if got := tr.Interval(); got != c.want {
			t.Errorf("%s: Interval = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStatusOrder(t *testing.T) {
	tests := []struct {
		name        string
		before      []topics.Status
		st          topics.Status
		wantApplied bool
		wantState   string
	}{
		{"first birth", nil, status(Online, "s1", t0), true, Online},
		{"late Will of an earlier session", []topics.Status{status(Online, "s1", t0), status(Online, "s2", t0)}, status(Offline, "s1", time.Time{}), false, Online},
		{"Will of the current session", []topics.Status{status(Online, "s1", t0)}, status(Offline, "s1", time.Time{}), true, Offline},
		{"earlier status of the session", []topics.Status{status(Online, "s1", t0.Add(time.Minute))}, status(Offline, "s1", t0), false, Online},
		{"birth of another session, older clock", []topics.Status{status(Online, "s1", t0.Add(time.Hour))}, status(Online, "s2", t0), true, Online},
		{"offline before any birth orders later ones", []topics.Status{status(Offline, "s0", time.Time{})}, status(Offline, "s9", time.Time{}), false, Offline},
		{"no such state", nil, status("sleeping", "s1", t0), false, Unknown},
	}
	for _, c := range tests {
		var tr Tracker
		for _, st := range c.before {
			tr.Status(st, t0)
		}
		applied, _ := tr.Status(c.st, t0.Add(time.Second))
		got, _ := tr.State(Rule{StaleAfter: 24 * time.Hour}, t0.Add(time.Second))
		if applied != c.wantApplied || got != c.wantState {
			t.Errorf("%s: applied %v, state %s; want %v, %s", c.name, applied, got, c.wantApplied, c.wantState)
		}
	}
}

func TestState(t *testing.T) {
	var tr Tracker
	if st, since := tr.State(Rule{}, t0.Add(time.Hour)); st != Unknown || !since.IsZero() {
		t.Fatalf("never heard from: %s since %v, want unknown, never stale", st, since)
	}
	tr.Metrics(sample(1, t0), t0) // telemetry before any status: unknown, but can go stale
	if st, _ := tr.State(Rule{}, t0.Add(14*time.Second)); st != Unknown {
		t.Fatalf("14 s after a sample: %s", st)
	}
	if st, since := tr.State(Rule{}, t0.Add(15*time.Second)); st != Stale || !since.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("15 s after a sample: %s since %v, want stale since 3 x 5 s", st, since)
	}
	if tr.Metrics(sample(1, t0), t0.Add(20*time.Second)) || !tr.IsStale(Rule{}, t0.Add(20*time.Second)) {
		t.Fatal("a copy of the last sample refreshed the Pi")
	}
	tr.Status(status(Online, "s1", t0), t0.Add(30*time.Second)) // a birth refreshes too
	if st, since := tr.State(Rule{}, t0.Add(31*time.Second)); st != Online || !since.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after a birth: %s since %v", st, since)
	}
	tr.Status(status(Offline, "s1", time.Time{}), t0.Add(40*time.Second))
	if st, _ := tr.State(Rule{}, t0.Add(time.Hour)); st != Offline || tr.IsStale(Rule{}, t0.Add(time.Hour)) {
		t.Fatalf("offline Pi an hour later: %s; offline is never stale", st)
	}
}

// A broker outage turns no Pi stale: presence is judged as of the loss while deaf, and every Pi
// gets a full threshold from the broker's return. A Pi silent before the loss is still stale.
func TestHearing(t *testing.T) {
	h := new(Hearing)
	r := Rule{StaleAfter: 10 * time.Second, Hearing: h}
	var live, silent Tracker
	live.Status(status(Online, "a", t0), t0)
	silent.Status(status(Online, "b", t0), t0)
	live.Metrics(sample(1, t0), t0.Add(5*time.Second))
	silent.Metrics(sample(1, t0), t0)

	if deaf, _ := h.Deaf(); deaf {
		t.Fatal("a new Hearing is deaf")
	}
	lost := t0.Add(12 * time.Second)
	h.Lost(lost)
	h.Lost(lost.Add(time.Second)) // a second report keeps the first moment
	if deaf, since := h.Deaf(); !deaf || !since.Equal(lost) {
		t.Fatalf("Deaf() = %v, %v; want true since %v", deaf, since, lost)
	}
	during := lost.Add(time.Minute)
	if live.IsStale(r, during) {
		t.Error("a Pi heard 7 s before the broker was lost is stale a minute into the outage")
	}
	if st, _ := live.State(r, during); st != Online {
		t.Errorf("State during the outage = %s, want online", st)
	}
	if !silent.IsStale(r, during) {
		t.Error("a Pi silent for 12 s before the loss (threshold 10 s) is not stale")
	}

	back := during
	h.Back(back)
	if live.IsStale(r, back.Add(9*time.Second)) {
		t.Error("stale within the threshold after the broker's return")
	}
	if !live.IsStale(r, back.Add(10*time.Second)) {
		t.Error("not stale a full threshold after the broker's return without news")
	}
	live.Metrics(sample(2, back.Add(time.Second)), back.Add(time.Second))
	if live.IsStale(r, back.Add(10*time.Second)) {
		t.Error("stale although a sample came after the return")
	}
	if (Rule{StaleAfter: 10 * time.Second}).Hearing != nil || (&Tracker{}).IsStale(Rule{}, t0) {
		t.Error("a rule without Hearing should always hear")
	}
}
