package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"

	"github.com/pirack/pirack/agent/hoststat"
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
	// ProcRoot is where procfs is mounted, for the figures of package hoststat. "" means
	// "/proc".
	ProcRoot string
	// Engine, when set, reads the Pi's containers (pirack-agent --containers).
	Engine *hoststat.Engine

	mu       sync.Mutex
	lastHost *hostSample // the previous sample, for rates and CPU % since the last call
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

// Collect implements Collector. Rates and CPU % are measured since the previous call, so the
// first call leaves them out rather than block to measure.
func (c *HostCollector) Collect(ctx context.Context) (topics.Metrics, error) {
	var m topics.Metrics
	var errs []error
	fail := func(what string, err error) { errs = append(errs, fmt.Errorf("read %s: %w", what, err)) }

	if l, err := load.AvgWithContext(ctx); err != nil {
		fail("load average", err)
	} else {
		m.Load1, m.Load5, m.Load15 = ptr(l.Load1), ptr(l.Load5), ptr(l.Load15)
	}
	diskPath := c.DiskPath
	if diskPath == "" {
		diskPath = "/"
	}
	if total, used, free, err := hoststat.Usage(diskPath); err != nil {
		fail("disk usage of "+diskPath, err)
	} else {
		m.DiskTotalBytes, m.DiskFreeBytes, m.DiskUsedBytes = ptr(total), ptr(min(free, total)), ptr(min(used, total))
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
	c.collectHost(ctx, &m, fail)
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

func ptr[T any](v T) *T { return &v }
