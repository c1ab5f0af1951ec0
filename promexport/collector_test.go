package promexport

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

var update = flag.Bool("update", false, "rewrite testdata/rack.prom from the collector's output")

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	macA = "b827eb3f1a2c" // placed in r1 slot 1, named, every metric, throttled
	macB = "dca6320a0b0c" // unplaced in r1, a few metrics, no throttling flags read
	macC = "e45f01aabbcc" // r2, offline, no metrics
)

var testUsers = dashboardtest.Users{
	"viewer": {Password: "viewer-pw", Role: auth.RoleViewer},
	"robot":  {Password: "robot-pw", Role: auth.RoleAutomation},
}

// source is a Source over parts a test built; its fields may be set after the exporter.
type source struct {
	rack    *dashboard.Rack
	broker  *broker.Broker
	history *history.Store
}

func (s *source) Rack() *dashboard.Rack   { return s.rack }
func (s *source) Broker() *broker.Broker  { return s.broker }
func (s *source) History() *history.Store { return s.history }

// rig is a real dashboard on an in-memory bus: what it is sent, the collector sees.
type rig struct {
	src    *source
	layout *layout.Store
	srv    *dashboard.Server
	bus    *dashboardtest.Bus
}

// newRig builds the dashboard with the exporter's route mounted (routes may be nil), at t0.
func newRig(t testing.TB, configure func(*dashboard.Config), routes ...dashboard.Route) *rig {
	t.Helper()
	engine, err := alerts.New(alerts.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	lay, err := layout.Open("")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{src: &source{}, bus: &dashboardtest.Bus{}, layout: lay}
	cfg := dashboard.Config{Bus: r.bus, Auth: testUsers, Now: func() time.Time { return t0 }, Layout: lay, Alerts: engine, Routes: routes}
	if configure != nil {
		configure(&cfg)
	}
	if r.srv, err = dashboard.New(cfg); err != nil {
		t.Fatal(err)
	}
	r.src.rack = r.srv.Rack()
	return r
}

func (r *rig) publish(t testing.TB, topic string, p topics.Validator) {
	t.Helper()
	b, err := topics.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(context.Background(), bus.Message{Topic: topic, Payload: b, QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func online(host string) topics.Status {
	return topics.Status{V: 1, State: topics.StateOnline, TS: t0, Session: "s-" + host, Hostname: host,
		IP: "10.0.0.7", Model: "Raspberry Pi 4 Model B", AgentVersion: "0.1.0", BootTime: t0.Add(-time.Hour)}
}

// fill gives the rig a small rack: three Pis in two rows, the first placed in a named slot,
// power for both rows, and the throttled alert of the first Pi.
func (r *rig) fill(t *testing.T) {
	t.Helper()
	if _, err := r.layout.Put("r1", 1, macA); err != nil {
		t.Fatal(err)
	}
	if err := r.layout.Name("r1", 1, "db-1"); err != nil {
		t.Fatal(err)
	}
	r.publish(t, topics.StatusTopic("r1", macA), online("pi-a"))
	r.publish(t, topics.MetricsTopic("r1", macA), topics.Metrics{V: 1, Seq: 1, TS: t0,
		Load1: ptr(0.5), Load5: ptr(0.25), Load15: ptr(0.125), CPUCount: ptr(4), CPUPercent: ptr(12.5), CPUTempC: ptr(48.5),
		MemTotalBytes: ptr[uint64](4 << 30), MemAvailableBytes: ptr[uint64](3 << 30),
		DiskTotalBytes: ptr[uint64](32 << 30), DiskFreeBytes: ptr[uint64](20 << 30),
		ThrottledNow: []string{topics.ThrottleUnderVoltage}, ThrottledSinceBoot: []string{topics.ThrottleUnderVoltage, topics.ThrottleThrottled},
		UptimeS: ptr[uint64](3600), NetRxBytes: ptr[uint64](1000), NetTxBytes: ptr[uint64](2000),
		Temps: []topics.Temp{{Sensor: "cpu-thermal", C: 48.5}, {Sensor: "nvme Composite", C: 41.85, MaxC: ptr(82.85)}},
		Filesystems: []topics.Filesystem{{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: 32 << 30, UsedBytes: 11 << 30, FreeBytes: 20 << 30},
			{Mount: "/mnt/ssd", Device: "/dev/sda1", Type: "ext4", TotalBytes: 500 << 30, UsedBytes: 100 << 30, FreeBytes: 375 << 30}}})
	r.publish(t, topics.StatusTopic("r1", macB), online("pi-b"))
	r.publish(t, topics.MetricsTopic("r1", macB), topics.Metrics{V: 1, Seq: 1, TS: t0, Load1: ptr(1.5)})
	r.publish(t, topics.StatusTopic("r2", macC), topics.Status{V: 1, State: topics.StateOffline, TS: t0})
	r.publish(t, topics.PowerTopic("r1"), topics.Power{V: 1, TS: t0, Watts: ptr(12.5), Volts: ptr(5.1), Amps: ptr(2.45)})
	r.publish(t, topics.PowerTopic("r2"), topics.Power{V: 1, TS: t0, Watts: ptr(3.0)})
}

// ownNames are the collector's metrics but pirack_build_info, whose labels are the build's.
func ownNames() []string {
	var out []string
	for _, n := range MetricNames() {
		if n != "pirack_build_info" {
			out = append(out, n)
		}
	}
	return out
}

// The collector's exposition of a known rack, held in testdata/rack.prom (go test -update
// rewrites it; review the diff).
func TestCollectorGolden(t *testing.T) {
	r := newRig(t, nil)
	r.fill(t)
	c := NewCollector(r.src)
	golden := filepath.Join("testdata", "rack.prom")
	if *update {
		got, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, ownNames()...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if err := testutil.CollectAndCompare(c, bytes.NewReader(want), ownNames()...); err != nil {
		t.Fatal(err)
	}
}

// The exposition passes client_golang's linter (promtool check metrics runs the same rules;
// the Prometheus test runs promtool itself).
func TestCollectorLint(t *testing.T) {
	r := newRig(t, nil)
	r.fill(t)
	problems, err := testutil.CollectAndLint(NewCollector(r.src))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// Nothing is cached: each scrape reads the rack as it is.
func TestCollectorReadsAtScrapeTime(t *testing.T) {
	r := newRig(t, nil)
	c := NewCollector(r.src)
	if n := testutil.CollectAndCount(c, "pirack_pi_up"); n != 0 {
		t.Fatalf("empty rack: %d pirack_pi_up series, want none", n)
	}
	r.publish(t, topics.StatusTopic("r1", macA), online("pi-a"))
	r.publish(t, topics.MetricsTopic("r1", macA), topics.Metrics{V: 1, Seq: 1, TS: t0, Load1: ptr(0.5)})
	want := `
# HELP pirack_pi_load1 1-minute load average.
# TYPE pirack_pi_load1 gauge
pirack_pi_load1{mac="b827eb3f1a2c",name="pi-a",row="r1",slot=""} 0.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pirack_pi_load1"); err != nil {
		t.Fatal(err)
	}
	r.publish(t, topics.MetricsTopic("r1", macA), topics.Metrics{V: 1, Seq: 2, TS: t0.Add(time.Second), Load1: ptr(2.0)})
	if err := testutil.CollectAndCompare(c, strings.NewReader(strings.Replace(want, "} 0.5", "} 2", 1)), "pirack_pi_load1"); err != nil {
		t.Fatalf("after new metrics: %v", err)
	}
}

// With a history store and no broker (a foreign broker), the history's counters are
// exported and the broker's are absent.
func TestCollectorSources(t *testing.T) {
	h, err := history.Open(filepath.Join(t.TempDir(), "history.db"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	r := newRig(t, func(c *dashboard.Config) { c.History = h })
	r.src.history = h
	r.publish(t, topics.MetricsTopic("r1", macA), topics.Metrics{V: 1, Seq: 1, TS: time.Now(), Load1: ptr(0.5)})
	c := NewCollector(r.src)
	if n := testutil.CollectAndCount(c, "pirack_broker_publishes_refused_total"); n != 0 {
		t.Errorf("no broker: %d broker series, want none", n)
	}
	want := `
# HELP pirack_history_samples_queued_total Samples (one metric value each) accepted for the history.
# TYPE pirack_history_samples_queued_total counter
pirack_history_samples_queued_total 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pirack_history_samples_queued_total"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("a pedantic registry refuses the scrape: %v", err)
	}
}

// BenchmarkScrape1000Pis is one scrape of a rack of 1,000 Pis with every metric, through the
// handler: read, gather, encode and gzip (docs/prometheus.md quotes it).
func BenchmarkScrape1000Pis(b *testing.B) {
	r := newRig(b, nil)
	for i := range 1000 {
		mac := fmt.Sprintf("b827eb%06x", i)
		row := fmt.Sprintf("r%d", i/24)
		r.publish(b, topics.StatusTopic(row, mac), online(fmt.Sprintf("pi-%d", i)))
		r.publish(b, topics.MetricsTopic(row, mac), topics.Metrics{V: 1, Seq: 1, TS: t0,
			Load1: ptr(0.5), Load5: ptr(0.25), Load15: ptr(0.125), CPUCount: ptr(4), CPUPercent: ptr(12.5), CPUTempC: ptr(48.5),
			MemTotalBytes: ptr[uint64](4 << 30), MemAvailableBytes: ptr[uint64](3 << 30),
			DiskTotalBytes: ptr[uint64](32 << 30), DiskFreeBytes: ptr[uint64](20 << 30),
			ThrottledNow: []string{}, ThrottledSinceBoot: []string{}, NetRxBytes: ptr[uint64](1000), NetTxBytes: ptr[uint64](2000)})
	}
	exp, err := New(Config{Source: r.src})
	if err != nil {
		b.Fatal(err)
	}
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, Path, nil)
		req.Header.Set("Accept-Encoding", "gzip") // as Prometheus asks
		exp.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
			b.Fatalf("status %d, encoding %q", w.Code, w.Header().Get("Content-Encoding"))
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "gzip-bytes")
}
