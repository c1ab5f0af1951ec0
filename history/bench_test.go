package history

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func fmtMAC(i int) string { return fmt.Sprintf("b827eb%06x", i) }

var piMetrics = []string{
	MetricLoad1, MetricCPUPercent, MetricCPUTempC, MetricMemAvailable, MetricMemTotal,
	MetricDiskFree, MetricDiskTotal,
}

// hostPi is the payload of a Pi 5 with an NVMe drive on Ethernet and Wi-Fi: the host series
// it adds (37) to the seven above.
func hostPi() topics.Metrics {
	r := f64(1500)
	return topics.Metrics{
		CPUFreqMHz: f64(2400), Procs: new(int), MemUsedBytes: u64(1 << 30), MemCachedBytes: u64(2 << 30), MemBuffersBytes: u64(60 << 20),
		SwapTotalBytes: u64(200 << 20), SwapUsedBytes: u64(0), CPUPercentCores: []float64{3, 5, 1, 12},
		Temps: []topics.Temp{{Sensor: "cpu-thermal", C: 51}, {Sensor: "nvme Composite", C: 39}},
		Net: []topics.NetIface{{Name: "eth0", RxBytesPerS: r, TxBytesPerS: r, RxPacketsPerS: r, TxPacketsPerS: r},
			{Name: "wlan0", RxBytesPerS: r, TxBytesPerS: r, RxPacketsPerS: r, TxPacketsPerS: r}},
		Disks: []topics.DiskIO{{Name: "mmcblk0", ReadBytesPerS: r, WriteBytesPerS: r, BusyPercent: f64(1)},
			{Name: "nvme0n1", ReadBytesPerS: r, WriteBytesPerS: r, BusyPercent: f64(1)}},
		Filesystems: []topics.Filesystem{{Mount: "/", TotalBytes: 32 << 30, UsedBytes: 9 << 30, FreeBytes: 21 << 30},
			{Mount: "/boot/firmware", TotalBytes: 512 << 20, UsedBytes: 60 << 20, FreeBytes: 450 << 20},
			{Mount: "/mnt/ssd", TotalBytes: 500 << 30, UsedBytes: 100 << 30, FreeBytes: 400 << 30}},
	}
}

// hostPiMetrics are the names of hostPi's series.
func hostPiMetrics() []string {
	var out []string
	for _, x := range hostSeries(hostPi()) {
		out = append(out, x.metric)
	}
	return out
}

// fixture creates at path, in bulk and inside SQLite, the history nPis Pis have at now once
// every tier is full at the default retention: a raw row per interval for 24 h, a 1-minute row
// for 7 days, a 1-hour row for 90 days, for each of the seven Pi metrics. It writes without a
// journal (the file is thrown away on failure) and returns the store opened on it.
func fixture(tb testing.TB, path string, nPis int, now time.Time, interval time.Duration) *Store {
	tb.Helper()
	return fixtureOf(tb, path, nPis, now, interval, piMetrics)
}

