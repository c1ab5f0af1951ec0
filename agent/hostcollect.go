package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pirack/pirack/agent/hoststat"
	"github.com/pirack/pirack/topics"
)

// hostSample is what the previous Collect read, for the rates and percentages of the next.
type hostSample struct {
	at    time.Time
	all   hoststat.CPUTimes
	cores []hoststat.CPUTimes
	net   map[string]hoststat.NetCounters
	disks map[string]hoststat.DiskCounters
}

// collectHost adds every number a Pi has beyond the basic ones (topics/hoststats.go): each
// core, the clock, memory as free splits it, each interface, disk, filesystem and sensor, the
// process count and the containers. Rates and percentages are over the time since the
// previous call, so the first call leaves them out. A reading that fails is left out and
// reported through fail.
func (c *HostCollector) collectHost(ctx context.Context, m *topics.Metrics, fail func(string, error)) {
	r := hoststat.Root{Proc: c.ProcRoot, Sys: c.SysRoot}
	now := time.Now()
	cur := hostSample{at: now, net: map[string]hoststat.NetCounters{}, disks: map[string]hoststat.DiskCounters{}}
	c.mu.Lock()
	prev := c.lastHost
	c.mu.Unlock()
	secs := 0.0
	if prev != nil {
		secs = now.Sub(prev.at).Seconds()
	}
	rate := func(now, before uint64) *float64 {
		if prev == nil || secs <= 0 || now < before { // a counter that went back: a reboot, a new device
			return nil
		}
		return ptr(float64(now-before) / secs)
	}

	if all, cores, err := r.CPU(); err != nil {
		fail("cpu times", err)
	} else {
		cur.all, cur.cores = all, cores
		if len(cores) > 0 {
			m.CPUCount = ptr(len(cores))
		}
		if prev != nil {
			if p, ok := all.Percent(prev.all); ok {
				m.CPUPercent = ptr(p)
			}
		}
		if prev != nil && len(prev.cores) == len(cores) {
			pcts := make([]float64, 0, len(cores))
			for i, t := range cores {
				p, ok := t.Percent(prev.cores[i])
				if !ok {
					pcts = nil
					break
				}
				pcts = append(pcts, p)
			}
			m.CPUPercentCores = pcts
		}
	}
	if mhz, ok, err := r.CPUFreqMHz(); err != nil {
		fail("cpu clock", err)
	} else if ok {
		m.CPUFreqMHz = ptr(mhz)
	}
	if n, err := r.Procs(); err != nil {
		fail("process count", err)
	} else {
		m.Procs = ptr(n)
	}
	if mem, err := r.Memory(); err != nil {
		fail("memory", err)
	} else {
		m.MemTotalBytes, m.MemAvailableBytes = ptr(mem.Total), ptr(mem.Available)
		m.MemUsedBytes, m.MemCachedBytes, m.MemBuffersBytes = ptr(mem.Used), ptr(min(mem.Cache, mem.Total)), ptr(min(mem.Buffers, mem.Total))
		m.SwapTotalBytes, m.SwapUsedBytes = ptr(mem.SwapTotal), ptr(mem.SwapUsed)
	}
	if temps, err := r.Temps(); err != nil {
		fail("temperature sensors", err)
	} else {
		for _, t := range temps[:min(len(temps), topics.MaxListLen)] {
			if t.C >= -60 && t.C <= 200 {
				tt := topics.Temp{Sensor: clipName(t.Sensor), C: t.C}
				if t.MaxC > 0 {
					tt.MaxC = &t.MaxC
				}
				m.Temps = append(m.Temps, tt)
			}
		}
	}
	if nets, err := r.Net(); err != nil {
		fail("network interfaces", err)
	} else {
		var rx, tx uint64 // every interface, loopback left out (hoststat)
		for _, n := range nets {
			rx, tx = rx+n.RxBytes, tx+n.TxBytes
		}
		m.NetRxBytes, m.NetTxBytes = ptr(rx), ptr(tx)
		for _, n := range nets[:min(len(nets), topics.MaxListLen)] {
			cur.net[n.Name] = n
			x := topics.NetIface{Name: clipName(n.Name), RxErrors: n.RxErrors, TxErrors: n.TxErrors, RxDrops: n.RxDrop, TxDrops: n.TxDrop}
			if p, ok := prev.netOf(n.Name); ok {
				x.RxBytesPerS, x.TxBytesPerS = rate(n.RxBytes, p.RxBytes), rate(n.TxBytes, p.TxBytes)
				x.RxPacketsPerS, x.TxPacketsPerS = rate(n.RxPackets, p.RxPackets), rate(n.TxPackets, p.TxPackets)
			}
			m.Net = append(m.Net, x)
		}
	}
	if disks, err := r.Disks(); err != nil {
		fail("block devices", err)
	} else {
		for _, d := range disks[:min(len(disks), topics.MaxListLen)] {
			cur.disks[d.Name] = d
			x := topics.DiskIO{Name: clipName(d.Name)}
			if p, ok := prev.diskOf(d.Name); ok {
				x.ReadBytesPerS, x.WriteBytesPerS = rate(d.ReadSectors*hoststat.SectorBytes, p.ReadSectors*hoststat.SectorBytes), rate(d.WriteSectors*hoststat.SectorBytes, p.WriteSectors*hoststat.SectorBytes)
				x.ReadsPerS, x.WritesPerS = rate(d.Reads, p.Reads), rate(d.Writes, p.Writes)
				if ms := rate(d.IOTick, p.IOTick); ms != nil {
					x.BusyPercent = ptr(min(100, *ms/10)) // ms of I/O per second, as a share
				}
			}
			m.Disks = append(m.Disks, x)
		}
	}
	if mounts, err := r.Mounts(); err != nil {
		fail("filesystems", err)
	} else {
		for _, mt := range mounts[:min(len(mounts), topics.MaxListLen)] {
			total, used, free, err := hoststat.Usage(mt.Point)
			if err != nil {
				fail("filesystem "+mt.Point, err)
				continue
			}
			m.Filesystems = append(m.Filesystems, topics.Filesystem{Mount: clipPath(mt.Point), Device: clipPath(mt.Device), Type: mt.Type,
				TotalBytes: total, UsedBytes: min(used, total), FreeBytes: min(free, total)})
		}
	}
	if c.Engine != nil {
		cs, err := c.Engine.Read(ctx)
		if err != nil {
			fail("containers", err)
		}
		for _, x := range cs {
			m.Containers = append(m.Containers, topics.Container{ID: x.ID, Name: clipText(x.Name, 128), Image: clipText(x.Image, 256),
				State: x.State, CPUPercent: x.CPUPercent, MemBytes: x.MemBytes})
		}
	}
	c.mu.Lock()
	c.lastHost = &cur
	c.mu.Unlock()
}

