package alerts

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

const (
	mac1 = "b827eb3f1a2c"
	row1 = "r1"
)

var t0 = time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)

// harness drives an Engine on a fake clock. Every transition it sees is checked to be a valid
// payload that round-trips through topics, and to have a topic that parses back to it.
type harness struct {
	t   *testing.T
	e   *Engine
	now time.Time
	seq uint64
	// heard is set once a status was observed: the engine evaluates no metrics before one.
	heard bool
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, e: e, now: t0}
}

func (h *harness) at(d time.Duration) { h.now = t0.Add(d) }

func (h *harness) check(out []topics.Alert) []topics.Alert {
	h.t.Helper()
	for _, a := range out {
		b, err := topics.Encode(a)
		if err != nil {
			h.t.Fatalf("transition %+v is not a valid payload: %v", a, err)
		}
		back, err := topics.DecodeAlert(b)
		if err != nil || !reflect.DeepEqual(back, a) {
			h.t.Fatalf("payload %s does not round-trip: %+v, %v", b, back, err)
		}
		tp, err := topics.Parse(topics.AlertTopic(a.Row, a.MAC, a.Rule))
		if err != nil || tp.Kind != topics.KindAlert || tp.Row != a.Row || tp.MAC != a.MAC || tp.Rule != a.Rule {
			h.t.Fatalf("topic of %+v parses as %+v, %v", a, tp, err)
		}
	}
	return out
}

// healthy is a sample that raises nothing; mutate it to make a case.
func (h *harness) sample(mutate func(*topics.Metrics)) topics.Metrics {
	h.seq++
	m := topics.Metrics{
		V: topics.Version, Seq: h.seq, TS: h.now,
		Load1: ptr(0.5), CPUCount: ptr(4), CPUTempC: ptr(50.0),
		MemTotalBytes: ptr(uint64(1000)), MemAvailableBytes: ptr(uint64(600)),
		DiskTotalBytes: ptr(uint64(1000)), DiskFreeBytes: ptr(uint64(500)),
		ThrottledNow: []string{}, ThrottledSinceBoot: []string{}, UptimeS: ptr(uint64(1000 + h.seq*10)),
	}
	if mutate != nil {
		mutate(&m)
	}
	return m
}

// metrics observes a sample; a Pi not heard from yet comes online first (its birth precedes
// its metrics, as an agent sends them).
func (h *harness) metrics(mutate func(*topics.Metrics)) []topics.Alert {
	h.t.Helper()
	if !h.heard {
		if out := h.status(topics.StateOnline, "s1"); len(out) != 0 {
			h.t.Fatalf("the birth before the first sample raised %s", summary(out))
		}
	}
	return h.check(h.e.ObserveMetrics(mac1, row1, h.sample(mutate), h.now))
}

func (h *harness) status(state, session string) []topics.Alert {
	h.t.Helper()
	h.heard = true
	return h.check(h.e.ObserveStatus(mac1, row1, topics.Status{V: 1, State: state, Session: session, Hostname: "pi-r1-03"}, h.now))
}

func (h *harness) tick() []topics.Alert {
	h.t.Helper()
	return h.check(h.e.Tick(h.now))
}

func (h *harness) power(row string, w float64) []topics.Alert {
	h.t.Helper()
	return h.check(h.e.ObservePower(row, topics.Power{V: 1, TS: h.now, Watts: ptr(w)}, h.now))
}

// summary writes transitions as "rule:state" for compact comparisons.
func summary(out []topics.Alert) string {
	var s []string
	for _, a := range out {
		s = append(s, a.Rule+":"+a.State)
	}
	return strings.Join(s, " ")
}

// step is one sample of a table case: at offset at, the measured value is v (nil: not read),
// and the sample must cause want ("" for nothing, else a summary).
type step struct {
	at   time.Duration
	v    *float64
	want string
}

func s(at time.Duration, v float64, want string) step { return step{at, &v, want} }
func absent(at time.Duration, want string) step       { return step{at, nil, want} }