// fixtureOf is fixture with the given series per Pi.
func fixtureOf(tb testing.TB, path string, nPis int, now time.Time, interval time.Duration, metrics []string) *Store {
	tb.Helper()
	return bulkFixtureOf(tb, path, nPis, now, metrics, func(tx *sql.Tx) {
		// Values shaped like the real ones: fractions stay REAL (8 bytes), byte counts are
		// integers SQLite stores in 6. Series ids were given in metrics order, so
		// (id-1)%len(metrics) is the metric; those named *_bytes are byte counts. Arithmetic
		// instead of random(): it is several times cheaper, and the fixture is then the same on
		// every run.
		var counts []string
		for i, m := range metrics {
			if strings.Contains(m, "_bytes") && !strings.Contains(m, "_per_s") {
				counts = append(counts, strconv.Itoa(i))
			}
		}
		value := fmt.Sprintf(`CASE WHEN (s.id - 1) %% %d IN (%s) THEN 3000000000 + (ts.t * 7919 + s.id * 104729) %% 1000000000
		ELSE ((ts.t / 5 * 7919 + s.id * 104729) %% 100000) / 1000.0 END`, len(metrics), strings.Join(counts, ","))
		end := now.Unix()
		// Rows go in key order, so every insert appends to the b-tree's right edge: the fastest
		// way in, and it packs pages fully (the writer's time-ordered inserts leave them a little
		// emptier; BenchmarkDiskPerPi measures that case).
		for _, q := range []struct {
			sql  string
			step int64
			keep time.Duration
		}{
			{`INSERT INTO raw (series, t, v) SELECT s.id, ts.t, ` + value + ` FROM series s CROSS JOIN ts`,
				int64(interval / time.Second), DefaultRawRetention},
			// lo, sum and hi need not agree here: only their storage size matters.
			{`INSERT INTO agg_1m (series, t, lo, sum, hi, n) SELECT s.id, ts.t, ` + value + `, 12 * ` + value + `, ` + value + `, 12
			FROM series s CROSS JOIN ts`, 60, DefaultMinuteRetention},
			{`INSERT INTO agg_1h (series, t, lo, sum, hi, n) SELECT s.id, ts.t, ` + value + `, 720 * ` + value + `, ` + value + `, 720
			FROM series s CROSS JOIN ts`, 3600, DefaultHourRetention},
		} {
			start := floorDiv(end-int64(q.keep/time.Second), q.step) + q.step
			cte := `WITH RECURSIVE ts(t) AS (SELECT ?1 UNION ALL SELECT t + ?2 FROM ts WHERE t + ?2 <= ?3) `
			if _, err := tx.Exec(cte+q.sql, start, q.step, end); err != nil {
				tb.Fatalf("fixture: %v", err)
			}
		}
	})
}

// bulkFixture creates at path, without a journal (the file is thrown away on failure), the
// schema and the series of nPis Pis' seven metrics, lets fill add rows in the same
// transaction, and returns the store opened on it at now.
func bulkFixture(tb testing.TB, path string, nPis int, now time.Time, fill func(tx *sql.Tx)) *Store {
	tb.Helper()
	return bulkFixtureOf(tb, path, nPis, now, piMetrics, fill)
}

func bulkFixtureOf(tb testing.TB, path string, nPis int, now time.Time, metrics []string, fill func(tx *sql.Tx)) *Store {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(schema); err != nil {
		tb.Fatal(err)
	}
	for i := range nPis {
		for _, m := range metrics {
			if _, err := tx.Exec("INSERT INTO series (source, metric) VALUES (?, ?)", fmtMAC(i), m); err != nil {
				tb.Fatal(err)
			}
		}
	}
	fill(tx)
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	s, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// fileBytes is the database's size once the WAL is folded in, without free pages.
func fileBytes(tb testing.TB, s *Store) int64 {
	tb.Helper()
	if _, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		tb.Fatal(err)
	}
	var pages, free, size int64
	for q, dst := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
		if err := s.db.QueryRow(q).Scan(dst); err != nil {
			tb.Fatal(err)
		}
	}
	return (pages - free) * size
}

