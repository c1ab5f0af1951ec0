package topics

import (
	"math"
	"strings"
)

// The host figures of Metrics beyond the root filesystem and the first temperature: every
// sensor, interface, block device, filesystem and container of the Pi. Each list is present
// only when read, and bounded, so that a Pi with many of one kind cannot blow up a payload.

// MaxListLen bounds each list of Metrics (temperatures, interfaces, disks, filesystems,
// containers, cores).
const MaxListLen = 64

// Temp is one temperature sensor: a thermal zone (cpu-thermal), a hwmon chip's input
// (nvme Composite, rp1_adc), by the name the kernel gives it. MaxC is the highest temperature
// the hardware itself says it should run at (hwmon's temp*_max, else temp*_crit: an NVMe
// drive's warning temperature), when it says one.
type Temp struct {
	Sensor string   `json:"sensor"`
	C      float64  `json:"c"`
	MaxC   *float64 `json:"max_c,omitempty"`
}

// NetIface is one network interface (loopback left out). The rates are over the last
// telemetry interval, absent from an agent's first sample; errors and drops are counters since
// boot.
type NetIface struct {
	Name          string   `json:"name"`
	RxBytesPerS   *float64 `json:"rx_bytes_per_s,omitempty"`
	TxBytesPerS   *float64 `json:"tx_bytes_per_s,omitempty"`
	RxPacketsPerS *float64 `json:"rx_packets_per_s,omitempty"`
	TxPacketsPerS *float64 `json:"tx_packets_per_s,omitempty"`
	RxErrors      uint64   `json:"rx_errors"`
	TxErrors      uint64   `json:"tx_errors"`
	RxDrops       uint64   `json:"rx_drops"`
	TxDrops       uint64   `json:"tx_drops"`
}

// DiskIO is one whole block device (mmcblk0, sda, nvme0n1; no partitions, loop or RAM
// devices), its rates over the last telemetry interval (absent from an agent's first sample).
type DiskIO struct {
	Name           string   `json:"name"`
	ReadBytesPerS  *float64 `json:"read_bytes_per_s,omitempty"`
	WriteBytesPerS *float64 `json:"write_bytes_per_s,omitempty"`
	ReadsPerS      *float64 `json:"reads_per_s,omitempty"`
	WritesPerS     *float64 `json:"writes_per_s,omitempty"`
	BusyPercent    *float64 `json:"busy_percent,omitempty"` // share of the interval with I/O in flight
}

// Filesystem is one mounted filesystem on a real device (the SD card's root and boot, a USB
// SSD, an NVMe drive; not tmpfs, overlay or squashfs), as df counts it.
type Filesystem struct {
	Mount      string `json:"mount"`
	Device     string `json:"device"`
	Type       string `json:"type"`
	TotalBytes uint64 `json:"total_bytes"`
	UsedBytes  uint64 `json:"used_bytes"` // df's Used: size minus every free block
	FreeBytes  uint64 `json:"free_bytes"` // df's Avail: free to users
}

// UsedPercent is df's Use%: used / (used + free).
func (f Filesystem) UsedPercent() float64 {
	if f.UsedBytes+f.FreeBytes == 0 {
		return 0
	}
	return 100 * float64(f.UsedBytes) / float64(f.UsedBytes+f.FreeBytes)
}

// Container states carried by Container.State, as Docker and Podman name them.
var containerStates = map[string]bool{
	"created": true, "running": true, "paused": true, "restarting": true, "removing": true, "exited": true, "dead": true,
}

// Container is one Docker or Podman container on the Pi, read through the engine's API
// socket. CPU and memory are present for running containers.
type Container struct {
	ID         string   `json:"id"` // the first 12 hex digits
	Name       string   `json:"name"`
	Image      string   `json:"image"`
	State      string   `json:"state"`
	CPUPercent *float64 `json:"cpu_percent,omitempty"` // of one core: 200 is two cores busy
	MemBytes   *uint64  `json:"mem_bytes,omitempty"`
}