func TestThresholdRules(t *testing.T) {
	temp := func(m *topics.Metrics, v *float64) { m.CPUTempC = v }
	load := func(m *topics.Metrics, v *float64) { m.Load1 = v } // 4 CPUs: raise over 4, clear under 3.6
	mem := func(m *topics.Metrics, v *float64) {                // v: percent available
		if v == nil {
			m.MemAvailableBytes = nil
			return
		}
		m.MemAvailableBytes = ptr(uint64(*v * 10))
	}
	disk := func(m *topics.Metrics, v *float64) { // v: percent used
		m.DiskFreeBytes = ptr(uint64(1000 - *v*10))
	}
	ssd := func(m *topics.Metrics, v *float64) { // v: percent used of a data drive; the root disk stays at 50 %
		if v != nil {
			m.Filesystems = []topics.Filesystem{{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: 1000, UsedBytes: 500, FreeBytes: 500},
				{Mount: "/mnt/ssd", Device: "/dev/sda1", Type: "ext4", TotalBytes: 1000, UsedBytes: uint64(*v * 10), FreeBytes: uint64(1000 - *v*10)}}
		}
	}
	nvme := func(m *topics.Metrics, v *float64) { // v: an NVMe drive at v °C, limit 70 °C; the SoC's sensor has none
		if v != nil {
			m.Temps = []topics.Temp{{Sensor: "cpu-thermal", C: 50}, {Sensor: "nvme Composite", C: *v, MaxC: ptr(70.0)}, {Sensor: "nvme Sensor 2", C: 40}}
		}
	}
	const raised, cleared = "raised", "cleared"
	tests := []struct {
		name  string
		rule  string
		set   func(*topics.Metrics, *float64)
		steps []step
	}{
		{"temp raises after for", RuleTempHigh, temp, []step{
			s(0, 85, ""), s(30*time.Second, 85, ""), s(time.Minute, 85, raised)}},
		{"temp brief spike does not raise", RuleTempHigh, temp, []step{
			s(0, 85, ""), s(30*time.Second, 70, ""), s(time.Minute, 85, ""), s(90*time.Second, 85, ""), s(2*time.Minute, 85, raised)}},
		{"temp in the hysteresis band restarts a pending alert", RuleTempHigh, temp, []step{
			s(0, 85, ""), s(30*time.Second, 78, ""), s(time.Minute, 85, ""), s(2*time.Minute, 85, raised)}},
		{"temp clears only under the clear level", RuleTempHigh, temp, []step{
			s(0, 85, ""), s(time.Minute, 85, raised), s(2*time.Minute, 79, ""), s(3*time.Minute, 75, ""), s(4*time.Minute, 74.9, cleared)}},
		{"temp not read changes nothing", RuleTempHigh, temp, []step{
			s(0, 85, ""), absent(30*time.Second, ""), s(time.Minute, 85, raised), absent(2*time.Minute, ""), s(3*time.Minute, 60, cleared)}},
		{"temp exactly at the threshold is not over it", RuleTempHigh, temp, []step{
			s(0, 80, ""), s(5*time.Minute, 80, "")}},
		{"load over the core count for 5 minutes", RuleLoadHigh, load, []step{
			s(0, 4.5, ""), s(4*time.Minute, 6, ""), s(5*time.Minute, 4.1, raised), s(6*time.Minute, 3.7, ""), s(7*time.Minute, 3.5, cleared)}},
		{"load dip restarts the 5 minutes", RuleLoadHigh, load, []step{
			s(0, 4.5, ""), s(4*time.Minute, 3.9, ""), s(5*time.Minute, 4.5, ""), s(9*time.Minute, 4.5, ""), s(10*time.Minute, 4.5, raised)}},
		{"memory low", RuleMemLow, mem, []step{
			s(0, 5, ""), s(time.Minute, 9.9, raised), s(2*time.Minute, 12, ""), s(3*time.Minute, 15.1, cleared)}},
		{"memory brief dip", RuleMemLow, mem, []step{
			s(0, 5, ""), s(30*time.Second, 50, ""), s(90*time.Second, 5, "")}},
		{"disk full", RuleDiskFull, disk, []step{
			s(0, 95, ""), s(time.Minute, 91, raised), s(2*time.Minute, 88, ""), s(3*time.Minute, 80, cleared)}},
		{"disk at 90 % is not over 90 %", RuleDiskFull, disk, []step{
			s(0, 90, ""), s(time.Hour, 90, "")}},
		{"a full data drive is a full disk", RuleDiskFull, ssd, []step{
			s(0, 95, ""), s(time.Minute, 91, raised), s(2*time.Minute, 88, ""), s(3*time.Minute, 84, cleared)}},
		{"a sensor at its own limit", RuleSensorHot, nvme, []step{
			s(0, 70, ""), s(30*time.Second, 72, ""), s(time.Minute, 71, raised), s(2*time.Minute, 66, ""), s(3*time.Minute, 64.9, cleared)}},
		{"a sensor under its limit, hotter than the SoC's alert", RuleSensorHot, nvme, []step{
			s(0, 69.9, ""), s(time.Hour, 69.9, "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			for _, st := range tt.steps {
				h.at(st.at)
				out := h.metrics(func(m *topics.Metrics) { tt.set(m, st.v) })
				want := ""
				if st.want != "" {
					want = tt.rule + ":" + st.want
				}
				if got := summary(out); got != want {
					t.Fatalf("at %v (value %v): got %q, want %q", st.at, deref(st.v), got, want)
				}
			}
		})
	}
}

