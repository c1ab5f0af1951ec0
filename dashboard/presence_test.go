package dashboard

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/topics"
)

// metricsTS is a metrics sample stamped ts by the Pi.
func metricsTS(seq uint64, ts time.Time) topics.Metrics {
	m := metrics(seq, 0.5)
	m.TS = ts
	return m
}

// will is an agent's Will: offline, with its session and no ts.
func will(session string) topics.Status {
	return topics.Status{V: 1, State: topics.StateOffline, Session: session}
}

func statusTS(st topics.Status, ts time.Time) topics.Status {
	st.TS = ts
	return st
}

// idleListener is a net.Listener that never accepts: Accept blocks on a channel, so goroutines
// waiting in it are durably blocked inside a synctest bubble, where a real socket is not.
type idleListener struct {
	once sync.Once
	done chan struct{}
}

func newIdleListener() *idleListener { return &idleListener{done: make(chan struct{})} }

func (l *idleListener) Accept() (net.Conn, error) { <-l.done; return nil, net.ErrClosed }
func (l *idleListener) Close() error              { l.once.Do(func() { close(l.done) }); return nil }
func (l *idleListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestRunPushesStaleAndRecovery runs Run's staleness loop on a fake clock: a Pi whose
// metrics stop is pushed to live clients as stale after 3 of its learned intervals, pushed
// again when it recovers, and an offline Pi is never made stale.
func TestRunPushesStaleAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Now = time.Now }) // the bubble's fake clock
		c, err := f.rack.hub.subscribe()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()

		const interval = 2 * time.Second // learned; the default would give 15 s, not 6 s
		status, metricsTopic := topics.StatusTopic(rowA, macA), topics.MetricsTopic(rowA, macA)
		f.publish(t, status, online("pi-a", "s1"))
		f.publish(t, metricsTopic, metricsTS(1, time.Now()))
		time.Sleep(interval)
		f.publish(t, metricsTopic, metricsTS(2, time.Now()))
		lastMetrics := time.Now()
		synctest.Wait()
		c.take() // the pushes of ingestion itself

		state := func() string { n, _ := f.rack.state.node(macA); return n.State }

		time.Sleep(3*interval - time.Second)
		synctest.Wait()
		if got := c.take(); len(got) != 0 || state() != StateOnline {
			t.Fatalf("before 3 intervals: pushed %q, state %q; want nothing, online", got, state())
		}
		time.Sleep(time.Second) // the loop's next look, exactly 3 intervals after the metrics
		synctest.Wait()
		if got := c.take(); !slices.Equal(got, []string{macA}) {
			t.Fatalf("after 3 intervals without metrics: pushed %q, want [%s]", got, macA)
		}
		n, _ := f.rack.state.node(macA)
		if n.State != StateStale || !n.Since.Equal(lastMetrics.Add(3*interval)) || n.IntervalS != interval.Seconds() {
			t.Fatalf("node = %+v, want stale since %v with a learned interval of %v", n, lastMetrics.Add(3*interval), interval)
		}
		if got := f.rack.Stats().WentStale; got != 1 {
			t.Errorf("WentStale = %d, want 1", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := c.take(); len(got) != 0 {
			t.Errorf("a Pi that stays stale was pushed again: %q", got)
		}

		// Metrics again: online at once (pushed by ingestion), and the loop does not repeat it.
		f.publish(t, metricsTopic, metricsTS(3, time.Now()))
		if got := c.take(); !slices.Equal(got, []string{macA}) || state() != StateOnline {
			t.Fatalf("recovery: pushed %q, state %q", got, state())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := c.take(); len(got) != 0 {
			t.Errorf("the loop pushed a recovered Pi again: %q", got)
		}

		// Offline says more than stale, and stays.
		f.publish(t, status, offline("s1"))
		c.take()
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := c.take(); len(got) != 0 || state() != StateOffline {
			t.Errorf("offline Pi: pushed %q, state %q; want nothing, offline", got, state())
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestRunJoinsItsLoops: Run returns only after its loops ended; a leaked goroutine would make
// synctest.Test fail.
func TestRunJoinsItsLoops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Now = time.Now })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()
		time.Sleep(3 * staleCheckEvery)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestStaleRule(t *testing.T) {
	metricsTopic := topics.MetricsTopic(rowA, macA)
	status := topics.StatusTopic(rowA, macA)
	tests := []struct {
		name       string
		staleAfter time.Duration
		run        func(t *testing.T, f *fixture)
		age        time.Duration // how long after the last message the state is read
		want       string
	}{
		{
			name: "default threshold before an interval is learned: fresh",
			run:  func(t *testing.T, f *fixture) { f.publish(t, metricsTopic, metricsTS(1, t0)) },
			age:  3*DefaultTelemetryInterval - time.Millisecond,
			want: StateUnknown,
		},
		{
			name: "default threshold before an interval is learned: stale",
			run:  func(t *testing.T, f *fixture) { f.publish(t, metricsTopic, metricsTS(1, t0)) },
			age:  3 * DefaultTelemetryInterval,
			want: StateStale,
		},
		{
			name: "learned interval of 30 s (seq gap of 2): not stale at 80 s",
			run: func(t *testing.T, f *fixture) {
				f.publish(t, status, online("pi", "s"))
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.publish(t, metricsTopic, metricsTS(3, t0.Add(time.Minute)))
			},
			age:  80 * time.Second,
			want: StateOnline,
		},
		{
			name: "learned interval of 30 s: stale at 90 s",
			run: func(t *testing.T, f *fixture) {
				f.publish(t, status, online("pi", "s"))
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.publish(t, metricsTopic, metricsTS(3, t0.Add(time.Minute)))
			},
			age:  90 * time.Second,
			want: StateStale,
		},
		{
			name: "a Pi clock claiming days between samples is clamped to 10 min",
			run: func(t *testing.T, f *fixture) {
				f.publish(t, status, online("pi", "s"))
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.publish(t, metricsTopic, metricsTS(2, t0.Add(72*time.Hour)))
			},
			age:  30 * time.Minute,
			want: StateStale,
		},
		{
			name:       "configured StaleAfter wins over the learned interval",
			staleAfter: 10 * time.Second,
			run: func(t *testing.T, f *fixture) {
				f.publish(t, status, online("pi", "s"))
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.publish(t, metricsTopic, metricsTS(2, t0.Add(time.Minute)))
			},
			age:  10 * time.Second,
			want: StateStale,
		},
		{
			name: "a birth without metrics gets the same grace",
			run:  func(t *testing.T, f *fixture) { f.publish(t, status, online("pi", "s")) },
			age:  3 * DefaultTelemetryInterval,
			want: StateStale,
		},
		{
			name: "offline is never stale",
			run: func(t *testing.T, f *fixture) {
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.publish(t, status, offline(""))
			},
			age:  time.Hour,
			want: StateOffline,
		},
		{
			name: "a Pi only ever heard pressing its button is not stale",
			run:  func(t *testing.T, f *fixture) { f.publish(t, topics.ButtonTopic(rowA, macA), press(1)) },
			age:  time.Hour,
			want: StateUnknown,
		},
		{
			name: "a replayed retained sample does not make a silent Pi fresh",
			run: func(t *testing.T, f *fixture) {
				f.publish(t, status, online("pi", "s"))
				f.publish(t, metricsTopic, metricsTS(1, t0))
				f.clock.Advance(3 * DefaultTelemetryInterval)
				f.publish(t, metricsTopic, metricsTS(1, t0)) // the same message again
			},
			age:  0,
			want: StateStale,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.StaleAfter = tt.staleAfter })
			tt.run(t, f)
			f.clock.Advance(tt.age)
			n := only(t, f.rack.Nodes())
			if n.State != tt.want {
				t.Errorf("State = %q after %v, want %q (node %+v)", n.State, tt.age, tt.want, n)
			}
		})
	}
}

