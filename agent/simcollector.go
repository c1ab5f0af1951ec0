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
	return s
}

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
	return topics.Metrics{
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
	}, nil
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