// BenchmarkSeries7Days100Pis: one Pi's 7-day chart of one metric out of 100 Pis' full history.
func BenchmarkSeries7Days100Pis(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	// Every Pi with its host series too (a Pi 5 with NVMe, Ethernet and Wi-Fi: 44 series).
	s := fixtureOf(b, filepath.Join(b.TempDir(), "history.db"), 100, now, 5*time.Second, append(slices.Clone(piMetrics), hostPiMetrics()...))
	defer s.Close()
	b.Logf("fixture: 100 Pis in %v, %.0f MB", time.Since(start).Round(time.Millisecond), float64(fileBytes(b, s))/1e6)

	for _, c := range []struct {
		name      string
		span      time.Duration
		maxPoints int
	}{
		{"7d-1000pts", 7 * 24 * time.Hour, 1000},
		{"7d-300pts", 7 * 24 * time.Hour, 300},
		{"24h-300pts", 24 * time.Hour, 300},
		{"1h-720pts", time.Hour, 720},
		{"90d-1000pts", 90 * 24 * time.Hour, 1000},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			i := 0
			for b.Loop() {
				metric := MetricCPUTempC
				if i%2 == 1 {
					metric = PerDevice(MetricNetRx, "eth0") // a host series as often
				}
				pts, err := s.Series(b.Context(), fmtMAC(i%100), metric, now.Add(-c.span), now, c.maxPoints)
				if err != nil {
					b.Fatal(err)
				}
				n = len(pts)
				i += 37 // odd: the metric alternates
			}
			b.ReportMetric(float64(n), "points")
		})
	}
}

// BenchmarkAdd: 1,000 Pis reporting every 5 s, through the queue and the writer. One op is one
// interval of the whole fleet (1,000 payloads of 7 metrics), committed.
func BenchmarkAdd(b *testing.B) {
	const pis = 1000
	var now time.Time = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: now}
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	m := topics.Metrics{
		V: topics.Version, Load1: f64(0.42), CPUPercent: f64(13.7), CPUTempC: f64(51.3),
		MemTotalBytes: u64(4 << 30), MemAvailableBytes: u64(3 << 30),
		DiskTotalBytes: u64(32 << 30), DiskFreeBytes: u64(21 << 30),
	}
	macs := make([]string, pis)
	for i := range macs {
		macs[i] = fmtMAC(i)
	}
	var ops int
	start := time.Now()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		clock.Set(now)
		m.TS = now
		for _, mac := range macs {
			s.Add(mac, m)
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	elapsed := time.Since(start)
	st := s.Stats()
	if st.Dropped != 0 || st.Failed != 0 {
		b.Fatalf("dropped %d, failed %d", st.Dropped, st.Failed)
	}
	b.ReportMetric(float64(st.Written)/elapsed.Seconds(), "points/s")
	b.ReportMetric(float64(ops*pis)/elapsed.Seconds(), "payloads/s")
}

