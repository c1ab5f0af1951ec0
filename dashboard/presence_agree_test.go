package dashboard

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// agreeOp is one step of a sequence fed to the dashboard (and through it to the alert engine).
type agreeOp struct {
	status  *topics.Status
	metrics *topics.Metrics
	advance time.Duration
}

func (o agreeOp) String() string {
	switch {
	case o.status != nil:
		return fmt.Sprintf("status %s session=%q ts=%v", o.status.State, o.status.Session, o.status.TS.Sub(t0))
	case o.metrics != nil:
		return fmt.Sprintf("metrics seq=%d ts=%v", o.metrics.Seq, o.metrics.TS.Sub(t0))
	}
	return fmt.Sprintf("advance %v", o.advance)
}

// checkAgreement drives ops through a dashboard whose alert engine has stale and offline
// raising and clearing at once (for and clear_for 0), so that an alert is raised exactly while
// its condition holds, and fails at the first step where a tile and an alert disagree: the
// tile stale but no stale alert, or the other way round; the tile offline but no offline alert,
// or the other way round. It returns how many steps showed the Pi stale and offline.
func checkAgreement(t *testing.T, rule presence.Rule, ops []agreeOp) (stale, off int) {
	t.Helper()
	cfg := alerts.DefaultConfig()
	cfg.Presence = rule
	cfg.Offline.For = 0
	cfg.Stale.For, cfg.Stale.ClearFor = 0, 0
	engine, err := alerts.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Alerts, c.StaleAfter = engine, rule.StaleAfter })
	for i, op := range ops {
		switch {
		case op.status != nil:
			f.publish(t, topics.StatusTopic(rowA, macA), *op.status)
		case op.metrics != nil:
			f.publish(t, topics.MetricsTopic(rowA, macA), *op.metrics)
		default:
			f.clock.Advance(op.advance)
		}
		f.rack.tick() // what Run does every second: the engine is ticked at the same now
		n, ok := f.rack.node(macA)
		if !ok {
			n.State = StateUnknown // nothing received yet
		}
		_, staleAlert := engine.Raised(rowA, macA, alerts.RuleStale)
		_, offlineAlert := engine.Raised(rowA, macA, alerts.RuleOffline)
		if (n.State == StateStale) != staleAlert || (n.State == StateOffline) != offlineAlert {
			t.Fatalf("step %d (%v): tile %s since %v, but stale alert raised=%v, offline alert raised=%v\nsteps: %v",
				i, op, n.State, n.Since.Sub(t0), staleAlert, offlineAlert, ops[:i+1])
		}
		switch n.State {
		case StateStale:
			stale++
		case StateOffline:
			off++
		}
	}
	return stale, off
}

func stStatus(state, session string, ts time.Time) agreeOp {
	st := topics.Status{V: 1, State: state, Session: session, TS: ts}
	if state == topics.StateOnline {
		st.Hostname = "pi-a"
	}
	return agreeOp{status: &st}
}

func stMetrics(seq uint64, ts time.Time) agreeOp {
	m := metricsTS(seq, ts)
	return agreeOp{metrics: &m}
}

func wait(d time.Duration) agreeOp { return agreeOp{advance: d} }

