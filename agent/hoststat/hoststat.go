// Package hoststat reads a Linux host's numbers from /proc and /sys as the usual tools print
// them: CPU time per core (top), memory as free splits it, each network interface
// (/proc/net/dev), each whole block device (/proc/diskstats), each real filesystem (df),
// every temperature sensor (thermal zones and hwmon chips, NVMe drives among them), the first
// core's clock and the process count. Files are read under a Root, so that tests give each
// reader a fixture tree; the parsers are pure.
package hoststat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is where the host's /proc and /sys are mounted; "" means the live ones.
type Root struct {
	Proc, Sys string
}

func (r Root) proc(rel string) string { return filepath.Join(cmpOr(r.Proc, "/proc"), rel) }
func (r Root) sys(rel string) string  { return filepath.Join(cmpOr(r.Sys, "/sys"), rel) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// CPUTimes are a CPU's cumulative times, in clock ticks, from /proc/stat.
type CPUTimes struct {
	Busy, Total uint64
}

// Percent is the busy share of the time between prev and t, as top shows it; false when no
// time passed or a counter went back (a CPU brought back online).
func (t CPUTimes) Percent(prev CPUTimes) (float64, bool) {
	if t.Total <= prev.Total || t.Busy < prev.Busy {
		return 0, false
	}
	return min(100, 100*float64(t.Busy-prev.Busy)/float64(t.Total-prev.Total)), true
}

// CPU returns all CPUs' times and each core's, in core order.
func (r Root) CPU() (all CPUTimes, cores []CPUTimes, err error) {
	b, err := os.ReadFile(r.proc("stat"))
	if err != nil {
		return all, nil, err
	}
	return ParseStat(b)
}

// ParseStat parses /proc/stat's cpu lines. Busy is everything but idle and iowait; guest
// time is already counted in user and nice, so it is left out of the total.
func ParseStat(b []byte) (all CPUTimes, cores []CPUTimes, err error) {
	found := false
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return all, nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
		}
		total := v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
		t := CPUTimes{Busy: total - v[3] - v[4], Total: total}
		if f[0] == "cpu" {
			all, found = t, true
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || n < 0 || n > 4095 {
			continue
		}
		for len(cores) <= n {
			cores = append(cores, CPUTimes{})
		}
		cores[n] = t
	}
	if !found {
		return all, nil, errors.New("/proc/stat has no cpu line")
	}
	return all, cores, nil
}

// Memory is /proc/meminfo as free shows it.
type Memory struct {
	Total, Available, Used, Free, Buffers, Cache uint64
	SwapTotal, SwapUsed                          uint64
}

// Memory reads /proc/meminfo.
func (r Root) Memory() (Memory, error) {
	b, err := os.ReadFile(r.proc("meminfo"))
	if err != nil {
		return Memory{}, err
	}
	return ParseMeminfo(b)
}

// ParseMeminfo computes free's columns (procps-ng 4): used is total minus available, cache
// is Cached plus SReclaimable, buffers is Buffers.
func ParseMeminfo(b []byte) (Memory, error) {
	kb := map[string]uint64{}
	for line := range bytes.Lines(b) {
		name, rest, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/meminfo %s: %w", name, err)
		}
		kb[name] = v * 1024
	}
	total, ok := kb["MemTotal"]
	if !ok {
		return Memory{}, errors.New("/proc/meminfo has no MemTotal")
	}
	avail, ok := kb["MemAvailable"]
	if !ok { // kernels before 3.14
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	avail = min(avail, total)
	m := Memory{Total: total, Available: avail, Used: total - avail, Free: kb["MemFree"], Buffers: kb["Buffers"],
		Cache: kb["Cached"] + kb["SReclaimable"], SwapTotal: kb["SwapTotal"]}
	m.SwapUsed = m.SwapTotal - min(kb["SwapFree"], m.SwapTotal)
	return m, nil
}

// NetCounters are one interface's counters since boot, from /proc/net/dev.
type NetCounters struct {
	Name                                 string
	RxBytes, RxPackets, RxErrors, RxDrop uint64
	TxBytes, TxPackets, TxErrors, TxDrop uint64
}

// Net reads /proc/net/dev, loopback left out.
func (r Root) Net() ([]NetCounters, error) {
	b, err := os.ReadFile(r.proc("net/dev"))
	if err != nil {
		return nil, err
	}
	return ParseNetDev(b)
}

