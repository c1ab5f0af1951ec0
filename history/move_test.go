package history

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

const newMAC = "dca632000042"

// aggBucket is one aggregate row of load_1, as read back.
type aggBucket struct {
	lo, avg, hi float64
	n           int64
}

// aggOf reads one aggregate bucket of a source's load_1; the zero bucket when there is none.
func aggOf(t *testing.T, s *Store, table, source string, at time.Time) aggBucket {
	t.Helper()
	var b aggBucket
	err := s.db.QueryRow("SELECT a.lo, a.sum / a.n, a.hi, a.n FROM "+table+" a JOIN series s ON s.id = a.series WHERE s.source = ? AND s.metric = ? AND a.t = ?",
		source, MetricLoad1, at.Unix()).Scan(&b.lo, &b.avg, &b.hi, &b.n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return b
}

// rawLoads returns a source's raw load_1 points in [from, to] as "offset=value", offset from t0.
func rawLoads(t *testing.T, s *Store, source string) []string {
	t.Helper()
	pts, err := s.Series(t.Context(), source, MetricLoad1, t0.Add(-time.Hour), t0.Add(time.Hour), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pts {
		out = append(out, p.T.Sub(t0).String()+"="+strconv.FormatFloat(p.Avg, 'g', -1, 64))
	}
	return out
}

func TestMove(t *testing.T) {
	clock := &fakeClock{now: t0.Add(10 * time.Minute)}
	s := openStore(t, "", clock, true, nil)

	// The old board: load at 0 s, 5 s and 60 s, a CPU reading, a press.
	s.Add(mac, metrics(t0, 1))
	s.Add(mac, metrics(t0.Add(5*time.Second), 2))
	s.Add(mac, topics.Metrics{V: topics.Version, TS: t0.Add(60 * time.Second), Load1: f64(3), CPUPercent: f64(40)})
	s.AddEvent(Event{Time: t0, MAC: mac, Row: "a", Kind: EventButton, Detail: "short press", By: "agent"})
	// The replacement, already reporting: a point at 60 s that collides with the old board's,
	// one at 70 s in the same minute, one at 120 s, and its own online event.
	s.Add(newMAC, metrics(t0.Add(60*time.Second), 100))
	s.Add(newMAC, metrics(t0.Add(70*time.Second), 50))
	s.Add(newMAC, metrics(t0.Add(120*time.Second), 200))
	s.AddEvent(Event{Time: t0.Add(90 * time.Second), MAC: newMAC, Row: "a", Kind: EventOnline, By: "agent"})
	flush(t, s)

	// Queued, not flushed: the old board's last words must move with it.
	s.Add(mac, metrics(t0.Add(180*time.Second), 4))
	s.AddEvent(Event{Time: t0.Add(170 * time.Second), MAC: mac, Row: "a", Kind: EventOffline, By: "agent"})
	if err := s.Move(t.Context(), "B8:27:EB:3F:1A:2C", newMAC); err != nil {
		t.Fatalf("Move: %v", err)
	}
	// Written after the move: the old board is still its own.
	s.Add(mac, topics.Metrics{V: topics.Version, TS: t0.Add(240 * time.Second), Load1: f64(5), CPUPercent: f64(50)})
	s.Add(newMAC, topics.Metrics{V: topics.Version, TS: t0.Add(240 * time.Second), CPUPercent: f64(60)})
	flush(t, s)

	// Raw: the old points, the new board's at the colliding second, and the queued one.
	if got, want := rawLoads(t, s, newMAC), []string{"0s=1", "5s=2", "1m0s=100", "1m10s=50", "2m0s=200", "3m0s=4"}; !slices.Equal(got, want) {
		t.Errorf("new board's raw load = %v, want %v", got, want)
	}
	if got, want := rawLoads(t, s, mac), []string{"4m0s=5"}; !slices.Equal(got, want) {
		t.Errorf("old board's raw load after the move = %v, want only what came after: %v", got, want)
	}
	// Aggregates: the old minutes moved whole; buckets both had are merged (the minute at 60 s:
	// old 3, new 100 and 50; the hour: old 1, 2, 3, 4, new 100, 50, 200).
	for _, c := range []struct {
		table  string
		source string
		at     time.Duration
		want   aggBucket
	}{
		{"agg_1m", newMAC, 0, aggBucket{1, 1.5, 2, 2}},
		{"agg_1m", newMAC, time.Minute, aggBucket{3, 51, 100, 3}},
		{"agg_1m", newMAC, 2 * time.Minute, aggBucket{200, 200, 200, 1}},
		{"agg_1m", newMAC, 3 * time.Minute, aggBucket{4, 4, 4, 1}},
		{"agg_1m", mac, 0, aggBucket{}},
		{"agg_1h", newMAC, 0, aggBucket{1, 360.0 / 7, 200, 7}},
		{"agg_1h", mac, 0, aggBucket{5, 5, 5, 1}}, // the point after the move
	} {
		if got := aggOf(t, s, c.table, c.source, t0.Add(c.at)); got != c.want {
			t.Errorf("%s of %s at +%v = %+v, want %+v", c.table, c.source, c.at, got, c.want)
		}
	}
	// A series only the old board had is renamed; later writes of both boards land right.
	cpu := func(source string) []float64 {
		t.Helper()
		pts, err := s.Series(t.Context(), source, MetricCPUPercent, t0, t0.Add(5*time.Minute), 10000)
		if err != nil {
			t.Fatal(err)
		}
		var v []float64
		for _, p := range pts {
			v = append(v, p.Avg)
		}
		return v
	}
	if got := cpu(newMAC); !slices.Equal(got, []float64{40, 60}) {
		t.Errorf("new board's CPU = %v, want [40 60]", got)
	}
	if got := cpu(mac); !slices.Equal(got, []float64{50}) {
		t.Errorf("old board's CPU = %v, want [50] (a fresh series)", got)
	}

	// Events: the old board's moved, the replacement recorded, nothing left on the old MAC.
	evs, err := s.Events(t.Context(), newMAC, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{EventReplaced, EventOffline, EventOnline, EventButton}; !slices.Equal(kinds, want) {
		t.Errorf("new board's events %v, want %v", kinds, want)
	}
	rep := evs[0]
	if rep.MAC != newMAC || rep.Row != "a" || rep.By != "system" || !rep.Time.Equal(clock.Now()) ||
		rep.Detail != "inherited the history of b8:27:eb:3f:1a:2c" {
		t.Errorf("replaced event = %+v", rep)
	}
	if evs, _ := s.Events(t.Context(), mac, time.Time{}, 0); len(evs) != 0 {
		t.Errorf("old board still has events: %+v", evs)
	}
	// No rows left pointing at a deleted series.
	for _, table := range []string{"raw", "agg_1m", "agg_1h"} {
		var orphans int
		if err := s.db.QueryRow("SELECT count(*) FROM " + table + " WHERE series NOT IN (SELECT id FROM series)").Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if orphans != 0 {
			t.Errorf("%s: %d rows of a deleted series", table, orphans)
		}
	}
	if st := s.Stats(); st.Events != 4 || st.Failed != 0 {
		t.Errorf("Stats = %+v, want 4 events (3 added, 1 replaced), none failed", st)
	}
}

// TestMoveSurvivesReopen: the move is in the file, not only in the series cache.
func TestMoveSurvivesReopen(t *testing.T) {
	clock := &fakeClock{now: t0.Add(time.Minute)}
	path := t.TempDir() + "/history.db"
	s, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Add(mac, metrics(t0, 7))
	if err := s.Move(t.Context(), mac, newMAC); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := openStore(t, path, clock, false, nil)
	if got := rawLoads(t, s2, newMAC); !slices.Equal(got, []string{"0s=7"}) {
		t.Errorf("after reopen, new board's load = %v, want [0s=7]", got)
	}
	if got := rawLoads(t, s2, mac); len(got) != 0 {
		t.Errorf("after reopen, old board's load = %v, want none", got)
	}
}

func TestMoveErrors(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	for _, c := range []struct {
		name, from, to, want string
	}{
		{"same board", mac, "b8:27:eb:3f:1a:2c", "to itself"},
		{"bad old MAC", "b8:27", newMAC, "move from"},
		{"bad new MAC", mac, "zz", "move to"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := s.Move(t.Context(), c.from, c.to); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Move(%q, %q) = %v, want an error saying %q", c.from, c.to, err, c.want)
			}
		})
	}
	if evs, _ := s.Events(t.Context(), "", time.Time{}, 0); len(evs) != 0 {
		t.Errorf("refused moves recorded events: %+v", evs)
	}

	t.Run("without Run", func(t *testing.T) {
		idle := openStore(t, "", clock, false, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := idle.Move(ctx, mac, newMAC); err == nil || !strings.Contains(err.Error(), "Run") {
			t.Errorf("Move without Run = %v, want an error naming Run", err)
		}
	})
	t.Run("after Close", func(t *testing.T) {
		closed := openStore(t, "", clock, false, nil)
		closed.Close()
		if err := closed.Move(t.Context(), mac, newMAC); !errors.Is(err, ErrClosed) {
			t.Errorf("Move after Close = %v, want ErrClosed", err)
		}
	})
}
