package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestParseCPUTemp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		zones   []thermalZone
		want    float64
		ok      bool
		wantErr bool
	}{
		{name: "no zones"},
		{name: "pi", zones: []thermalZone{{name: "thermal_zone0", typ: "cpu-thermal\n", temp: "48312\n"}}, want: 48.312, ok: true},
		{name: "cpu zone preferred", zones: []thermalZone{
			{name: "thermal_zone0", typ: "acpitz\n", temp: "27800\n"},
			{name: "thermal_zone1", typ: "x86_pkg_temp\n", temp: "61000\n"},
		}, want: 61, ok: true},
		{name: "first zone otherwise", zones: []thermalZone{
			{name: "thermal_zone0", typ: "acpitz\n", temp: "27800\n"},
			{name: "thermal_zone1", typ: "iwlwifi_1\n", temp: "40000\n"},
		}, want: 27.8, ok: true},
		{name: "garbage", zones: []thermalZone{{name: "thermal_zone0", typ: "cpu-thermal", temp: "hot"}}, wantErr: true},
		{name: "implausible", zones: []thermalZone{{name: "thermal_zone0", typ: "cpu-thermal", temp: "-273000"}}, wantErr: true},
		{name: "read error", zones: []thermalZone{{name: "thermal_zone0", typ: "cpu-thermal", err: os.ErrPermission}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := parseCPUTemp(tc.zones)
			if (err != nil) != tc.wantErr || ok != tc.ok || got != tc.want {
				t.Errorf("parseCPUTemp = %v, %v, %v; want %v, %v, error %v", got, ok, err, tc.want, tc.ok, tc.wantErr)
			}
		})
	}
}

func TestHostCollectorReadsSysRoot(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
	write("sys/class/thermal/thermal_zone0/temp", "51540\n")
	write("sys/class/thermal/cooling_device0/type", "fan\n") // not a zone
	write("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")

	c := &HostCollector{SysRoot: filepath.Join(root, "sys")}
	if got := c.Model(); got != "Raspberry Pi 4 Model B Rev 1.4" {
		t.Errorf("Model() = %q", got)
	}
	m, err := c.Collect(t.Context())
	if runtime.GOOS == "linux" && err != nil {
		t.Errorf("Collect on linux: %v", err)
	}
	if m.CPUTempC == nil || *m.CPUTempC != 51.54 {
		t.Errorf("CPUTempC = %v, want 51.54 from the fixture", m.CPUTempC)
	}
}

func TestHostCollectorOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the agent targets Linux")
	}
	c := &HostCollector{SysRoot: t.TempDir()} // no thermal zones: temperature left out, no error
	first, err := c.Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUPercent != nil {
		t.Error("CPU % on the first call; it needs a previous sample")
	}
	if first.CPUTempC != nil {
		t.Error("temperature without a thermal zone")
	}
	second, err := c.Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second.V, second.TS = topics.Version, time.Now()
	if err := second.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]bool{
		"load_1": second.Load1 != nil, "cpu_count": second.CPUCount != nil,
		"mem_total_bytes": second.MemTotalBytes != nil, "disk_total_bytes": second.DiskTotalBytes != nil,
		"uptime_s": second.UptimeS != nil, "net_rx_bytes": second.NetRxBytes != nil,
	} {
		if !p {
			t.Errorf("%s missing", name)
		}
	}
	if bt, err := c.BootTime(t.Context()); err != nil || bt.After(time.Now()) || bt.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("BootTime = %v, %v", bt, err)
	}
}

// TestHostCollectorPiHealth reads the firmware files of pihealth's testdata trees, each as if
// it were the machine's root.
func TestHostCollectorPiHealth(t *testing.T) {
	for _, tc := range []struct {
		board          string
		model, serial  string
		now, sinceBoot []string // nil: left out
	}{
		{"pi4", "Raspberry Pi 4 Model B Rev 1.4", "10000000a1b2c3d4", []string{topics.ThrottleUnderVoltage, topics.ThrottleThrottled}, []string{topics.ThrottleUnderVoltage, topics.ThrottleThrottled}},
		{"pi5", "Raspberry Pi 5 Model B Rev 1.0", "2c3e5f8a9b1d7e60", []string{}, []string{}},
		{"x86", "", "", nil, nil},
	} {
		t.Run(tc.board, func(t *testing.T) {
			c := &HostCollector{SysRoot: filepath.Join("pihealth", "testdata", tc.board, "sys")}
			if got := c.Model(); got != tc.model {
				t.Errorf("Model() = %q, want %q", got, tc.model)
			}
			if got := c.Serial(); got != tc.serial {
				t.Errorf("Serial() = %q, want %q", got, tc.serial)
			}
			m, err := c.Collect(t.Context())
			if runtime.GOOS == "linux" && err != nil {
				t.Errorf("Collect on linux: %v", err)
			}
			if !slices.Equal(m.ThrottledNow, tc.now) || (m.ThrottledNow == nil) != (tc.now == nil) {
				t.Errorf("ThrottledNow = %#v, want %#v", m.ThrottledNow, tc.now)
			}
			if !slices.Equal(m.ThrottledSinceBoot, tc.sinceBoot) || (m.ThrottledSinceBoot == nil) != (tc.sinceBoot == nil) {
				t.Errorf("ThrottledSinceBoot = %#v, want %#v", m.ThrottledSinceBoot, tc.sinceBoot)
			}
			m.V, m.TS = topics.Version, time.Now() // set by the agent
			if err := m.Validate(); err != nil {
				t.Errorf("metrics do not validate: %v", err)
			}
		})
	}
}