// TestPresenceTileAndAlertAgree feeds the same statuses and metrics to the tiles and the alert
// engine, as the control center does, and checks at every step that a tile shows stale exactly
// when the stale alert's condition holds (and offline exactly when the offline alert's does),
// for the learned threshold and a fixed one: named sequences for the known traps, then
// seeded random ones.
func TestPresenceTileAndAlertAgree(t *testing.T) {
	rules := []presence.Rule{{}, {StaleAfter: 20 * time.Second}}
	named := []struct {
		name string
		ops  []agreeOp
	}{
		{"learned interval, then silence", []agreeOp{
			stStatus("online", "s1", t0), stMetrics(1, t0), wait(2 * time.Second), stMetrics(2, t0.Add(2*time.Second)),
			wait(5 * time.Second), wait(time.Second), wait(time.Second), wait(30 * time.Second), stMetrics(3, t0.Add(40*time.Second)),
		}},
		{"default interval before two samples", []agreeOp{stMetrics(1, t0), wait(14 * time.Second), wait(time.Second), wait(10 * time.Second)}},
		{"birth without metrics", []agreeOp{stStatus("online", "s1", t0), wait(14 * time.Second), wait(time.Second), wait(time.Minute)}},
		{"clamped intervals", []agreeOp{
			stStatus("online", "s1", t0), stMetrics(1, t0), stMetrics(2, t0.Add(time.Millisecond)), // under 1 s
			wait(2 * time.Second), wait(time.Second), wait(time.Second),
			stMetrics(3, t0.Add(time.Hour)), wait(29 * time.Minute), wait(time.Minute), wait(time.Minute), // over 10 min
		}},
		{"a replayed sample does not refresh", []agreeOp{
			stStatus("online", "s1", t0), stMetrics(5, t0), wait(10 * time.Second), stMetrics(5, t0), wait(5 * time.Second), stMetrics(5, t0),
		}},
		{"late Will of an earlier session", []agreeOp{
			stStatus("online", "s1", t0), stMetrics(1, t0), stStatus("online", "s2", t0.Add(time.Second)), stStatus("offline", "s1", time.Time{}),
			wait(20 * time.Second),
		}},
		{"an earlier status of the same session", []agreeOp{
			stStatus("online", "s1", t0.Add(time.Minute)), stStatus("offline", "s1", t0), wait(30 * time.Second),
			stStatus("offline", "s1", t0.Add(2*time.Minute)), wait(time.Minute),
		}},
		{"metrics while offline, then back", []agreeOp{
			stStatus("online", "s1", t0), stMetrics(1, t0), stStatus("offline", "s1", t0.Add(time.Second)),
			stMetrics(2, t0.Add(10*time.Second)), wait(time.Minute), stStatus("online", "s2", t0),
			wait(14 * time.Second), wait(time.Second),
		}},
		{"offline seen before any birth", []agreeOp{
			stStatus("offline", "s0", time.Time{}), stMetrics(1, t0), wait(time.Minute), stStatus("offline", "s9", time.Time{}),
			stStatus("online", "s1", t0), wait(20 * time.Second),
		}},
	}
	for _, rule := range rules {
		t.Run(fmt.Sprintf("stale_after=%v", rule.StaleAfter), func(t *testing.T) {
			for _, c := range named {
				t.Run(c.name, func(t *testing.T) { checkAgreement(t, rule, c.ops) })
			}
			var stale, off int
			for seed := range uint64(40) {
				s, o := checkAgreement(t, rule, randomOps(rand.New(rand.NewPCG(seed, 7)), 80))
				stale, off = stale+s, off+o
			}
			if stale == 0 || off == 0 {
				t.Errorf("the random sequences never showed stale (%d steps) or offline (%d steps): they test nothing", stale, off)
			}
		})
	}
}

// randomOps makes a sequence of births, offlines (with and without ts), Wills of current and
// earlier sessions, metrics (new, copies, restarted counters, clocks going back) and waits.
func randomOps(r *rand.Rand, n int) []agreeOp {
	var ops []agreeOp
	seq, ts, piClock := uint64(1), t0, t0
	sessions := []string{"s1", "s2", "s3"}
	for range n {
		piClock = piClock.Add(time.Duration(r.IntN(10)) * time.Second)
		session := sessions[r.IntN(len(sessions))]
		switch k := r.IntN(10); {
		case k < 2:
			ops = append(ops, stStatus(topics.StateOnline, session, piClock.Add(-time.Duration(r.IntN(5))*time.Second)))
		case k < 3:
			var at time.Time // a Will: no ts
			if r.IntN(2) == 0 {
				at = piClock.Add(-time.Duration(r.IntN(20)) * time.Second)
			}
			ops = append(ops, stStatus(topics.StateOffline, session, at))
		case k < 6:
			switch r.IntN(6) {
			case 0: // a copy of the last sample
			case 1:
				seq = uint64(r.IntN(3)) // the counter restarted
			default:
				seq += uint64(1 + r.IntN(3))
				ts = ts.Add(time.Duration(r.IntN(8000)) * time.Millisecond)
			}
			ops = append(ops, stMetrics(seq, ts))
		default:
			ops = append(ops, wait(time.Duration(r.IntN(25000))*time.Millisecond))
		}
	}
	return ops
}

// TestNewRefusesAnotherStaleThreshold: a dashboard given an alert engine with another
// presence rule than its own would show tiles and alerts that disagree; New refuses it.
func TestNewRefusesAnotherStaleThreshold(t *testing.T) {
	cfg := alerts.DefaultConfig()
	cfg.Presence.StaleAfter = time.Minute
	engine, err := alerts.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Bus: newFixture(t).bus, Auth: testUsers, Alerts: engine, StaleAfter: 30 * time.Second})
	if err == nil {
		t.Fatal("New accepted StaleAfter 30s beside an engine whose stale threshold is 1m")
	}
	for _, want := range []string{"30s", "1m0s", "alerts.Config.Presence"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := New(Config{Bus: newFixture(t).bus, Auth: testUsers, Alerts: engine, StaleAfter: time.Minute}); err != nil {
		t.Fatalf("New with the same threshold: %v", err)
	}
}
