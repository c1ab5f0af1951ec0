package alerts

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/topics"
)

// thresholdReading compares v with a ThresholdRule. above says the rule fires over its
// threshold (else under it); raiseAt and clearAt are the thresholds in v's terms. desc writes
// what was measured, for the alert's message: only when there is a transition, because
// formatting it for every sample was most of the engine's cost on the publish path.
func thresholdReading(v, raiseAt, clearAt float64, above bool, unit string, desc func() string, limit func(float64) string) reading {
	rd := reading{value: ptr(round(v, 3)), raiseAt: ptr(round(raiseAt, 3)), clearAt: ptr(round(clearAt, 3)), unit: unit}
	over, back := "over", "back under"
	if !above {
		over, back = "under", "back over"
	}
	rd.raise = func(d time.Duration) string { return desc() + ", " + over + " " + limit(raiseAt) + forDuration(d) }
	rd.clear = func(time.Duration) string { return desc() + ", " + back + " " + limit(clearAt) }
	switch {
	case above && v > raiseAt, !above && v < raiseAt:
		rd.level = levelFiring
	case above && v < clearAt, !above && v > clearAt:
		rd.level = levelClear
	default:
		rd.level = levelBand
	}
	return rd
}

// loadReading: load_1 against the core count. Both must have been read.
func loadReading(r ThresholdRule, m topics.Metrics) reading {
	if m.Load1 == nil || m.CPUCount == nil || *m.CPUCount < 1 {
		return reading{}
	}
	cpus := float64(*m.CPUCount)
	load, n := *m.Load1, *m.CPUCount // not m: a closure over it would move it to the heap
	desc := func() string { return fmt.Sprintf("load %.2f on %d CPUs", load, n) }
	return thresholdReading(*m.Load1, r.Threshold*cpus, r.Clear*cpus, true, topics.UnitLoad, desc, num)
}

// memReading: available memory as a percentage of the total.
func memReading(r ThresholdRule, m topics.Metrics) reading {
	if m.MemAvailableBytes == nil || m.MemTotalBytes == nil || *m.MemTotalBytes == 0 {
		return reading{}
	}
	pct := 100 * float64(*m.MemAvailableBytes) / float64(*m.MemTotalBytes)
	avail, total := *m.MemAvailableBytes, *m.MemTotalBytes
	desc := func() string {
		return fmt.Sprintf("memory available %.1f %% (%s of %s)", pct, bytesIEC(avail), bytesIEC(total))
	}
	return thresholdReading(pct, r.Threshold, r.Clear, false, topics.UnitPercent, desc, percent)
}

// diskReading: the fullest filesystem, as df says it: the root filesystem
// (Metrics.DiskUsedPercent) and each of Metrics.Filesystems (a USB SSD, an NVMe drive), so that
// a full data drive raises the alert as a full SD card does. The message names the mount.
func diskReading(r ThresholdRule, m topics.Metrics) reading {
	mount, free := "/", uint64(0)
	pct, ok := m.DiskUsedPercent()
	if ok {
		free = *m.DiskFreeBytes
	}
	for _, f := range m.Filesystems {
		if f.UsedBytes+f.FreeBytes == 0 {
			continue
		}
		if p := f.UsedPercent(); !ok || p > pct {
			mount, pct, free, ok = f.Mount, p, f.FreeBytes, true
		}
	}
	if !ok {
		return reading{}
	}
	desc := func() string {
		what := "root disk"
		if mount != "/" {
			what = "disk " + mount
		}
		return fmt.Sprintf("%s %.1f %% used (%s free)", what, pct, bytesIEC(free))
	}
	return thresholdReading(pct, r.Threshold, r.Clear, true, topics.UnitPercent, desc, percent)
}

// sensorReading: the sensor closest to (or furthest over) the limit its hardware reports
// (Temp.MaxC: an NVMe drive's warning temperature). It fires at the limit and clears
// ClearMarginC under it; sensors without a limit are not judged.
func sensorReading(r SensorRule, m topics.Metrics) reading {
	var worst *topics.Temp
	for i, t := range m.Temps {
		if t.MaxC != nil && (worst == nil || t.C-*t.MaxC > worst.C-*worst.MaxC) {
			worst = &m.Temps[i]
		}
	}
	if worst == nil {
		return reading{}
	}
	sensor, c, limit := worst.Sensor, worst.C, *worst.MaxC
	desc := func() string { return fmt.Sprintf("%s at %.1f °C", sensor, c) }
	rd := thresholdReading(c, limit, limit-r.ClearMarginC, true, topics.UnitCelsius, desc,
		func(v float64) string { return num(v) + " °C" })
	if c == limit { // at the limit counts: the hardware's own warning is at it
		rd.level = levelFiring
	}
	rd.raise = func(d time.Duration) string {
		return desc() + ", at or over its limit of " + num(limit) + " °C" + forDuration(d)
	}
	return rd
}