func (s *hostSample) netOf(name string) (hoststat.NetCounters, bool) {
	if s == nil {
		return hoststat.NetCounters{}, false
	}
	n, ok := s.net[name]
	return n, ok
}

func (s *hostSample) diskOf(name string) (hoststat.DiskCounters, bool) {
	if s == nil {
		return hoststat.DiskCounters{}, false
	}
	d, ok := s.disks[name]
	return d, ok
}

func clipName(s string) string { return clipText(s, 64) }
func clipPath(s string) string { return clipText(s, 256) }

// clipText bounds a string from the system to what the contract allows, in bytes.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// trimToFit drops list entries from the end (containers first, then filesystems, disks,
// interfaces and sensors) until m encodes within topics.MaxPayload, which subscribers enforce.
// It returns how many it dropped.
func trimToFit(m *topics.Metrics) (dropped int) {
	for {
		b, err := json.Marshal(m)
		if err != nil || len(b) <= topics.MaxPayload {
			return dropped
		}
		switch {
		case len(m.Containers) > 0:
			m.Containers = m.Containers[:len(m.Containers)-1]
		case len(m.Filesystems) > 1:
			m.Filesystems = m.Filesystems[:len(m.Filesystems)-1]
		case len(m.Disks) > 1:
			m.Disks = m.Disks[:len(m.Disks)-1]
		case len(m.Net) > 1:
			m.Net = m.Net[:len(m.Net)-1]
		case len(m.Temps) > 1:
			m.Temps = m.Temps[:len(m.Temps)-1]
		default:
			return dropped
		}
		dropped++
	}
}