func deref(v *float64) any {
	if v == nil {
		return "absent"
	}
	return *v
}

func TestTempPayload(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.status(topics.StateOnline, "s1")
	h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(83.4) })
	h.at(time.Minute)
	out := h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(83.4) })
	want := topics.Alert{
		V: 1, Rule: RuleTempHigh, Severity: topics.SeverityCritical, State: topics.AlertRaised,
		TS: t0.Add(time.Minute), Since: t0, Row: row1, MAC: mac1, Hostname: "pi-r1-03",
		Value: ptr(83.4), Threshold: ptr(80.0), Unit: topics.UnitCelsius,
		Message: "CPU at 83.4 °C, over 80 °C for 1 min",
	}
	if len(out) != 1 || !reflect.DeepEqual(out[0], want) {
		t.Fatalf("raised %+v\nwant %+v", out, want)
	}
	if got := h.e.Active(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("Active() = %+v, want the raised alert", got)
	}
	h.at(11 * time.Minute)
	out = h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(74.1) })
	want.State, want.TS, want.Value, want.Threshold = topics.AlertCleared, t0.Add(11*time.Minute), ptr(74.1), ptr(75.0)
	want.Message = "CPU at 74.1 °C, back under 75 °C"
	if len(out) != 1 || !reflect.DeepEqual(out[0], want) {
		t.Fatalf("cleared %+v\nwant %+v", out, want)
	}
	if got := h.e.Active(); len(got) != 0 {
		t.Fatalf("Active() after clearing = %+v", got)
	}
}

func TestMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*topics.Metrics)
		want   string
	}{
		{"load", func(m *topics.Metrics) { m.Load1 = ptr(5.2) }, "load 5.20 on 4 CPUs, over 4 for 5 min"},
		{"mem", func(m *topics.Metrics) {
			m.MemTotalBytes, m.MemAvailableBytes = ptr(uint64(4<<30)), ptr(uint64(300<<20))
		},
			"memory available 7.3 % (300 MiB of 4.0 GiB), under 10 % for 5 min"},
		{"disk", func(m *topics.Metrics) { m.DiskTotalBytes, m.DiskFreeBytes = ptr(uint64(32<<30)), ptr(uint64(2<<30)) },
			"root disk 93.8 % used (2.0 GiB free), over 90 % for 5 min"},
		{"data drive", func(m *topics.Metrics) {
			m.Filesystems = []topics.Filesystem{{Mount: "/srv/usb ssd", Device: "/dev/sda1", Type: "ext4", TotalBytes: 500 << 30, UsedBytes: 480 << 30, FreeBytes: 20 << 30}}
		}, "disk /srv/usb ssd 96.0 % used (20.0 GiB free), over 90 % for 5 min"},
		{"sensor", func(m *topics.Metrics) {
			m.Temps = []topics.Temp{{Sensor: "nvme Composite", C: 84.2, MaxC: ptr(82.85)}}
		},
			"nvme Composite at 84.2 °C, at or over its limit of 82.85 °C for 5 min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			h.metrics(tt.mutate)
			h.at(5 * time.Minute)
			out := h.metrics(tt.mutate)
			if len(out) != 1 || out[0].Message != tt.want {
				t.Fatalf("got %+v, want message %q", out, tt.want)
			}
		})
	}
}