// tempReading: the CPU temperature.
func tempReading(r ThresholdRule, m topics.Metrics) reading {
	if m.CPUTempC == nil {
		return reading{}
	}
	temp := *m.CPUTempC
	desc := func() string { return fmt.Sprintf("CPU at %.1f °C", temp) }
	return thresholdReading(*m.CPUTempC, r.Threshold, r.Clear, true, topics.UnitCelsius, desc,
		func(v float64) string { return num(v) + " °C" })
}

// throttledReading fires on any flag in throttled_now, and on under_voltage in
// throttled_since_boot the first time it is seen in a boot. That flag stays set until the Pi
// reboots, so firing on it for as long as it is set would keep the alert raised for the life
// of the boot; seeing it once, the alert is raised at once (the dip is over by then, so "for"
// does not apply) and clears like any other after clear_for without throttled_now flags. A
// new boot is recognised by uptime going down, or by the since-boot flags read without
// under_voltage.
func (e *Engine) throttledReading(n *node, m topics.Metrics) reading {
	if m.UptimeS != nil {
		if n.haveUptime && *m.UptimeS < n.lastUptime {
			n.uvAlerted = false
		}
		n.haveUptime, n.lastUptime = true, *m.UptimeS
	}
	uvSinceBoot := slices.Contains(m.ThrottledSinceBoot, topics.ThrottleUnderVoltage)
	if m.ThrottledSinceBoot != nil && !uvSinceBoot {
		n.uvAlerted = false
	}
	newUV := uvSinceBoot && !n.uvAlerted && !e.cfg.Throttled.IgnoreSinceBoot && !e.cfg.Throttled.Disabled
	if newUV {
		n.uvAlerted = true
	}
	rd := reading{clear: func(d time.Duration) string { return "no throttling" + forDuration(d) }}
	var why []string
	if len(m.ThrottledNow) > 0 {
		why = append(why, "throttled now: "+strings.Join(m.ThrottledNow, ", "))
	}
	if newUV {
		why = append(why, "under-voltage since boot (supply below about 4.63 V)")
		rd.immediate = true
	}
	switch {
	case len(why) > 0:
		rd.level = levelFiring
		msg := strings.Join(why, "; ")
		rd.raise = func(d time.Duration) string { return msg + forDuration(d) }
	case m.ThrottledNow != nil:
		rd.level = levelClear // read, and no flag set
	}
	return rd
}

func ptr[T any](v T) *T { return &v }

// round rounds v to the given number of decimals, so payloads carry 83.4 and not
// 83.40000000000001.
func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// num writes a threshold briefly: 4, 3.6, 0.95.
func num(v float64) string { return strconv.FormatFloat(round(v, 2), 'f', -1, 64) }

func percent(v float64) string { return num(v) + " %" }

// human writes a duration the way an operator says it, rounded down: "45 s", "5 min",
// "2 h 10 min".
func human(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d%time.Hour < time.Minute:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/time.Hour)) + " h " + strconv.Itoa(int(d%time.Hour/time.Minute)) + " min"
}

// forDuration is " for 1 min", or nothing when the condition has not held for a second.
func forDuration(d time.Duration) string {
	if d < time.Second {
		return ""
	}
	return " for " + human(d)
}

// bytesIEC writes a size as people read it: "312 MiB", "3.8 GiB".
func bytesIEC(b uint64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatUint(b, 10) + " B"
	}
	v, exp := float64(b)/unit, 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	f := "%.1f %ciB"
	if v >= 100 {
		f = "%.0f %ciB"
	}
	return fmt.Sprintf(f, v, "KMGTP"[exp])
}

// clip keeps a message within the 256 bytes the payload allows, cutting on a rune boundary.
func clip(s string) string {
	const maxLen = 256
	if len(s) <= maxLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxLen-3], "") + "..."
}