func TestStaleInJSON(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi", "s"))
	f.publish(t, topics.MetricsTopic(rowA, macA), metricsTS(1, t0))
	f.publish(t, topics.MetricsTopic(rowA, macA), metricsTS(2, t0.Add(4*time.Second)))
	f.clock.Advance(time.Minute)
	body := f.do(t, "GET", "/api/nodes/"+macA, "", basic("viewer", "viewer-pw")).Body.String()
	for _, want := range []string{`"state":"stale"`, `"interval_s":4`, `"stale_after_s":12`, `"metrics_at":"2026-03-01T12:00:00Z"`} {
		if !strings.Contains(body, want) {
			t.Errorf("JSON lacks %s: %s", want, body)
		}
	}
	page := f.do(t, "GET", "/", "", basic("viewer", "viewer-pw")).Body.String()
	if !strings.Contains(page, `data-state="stale"`) || !strings.Contains(page, ">stale<") {
		t.Errorf("rack page does not show the Pi as stale")
	}
}

// TestStatusOrdering: a status older than the one shown, such as a retained offline replayed
// after a restart, does not overwrite a fresher online.
func TestStatusOrdering(t *testing.T) {
	status := topics.StatusTopic(rowA, macA)
	t1, t2, t3 := t0, t0.Add(time.Minute), t0.Add(2*time.Minute)
	tests := []struct {
		name       string
		msgs       []any
		want       string
		outOfOrder uint64
	}{
		{"Will of an earlier session after a new birth", []any{statusTS(online("pi", "s2"), t2), will("s1")}, StateOnline, 1},
		{"clean stop of an earlier session after a new birth", []any{statusTS(online("pi", "s2"), t1), statusTS(offline("s1"), t3)}, StateOnline, 1},
		{"retained offline of this session older than its birth", []any{statusTS(online("pi", "s2"), t2), statusTS(offline("s2"), t1)}, StateOnline, 1},
		{"retained birth older than this session's clean stop", []any{statusTS(offline("s2"), t3), statusTS(online("pi", "s2"), t2)}, StateOffline, 1},
		{"Will of this session (no ts) applies", []any{statusTS(online("pi", "s2"), t2), will("s2")}, StateOffline, 0},
		{"clean stop of this session applies", []any{statusTS(online("pi", "s2"), t2), statusTS(offline("s2"), t3)}, StateOffline, 0},
		{"a new session's birth applies whatever its clock says", []any{statusTS(online("pi", "s1"), t3), statusTS(offline("s1"), t3), statusTS(online("pi", "s2"), t1)}, StateOnline, 0},
		{"restart replay: offline first, then the fresh birth", []any{will("s1"), statusTS(online("pi", "s2"), t2)}, StateOnline, 0},
		{"restart replay: a fresh birth, then an earlier session's Will", []any{statusTS(online("pi", "s2"), t2), will("s1"), statusTS(online("pi", "s2"), t2)}, StateOnline, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, m := range tt.msgs {
				f.publish(t, status, m)
			}
			if n := only(t, f.rack.Nodes()); n.State != tt.want {
				t.Errorf("State = %q, want %q", n.State, tt.want)
			}
			if got := f.rack.Stats().StatusOutOfOrder; got != tt.outOfOrder {
				t.Errorf("StatusOutOfOrder = %d, want %d", got, tt.outOfOrder)
			}
		})
	}
}