func TestOffline(t *testing.T) {
	t.Run("raises after for, clears when online", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.status(topics.StateOnline, "s1")
		h.at(time.Minute)
		if out := h.status(topics.StateOffline, "s1"); len(out) != 0 {
			t.Fatalf("offline raised at once: %+v", out)
		}
		h.at(time.Minute + 29*time.Second)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("offline raised before 30 s: %+v", out)
		}
		h.at(time.Minute + 30*time.Second)
		out := h.tick()
		if summary(out) != "offline:raised" || !out[0].Since.Equal(t0.Add(time.Minute)) || out[0].Message != "offline for 30 s" ||
			out[0].Severity != topics.SeverityCritical || out[0].Value != nil {
			t.Fatalf("got %+v, want offline raised since the offline status", out)
		}
		h.at(time.Hour)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("a raised alert was raised again: %+v", out)
		}
		h.at(2 * time.Hour)
		out = h.status(topics.StateOnline, "s2")
		if summary(out) != "offline:cleared" || out[0].Message != "back online after 1 h 59 min" {
			t.Fatalf("got %+v, want offline cleared", out)
		}
	})
	noStale := DefaultConfig()
	noStale.Stale.Disabled = true // these Pis send no metrics
	t.Run("a short outage raises nothing", func(t *testing.T) {
		h := newHarness(t, noStale)
		h.status(topics.StateOffline, "s1")
		h.at(20 * time.Second)
		h.tick()
		if out := h.status(topics.StateOnline, "s2"); len(out) != 0 {
			t.Fatalf("got %+v", out)
		}
		h.at(time.Hour)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("a pending offline survived the birth: %+v", out)
		}
	})
	t.Run("a late Will of an earlier session is ignored", func(t *testing.T) {
		h := newHarness(t, noStale)
		h.status(topics.StateOnline, "s2")
		h.status(topics.StateOffline, "s1")
		h.at(time.Hour)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("late Will raised %+v", out)
		}
		h.status(topics.StateOffline, "s2")
		h.at(time.Hour + time.Minute)
		if out := h.tick(); summary(out) != "offline:raised" {
			t.Fatalf("the current session's Will raised %q", summary(out))
		}
	})
	t.Run("offline for 0 raises at once", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Offline.For = 0
		h := newHarness(t, cfg)
		if out := h.status(topics.StateOffline, ""); summary(out) != "offline:raised" || out[0].Message != "offline" {
			t.Fatalf("got %+v", out)
		}
	})
}

func TestOfflineSuppressesOtherAlerts(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.status(topics.StateOnline, "s1")
	hot := func(m *topics.Metrics) { m.CPUTempC, m.Load1 = ptr(90.0), ptr(9.0) }
	for i := range 31 {
		h.at(time.Duration(i) * 10 * time.Second)
		h.metrics(hot)
	}
	if got := summary(h.e.Active()); got != "load_high:raised temp_high:raised" {
		t.Fatalf("before going offline: %q", got)
	}
	h.at(6 * time.Minute)
	out := h.status(topics.StateOffline, "s1")
	if summary(out) != "load_high:cleared temp_high:cleared" {
		t.Fatalf("going offline gave %q, want the other alerts cleared", summary(out))
	}
	for _, a := range out {
		if a.Message != "not checked while the Pi is offline" || a.Value != nil || a.Unit != "" {
			t.Fatalf("suppression clear %+v", a)
		}
	}
	// Retained metrics replayed while it is off, and a long silence: only offline.
	h.at(7 * time.Minute)
	if out := h.metrics(hot); len(out) != 0 {
		t.Fatalf("metrics of an offline Pi gave %+v", out)
	}
	h.at(3 * time.Hour)
	if out := h.tick(); summary(out) != "offline:raised" {
		t.Fatalf("tick while offline gave %q, want only offline", summary(out))
	}
	h.at(4 * time.Hour)
	if out := h.tick(); len(out) != 0 {
		t.Fatalf("tick while offline gave %+v", out)
	}
	if got := summary(h.e.Active()); got != "offline:raised" {
		t.Fatalf("Active() of an offline Pi: %q", got)
	}
	// Back online: the rules start over, "for" included.
	h.at(5 * time.Hour)
	if out := h.status(topics.StateOnline, "s2"); summary(out) != "offline:cleared" {
		t.Fatalf("birth gave %q", summary(out))
	}
	if out := h.metrics(hot); len(out) != 0 {
		t.Fatalf("first hot sample after the outage raised %+v; for must start over", out)
	}
}

