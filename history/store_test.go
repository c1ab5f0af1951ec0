package history

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// t0 is a whole hour, so minute and hour buckets start on it.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// openStore opens a store in a temporary directory; with run it also starts Run, stopped and
// joined at cleanup.
func openStore(t *testing.T, path string, clock *fakeClock, run bool, mod func(*Options)) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "history.db")
	}
	opts := Options{Now: clock.Now}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if run {
		startRun(t, s)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func startRun(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Run: %v", err)
		}
	})
}

func flush(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }

func metrics(ts time.Time, load float64) topics.Metrics {
	return topics.Metrics{V: topics.Version, TS: ts, Load1: f64(load)}
}

const mac = "b827eb3f1a2c"

// aggRow reads one aggregate row directly, to check what downsampling stored.
func aggRow(t *testing.T, s *Store, table string, at time.Time) (lo, avg, hi float64, n int64) {
	t.Helper()
	err := s.db.QueryRow("SELECT a.lo, a.sum / a.n, a.hi, a.n FROM "+table+" a JOIN series s ON s.id = a.series WHERE s.source = ? AND s.metric = ? AND a.t = ?",
		mac, MetricLoad1, at.Unix()).Scan(&lo, &avg, &hi, &n)
	if err != nil {
		t.Fatalf("%s row at %v: %v", table, at, err)
	}
	return lo, avg, hi, n
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDownsampling(t *testing.T) {
	clock := &fakeClock{now: t0.Add(3 * time.Minute)}
	s := openStore(t, "", clock, true, nil)

	// Two minutes of 5 s samples: 0..11 in the first minute, 12..23 in the second.
	for i := range 24 {
		s.Add(mac, metrics(t0.Add(time.Duration(i)*5*time.Second), float64(i)))
	}
	flush(t, s)

	for _, c := range []struct {
		table          string
		at             time.Time
		lo, avg, hi    float64
		n              int64
		afterLateWrite bool
	}{
		{table: "agg_1m", at: t0, lo: 0, avg: 5.5, hi: 11, n: 12},
		{table: "agg_1m", at: t0.Add(time.Minute), lo: 12, avg: 17.5, hi: 23, n: 12},
		{table: "agg_1h", at: t0, lo: 0, avg: 11.5, hi: 23, n: 24},
	} {
		lo, avg, hi, n := aggRow(t, s, c.table, c.at)
		if lo != c.lo || avg != c.avg || hi != c.hi || n != c.n {
			t.Errorf("%s at %v: got lo=%v avg=%v hi=%v n=%d, want lo=%v avg=%v hi=%v n=%d",
				c.table, c.at.Format(time.TimeOnly), lo, avg, hi, n, c.lo, c.avg, c.hi, c.n)
		}
	}

	// A late sample for an already written minute merges into its bucket; a payload seen
	// again (a retained message redelivered) does not count twice.
	s.Add(mac, metrics(t0.Add(59*time.Second), 100))
	s.Add(mac, metrics(t0.Add(5*time.Second), 1))
	flush(t, s)
	lo, avg, hi, n := aggRow(t, s, "agg_1m", t0)
	if lo != 0 || hi != 100 || n != 13 || avg != (66+100)/13.0 {
		t.Errorf("after late sample: lo=%v avg=%v hi=%v n=%d, want 0, %v, 100, 13", lo, avg, hi, n, (66+100)/13.0)
	}
	if got := s.Stats().Written; got != 25 {
		t.Errorf("Written = %d, want 25 (the duplicate excluded)", got)
	}

	// The same through Series: two 1-minute points, read from the minute tier.
	pts, err := s.Series(t.Context(), mac, MetricLoad1, t0, t0.Add(119*time.Second), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{T: t0, Min: 0, Avg: (66 + 100) / 13.0, Max: 100},
		{T: t0.Add(time.Minute), Min: 12, Avg: 17.5, Max: 23},
	}
	if !equalPoints(pts, want) {
		t.Errorf("Series = %v, want %v", pts, want)
	}
}

func equalPoints(a, b []Point) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].T.Equal(b[i].T) || a[i].Min != b[i].Min || a[i].Avg != b[i].Avg || a[i].Max != b[i].Max {
			return false
		}
	}
	return true
}

