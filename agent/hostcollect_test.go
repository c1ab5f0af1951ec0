package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// The host figures from a fixture /proc and /sys, collected twice: the first sample has the
// counters' errors and drops, memory, sensors and the clock but no rates; the second has each
// core's busy share and each interface's and disk's rates over the time between the two. The
// payload stays valid under the contract.
func TestHostCollectorHostFigures(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sample := func(busy, total, rx, sectors uint64) {
		write("proc/stat", "cpu  "+u(2*busy)+" 0 0 "+u(2*total-2*busy)+" 0 0 0 0\ncpu0 "+u(busy)+" 0 0 "+u(total-busy)+" 0 0 0 0\ncpu1 "+u(busy)+" 0 0 "+u(total-busy)+" 0 0 0 0\n")
		write("proc/net/dev", "h1\nh2\n    lo: 5 5 0 0 0 0 0 0 5 5 0 0 0 0 0 0\n  eth0: "+u(rx)+" 10 1 2 0 0 0 0 500 5 3 4 0 0 0 0\n")
		write("proc/diskstats", " 179 0 mmcblk0 100 0 "+u(sectors)+" 0 50 0 "+u(sectors)+" 0 0 "+u(sectors/10)+" 0\n")
	}
	write("proc/meminfo", "MemTotal: 4000000 kB\nMemFree: 1000000 kB\nMemAvailable: 3000000 kB\nBuffers: 100000 kB\nCached: 1500000 kB\nSReclaimable: 100000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
	write("proc/self/mounts", "proc /proc proc rw 0 0\n/dev/root "+root+" ext4 rw 0 0\n")
	write("proc/1/stat", "")
	write("sys/block/mmcblk0/size", "1\n")
	write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
	write("sys/class/thermal/thermal_zone0/temp", "48000\n")
	write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1500000\n")
	sample(0, 1000, 1000, 0)

	c := &HostCollector{SysRoot: filepath.Join(root, "sys"), ProcRoot: filepath.Join(root, "proc")}
	m, _ := c.Collect(t.Context())
	if m.CPUPercentCores != nil || len(m.Net) != 1 || m.Net[0].RxBytesPerS != nil || m.Net[0].RxDrops != 2 || m.Net[0].TxErrors != 3 {
		t.Fatalf("first sample: cores %v net %+v", m.CPUPercentCores, m.Net)
	}
	if *m.MemUsedBytes != 1000000*1024 || *m.MemCachedBytes != 1600000*1024 || *m.MemBuffersBytes != 100000*1024 || *m.SwapTotalBytes != 0 ||
		*m.CPUFreqMHz != 1500 || *m.Procs != 1 || len(m.Temps) != 1 || m.Temps[0] != (topics.Temp{Sensor: "cpu-thermal", C: 48}) {
		t.Fatalf("first sample: %+v", m)
	}
	if len(m.Filesystems) != 1 || m.Filesystems[0].Mount != root || m.Filesystems[0].TotalBytes == 0 || len(m.Disks) != 1 {
		t.Fatalf("filesystems %+v disks %+v", m.Filesystems, m.Disks)
	}

	time.Sleep(100 * time.Millisecond)
	sample(250, 2000, 1000+100_000, 2000)
	m, _ = c.Collect(t.Context())
	if len(m.CPUPercentCores) != 2 || m.CPUPercentCores[0] != 25 || m.CPUPercentCores[1] != 25 {
		t.Errorf("cores: %v, want 25 %% each", m.CPUPercentCores)
	}
	n, d := m.Net[0], m.Disks[0]
	// 100 kB over a little more than 0.1 s: under 1 MB/s, over 500 kB/s.
	if n.RxBytesPerS == nil || *n.RxBytesPerS > 1e6 || *n.RxBytesPerS < 5e5 || n.TxBytesPerS == nil || *n.TxBytesPerS != 0 {
		t.Errorf("net rates: %+v", n)
	}
	if d.WriteBytesPerS == nil || *d.WriteBytesPerS < 2000*512*5 || d.BusyPercent == nil || *d.BusyPercent > 100 {
		t.Errorf("disk rates: %+v", d)
	}
	m.V, m.TS = topics.Version, time.Now()
	if err := m.Validate(); err != nil {
		t.Errorf("the sample breaks the contract: %v", err)
	}
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

// A Pi with more containers and filesystems than a payload holds still publishes: the last
// containers, then filesystems, are left out until the sample fits.
func TestTrimToFit(t *testing.T) {
	m := topics.Metrics{V: 1, TS: time.Now()}
	for i := range topics.MaxListLen {
		m.Containers = append(m.Containers, topics.Container{ID: fmt.Sprintf("%012x", i), Name: strings.Repeat("n", 128), Image: strings.Repeat("i", 200), State: "running"})
		m.Filesystems = append(m.Filesystems, topics.Filesystem{Mount: "/" + strings.Repeat("m", 200), Device: "/dev/sda", Type: "ext4"})
	}
	dropped := trimToFit(&m)
	b, err := topics.Encode(m)
	if err != nil || len(b) > topics.MaxPayload || dropped == 0 || len(m.Containers) != 0 || len(m.Filesystems) == 0 {
		t.Fatalf("dropped %d, %d bytes, %d containers %d filesystems, %v", dropped, len(b), len(m.Containers), len(m.Filesystems), err)
	}
	small := topics.Metrics{V: 1, TS: time.Now(), Containers: m.Containers}
	if trimToFit(&small) != 0 {
		t.Error("a small sample was trimmed")
	}
}