// validateHost checks the host lists of m.
func (m Metrics) validateHost() error {
	lists := []struct {
		name string
		n    int
	}{
		{"cpu_percent_cores", len(m.CPUPercentCores)}, {"temps", len(m.Temps)}, {"net", len(m.Net)},
		{"disks", len(m.Disks)}, {"filesystems", len(m.Filesystems)}, {"containers", len(m.Containers)},
	}
	for _, l := range lists {
		if l.n > MaxListLen {
			return invalid("%s has %d entries: at most %d", l.name, l.n, MaxListLen)
		}
	}
	for _, p := range m.CPUPercentCores {
		if bad(p, 0, 100.5) {
			return invalid("cpu_percent_cores %v: want 0 to 100", p)
		}
	}
	if m.CPUFreqMHz != nil && bad(*m.CPUFreqMHz, 0, 100000) {
		return invalid("cpu_freq_mhz %v: want 0 to 100000", *m.CPUFreqMHz)
	}
	if m.Procs != nil && (*m.Procs < 0 || *m.Procs > 1<<22) {
		return invalid("procs %d: want 0 to %d", *m.Procs, 1<<22)
	}
	for _, t := range m.Temps {
		if err := name("temps sensor", t.Sensor); err != nil {
			return err
		}
		if bad(t.C, -60, 200) {
			return invalid("temps %q: %v °C: want -60 to 200", clip(t.Sensor), t.C)
		}
		if t.MaxC != nil && bad(*t.MaxC, 0, 200) {
			return invalid("temps %q: max_c %v °C: want 0 to 200", clip(t.Sensor), *t.MaxC)
		}
	}
	for _, n := range m.Net {
		if err := name("net name", n.Name); err != nil {
			return err
		}
		for _, r := range []*float64{n.RxBytesPerS, n.TxBytesPerS, n.RxPacketsPerS, n.TxPacketsPerS} {
			if r != nil && bad(*r, 0, 1e12) {
				return invalid("net %q: a rate %v: want 0 to 1e12 per second", clip(n.Name), *r)
			}
		}
	}
	for _, d := range m.Disks {
		if err := name("disks name", d.Name); err != nil {
			return err
		}
		for _, r := range []*float64{d.ReadBytesPerS, d.WriteBytesPerS, d.ReadsPerS, d.WritesPerS} {
			if r != nil && bad(*r, 0, 1e12) {
				return invalid("disks %q: a rate %v: want 0 to 1e12 per second", clip(d.Name), *r)
			}
		}
		if d.BusyPercent != nil && bad(*d.BusyPercent, 0, 100.5) {
			return invalid("disks %q: busy_percent %v: want 0 to 100", clip(d.Name), *d.BusyPercent)
		}
	}
	for _, f := range m.Filesystems {
		if err := checkStrings(field{"filesystems mount", f.Mount, 256}, field{"filesystems device", f.Device, 256}, field{"filesystems type", f.Type, 32}); err != nil {
			return err
		}
		if f.Mount == "" || !strings.HasPrefix(f.Mount, "/") {
			return invalid("filesystems mount %q: want an absolute path", clip(f.Mount))
		}
		if f.UsedBytes > f.TotalBytes || f.FreeBytes > f.TotalBytes {
			return invalid("filesystems %q: used %d or free %d exceeds total %d", clip(f.Mount), f.UsedBytes, f.FreeBytes, f.TotalBytes)
		}
	}
	for _, c := range m.Containers {
		if err := checkStrings(field{"containers id", c.ID, 64}, field{"containers name", c.Name, 128}, field{"containers image", c.Image, 256}); err != nil {
			return err
		}
		if c.ID == "" || !containerStates[c.State] {
			return invalid("container %q: state %q: want one of created, running, paused, restarting, removing, exited, dead", clip(c.Name), clip(c.State))
		}
		if c.CPUPercent != nil && bad(*c.CPUPercent, 0, 100*4096) {
			return invalid("container %q: cpu_percent %v", clip(c.Name), *c.CPUPercent)
		}
	}
	if m.MemTotalBytes != nil {
		for _, f := range []struct {
			name string
			v    *uint64
		}{{"mem_used_bytes", m.MemUsedBytes}, {"mem_cached_bytes", m.MemCachedBytes}, {"mem_buffers_bytes", m.MemBuffersBytes}} {
			if f.v != nil && *f.v > *m.MemTotalBytes {
				return invalid("%s %d exceeds mem_total_bytes %d", f.name, *f.v, *m.MemTotalBytes)
			}
		}
	}
	if m.SwapTotalBytes != nil && m.SwapUsedBytes != nil && *m.SwapUsedBytes > *m.SwapTotalBytes {
		return invalid("swap_used_bytes %d exceeds swap_total_bytes %d", *m.SwapUsedBytes, *m.SwapTotalBytes)
	}
	return nil
}

// bad reports a number outside [min, max], or not a number.
func bad(v, min, max float64) bool { return math.IsNaN(v) || v < min || v > max }

// name checks a sensor's, interface's or device's name: 1 to 64 bytes of text.
func name(what, s string) error {
	if s == "" {
		return invalid("%s is empty", what)
	}
	return checkStrings(field{what, s, 64})
}