func TestAllMetricsStored(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	s.Add(mac, topics.Metrics{
		V: topics.Version, TS: t0,
		Load1: f64(0.5), CPUPercent: f64(12.5), CPUTempC: f64(48.2),
		MemTotalBytes: u64(4 << 30), MemAvailableBytes: u64(3 << 30),
		DiskTotalBytes: u64(32 << 30), DiskFreeBytes: u64(20 << 30),
	})
	s.AddPower("row-a", topics.Power{V: topics.Version, TS: t0, Volts: f64(5.1), Amps: f64(2.9), Watts: f64(14.8)})
	flush(t, s)

	for _, c := range []struct {
		source, metric string
		want           float64
	}{
		{mac, MetricLoad1, 0.5},
		{mac, MetricCPUPercent, 12.5},
		{mac, MetricCPUTempC, 48.2},
		{mac, MetricMemTotal, 4 << 30},
		{mac, MetricMemAvailable, 3 << 30},
		{mac, MetricDiskTotal, 32 << 30},
		{mac, MetricDiskFree, 20 << 30},
		{RowSource("row-a"), MetricVolts, 5.1},
		{RowSource("row-a"), MetricAmps, 2.9},
		{RowSource("row-a"), MetricWatts, 14.8},
	} {
		pts, err := s.Series(t.Context(), c.source, c.metric, t0.Add(-time.Minute), t0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 1 || pts[0].Avg != c.want {
			t.Errorf("%s %s = %v, want one point of %v", c.source, c.metric, pts, c.want)
		}
	}
	if pts, _ := s.PowerSeries(t.Context(), "row-a", MetricWatts, t0.Add(-time.Minute), t0, 10); len(pts) != 1 {
		t.Errorf("PowerSeries = %v, want one point", pts)
	}
	if _, err := s.Series(t.Context(), mac, "load_42", t0, t0, 1); !errors.Is(err, ErrUnknownMetric) {
		t.Errorf("unknown metric: err = %v, want ErrUnknownMetric", err)
	}
	if pts, err := s.Series(t.Context(), "000000000000", MetricLoad1, t0.Add(-time.Hour), t0, 10); err != nil || len(pts) != 0 {
		t.Errorf("unknown Pi: %v, %v; want no points, no error", pts, err)
	}
}

func TestRetention(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	s.Add(mac, metrics(t0, 1))
	s.AddEvent(Event{Time: t0, MAC: mac, Kind: EventButton, Detail: topics.PressShort, By: "agent"})
	flush(t, s)

	compactAt := func(d time.Duration) {
		t.Helper()
		clock.Set(t0.Add(d))
		if err := s.Compact(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	type counts struct{ raw, min, hour, events int }
	got := func() counts {
		return counts{countRows(t, s, "raw"), countRows(t, s, "agg_1m"), countRows(t, s, "agg_1h"), countRows(t, s, "events")}
	}
	for _, c := range []struct {
		name  string
		after time.Duration
		want  counts
	}{
		{"within every retention", 23 * time.Hour, counts{1, 1, 1, 1}},
		{"raw expired", 24*time.Hour + time.Second, counts{0, 1, 1, 1}},
		{"minutes expired", 7*24*time.Hour + time.Second, counts{0, 0, 1, 1}},
		{"everything expired", 90*24*time.Hour + time.Second, counts{0, 0, 0, 0}},
	} {
		compactAt(c.after)
		if g := got(); g != c.want {
			t.Errorf("%s: rows (raw, 1m, 1h, events) = %v, want %v", c.name, g, c.want)
		}
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "history.db")
	clock := &fakeClock{now: t0}
	s, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := range 10 {
		s.Add(mac, metrics(t0.Add(time.Duration(i-10)*5*time.Second), float64(i)))
	}
	s.AddEvent(Event{MAC: mac, Kind: EventLocate, By: "admin"})
	// No Flush: stopping Run must commit what is queued.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s2 := openStore(t, path, clock, false, nil)
	pts, err := s2.Series(t.Context(), mac, MetricLoad1, t0.Add(-time.Minute), t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 10 || pts[9].Max != 9 {
		t.Errorf("after reopen: %d points (%v), want 10 ending at 9", len(pts), pts)
	}
	evs, err := s2.Events(t.Context(), mac, time.Time{}, 10)
	if err != nil || len(evs) != 1 || evs[0].Kind != EventLocate || evs[0].By != "admin" {
		t.Errorf("events after reopen: %v, %v", evs, err)
	}
}

// TestQueueFullDownsamples: a sample that finds the queue full is not dropped: the latest one
// of its source is held aside for the writer, and those it replaces are counted and logged
// (rate-limited). An event that finds the queue full is dropped and counted.
func TestQueueFullDownsamples(t *testing.T) {
	clock := &fakeClock{now: t0}
	var logs testlog.Buffer
	// No Run: nothing drains the queue of 2.
	s := openStore(t, "", clock, false, func(o *Options) {
		o.QueueSize = 2
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	m := func(i int) topics.Metrics { // 2 samples
		return topics.Metrics{V: topics.Version, TS: t0.Add(time.Duration(i-10) * time.Second), Load1: f64(float64(i)), CPUPercent: f64(2)}
	}
	for i := range 5 {
		s.Add(mac, m(i)) // 0 and 1 queued; 2, 3, 4 held aside in turn
	}
	s.Add(mac, m(3)) // older than the one held: not kept
	s.AddEvent(Event{Kind: EventOnline})
	st := s.Stats()
	if st.Queued != 10 || st.Downsampled != 6 || st.Dropped != 1 {
		t.Errorf("Queued %d Downsampled %d Dropped %d, want 10, 6 (payloads 2, 3 and the late 3) and 1 (the event)",
			st.Queued, st.Downsampled, st.Dropped)
	}
	if n := strings.Count(logs.String(), "history queue full"); n != 1 {
		t.Errorf("%d queue-full warnings, want 1 (rate-limited):\n%s", n, logs.String())
	}
	// After LogEvery the next one is logged again, with the count held back.
	clock.Set(t0.Add(DefaultLogEvery))
	s.Add(mac, m(5))
	if out := logs.String(); strings.Count(out, "history queue full") != 2 || !strings.Contains(out, "suppressed_warnings=4") {
		t.Errorf("after LogEvery, want a second warning with suppressed_warnings=4 (3 samples and the event held back):\n%s", out)
	}

	// Once a writer runs, the queued samples and the latest held aside are committed.
	startRun(t, s)
	flush(t, s)
	if got := s.Stats().Written; got != 6 {
		t.Errorf("Written = %d, want 6 (payloads 0, 1 and 5)", got)
	}
	pts, err := s.Series(t.Context(), mac, MetricLoad1, t0.Add(-time.Minute), t0, 100)
	if err != nil || len(pts) != 3 || pts[2].Max != 5 {
		t.Errorf("load_1 points %v, %v: want 3 ending with the latest sample, 5", pts, err)
	}
}

// TestFloodKeepsEveryPi: a flood faster than the writer loses no Pi: each one's latest sample
// is stored, and the counters account for every sample, stored or downsampled.
func TestFloodKeepsEveryPi(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, func(o *Options) { o.QueueSize = 64; o.BatchSize = 16 })
	const pis, rounds = 300, 20
	for r := range rounds {
		for i := range pis {
			s.Add(fmtMAC(i), topics.Metrics{V: topics.Version, TS: t0.Add(time.Duration(r-rounds) * time.Second), Load1: f64(float64(r))})
		}
	}
	flush(t, s)
	st := s.Stats()
	if st.Downsampled == 0 {
		t.Fatalf("no sample downsampled (%+v): the flood did not outrun the writer", st)
	}
	if st.Dropped != 0 || st.Failed != 0 || st.Written+st.Downsampled != pis*rounds {
		t.Errorf("%+v: want nothing dropped nor failed, and Written + Downsampled = %d", st, pis*rounds)
	}
	for i := range pis {
		pts, err := s.Series(t.Context(), fmtMAC(i), MetricLoad1, t0.Add(-time.Minute), t0, 100)
		if err != nil || len(pts) == 0 || pts[len(pts)-1].Max != rounds-1 {
			t.Fatalf("Pi %d: points %v, %v: want its latest sample, %d, stored", i, pts, err, rounds-1)
		}
	}
}

func TestClockSkew(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	s.Add(mac, metrics(t0.Add(48*time.Hour), 1))  // clock far ahead: stored at Now
	s.Add(mac, metrics(t0.Add(-48*time.Hour), 2)) // older than raw retention: dropped
	s.Add(mac, metrics(time.Time{}, 3))           // no timestamp: Now, duplicate of the first
	flush(t, s)
	st := s.Stats()
	if st.Stale != 1 || st.Written != 1 {
		t.Errorf("Stale %d Written %d, want 1 and 1", st.Stale, st.Written)
	}
	pts, _ := s.Series(t.Context(), mac, MetricLoad1, t0.Add(-time.Minute), t0, 100)
	if len(pts) != 1 || !pts[0].T.Equal(t0) || pts[0].Avg != 1 {
		t.Errorf("points = %v, want one at %v of 1", pts, t0)
	}
}

func TestResolutionChoice(t *testing.T) {
	now := t0
	s := openStore(t, "", &fakeClock{now: now}, false, nil)
	for _, c := range []struct {
		name      string
		from      time.Time
		to        time.Time
		maxPoints int
		want      Resolution
	}{
		{"1 h chart reads raw", now.Add(-time.Hour), now, 300, ResRaw},
		{"1 h of 60 points reads minutes", now.Add(-time.Hour), now, 60, ResMinute},
		{"24 h chart reads minutes", now.Add(-24 * time.Hour), now, 300, ResMinute},
		{"24 h at full raw resolution", now.Add(-24 * time.Hour), now, 20000, ResRaw},
		{"7 d chart reads minutes", now.Add(-7 * 24 * time.Hour), now, 1000, ResMinute},
		{"7 d of 100 points reads hours", now.Add(-7 * 24 * time.Hour), now, 100, ResHour},
		{"30 d reads hours", now.Add(-30 * 24 * time.Hour), now, 1000, ResHour},
		{"1 h two days ago: raw is gone", now.Add(-48 * time.Hour), now.Add(-47 * time.Hour), 300, ResMinute},
		{"1 h two weeks ago: minutes are gone", now.Add(-14 * 24 * time.Hour), now.Add(-14*24*time.Hour + time.Hour), 300, ResHour},
		{"a year: the coarsest there is", now.Add(-365 * 24 * time.Hour), now, 1000, ResHour},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := s.choose(c.from, c.to, c.maxPoints)
			if p.tier.res != c.want {
				t.Errorf("resolution %s (width %d s), want %s", p.tier.res, p.width, c.want)
			}
			if p.tier.step > 0 && p.width%p.tier.step != 0 {
				t.Errorf("width %d is not a multiple of the %s step", p.width, p.tier.res)
			}
		})
	}
}

func TestMaxPointsRespected(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	clock := &fakeClock{now: now}
	s := openStore(t, "", clock, true, func(o *Options) { o.BatchSize = 5000 })
	// 2 h of 4 s samples, value = seconds since t0, so each bucket's min/max are its edges.
	for i := 0; i < 7200; i += 4 {
		s.Add(mac, metrics(t0.Add(time.Duration(i)*time.Second), float64(i)))
	}
	flush(t, s)
	if st := s.Stats(); st.Written != 1800 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 1800 written", st)
	}
	for _, from := range []time.Time{t0, t0.Add(17 * time.Second), now.Add(-time.Hour), t0.Add(-time.Hour)} {
		for _, maxPoints := range []int{1, 2, 3, 7, 59, 61, 333, 1800, 10000} {
			pts, err := s.Series(t.Context(), mac, MetricLoad1, from, now, maxPoints)
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) == 0 || len(pts) > maxPoints {
				t.Errorf("from %v maxPoints %d: %d points", from.Format(time.TimeOnly), maxPoints, len(pts))
				continue
			}
			// Buckets are ordered and each sample is in exactly one: min of the first is the
			// first sample in range (or the first of its minute), max of the last is the last.
			for i := 1; i < len(pts); i++ {
				if !pts[i].T.After(pts[i-1].T) || pts[i].Min <= pts[i-1].Max {
					t.Errorf("from %v maxPoints %d: points %d and %d overlap: %v %v", from.Format(time.TimeOnly), maxPoints, i-1, i, pts[i-1], pts[i])
				}
			}
			if last := pts[len(pts)-1]; last.Max != 7196 {
				t.Errorf("from %v maxPoints %d: last max %v, want 7196", from.Format(time.TimeOnly), maxPoints, last.Max)
			}
		}
	}
	// maxPoints 0 means DefaultMaxPoints.
	pts, _ := s.Series(t.Context(), mac, MetricLoad1, t0, now, 0)
	if len(pts) == 0 || len(pts) > DefaultMaxPoints {
		t.Errorf("maxPoints 0: %d points", len(pts))
	}
	// Raw resolution when it fits: one point per sample.
	pts, _ = s.Series(t.Context(), mac, MetricLoad1, now.Add(-100*time.Second), now, 1000)
	if len(pts) != 25 || pts[0].Min != 7100 {
		t.Errorf("100 s at raw resolution: %d points from %v, want 25 from 7100", len(pts), pts)
	}
	if _, err := s.Series(t.Context(), mac, MetricLoad1, now, t0, 10); err == nil {
		t.Error("to before from: want an error")
	}
}

func TestEvents(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	other := "dca632000001"
	s.AddEvent(Event{Time: t0, MAC: mac, Row: "a", Kind: EventButton, Detail: "short", By: "agent"})
	s.AddEvent(Event{Time: t0.Add(10 * time.Millisecond), MAC: mac, Row: "a", Kind: EventSelect, By: "agent"})
	s.AddEvent(Event{Time: t0.Add(time.Second), MAC: other, Row: "b", Kind: EventOffline, By: "system"})
	s.AddEvent(Event{Time: t0.Add(2 * time.Second), MAC: mac, Row: "a", Kind: EventLocate, Detail: "blink 10", By: "alice"})
	flush(t, s)

	kinds := func(evs []Event) string {
		var k []string
		for _, e := range evs {
			k = append(k, e.Kind)
		}
		return strings.Join(k, ",")
	}
	for _, c := range []struct {
		name  string
		mac   string
		since time.Time
		limit int
		want  string
	}{
		{"one Pi, newest first", mac, time.Time{}, 0, "locate,select,button"},
		{"every Pi", "", time.Time{}, 0, "locate,offline,select,button"},
		{"since", mac, t0.Add(10 * time.Millisecond), 0, "locate,select"},
		{"limit", "", time.Time{}, 2, "locate,offline"},
		{"unknown Pi", "000000000000", time.Time{}, 0, ""},
	} {
		evs, err := s.Events(t.Context(), c.mac, c.since, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := kinds(evs); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	evs, _ := s.Events(t.Context(), mac, t0.Add(2*time.Second), 1)
	want := Event{ID: 4, Time: t0.Add(2 * time.Second), MAC: mac, Row: "a", Kind: EventLocate, Detail: "blink 10", By: "alice"}
	if len(evs) != 1 || evs[0] != want {
		t.Errorf("event = %+v, want %+v", evs, want)
	}
}

func TestFullDisk(t *testing.T) {
	clock := &fakeClock{now: t0}
	var logs testlog.Buffer
	s := openStore(t, "", clock, true, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.maxConns = 1 // the page limit below is per connection
	})
	s.Add(mac, metrics(t0.Add(-time.Minute), 1))
	flush(t, s)

	// SQLite reports SQLITE_FULL when the file may not grow, exactly as on a full disk.
	var pages int
	if err := s.db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages)); err != nil {
		t.Fatal(err)
	}
	var lost int
	for i := range 2000 {
		s.Add(fmtMAC(i), topics.Metrics{V: topics.Version, TS: t0, Load1: f64(1), CPUPercent: f64(2), CPUTempC: f64(40)})
		lost += 3
	}
	// The writer may commit (and fail) some batches on its own before Flush, so Flush itself may
	// find nothing left; the failures must show in the counter and the log either way.
	if err := s.Flush(t.Context()); err != nil && !strings.Contains(err.Error(), "full") {
		t.Fatalf("Flush on a full disk: err = %v, want nil or one that says full", err)
	}
	if st := s.Stats(); st.Failed != uint64(lost) {
		t.Errorf("Failed = %d, want %d", st.Failed, lost)
	}
	if !strings.Contains(logs.String(), "free space in the data directory") {
		t.Errorf("log does not tell what to do:\n%s", logs.String())
	}
	// What is stored is still served.
	pts, err := s.Series(t.Context(), mac, MetricLoad1, t0.Add(-2*time.Minute), t0, 1000)
	if err != nil || len(pts) != 1 {
		t.Errorf("Series on a full disk: %v, %v; want the stored point", pts, err)
	}
	// Space comes back: writing resumes.
	if _, err := s.db.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	s.Add(mac, metrics(t0, 2))
	flush(t, s)
	if pts, _ := s.Series(t.Context(), mac, MetricLoad1, t0.Add(-2*time.Minute), t0, 1000); len(pts) != 2 {
		t.Errorf("after space is freed: %v, want 2 points", pts)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(dir, "garbage.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "not a usable SQLite database") || !strings.Contains(err.Error(), "move the file aside") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("locked by another process", func(t *testing.T) {
		path := filepath.Join(dir, "locked.db")
		holder, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		// Another writer holding the write lock, as a second pirack would mid-commit.
		conn, err := holder.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(context.Background(), "ROLLBACK")
		_, err = Open(path, Options{LockTimeout: 50 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestLifecycle(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, false, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	flush(t, s) // Run is active once it answers
	if err := s.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	s.Add(mac, metrics(t0, 1))
	// Close stops Run, which commits first.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	if got := s.Stats().Written; got != 1 {
		t.Errorf("Written = %d, want 1", got)
	}
	s.Add(mac, metrics(t0, 1)) // ignored, no panic
	s.AddEvent(Event{Kind: EventOnline})
	if err := s.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Series(t.Context(), mac, MetricLoad1, t0, t0, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Series after Close: %v, want ErrClosed", err)
	}
	if err := s.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
}

func TestFlushWithoutRun(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, false, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Flush(ctx); err == nil || !strings.Contains(err.Error(), "Run") {
		t.Errorf("Flush without Run: %v, want an error naming Run", err)
	}
}

func TestOpenCreatesOwnerOnlyFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), mode)
		}
	}
}
