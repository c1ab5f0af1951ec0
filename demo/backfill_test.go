package demo

import (
	"math"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/history"
)

// TestDemoHistoryBackfill writes the demo's week into a real history store, as `pirack demo`
// does on a data directory's first run, and reads it back as the Pi detail charts do.
func TestDemoHistoryBackfill(t *testing.T) {
	const perRow = 2
	path := filepath.Join(t.TempDir(), "history.db")
	live, err := history.Open(path, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- live.Run(t.Context()) }()
	t.Cleanup(func() {
		live.Close()
		<-runDone
	})

	pis := newPis(2, perRow)
	bands := defaultBackfillBands
	if raceEnabled() {
		// The race detector slows SQLite down more than tenfold: the same week, sampled
		// coarser. Without -race the test writes the demo's own bands.
		bands = []backfillBand{{time.Hour, 5 * time.Minute}, {24 * time.Hour, time.Hour}, {7 * 24 * time.Hour, 3 * time.Hour}}
	}
	end := time.Now()
	cfg := backfillConfig{Path: path, Live: live, Pis: pis, End: end, Bands: bands}
	start := time.Now()
	st, err := backfillDemoHistory(t.Context(), cfg)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	t.Logf("backfill of %d Pis: %d samples, %d events in %v", len(pis), st.Written, st.Events, time.Since(start).Round(time.Millisecond))
	if st.Dropped+st.Stale+st.Failed != 0 || st.Written == 0 || st.Written != st.Queued {
		t.Fatalf("backfill stats %+v: want every queued sample written, none dropped, stale or failed", st)
	}
	if st := live.Stats(); st.Dropped+st.Downsampled != 0 {
		t.Errorf("live store dropped %d and downsampled %d samples during the backfill", st.Dropped, st.Downsampled)
	}

	week := func(source, metric string) []history.Point {
		t.Helper()
		pts, err := live.Series(t.Context(), source, metric, end.Add(-7*24*time.Hour), end, 300)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) == 0 {
			t.Fatalf("%s %s: no points over 7 days", source, metric)
		}
		if got := pts[len(pts)-1].T.Sub(pts[0].T); got < 7*24*time.Hour-3*time.Hour {
			t.Errorf("%s %s: points span %v, want about 7 days", source, metric, got)
		}
		return pts
	}
	within := func(what string, pts []history.Point, lo, hi float64) {
		t.Helper()
		for _, p := range pts {
			if p.Min < lo || p.Max > hi {
				t.Errorf("%s at %v: %v..%v, want within %v..%v", what, p.T, p.Min, p.Max, lo, hi)
				return
			}
		}
	}
	for _, pi := range pis {
		load := week(pi.mac, history.MetricLoad1)
		within(pi.mac+" load", load, 0, 6.5)
		quiet, busy := math.Inf(1), 0.0
		for _, p := range load {
			quiet, busy = min(quiet, p.Avg), max(busy, p.Avg)
		}
		if busy < 1.4*quiet {
			t.Errorf("%s: hourly load means %.2f..%.2f, want a daily cycle", pi.mac, quiet, busy)
		}
		within(pi.mac+" cpu", week(pi.mac, history.MetricCPUPercent), 0, 100)
		temp := week(pi.mac, history.MetricCPUTempC)
		within(pi.mac+" temperature", temp, 40, 80)
		if m := mean(temp); m < 42 || m > 60 {
			t.Errorf("%s: mean temperature %.1f °C, want 42-60", pi.mac, m)
		}
		memTotal := week(pi.mac, history.MetricMemTotal)[0].Avg
		within(pi.mac+" memory available", week(pi.mac, history.MetricMemAvailable), 0.15*memTotal, 0.9*memTotal)
		diskTotal := week(pi.mac, history.MetricDiskTotal)[0].Avg
		within(pi.mac+" disk free", week(pi.mac, history.MetricDiskFree), 0.02*diskTotal, 0.98*diskTotal)

		// The host figures have the week too, consistent with the figures above: the SoC's
		// sensor is the CPU temperature, the root filesystem's free space the disk's.
		for core := range 4 {
			within(pi.mac+" core", week(pi.mac, history.PerDevice(history.MetricCoreCPU, strconv.Itoa(core))), 0, 100)
		}
		sensor := week(pi.mac, history.PerDevice(history.MetricTemp, "cpu-thermal"))
		if len(sensor) != len(temp) || mean(sensor) != mean(temp) {
			t.Errorf("%s: cpu-thermal's week (%d points, mean %.2f) is not the CPU temperature's (%d, %.2f)", pi.mac, len(sensor), mean(sensor), len(temp), mean(temp))
		}
		within(pi.mac+" eth0", week(pi.mac, history.PerDevice(history.MetricNetRx, "eth0")), 1000, 1e6)
		within(pi.mac+" SD writes", week(pi.mac, history.PerDevice(history.MetricDiskWrite, "mmcblk0")), 0, 1e7)
		within(pi.mac+" root free", week(pi.mac, history.PerDevice(history.MetricFSFree, "/")), 0.02*diskTotal, 0.98*diskTotal)
		within(pi.mac+" memory used", week(pi.mac, history.MetricMemUsed), 0.1*memTotal, 0.85*memTotal)
	}
	for _, row := range []string{"r1", "r2"} {
		watts := week(history.RowSource(row), history.MetricWatts)
		// Under 2 W per Pi, give or take the meter's noise.
		within(row+" watts", watts, perRow*1.5-1, perRow*2+1)
		if m := mean(watts) / perRow; m < 1.55 || m > 1.85 {
			t.Errorf("%s: %.2f W per Pi on average, want 1.55-1.85", row, m)
		}
		within(row+" volts", week(history.RowSource(row), history.MetricVolts), 4.9, 5.2)
		within(row+" amps", week(history.RowSource(row), history.MetricAmps), (perRow*1.5-1)/5.2, (perRow*2+1)/4.9)
	}

	if !raceEnabled() {
		// The default bands are there so the Pi detail page draws each range as one line:
		// node.js breaks it where two points are more than 2.5 times the closest two apart.
		for _, span := range []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour} {
			pts, err := live.Series(t.Context(), pis[0].mac, history.MetricLoad1, end.Add(-span), end, 300)
			if err != nil || len(pts) < 2 {
				t.Fatalf("%v chart: %d points, %v", span, len(pts), err)
			}
			// Once the live samples arrive, the closest two are a bucket apart: at least
			// span/299 for 300 points.
			step := span / 299
			for i := 1; i < len(pts); i++ {
				step = min(step, pts[i].T.Sub(pts[i-1].T))
			}
			for i := 1; i < len(pts); i++ {
				if gap := pts[i].T.Sub(pts[i-1].T); gap > step*5/2 {
					t.Errorf("%v chart: a gap of %v at %v (buckets of %v)", span, gap, pts[i].T, step)
				}
			}
			if first := pts[0].T; first.After(end.Add(-span).Add(3 * step)) {
				t.Errorf("%v chart starts at %v, want the whole range from %v", span, first, end.Add(-span))
			}
		}
	}

	// The week ends where each Pi's live simulation starts, so the charts do not jump.
	for _, pi := range pis {
		first, _ := agent.NewSimCollector(pi.seed, func() time.Time { return end }).Collect(t.Context())
		last := func(metric string) float64 {
			t.Helper()
			pts, err := live.Series(t.Context(), pi.mac, metric, end.Add(-bands[0].Step), end, 1)
			if err != nil || len(pts) != 1 {
				t.Fatalf("%s %s in the last step: %v, %v", pi.mac, metric, pts, err)
			}
			return pts[0].Avg
		}
		near := func(metric string, got, want, tol float64) {
			t.Helper()
			if math.Abs(got-want) > tol {
				t.Errorf("%s %s: the week ends at %v, the live simulation starts at %v", pi.mac, metric, got, want)
			}
		}
		near(history.MetricLoad1, last(history.MetricLoad1), *first.Load1, 0.3)
		near(history.MetricMemAvailable, last(history.MetricMemAvailable), float64(*first.MemAvailableBytes), 0.03*float64(*first.MemTotalBytes))
		near(history.MetricDiskFree, last(history.MetricDiskFree), float64(*first.DiskFreeBytes), 100e6)
		near(history.MetricMemTotal, last(history.MetricMemTotal), float64(*first.MemTotalBytes), 0)
	}

	evs, err := live.Events(t.Context(), "", time.Time{}, history.MaxEvents)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(evs)) != st.Events {
		t.Errorf("%d events in the log, the backfill wrote %d", len(evs), st.Events)
	}
	for _, e := range evs {
		if e.Time.Before(end.Add(-7*24*time.Hour)) || !e.Time.Before(end) {
			t.Errorf("event %+v is outside the backfilled week", e)
		}
	}

	// A second run of the same data directory finds the week and writes nothing.
	before := live.Stats()
	again, err := backfillDemoHistory(t.Context(), backfillConfig{Path: path, Live: live, Pis: pis, End: time.Now()})
	if err != nil || again != (history.Stats{}) {
		t.Errorf("second backfill: %+v, %v; want nothing written", again, err)
	}
	if after := live.Stats(); after != before {
		t.Errorf("second backfill changed the live store's counters: %+v, then %+v", before, after)
	}
}