func TestStale(t *testing.T) {
	t.Run("three learned intervals", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.status(topics.StateOnline, "s1")
		for i := range 3 {
			h.at(time.Duration(i) * 10 * time.Second)
			h.metrics(nil)
		}
		last := t0.Add(20 * time.Second)
		h.now = last.Add(29 * time.Second)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("stale before 3 intervals of 10 s: %+v", out)
		}
		h.now = last.Add(31 * time.Second)
		out := h.tick()
		if summary(out) != "stale:raised" || !out[0].Since.Equal(last.Add(30*time.Second)) ||
			*out[0].Value != 31 || *out[0].Threshold != 30 || out[0].Unit != topics.UnitSeconds ||
			out[0].Message != "no metrics for 31 s, over 3 intervals of 10 s" {
			t.Fatalf("got %+v", out)
		}
		h.now = last.Add(time.Minute)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("raised again: %+v", out)
		}
		if out := h.metrics(nil); summary(out) != "stale:cleared" || out[0].Message != "metrics arriving again" {
			t.Fatalf("a new sample gave %+v", out)
		}
	})
	t.Run("fixed threshold from the presence rule", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Presence = presence.Rule{StaleAfter: 45 * time.Second}
		h := newHarness(t, cfg)
		h.status(topics.StateOnline, "s1")
		for i := range 3 {
			h.at(time.Duration(i) * 10 * time.Second) // learned 10 s: ignored, the rule is fixed
			h.metrics(nil)
		}
		last := t0.Add(20 * time.Second)
		h.now = last.Add(44 * time.Second)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("stale before 45 s: %+v", out)
		}
		h.now = last.Add(45 * time.Second)
		out := h.tick()
		if summary(out) != "stale:raised" || *out[0].Threshold != 45 || out[0].Message != "no metrics for 45 s, over the limit of 45 s" {
			t.Fatalf("got %+v", out)
		}
	})
	t.Run("default interval until learned", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.metrics(nil)
		h.at(14 * time.Second)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("got %+v", out)
		}
		h.at(15 * time.Second)
		if out := h.tick(); summary(out) != "stale:raised" {
			t.Fatalf("got %q, want stale after 3 x 5 s", summary(out))
		}
	})
	t.Run("a birth without metrics goes stale", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.status(topics.StateOnline, "s1")
		h.at(time.Minute)
		if out := h.tick(); summary(out) != "stale:raised" {
			t.Fatalf("got %q", summary(out))
		}
	})
	t.Run("a replayed sample does not refresh", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		m := h.sample(nil)
		h.e.ObserveMetrics(mac1, row1, m, h.now)
		h.at(20 * time.Second)
		if out := h.check(h.e.ObserveMetrics(mac1, row1, m, h.now)); len(out) != 0 {
			t.Fatalf("replay gave %+v", out)
		}
		if out := h.tick(); summary(out) != "stale:raised" {
			t.Fatalf("got %q: a retained copy must not make a silent Pi fresh", summary(out))
		}
	})
	t.Run("never heard from is never stale", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.e.ObserveStatus(mac1, row1, topics.Status{V: 1, State: "sleeping"}, h.now)
		h.at(24 * time.Hour)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("got %+v", out)
		}
	})
}

func TestThrottled(t *testing.T) {
	now := func(flags ...string) func(*topics.Metrics) {
		return func(m *topics.Metrics) { m.ThrottledNow = append([]string{}, flags...) }
	}
	t.Run("a flag now raises at once and clears after 5 minutes without", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		out := h.metrics(now(topics.ThrottleUnderVoltage, topics.ThrottleThrottled))
		if summary(out) != "throttled:raised" || out[0].Message != "throttled now: under_voltage, throttled" {
			t.Fatalf("got %+v", out)
		}
		h.at(time.Minute)
		h.metrics(now())
		h.at(3 * time.Minute)
		h.metrics(now(topics.ThrottleFreqCapped)) // back again: the 5 minutes start over
		h.at(4 * time.Minute)
		h.metrics(now())
		h.at(8*time.Minute + 59*time.Second)
		if out := h.metrics(now()); len(out) != 0 {
			t.Fatalf("cleared early: %+v", out)
		}
		h.at(9 * time.Minute)
		if out := h.metrics(now()); summary(out) != "throttled:cleared" || out[0].Message != "no throttling for 5 min" {
			t.Fatalf("got %+v", out)
		}
	})
	t.Run("flags not read change nothing", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.metrics(now(topics.ThrottleThrottled))
		for i := 1; i < 20; i++ {
			h.at(time.Duration(i) * time.Minute)
			if out := h.metrics(func(m *topics.Metrics) { m.ThrottledNow, m.ThrottledSinceBoot = nil, nil }); len(out) != 0 {
				t.Fatalf("unread flags gave %+v", out)
			}
		}
	})
	uvBoot := func(uptime uint64) func(*topics.Metrics) {
		return func(m *topics.Metrics) {
			m.ThrottledSinceBoot = []string{topics.ThrottleUnderVoltage}
			m.UptimeS = ptr(uptime)
		}
	}
	t.Run("under-voltage since boot raises once per boot", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		out := h.metrics(uvBoot(100))
		if summary(out) != "throttled:raised" || out[0].Message != "under-voltage since boot (supply below about 4.63 V)" {
			t.Fatalf("got %+v", out)
		}
		h.at(time.Minute)
		h.metrics(uvBoot(160)) // the first sample without a flag now
		h.at(6 * time.Minute)
		if out := h.metrics(uvBoot(460)); summary(out) != "throttled:cleared" {
			t.Fatalf("got %q, want cleared after 5 min without flags now", summary(out))
		}
		h.at(time.Hour)
		if out := h.metrics(uvBoot(3700)); len(out) != 0 {
			t.Fatalf("the same boot's flag raised again: %+v", out)
		}
		h.at(2 * time.Hour)
		if out := h.metrics(uvBoot(30)); summary(out) != "throttled:raised" {
			t.Fatalf("after a reboot (uptime went down) got %q", summary(out))
		}
	})
	t.Run("since boot ignored when configured", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Throttled.IgnoreSinceBoot = true
		h := newHarness(t, cfg)
		if out := h.metrics(uvBoot(100)); len(out) != 0 {
			t.Fatalf("got %+v", out)
		}
	})
}

