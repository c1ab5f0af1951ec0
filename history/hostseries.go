package history

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pirack/pirack/topics"
)

// The host series: every number of a Pi beyond the fixed set (topics/hoststats.go), kept with
// the same tiers and retention. A per-device series is named "<metric>@<device>": the
// interface, block device, mount point, sensor, core number or container name, as the Pi
// reports it.
const (
	MetricCPUFreq    = "cpu_freq_mhz"
	MetricProcs      = "procs"
	MetricMemUsed    = "mem_used_bytes"
	MetricMemCached  = "mem_cached_bytes"
	MetricMemBuffers = "mem_buffers_bytes"
	MetricSwapUsed   = "swap_used_bytes"
	MetricSwapTotal  = "swap_total_bytes"

	MetricCoreCPU      = "cpu_core_percent"       // @<core number>
	MetricTemp         = "temp_c"                 // @<sensor>
	MetricNetRx        = "net_rx_bytes_per_s"     // @<interface>
	MetricNetTx        = "net_tx_bytes_per_s"     // @<interface>
	MetricNetRxPackets = "net_rx_packets_per_s"   // @<interface>
	MetricNetTxPackets = "net_tx_packets_per_s"   // @<interface>
	MetricNetErrors    = "net_errors"             // @<interface>: rx + tx errors since boot
	MetricNetDrops     = "net_drops"              // @<interface>: rx + tx drops since boot
	MetricDiskRead     = "disk_read_bytes_per_s"  // @<device>
	MetricDiskWrite    = "disk_write_bytes_per_s" // @<device>
	MetricDiskBusy     = "disk_busy_percent"      // @<device>
	MetricFSUsed       = "fs_used_bytes"          // @<mount point>
	MetricFSFree       = "fs_free_bytes"          // @<mount point>
	MetricContainerCPU = "container_cpu_percent"  // @<container name>
	MetricContainerMem = "container_mem_bytes"    // @<container name>
)

var hostScalars = map[string]bool{
	MetricCPUFreq: true, MetricProcs: true, MetricMemUsed: true, MetricMemCached: true, MetricMemBuffers: true,
	MetricSwapUsed: true, MetricSwapTotal: true,
}

var hostPerDevice = map[string]bool{
	MetricCoreCPU: true, MetricTemp: true, MetricNetRx: true, MetricNetTx: true, MetricNetRxPackets: true,
	MetricNetTxPackets: true, MetricNetErrors: true, MetricNetDrops: true, MetricDiskRead: true, MetricDiskWrite: true,
	MetricDiskBusy: true, MetricFSUsed: true, MetricFSFree: true, MetricContainerCPU: true, MetricContainerMem: true,
}

// maxLabel bounds a series' device label, as the contract bounds the names it comes from.
const maxLabel = 256

// PerDevice names the series of metric for one device: "net_rx_bytes_per_s@eth0".
func PerDevice(metric, device string) string { return metric + "@" + device }

// KnownMetric reports whether name is a series the store keeps: one of the fixed set, a host
// scalar, or a per-device series of a known metric with a label of 1 to 256 bytes of text.
func KnownMetric(name string) bool {
	if _, ok := metricIndex[name]; ok || hostScalars[name] {
		return true
	}
	base, label, ok := strings.Cut(name, "@")
	return ok && hostPerDevice[base] && label != "" && len(label) <= maxLabel && utf8.ValidString(label) &&
		!strings.ContainsFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// HostMetrics lists the host scalars and per-device metrics, for documentation and the API.
func HostMetrics() (scalars, perDevice []string) {
	for m := range hostScalars {
		scalars = append(scalars, m)
	}
	for m := range hostPerDevice {
		perDevice = append(perDevice, m)
	}
	return scalars, perDevice
}

// hostSeries extracts the host series of one payload; nil when it has none.
func hostSeries(m topics.Metrics) []named {
	var out []named
	f := func(metric string, p *float64) {
		if p != nil {
			out = append(out, named{metric, *p})
		}
	}
	u := func(metric string, p *uint64) {
		if p != nil {
			out = append(out, named{metric, float64(*p)})
		}
	}
	f(MetricCPUFreq, m.CPUFreqMHz)
	if m.Procs != nil {
		out = append(out, named{MetricProcs, float64(*m.Procs)})
	}
	u(MetricMemUsed, m.MemUsedBytes)
	u(MetricMemCached, m.MemCachedBytes)
	u(MetricMemBuffers, m.MemBuffersBytes)
	u(MetricSwapUsed, m.SwapUsedBytes)
	u(MetricSwapTotal, m.SwapTotalBytes)
	for i, p := range m.CPUPercentCores {
		out = append(out, named{PerDevice(MetricCoreCPU, strconv.Itoa(i)), p})
	}
	for _, t := range m.Temps {
		out = append(out, named{PerDevice(MetricTemp, t.Sensor), t.C})
	}
	for _, n := range m.Net {
		f(PerDevice(MetricNetRx, n.Name), n.RxBytesPerS)
		f(PerDevice(MetricNetTx, n.Name), n.TxBytesPerS)
		f(PerDevice(MetricNetRxPackets, n.Name), n.RxPacketsPerS)
		f(PerDevice(MetricNetTxPackets, n.Name), n.TxPacketsPerS)
		out = append(out, named{PerDevice(MetricNetErrors, n.Name), float64(n.RxErrors + n.TxErrors)},
			named{PerDevice(MetricNetDrops, n.Name), float64(n.RxDrops + n.TxDrops)})
	}
	for _, d := range m.Disks {
		f(PerDevice(MetricDiskRead, d.Name), d.ReadBytesPerS)
		f(PerDevice(MetricDiskWrite, d.Name), d.WriteBytesPerS)
		f(PerDevice(MetricDiskBusy, d.Name), d.BusyPercent)
	}
	for _, fs := range m.Filesystems {
		out = append(out, named{PerDevice(MetricFSUsed, fs.Mount), float64(fs.UsedBytes)}, named{PerDevice(MetricFSFree, fs.Mount), float64(fs.FreeBytes)})
	}
	for _, c := range m.Containers {
		name := c.Name
		if name == "" {
			name = c.ID
		}
		f(PerDevice(MetricContainerCPU, name), c.CPUPercent)
		u(PerDevice(MetricContainerMem, name), c.MemBytes)
	}
	return out
}
