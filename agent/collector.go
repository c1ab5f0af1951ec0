package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	gnet "github.com/shirou/gopsutil/v4/net"

	"github.com/pirack/pirack/agent/pihealth"
	"github.com/pirack/pirack/topics"
)

var (
	_ Collector = (*HostCollector)(nil)
	_ modeler   = (*HostCollector)(nil)
	_ serialer  = (*HostCollector)(nil)
	_ booter    = (*HostCollector)(nil)
)

// HostCollector reads the machine it runs on, through gopsutil and sysfs. Each reading is taken
// on its own: one that fails is left out and reported in Collect's error, the others are
// kept. The zero value reads the real /sys and the root filesystem; it is safe for concurrent
// use.
type HostCollector struct {
	// SysRoot is where sysfs is mounted, for the CPU temperature. "" means "/sys". Its parent
	// is the root the Raspberry Pi firmware files are read under (package pihealth: the
	// throttling flags in sys/devices/platform, the board model in proc/device-tree). Tests
	// point it at a fixture tree.
	SysRoot string
	// DiskPath is the filesystem whose size is reported. "" means "/".
	DiskPath string

	mu      sync.Mutex
	lastCPU *cpu.TimesStat // previous sample, for CPU % since the last call
}

func (c *HostCollector) sysRoot() string {
	if c.SysRoot == "" {
		return "/sys"
	}
	return c.SysRoot
}

// pi reads the Raspberry Pi firmware files, under the parent of the sysfs root.
func (c *HostCollector) pi() pihealth.Reader {
	return pihealth.Reader{Root: filepath.Dir(c.sysRoot())}
}

// Collect implements Collector. CPU % is measured since the previous call, so the first call
// leaves it out rather than block to measure.
func (c *HostCollector) Collect(ctx context.Context) (topics.Metrics, error) {
	var m topics.Metrics
	var errs []error
	fail := func(what string, err error) { errs = append(errs, fmt.Errorf("read %s: %w", what, err)) }

	if l, err := load.AvgWithContext(ctx); err != nil {
		fail("load average", err)
	} else {
		m.Load1, m.Load5, m.Load15 = ptr(l.Load1), ptr(l.Load5), ptr(l.Load15)
	}
	if n, err := cpu.CountsWithContext(ctx, true); err != nil {
		fail("cpu count", err)
	} else if n > 0 {
		m.CPUCount = ptr(n)
	}
	if t, err := cpu.TimesWithContext(ctx, false); err != nil {
		fail("cpu times", err)
	} else if len(t) > 0 {
		c.mu.Lock()
		prev := c.lastCPU
		c.lastCPU = &t[0]
		c.mu.Unlock()
		if prev != nil {
			if p, ok := cpuPercent(*prev, t[0]); ok {
				m.CPUPercent = ptr(p)
			}
		}
	}
	if v, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		fail("memory", err)
	} else {
		m.MemTotalBytes, m.MemAvailableBytes = ptr(v.Total), ptr(min(v.Available, v.Total))
	}
	diskPath := c.DiskPath
	if diskPath == "" {
		diskPath = "/"
	}
	if u, err := disk.UsageWithContext(ctx, diskPath); err != nil {
		fail("disk usage of "+diskPath, err)
	} else {
		// gopsutil's Free is the blocks available to users and Used the size minus every free
		// block, as df counts them.
		m.DiskTotalBytes, m.DiskFreeBytes, m.DiskUsedBytes = ptr(u.Total), ptr(min(u.Free, u.Total)), ptr(min(u.Used, u.Total))
	}
	if zones, err := readThermalZones(c.sysRoot()); err != nil {
		fail("cpu temperature", err)
	} else if t, ok, err := parseCPUTemp(zones); err != nil {
		fail("cpu temperature", err)
	} else if ok {
		m.CPUTempC = ptr(t)
	} // no thermal zone: nothing to report, and nothing wrong
	if now, sinceBoot, err := c.pi().Throttled(); errors.Is(err, pihealth.ErrNotAPi) {
		// not a Pi: the flags are left out, and nothing is wrong
	} else if err != nil {
		errs = append(errs, err) // already says what failed to read
	} else {
		m.ThrottledNow, m.ThrottledSinceBoot = now, sinceBoot
	}
	if up, err := host.UptimeWithContext(ctx); err != nil {
		fail("uptime", err)
	} else {
		m.UptimeS = ptr(up)
	}
	if counters, err := gnet.IOCountersWithContext(ctx, true); err != nil {
		fail("network counters", err)
	} else {
		rx, tx := sumNetCounters(counters, loopbackNames())
		m.NetRxBytes, m.NetTxBytes = ptr(rx), ptr(tx)
	}
	return m, errors.Join(errs...)
}

// BootTime reports when the machine booted, for the birth message.
func (c *HostCollector) BootTime(ctx context.Context) (time.Time, error) {
	s, err := host.BootTimeWithContext(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return time.Unix(int64(s), 0), nil
}

// Model reads the board model from the device tree ("Raspberry Pi 4 Model B Rev 1.4"); "" on
// machines without one.
func (c *HostCollector) Model() string {
	model, _, err := c.pi().Board()
	if err != nil {
		return ""
	}
	return model
}

// Serial reads the board's serial number from the device tree ("10000000a1b2c3d4"); "" on
// machines without one.
func (c *HostCollector) Serial() string {
	_, serial, err := c.pi().Board()
	if err != nil {
		return ""
	}
	return serial
}

// cpuPercent is the busy share of CPU time between two cumulative samples, as gopsutil and top
// compute it: guest time is already counted in user time, and iowait counts as idle.
func cpuPercent(prev, cur cpu.TimesStat) (float64, bool) {
	all := func(t cpu.TimesStat) (total, busy float64) {
		total = t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
		return total, total - t.Idle - t.Iowait
	}
	t0, b0 := all(prev)
	t1, b1 := all(cur)
	if t1 <= t0 {
		return 0, false // no time passed, or the counters went backwards
	}
	p := (b1 - b0) / (t1 - t0) * 100
	if math.IsNaN(p) {
		return 0, false
	}
	return min(max(p, 0), 100), true
}

// loopbackNames lists the loopback interfaces by name; "lo" is assumed if listing fails.
func loopbackNames() map[string]bool {
	out := map[string]bool{"lo": true}
	ifs, err := net.Interfaces()
	if err != nil {
		return out
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			out[i.Name] = true
		}
	}
	return out
}

// sumNetCounters adds up received and sent bytes over all interfaces but loopback ones.
func sumNetCounters(counters []gnet.IOCountersStat, loopback map[string]bool) (rx, tx uint64) {
	for _, c := range counters {
		if loopback[c.Name] {
			continue
		}
		rx += c.BytesRecv
		tx += c.BytesSent
	}
	return rx, tx
}

func ptr[T any](v T) *T { return &v }