// ParseNetDev parses /proc/net/dev: two header lines, then "name: 16 counters", receive
// first (bytes packets errs drop fifo frame compressed multicast), then transmit.
func ParseNetDev(b []byte) ([]NetCounters, error) {
	var out []NetCounters
	for line := range bytes.Lines(b) {
		name, rest, ok := strings.Cut(string(line), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" || strings.Contains(name, "|") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("/proc/net/dev %s: %d counters, want 16", name, len(f))
		}
		var v [16]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/net/dev %s: %w", name, err)
			}
		}
		out = append(out, NetCounters{Name: name, RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrop: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrop: v[11]})
	}
	return out, nil
}

// DiskCounters are one block device's counters since boot, from /proc/diskstats.
type DiskCounters struct {
	Name                         string
	Reads, ReadSectors           uint64
	Writes, WriteSectors, IOTick uint64 // IOTick: milliseconds with I/O in flight
}

// SectorBytes is the unit of /proc/diskstats' sector counts, whatever the device's own.
const SectorBytes = 512

// Disks reads /proc/diskstats for the whole block devices: those /sys/block lists, but not
// loop, RAM or zram devices (partitions are not in /sys/block).
func (r Root) Disks() ([]DiskCounters, error) {
	b, err := os.ReadFile(r.proc("diskstats"))
	if err != nil {
		return nil, err
	}
	all, err := ParseDiskstats(b)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(r.sys("block"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no sysfs to tell whole devices from partitions: none reported
	}
	if err != nil {
		return nil, err
	}
	whole := map[string]bool{}
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, "loop") && !strings.HasPrefix(n, "ram") && !strings.HasPrefix(n, "zram") {
			whole[n] = true
		}
	}
	return slices.DeleteFunc(all, func(d DiskCounters) bool { return !whole[d.Name] }), nil
}

// ParseDiskstats parses /proc/diskstats: major minor name, then reads, reads merged, sectors
// read, ms reading, writes, writes merged, sectors written, ms writing, I/Os in flight, ms
// doing I/O, ...
func ParseDiskstats(b []byte) ([]DiskCounters, error) {
	var out []DiskCounters
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 14 {
			continue
		}
		var v [10]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i+3], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/diskstats %s: %w", f[2], err)
			}
		}
		out = append(out, DiskCounters{Name: f[2], Reads: v[0], ReadSectors: v[2], Writes: v[4], WriteSectors: v[6], IOTick: v[9]})
	}
	return out, nil
}

// Mount is one mounted filesystem on a real device.
type Mount struct {
	Point, Device, Type string
}

// realTypes are the filesystems a Pi keeps data on; tmpfs, overlay, squashfs, proc and the like
// are not.
var realTypes = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "vfat": true, "exfat": true,
	"f2fs": true, "ntfs": true, "ntfs3": true, "zfs": true, "jfs": true, "reiserfs": true, "nilfs2": true,
}

// Mounts reads the mount table (/proc/self/mounts) and returns each real filesystem once:
// the first mount of each device, so that a bind mount is not counted twice.
func (r Root) Mounts() ([]Mount, error) {
	b, err := os.ReadFile(r.proc("self/mounts"))
	if err != nil {
		return nil, err
	}
	return ParseMounts(b), nil
}

// ParseMounts parses a mount table (device point type options ...), with its octal escapes
// (\040 for a space), keeping real filesystems on devices, one mount per device.
func ParseMounts(b []byte) []Mount {
	var out []Mount
	seen := map[string]bool{}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 3 || !realTypes[f[2]] {
			continue
		}
		dev := unescape(f[0])
		if f[2] != "zfs" && !strings.HasPrefix(dev, "/dev/") {
			continue
		}
		if seen[dev] {
			continue
		}
		seen[dev] = true
		out = append(out, Mount{Point: unescape(f[1]), Device: dev, Type: f[2]})
	}
	return out
}