func TestPowerBand(t *testing.T) {
	warm := func(h *harness, row string, w float64) {
		for i := range 40 { // 20 minutes of readings every 30 s
			h.at(time.Duration(i) * 30 * time.Second)
			if out := h.power(row, w); len(out) != 0 {
				h.t.Fatalf("warming up gave %+v", out)
			}
		}
	}
	t.Run("learned band", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		warm(h, row1, 15)
		h.at(20 * time.Minute)
		h.power(row1, 10) // the band is 15 ± 3 W
		h.at(21 * time.Minute)
		h.power(row1, 15) // a blip
		h.at(22 * time.Minute)
		h.power(row1, 10)
		h.at(24 * time.Minute)
		out := h.power(row1, 9.8)
		want := topics.Alert{
			V: 1, Rule: RulePowerBand, Severity: topics.SeverityWarning, State: topics.AlertRaised,
			TS: t0.Add(24 * time.Minute), Since: t0.Add(22 * time.Minute), Row: row1,
			Value: ptr(9.8), Threshold: ptr(12.0), Unit: topics.UnitWatts,
			Message: "row r1 draws 9.8 W, under its usual 12.0-18.0 W for 2 min",
		}
		if len(out) != 1 || !reflect.DeepEqual(out[0], want) {
			t.Fatalf("got %+v\nwant %+v", out, want)
		}
		if topics.AlertTopic(out[0].Row, out[0].MAC, out[0].Rule) != "rack/r1/alert/power_band" {
			t.Fatal("a row's alert must go to the row's alert topic")
		}
		h.at(25 * time.Minute)
		if out := h.power(row1, 12.2); len(out) != 0 { // inside, but not by the hysteresis
			t.Fatalf("got %+v", out)
		}
		h.at(26 * time.Minute)
		out = h.power(row1, 14.8)
		if summary(out) != "power_band:cleared" || *out[0].Threshold != 12.5 ||
			out[0].Message != "row r1 draws 14.8 W, back within its usual 12.0-18.0 W" {
			t.Fatalf("got %+v", out)
		}
	})
	t.Run("nothing before the warm-up", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		for i := range 40 {
			h.at(time.Duration(i) * 10 * time.Second) // 40 readings in under 7 minutes
			h.power(row1, 15)
		}
		for i := range 10 {
			h.at(7*time.Minute + time.Duration(i)*10*time.Second)
			if out := h.power(row1, 2); len(out) != 0 {
				t.Fatalf("an alert before 10 minutes of readings: %+v", out)
			}
		}
	})
	t.Run("a lasting change becomes the usual", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		warm(h, row1, 15)
		var got []string
		for i := range 120 { // an hour at 20 W, every 30 s
			h.at(20*time.Minute + time.Duration(i)*30*time.Second)
			for _, a := range h.power(row1, 20) {
				got = append(got, a.State)
			}
		}
		if strings.Join(got, " ") != "raised cleared" {
			t.Fatalf("transitions %v, want raised then cleared once the new level is the median", got)
		}
	})
	t.Run("configured band, from volts and amps", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.PowerBand.Rows = map[string]PowerBand{"r2": {MaxW: ptr(18.0)}}
		h := newHarness(t, cfg)
		p := func(v, a float64) []topics.Alert {
			return h.check(h.e.ObservePower("r2", topics.Power{V: 1, TS: h.now, Volts: ptr(v), Amps: ptr(a)}, h.now))
		}
		p(5, 4) // 20 W, no warm-up for a configured band
		h.at(2 * time.Minute)
		out := p(5, 4)
		if summary(out) != "power_band:raised" || *out[0].Threshold != 18 ||
			out[0].Message != "row r2 draws 20.0 W, over its configured maximum of 18.0 W for 2 min" {
			t.Fatalf("got %+v", out)
		}
		h.at(3 * time.Minute)
		if out := p(5, 3.54); len(out) != 0 { // 17.7 W: inside by less than 0.5 W
			t.Fatalf("got %+v", out)
		}
		h.at(4 * time.Minute)
		if out := p(5, 0.1); summary(out) != "power_band:cleared" || *out[0].Threshold != 17.5 {
			t.Fatalf("0.5 W with no minimum configured: got %+v", out)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.PowerBand.Disabled = true
		cfg.PowerBand.Rows = map[string]PowerBand{row1: {MaxW: ptr(1.0)}}
		h := newHarness(t, cfg)
		h.power(row1, 50)
		h.at(time.Hour)
		if out := h.power(row1, 50); len(out) != 0 {
			t.Fatalf("got %+v", out)
		}
	})
}