func TestHostCollectorReportsUnreadableThrottling(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "sys/devices/platform/soc/soc:firmware/get_throttled")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := (&HostCollector{SysRoot: filepath.Join(root, "sys")}).Collect(t.Context())
	if err == nil || !strings.Contains(err.Error(), "throttling") {
		t.Errorf("Collect error = %v, want one about the throttling flags", err)
	}
	if m.ThrottledNow != nil || m.ThrottledSinceBoot != nil {
		t.Errorf("throttling flags %v, %v from an unreadable file; want them left out", m.ThrottledNow, m.ThrottledSinceBoot)
	}
}

func TestSimCollector(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	series := func(seed uint64) []topics.Metrics {
		now := start
		s := NewSimCollector(seed, func() time.Time { return now })
		var out []topics.Metrics
		for i := range 24 * 3600 / 5 { // a day at 5 s
			now = start.Add(time.Duration(i) * 5 * time.Second)
			m, err := s.Collect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			m.V, m.TS = topics.Version, now
			if err := m.Validate(); err != nil {
				t.Fatalf("sample %d: %v", i, err)
			}
			out = append(out, m)
		}
		return out
	}
	a, b, other := series(1), series(1), series(2)
	if s1, s2 := NewSimCollector(1, nil).Serial(), NewSimCollector(2, nil).Serial(); len(s1) != 16 || s1 != NewSimCollector(1, nil).Serial() || s1 == s2 {
		t.Errorf("simulated serials %q (seed 1), %q (seed 2): want 16 hex digits, stable per seed, differing", s1, s2)
	}
	if *a[1000].Load1 != *b[1000].Load1 || *a[1000].MemAvailableBytes != *b[1000].MemAvailableBytes {
		t.Error("same seed and clock gave different readings")
	}
	if *a[1000].Load1 == *other[1000].Load1 && *a[1000].MemAvailableBytes == *other[1000].MemAvailableBytes {
		t.Error("different seeds gave the same readings")
	}

	var busy bool
	minT, maxT := 1e9, -1e9
	for i, m := range a {
		if *m.Load1 > 4 {
			busy = true
		}
		minT, maxT = min(minT, *m.CPUTempC), max(maxT, *m.CPUTempC)
		if *m.CPUTempC < 40 || *m.CPUTempC > 75 {
			t.Fatalf("sample %d: temperature %v outside 40-75", i, *m.CPUTempC)
		}
		if *m.MemTotalBytes < gib || *m.MemTotalBytes > 8*gib || *m.DiskTotalBytes != simDiskTotal {
			t.Fatalf("sample %d: sizes %d, %d", i, *m.MemTotalBytes, *m.DiskTotalBytes)
		}
		if i > 0 {
			p := a[i-1]
			if *m.UptimeS <= *p.UptimeS || *m.NetRxBytes < *p.NetRxBytes || *m.NetTxBytes < *p.NetTxBytes || *m.DiskFreeBytes > *p.DiskFreeBytes {
				t.Fatalf("sample %d: uptime, network counters or disk use went backwards", i)
			}
		}
	}
	if !busy {
		t.Error("no busy spell above 4 cores in a simulated day")
	}
	if maxT-minT < 10 {
		t.Errorf("temperature only ranged %.1f-%.1f °C over a day", minT, maxT)
	}
	idleMem, mem0 := *a[0].MemAvailableBytes, *a[len(a)-1].MemAvailableBytes
	if idleMem == mem0 {
		t.Error("available memory never drifted")
	}
}

// The agent's disk and memory figures mean what df and free print on this machine: "disk used"
// is df's Use% (reserved blocks left out), "memory available" is free's available column.
func TestDiskAndMemoryAsDfAndFree(t *testing.T) {
	df, err := exec.Command("df", "-P", "-B1", "/").Output()
	if err != nil {
		t.Skipf("no df: %v", err)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(string(df)), "\n")[1])
	dfUsed, _ := strconv.ParseUint(fields[2], 10, 64)
	dfAvail, _ := strconv.ParseUint(fields[3], 10, 64)
	dfPct, _ := strconv.Atoi(strings.TrimSuffix(fields[4], "%"))
	m, err := new(HostCollector).Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pct, ok := m.DiskUsedPercent()
	if !ok || m.DiskUsedBytes == nil {
		t.Fatalf("no disk figures: %+v", m)
	}
	// df rounds its percentage up; files change between the two reads by a little.
	if pct > float64(dfPct)+0.5 || pct < float64(dfPct)-1.5 {
		t.Errorf("disk used %.1f %%, df says %d %% (used %d, avail %d)", pct, dfPct, dfUsed, dfAvail)
	}
	within := func(a, b uint64) bool { d := int64(a) - int64(b); return d < 64<<20 && d > -64<<20 }
	if !within(*m.DiskUsedBytes, dfUsed) || !within(*m.DiskFreeBytes, dfAvail) {
		t.Errorf("disk used/free %d/%d, df %d/%d", *m.DiskUsedBytes, *m.DiskFreeBytes, dfUsed, dfAvail)
	}
	free, err := exec.Command("free", "-b").Output()
	if err != nil {
		t.Skipf("no free: %v", err)
	}
	mem := strings.Fields(strings.Split(string(free), "\n")[1]) // Mem: total used free shared buff/cache available
	total, _ := strconv.ParseUint(mem[1], 10, 64)
	avail, _ := strconv.ParseUint(mem[6], 10, 64)
	if *m.MemTotalBytes != total || !within(*m.MemAvailableBytes, avail) {
		t.Errorf("memory total/available %d/%d, free says %d/%d", *m.MemTotalBytes, *m.MemAvailableBytes, total, avail)
	}
}
