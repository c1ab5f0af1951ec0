package agent

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pirack/pirack/topics"
)

var (
	_ Collector = (*SimCollector)(nil)
	_ modeler   = (*SimCollector)(nil)
	_ serialer  = (*SimCollector)(nil)
	_ booter    = (*SimCollector)(nil)
)

// SimModel is the board model SimCollector reports.
const SimModel = "Raspberry Pi 4 Model B Rev 1.4 (simulated)"

const (
	simCores     = 4
	simDiskTotal = 32_000_000_000
	gib          = 1 << 30
)

// SimCollector produces plausible telemetry for a simulated Pi 4-class board: a load that
// wanders, with occasional busy spells above its four cores; 1, 2, 4 or 8 GiB of memory with
// the available part drifting; a 32 GB SD card filling slowly; a CPU temperature of 40-75 °C
// following the load; a growing uptime and growing network counters. It is runtime code, used by
// `pirack demo` to fill a rack with believable Pis.
//
// Readings depend only on the seed and the times the clock returns at each Collect, so a test
// with a fake clock gets the same series every time. Safe for concurrent use.
type SimCollector struct {
	mu     sync.Mutex
	now    func() time.Time
	rng    *rand.Rand
	serial string

	started  bool
	last     time.Time
	boot     time.Time
	busy     time.Time // end of the current busy spell; zero when idle
	idleLoad float64   // this board's usual number of runnable tasks
	runnable float64   // instantaneous number of runnable tasks
	load     [3]float64
	memTotal uint64
	memAvail float64
	diskUsed float64
	tempC    float64
	rx, tx   float64
	cpuPct   float64

	// The host figures (hostSim) draw from their own generator, so that the readings above
	// stay what they were for a seed.
	hrng           *rand.Rand
	nvme, docker   bool // this board has an NVMe drive, runs containers
	prevAt         time.Time
	prevRx, prevTx float64
	prevDisk       float64
}