// brokenListener fails every Accept, as a listener closed under the server would.
type brokenListener struct{ *idleListener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("listener broke") }

// TestServeReturnsListenerError: when serving fails by itself, Serve says why.
func TestServeReturnsListenerError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Now = time.Now })
		err := f.srv.Serve(t.Context(), brokenListener{newIdleListener()})
		if err == nil || !strings.Contains(err.Error(), "listener broke") {
			t.Errorf("Serve = %v, want the listener's error", err)
		}
	})
}

// A control center that starts while a Pi is offline knows it by the identity its offline
// status carries; an offline status without one (an older agent's) leaves what is known.
func TestOfflineStatusKeepsIdentity(t *testing.T) {
	status := topics.StatusTopic(rowA, macA)
	f := newFixture(t)
	off := topics.Status{V: topics.Version, State: topics.StateOffline, TS: t0, Session: "s1",
		Hostname: "pi-07", IP: "192.0.2.7", Model: "Raspberry Pi 4 Model B", AgentVersion: "v1"}
	f.publish(t, status, off)
	n := only(t, f.rack.Nodes())
	if n.State != StateOffline || n.Hostname != "pi-07" || n.IP != "192.0.2.7" || n.Model != "Raspberry Pi 4 Model B" || n.AgentVersion != "v1" {
		t.Fatalf("after an offline status with identity: %+v", n)
	}
	f.publish(t, status, statusTS(offline("s1"), t0.Add(time.Second)))
	if n := only(t, f.rack.Nodes()); n.Hostname != "pi-07" {
		t.Fatalf("an offline status without identity erased the hostname: %+v", n)
	}
}