// unescape undoes the mount table's octal escapes: \040 space, \011 tab, \012 newline, \134
// backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Procs counts the processes: the numeric directories of /proc.
func (r Root) Procs() (int, error) {
	entries, err := os.ReadDir(cmpOr(r.Proc, "/proc"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() && e.Name()[0] >= '1' && e.Name()[0] <= '9' && strings.Trim(e.Name(), "0123456789") == "" {
			n++
		}
	}
	return n, nil
}

// CPUFreqMHz reads the first core's current clock (cpufreq's scaling_cur_freq, in kHz).
// ok is false on a machine without cpufreq.
func (r Root) CPUFreqMHz() (mhz float64, ok bool, err error) {
	b, err := os.ReadFile(r.sys("devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	khz, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("scaling_cur_freq: %w", err)
	}
	return float64(khz) / 1000, true, nil
}

// Temp is one temperature sensor's reading. MaxC, when the hardware reports it, is the
// highest temperature it should run at (0: not reported).
type Temp struct {
	Sensor string
	C      float64
	MaxC   float64
}

// Temps reads every thermal zone (by its type: cpu-thermal) and every hwmon chip's
// temperature inputs (by chip name and label: "nvme Composite"), leaving out a hwmon chip that
// is a thermal zone seen already (the Pi's cpu_thermal). A sensor that cannot be read (a
// sleeping NVMe drive answers with an error) is skipped. A hwmon input's limit is its
// temp*_max (an NVMe drive's warning temperature), else its temp*_crit; a thermal zone's trip
// points are left alone: the SoC's are where the firmware throttles, which temp_high and the
// throttled flags already cover.
func (r Root) Temps() ([]Temp, error) {
	var out []Temp
	zones, _ := filepath.Glob(r.sys("class/thermal/thermal_zone*"))
	seen := map[string]bool{}
	for _, z := range zones {
		name := readTrim(filepath.Join(z, "type"))
		c, ok := readMilli(filepath.Join(z, "temp"))
		if name == "" || !ok {
			continue
		}
		seen[strings.ReplaceAll(name, "-", "_")] = true
		out = append(out, Temp{Sensor: name, C: c})
	}
	chips, _ := filepath.Glob(r.sys("class/hwmon/hwmon*"))
	for _, chip := range chips {
		name := readTrim(filepath.Join(chip, "name"))
		if name == "" || seen[strings.ReplaceAll(name, "-", "_")] {
			continue
		}
		inputs, _ := filepath.Glob(filepath.Join(chip, "temp*_input"))
		slices.SortFunc(inputs, func(a, b string) int { return cmpNatural(a, b) })
		for _, in := range inputs {
			c, ok := readMilli(in)
			if !ok {
				continue
			}
			sensor, base := name, strings.TrimSuffix(in, "_input")
			if label := readTrim(base + "_label"); label != "" {
				sensor += " " + label
			} else if len(inputs) > 1 {
				sensor += " " + strings.TrimSuffix(filepath.Base(in), "_input")
			}
			// Drives with no limit set report nonsense such as 65261.85 °C (0xffff kelvin).
			limit, ok := readMilli(base + "_max")
			if !ok || limit <= 0 || limit > 200 {
				if limit, ok = readMilli(base + "_crit"); !ok || limit <= 0 || limit > 200 {
					limit = 0
				}
			}
			out = append(out, Temp{Sensor: sensor, C: c, MaxC: limit})
		}
	}
	// Two drives of a kind have the same chip name and labels ("nvme Composite" twice on a
	// dual-NVMe board): the second is "nvme Composite #2", so that each keeps a history and
	// an alert of its own.
	count := map[string]int{}
	for i := range out {
		if count[out[i].Sensor]++; count[out[i].Sensor] > 1 {
			out[i].Sensor += " #" + strconv.Itoa(count[out[i].Sensor])
		}
	}
	return out, nil
}

// cmpNatural orders temp2_input before temp10_input.
func cmpNatural(a, b string) int {
	num := func(s string) int {
		s = strings.TrimSuffix(filepath.Base(s), "_input")
		n, _ := strconv.Atoi(strings.TrimLeft(s, "temp"))
		return n
	}
	return num(a) - num(b)
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readMilli reads a sysfs value in thousandths (millidegrees), as a float.
func readMilli(path string) (float64, bool) {
	s := readTrim(path)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(v) / 1000, true
}

// Usage is a filesystem's size as df counts it: total, used (size minus every free block) and
// free to users (df's Avail), in bytes.
func Usage(point string) (total, used, free uint64, err error) {
	var s unix.Statfs_t
	if err := unix.Statfs(point, &s); err != nil {
		return 0, 0, 0, fmt.Errorf("statfs %s: %w", point, err)
	}
	unit := uint64(s.Frsize)
	if unit == 0 {
		unit = uint64(s.Bsize)
	}
	return s.Blocks * unit, (s.Blocks - s.Bfree) * unit, s.Bavail * unit, nil
}