func TestDisabledRule(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TempHigh.Disabled = true
	h := newHarness(t, cfg)
	for i := range 10 {
		h.at(time.Duration(i) * time.Minute)
		if out := h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(99.0) }); len(out) != 0 {
			t.Fatalf("a disabled rule raised %+v", out)
		}
	}
}

func TestRowMoveAndForget(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.metrics(func(m *topics.Metrics) { m.ThrottledNow = []string{topics.ThrottleThrottled} })
	h.at(time.Minute)
	out := h.check(h.e.ObserveMetrics(mac1, "r2", h.sample(nil), h.now))
	if summary(out) != "throttled:cleared" || out[0].Row != row1 || out[0].Message != "moved to row r2" {
		t.Fatalf("moving rows gave %+v, want the old row's alert cleared", out)
	}
	h.check(h.e.ObserveMetrics(mac1, "r2", h.sample(func(m *topics.Metrics) { m.ThrottledNow = []string{topics.ThrottleThrottled} }), h.now))
	out = h.check(h.e.Forget(mac1, h.now))
	if summary(out) != "throttled:cleared" || out[0].Row != "r2" {
		t.Fatalf("Forget gave %+v", out)
	}
	if len(h.e.Active()) != 0 || h.e.Forget(mac1, h.now) != nil {
		t.Fatal("a forgotten Pi is still known")
	}
}

func TestRestore(t *testing.T) {
	raisedBefore := topics.Alert{
		V: 1, Rule: RuleTempHigh, Severity: topics.SeverityCritical, State: topics.AlertRaised,
		TS: t0.Add(-time.Hour), Since: t0.Add(-2 * time.Hour), Row: row1, MAC: mac1,
		Value: ptr(85.0), Threshold: ptr(80.0), Unit: topics.UnitCelsius, Message: "CPU at 85.0 °C, over 80 °C for 1 h",
	}
	h := newHarness(t, DefaultConfig())
	if out := h.e.Restore(raisedBefore, h.now); len(out) != 0 {
		t.Fatalf("Restore gave %+v", out)
	}
	if got := summary(h.e.Active()); got != "temp_high:raised" {
		t.Fatalf("Active() = %q", got)
	}
	if a, ok := h.e.Raised(row1, mac1, RuleTempHigh); !ok || !a.TS.Equal(raisedBefore.TS) {
		t.Fatalf("Raised(temp_high) = %+v, %v; want the restored alert", a, ok)
	}
	if _, ok := h.e.Raised(row1, mac1, RuleOffline); ok {
		t.Fatal("Raised(offline) reports an alert that was never raised")
	}
	if _, ok := h.e.Raised("r9", mac1, RuleTempHigh); ok {
		t.Fatal("Raised in another row reports the Pi's alert")
	}
	out := h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(60.0) })
	if summary(out) != "temp_high:cleared" || !out[0].Since.Equal(raisedBefore.Since) {
		t.Fatalf("a cool sample after the restart gave %+v", out)
	}

	gone := raisedBefore
	gone.Rule = "fan_stopped"
	if out := h.check(h.e.Restore(gone, h.now)); summary(out) != "fan_stopped:cleared" {
		t.Fatalf("an unknown rule's alert gave %+v, want it cleared at once", out)
	}
	cfg := DefaultConfig()
	cfg.TempHigh.Disabled = true
	h2 := newHarness(t, cfg)
	if out := h2.check(h2.e.Restore(raisedBefore, h2.now)); summary(out) != "temp_high:cleared" {
		t.Fatalf("a disabled rule's alert gave %+v, want it cleared at once", out)
	}
	clearedBefore := raisedBefore
	clearedBefore.State = topics.AlertCleared
	if out := h2.e.Restore(clearedBefore, h2.now); out != nil {
		t.Fatalf("a cleared alert gave %+v", out)
	}
}