// TestBackfillTimes checks the bands: newest first, strictly before the end, each band on
// multiples of its step, none repeated, reaching back to the last band's age.
func TestBackfillTimes(t *testing.T) {
	end := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		end   time.Time
		bands []backfillBand
		want  int
	}{
		{"defaults, end on a step", end, defaultBackfillBands, 359 + 276 + 576},
		{"defaults, end between steps", end.Add(7 * time.Second), defaultBackfillBands, 360 + 276 + 576},
		{"one band", end, []backfillBand{{time.Hour, time.Minute}}, 59},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := backfillTimes(tc.end, tc.bands)
			if len(ts) != tc.want {
				t.Errorf("%d times, want %d", len(ts), tc.want)
			}
			if !ts[0].Before(tc.end) || ts[0].Before(tc.end.Add(-tc.bands[0].Step)) {
				t.Errorf("newest %v, want within a step before %v", ts[0], tc.end)
			}
			for i := 1; i < len(ts); i++ {
				if !ts[i].Before(ts[i-1]) {
					t.Fatalf("times %v then %v: want strictly older", ts[i-1], ts[i])
				}
			}
			span := tc.bands[len(tc.bands)-1]
			if oldest := ts[len(ts)-1]; !oldest.After(tc.end.Add(-span.Age)) || oldest.After(tc.end.Add(-span.Age+span.Step)) {
				t.Errorf("oldest %v, want within a step after %v", oldest, tc.end.Add(-span.Age))
			}
		})
	}
}

func mean(pts []history.Point) float64 {
	var sum float64
	for _, p := range pts {
		sum += p.Avg
	}
	return sum / float64(len(pts))
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