// BenchmarkAddEnqueue is what Add costs the caller (the broker's publish path).
func BenchmarkAddEnqueue(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{QueueSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := topics.Metrics{V: topics.Version, TS: time.Now(), Load1: f64(0.42), CPUPercent: f64(13.7), CPUTempC: f64(51.3),
		MemTotalBytes: u64(4 << 30), MemAvailableBytes: u64(3 << 30), DiskTotalBytes: u64(32 << 30), DiskFreeBytes: u64(21 << 30)}
	for b.Loop() {
		s.Add(mac, m) // the queue of 1 is full after the first: this measures the drop path too
	}
}

// BenchmarkDiskPerPi reports the file size per Pi at the default retention once every tier is
// full ("full"), and after 6 more hours of the real writer with retention running every 5
// minutes ("churned"), which adds the page fragmentation of time-ordered inserts and deletes.
func BenchmarkDiskPerPi(b *testing.B) {
	for _, c := range []struct {
		name string
		host bool
	}{{"fixed-7", false}, {"with-host-44", true}} {
		b.Run(c.name, func(b *testing.B) { diskPerPi(b, c.host) })
	}
}

// diskPerPi measures the file per Pi with the seven fixed series, or with a Pi 5's host
// series as well (hostPi).
func diskPerPi(b *testing.B, host bool) {
	const pis = 10
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	metrics := piMetrics
	if host {
		metrics = append(slices.Clone(piMetrics), hostPiMetrics()...)
	}
	for b.Loop() {
		s := fixtureOf(b, filepath.Join(b.TempDir(), "history.db"), pis, start, 5*time.Second, metrics)
		b.ReportMetric(float64(fileBytes(b, s))/pis/1e6, "MB/pi-full")
		s.Close()

		clock := &fakeClock{now: start}
		s, err := Open(s.path, Options{Now: clock.Now, CompactInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		m := topics.Metrics{V: topics.Version, Load1: f64(0.42), CPUPercent: f64(13.7), CPUTempC: f64(51.3),
			MemTotalBytes: u64(4 << 30), DiskTotalBytes: u64(32 << 30)}
		if host {
			h := hostPi()
			h.V, h.Load1, h.CPUPercent, h.CPUTempC, h.MemTotalBytes, h.DiskTotalBytes = m.V, m.Load1, m.CPUPercent, m.CPUTempC, m.MemTotalBytes, m.DiskTotalBytes
			m = h
		}
		for i := 1; i <= 6*720; i++ {
			now := start.Add(time.Duration(i) * 5 * time.Second)
			clock.Set(now)
			m.TS = now
			*m.Load1 = float64(i%400) / 100
			m.MemAvailableBytes = u64(3<<30 + uint64(i*4096))
			m.DiskFreeBytes = u64(21<<30 - uint64(i*4096))
			m.DiskUsedBytes = u64(9<<30 + uint64(i*4096)) // as agents send it since issue 15
			for p := range pis {
				s.Add(fmtMAC(p), m)
			}
			if i%12 != 0 {
				continue
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if i%60 == 0 {
				if err := s.Compact(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		cancel()
		<-done
		b.ReportMetric(float64(fileBytes(b, s))/pis/1e6, "MB/pi-churned")
		s.Close()
	}
}

// minuteFixture creates at path the 1-minute tier of nPis Pis' seven metrics over the span
// before now (and their series), in bulk, and returns the store opened on it. It is what
// Sparklines reads; the other tiers would only make the fixture slower to build.
func minuteFixture(tb testing.TB, path string, nPis int, now time.Time, span time.Duration) *Store {
	tb.Helper()
	return bulkFixture(tb, path, nPis, now, func(tx *sql.Tx) {
		end := floorDiv(now.Unix(), 60)
		start := end - int64(span/time.Second) + 60
		const v = `((ts.t / 60 * 7919 + s.id * 104729) % 100000) / 1000.0`
		if _, err := tx.Exec(`WITH RECURSIVE ts(t) AS (SELECT ?1 UNION ALL SELECT t + 60 FROM ts WHERE t + 60 <= ?2)
		INSERT INTO agg_1m (series, t, lo, sum, hi, n)
		SELECT s.id, ts.t, `+v+`, 12 * `+v+`, `+v+`, 12 FROM series s CROSS JOIN ts`, start, end); err != nil {
			tb.Fatalf("fixture: %v", err)
		}
	})
}

// BenchmarkSparklines1000Pis: the sparkline of one metric for every tile of a 1,000-Pi rack
// page, one query, from an hour of 1-minute buckets of seven metrics per Pi.
func BenchmarkSparklines1000Pis(b *testing.B) {
	const pis = 1000
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	start := time.Now()
	s := minuteFixture(b, filepath.Join(b.TempDir(), "history.db"), pis, now, time.Hour)
	defer s.Close()
	b.Logf("fixture: %d Pis x 1 h of minutes in %v", pis, time.Since(start).Round(time.Millisecond))
	to := now.Truncate(time.Minute).Add(time.Minute)
	for _, c := range []struct {
		name    string
		buckets int
	}{{"60x1min", 60}, {"12x5min", 12}} {
		b.Run(c.name, func(b *testing.B) {
			var got map[string][]*float64
			for b.Loop() {
				var err error
				got, err = s.Sparklines(context.Background(), MetricLoad1, to.Add(-time.Hour), to, c.buckets)
				if err != nil {
					b.Fatal(err)
				}
			}
			if len(got) != pis || got[fmtMAC(0)][c.buckets-1] == nil {
				b.Fatalf("%d sparklines, want %d with a last value", len(got), pis)
			}
			b.ReportMetric(float64(len(got)), "pis")
		})
	}
}