func TestInvalidIDsIgnored(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	if out := h.e.ObserveStatus("B8:27:EB:3F:1A:2C", row1, topics.Status{V: 1, State: topics.StateOffline}, h.now); out != nil {
		t.Fatalf("got %+v", out)
	}
	if out := h.e.ObservePower("Row 1", topics.Power{V: 1, Watts: ptr(1.0)}, h.now); out != nil {
		t.Fatalf("got %+v", out)
	}
}

func TestClockGoingBackwards(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.at(time.Hour)
	h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(90.0) })
	h.at(0) // an earlier now: the harness checks that every payload stays valid
	h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(90.0) })
	h.at(2 * time.Minute)
	if out := h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(90.0) }); summary(out) != "temp_high:raised" {
		t.Fatalf("got %q", summary(out))
	}
	h.at(time.Minute)
	h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(20.0) })
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0 s", 59 * time.Second: "59 s", time.Minute: "1 min", 119 * time.Second: "1 min",
		time.Hour: "1 h", 2*time.Hour + 10*time.Minute: "2 h 10 min", -time.Second: "0 s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	long := clip(strings.Repeat("é", 200))
	if len(long) > 256 || !strings.HasSuffix(long, "...") || !strings.HasPrefix(long, "éé") {
		t.Fatalf("clip gave %d bytes: %q", len(long), long)
	}
}

// While the control center cannot hear (its broker lost), nothing is judged, and the time it
// could not hear does not count toward a rule's "for": the offline Will published as the
// broker went down raises nothing if the Pi is back soon after the broker is.
func TestHearingLost(t *testing.T) {
	hearing := new(presence.Hearing)
	cfg := DefaultConfig()
	cfg.Presence.Hearing = hearing
	h := newHarness(t, cfg)
	h.status(topics.StateOnline, "s1")
	h.metrics(nil)
	h.at(5 * time.Second)
	h.status(topics.StateOffline, "s1") // the broker's Wills as it shuts down
	hearing.Lost(h.now)
	for _, d := range []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute} {
		h.at(d)
		if out := h.tick(); len(out) != 0 {
			t.Fatalf("judged while deaf, at %v: %+v", d, out)
		}
	}
	hearing.Back(h.now)
	h.at(5*time.Minute + 29*time.Second)
	if out := h.tick(); len(out) != 0 {
		t.Fatalf("the outage counted toward offline's 30 s: %+v", out)
	}
	h.at(5*time.Minute + 30*time.Second)
	if out := h.tick(); summary(out) != "offline:raised" {
		t.Fatalf("still offline 30 s after the broker came back: got %q, want offline raised", summary(out))
	}
}

// TestNoJudgementBeforeStatus: after a restart a Pi's retained metrics may be replayed before
// its retained status. Judged then, a Pi that died hot raised temp_high, which its offline status
// cleared a moment later, and both went out as notifications. Samples before any status teach
// presence only; rules run from the first sample after the Pi is known to be online.
func TestNoJudgementBeforeStatus(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TempHigh.For = 0
	h := newHarness(t, cfg)
	hot := func(m *topics.Metrics) { m.CPUTempC = ptr(90.0) }
	if out := h.check(h.e.ObserveMetrics(mac1, row1, h.sample(hot), h.now)); len(out) != 0 {
		t.Fatalf("a sample before any status raised %s", summary(out))
	}
	if out := h.status(topics.StateOffline, "s1"); len(out) != 0 {
		t.Fatalf("the retained offline after it gave %s, want nothing (nothing was raised)", summary(out))
	}
	h.at(10 * time.Second)
	h.status(topics.StateOnline, "s2")
	if out := h.metrics(hot); summary(out) != "temp_high:raised" {
		t.Fatalf("a hot sample once the Pi is online gave %q, want temp_high raised", summary(out))
	}
}