// NewSimCollector returns a simulated board seeded with seed (use a different one per Pi, such
// as a hash of its MAC). now is its clock; nil means time.Now.
func NewSimCollector(seed uint64, now func() time.Time) *SimCollector {
	if now == nil {
		now = time.Now
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// A Pi 4-style serial; derived from the seed without drawing from rng, so the readings of
	// a seed stay what they were.
	s := &SimCollector{now: now, rng: rng, serial: fmt.Sprintf("10000000%08x", uint32(seed*0x9e3779b97f4a7c15>>32))}
	s.memTotal = []uint64{1 * gib, 2 * gib, 4 * gib, 8 * gib}[rng.IntN(4)]
	s.memAvail = float64(s.memTotal) * (0.5 + 0.3*rng.Float64())
	s.diskUsed = simDiskTotal * (0.15 + 0.4*rng.Float64())
	s.idleLoad = 0.2 + 1.2*rng.Float64()
	s.runnable = s.idleLoad
	s.load = [3]float64{s.runnable, s.runnable, s.runnable}
	s.tempC = 42 + 33*min(s.idleLoad/simCores, 1) // already warm at its usual load, so the first sample is not a dip
	s.rx = float64(rng.Int64N(5 * gib))
	s.tx = float64(rng.Int64N(1 * gib))
	s.hrng = rand.New(rand.NewPCG(seed^0x5bd1e995, seed))
	s.nvme, s.docker = SimHasNVMe(seed), seed%4 == 1
	return s
}

// SimHasNVMe reports whether the simulated board of seed has an NVMe drive (a third of them do).
func SimHasNVMe(seed uint64) bool { return seed%3 == 0 }

// Model implements the optional model lookup Config.Model falls back to.
func (s *SimCollector) Model() string { return SimModel }

// Serial implements the optional serial number lookup Config.Serial falls back to: 16 hex
// digits, the same for the same seed.
func (s *SimCollector) Serial() string { return s.serial }

// BootTime is when the simulated board booted: a random time of up to 30 days before the first
// call.
func (s *SimCollector) BootTime(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.start(s.now())
	return s.boot, nil
}

func (s *SimCollector) start(now time.Time) {
	if s.started {
		return
	}
	s.started, s.last = true, now
	s.boot = now.Add(-time.Duration(1+s.rng.Int64N(30*24*3600)) * time.Second)
}

// Collect implements Collector. It advances the simulation to the clock's time.
func (s *SimCollector) Collect(context.Context) (topics.Metrics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.start(now)
	dt := now.Sub(s.last).Seconds()
	if dt < 0 {
		dt = 0
	}
	s.last = now
	// Long gaps (the demo paused, a laptop asleep) are stepped in bounded chunks so the walk
	// stays smooth.
	for dt > 0 {
		step := min(dt, 10)
		s.step(now, step)
		dt -= step
	}

	up := uint64(now.Sub(s.boot).Seconds())
	memAvail := uint64(s.memAvail)
	diskFree := uint64(simDiskTotal - s.diskUsed)
	rx, tx := uint64(s.rx), uint64(s.tx)
	m := topics.Metrics{
		Load1:             ptr(round2(s.load[0])),
		Load5:             ptr(round2(s.load[1])),
		Load15:            ptr(round2(s.load[2])),
		CPUCount:          ptr(simCores),
		CPUPercent:        ptr(round2(s.cpuPct)),
		CPUTempC:          ptr(math.Round(s.tempC*10) / 10),
		MemTotalBytes:     ptr(s.memTotal),
		MemAvailableBytes: &memAvail,
		DiskTotalBytes:    ptr(uint64(simDiskTotal)),
		DiskFreeBytes:     &diskFree,
		DiskUsedBytes:     ptr(uint64(s.diskUsed)),
		UptimeS:           &up,
		NetRxBytes:        &rx,
		NetTxBytes:        &tx,
	}
	dt = now.Sub(s.prevAt).Seconds()
	h := SimHost{CPUPercent: s.cpuPct, TempC: s.tempC, Runnable: s.runnable, MemAvail: s.memAvail, DiskUsed: s.diskUsed, RxBytes: s.rx}
	if h.First = s.prevAt.IsZero() || dt <= 0; !h.First {
		h.RxPerS, h.TxPerS, h.DiskGrowthPerS = (s.rx-s.prevRx)/dt, (s.tx-s.prevTx)/dt, (s.diskUsed-s.prevDisk)/dt
	}
	s.prevAt, s.prevRx, s.prevTx, s.prevDisk = now, s.rx, s.tx, s.diskUsed
	s.addHost(&m, h)
	return m, nil
}

// SimHost is the state a simulated Pi's host figures follow: the live simulation's, or the
// demo's backfilled week's.
type SimHost struct {
	CPUPercent, TempC, Runnable float64
	MemAvail, DiskUsed          float64 // bytes
	RxBytes                     float64 // received since boot
	// First leaves the rates and per-core figures out, as an agent's first sample does;
	// otherwise they are over the interval before.
	First                          bool
	RxPerS, TxPerS, DiskGrowthPerS float64
}

// AddHostFigures adds to m the host figures this board would report in state h.
func (s *SimCollector) AddHostFigures(m *topics.Metrics, h SimHost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addHost(m, h)
}

// addHost adds the host figures of a Pi 4: each core, the clock, processes, memory split, the
// SoC's sensor (and an NVMe drive's on some boards), eth0 and the SD card with their rates,
// the root and boot filesystems (and the NVMe's), and on some boards a few containers.
func (s *SimCollector) addHost(m *topics.Metrics, h SimHost) {
	r := s.hrng
	first := h.First
	cores := make([]float64, simCores)
	for i := range cores {
		cores[i] = round2(min(100, max(0, h.CPUPercent+r.NormFloat64()*6)))
	}
	if !first {
		m.CPUPercentCores = cores
	}
	freq := 600.0
	if h.CPUPercent > 15 {
		freq = 1500
	}
	m.CPUFreqMHz = &freq
	procs := 120 + int(h.Runnable*8) + r.IntN(10)
	m.Procs = &procs
	total := float64(s.memTotal)
	used, cached, buffers := uint64(total-h.MemAvail), uint64(h.MemAvail*0.55), uint64(total*0.02)
	swapTotal, swapUsed := uint64(100<<20), uint64(float64(100<<20)*max(0, 0.6-h.MemAvail/total))
	m.MemUsedBytes, m.MemCachedBytes, m.MemBuffersBytes, m.SwapTotalBytes, m.SwapUsedBytes = &used, &cached, &buffers, &swapTotal, &swapUsed
	m.Temps = []topics.Temp{{Sensor: "cpu-thermal", C: math.Round(h.TempC*10) / 10}}
	if s.nvme {
		m.Temps = append(m.Temps, topics.Temp{Sensor: "nvme Composite", C: math.Round((h.TempC-12)*10) / 10, MaxC: ptr(82.85)})
	}
	eth := topics.NetIface{Name: "eth0", RxDrops: uint64(h.RxBytes / 5e7)}
	sd := topics.DiskIO{Name: "mmcblk0"}
	if !first {
		rx, tx := h.RxPerS, h.TxPerS
		eth.RxBytesPerS, eth.TxBytesPerS = ptr(round2(rx)), ptr(round2(tx))
		eth.RxPacketsPerS, eth.TxPacketsPerS = ptr(round2(rx/900)), ptr(round2(tx/600))
		w := max(h.DiskGrowthPerS, 0)*4 + 2000*r.Float64()
		sd.WriteBytesPerS, sd.WritesPerS = ptr(round2(w)), ptr(round2(w/16384))
		sd.ReadBytesPerS, sd.ReadsPerS = ptr(round2(h.CPUPercent*400*r.Float64())), ptr(round2(h.CPUPercent/10*r.Float64()))
		sd.BusyPercent = ptr(round2(min(100, w/2e5+h.CPUPercent/50)))
	}
	m.Net = []topics.NetIface{eth}
	m.Disks = []topics.DiskIO{sd}
	m.Filesystems = []topics.Filesystem{
		{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: simDiskTotal, UsedBytes: uint64(h.DiskUsed), FreeBytes: simDiskTotal - uint64(h.DiskUsed)},
		{Mount: "/boot/firmware", Device: "/dev/mmcblk0p1", Type: "vfat", TotalBytes: 535_805_952, UsedBytes: 66_191_360, FreeBytes: 469_614_592},
	}
	if s.nvme {
		nv := topics.DiskIO{Name: "nvme0n1"}
		if !first {
			nv.ReadBytesPerS, nv.WriteBytesPerS, nv.BusyPercent = ptr(round2(3e5*r.Float64())), ptr(round2(1e5*r.Float64())), ptr(round2(2*r.Float64()))
		}
		m.Disks = append(m.Disks, nv)
		m.Filesystems = append(m.Filesystems, topics.Filesystem{Mount: "/mnt/nvme", Device: "/dev/nvme0n1p1", Type: "ext4",
			TotalBytes: 250_000_000_000, UsedBytes: 41_000_000_000, FreeBytes: 196_300_000_000})
	}
	if s.docker {
		cpu := func(v float64) *float64 {
			if first {
				return nil
			}
			return ptr(round2(v))
		}
		m.Containers = []topics.Container{
			{ID: "3f2a9c1e7b40", Name: "node-exporter", Image: "prom/node-exporter:v1.8.2", State: "running", CPUPercent: cpu(0.5 + r.Float64()), MemBytes: ptr(uint64(14e6 + 2e6*r.Float64()))},
			{ID: "8d41b07c2e95", Name: "web", Image: "nginx:1.27-alpine", State: "running", CPUPercent: cpu(h.CPUPercent / 4 * r.Float64()), MemBytes: ptr(uint64(9e6 + 4e6*r.Float64()))},
			{ID: "c7e0f3a2d118", Name: "backup", Image: "restic/restic:0.17.3", State: "exited"},
		}
	}
}

// step advances the simulation by dt seconds.
func (s *SimCollector) step(now time.Time, dt float64) {
	r := s.rng
	// Busy spells: on average one every half hour, lasting 1-5 minutes, 4.5-7 runnable tasks.
	if s.busy.IsZero() && r.Float64() < dt/1800 {
		s.busy = now.Add(time.Duration(60+r.IntN(240)) * time.Second)
	}
	if !s.busy.IsZero() && now.After(s.busy) {
		s.busy = time.Time{}
	}
	target := s.idleLoad
	if !s.busy.IsZero() {
		target = 5.5
	}
	// A mean-reverting random walk of the runnable tasks.
	s.runnable += (target-s.runnable)*min(dt/30, 1) + r.NormFloat64()*0.25*math.Sqrt(dt)
	s.runnable = max(s.runnable, 0)
	// Load averages decay exactly as the kernel's do, over 1, 5 and 15 minutes.
	for i, tau := range []float64{60, 300, 900} {
		e := math.Exp(-dt / tau)
		s.load[i] = s.load[i]*e + s.runnable*(1-e)
	}
	s.cpuPct = min(100, max(0, s.runnable/simCores*100+r.NormFloat64()*3))
	// Temperature heads for 42 °C idle up to 75 °C flat out, with a lag of about a minute.
	want := 42 + 33*min(s.runnable/simCores, 1) + r.NormFloat64()
	s.tempC += (want - s.tempC) * min(dt/60, 1)
	s.tempC = min(max(s.tempC, 40), 75)
	// Available memory drifts around 40-65% of the total, lower when busy, kept within 15-90%.
	total := float64(s.memTotal)
	wantAvail := total * (0.65 - 0.05*min(s.runnable, 5))
	s.memAvail += (wantAvail-s.memAvail)*min(dt/600, 1) + total*r.NormFloat64()*0.004*math.Sqrt(dt)
	s.memAvail = min(max(s.memAvail, 0.15*total), 0.9*total)
	// The card fills by about 1 MB an hour, logs and all.
	s.diskUsed = min(s.diskUsed+dt*300*(1+r.Float64()), simDiskTotal*0.98)
	// Traffic: a few KB/s idle, more when busy.
	s.rx += dt * (2000 + 50000*s.runnable*r.Float64())
	s.tx += dt * (1000 + 20000*s.runnable*r.Float64())
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
