package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// A fresh demo would show only minutes of history, so on the first run of a data directory it
// writes a plausible week before the moment its simulated Pis start: a daily load cycle,
// temperature following the load, memory wandering, disk filling with a cleanup, each row's
// supply following its Pis. Every Pi's week is walked backwards from the readings its live
// simulation (agent.SimCollector, same seed) starts with, so the charts run into the live
// samples without a jump.

// backfillBand is a part of the backfilled span: samples every Step back to Age before the end.
type backfillBand struct {
	Age, Step time.Duration
}

// defaultBackfillBands are as fine as each Pi detail chart needs to draw a line with no gaps
// (node.js breaks it where points are more than 2.5 buckets apart), and no finer: the backfill's
// cost is its sample count.
var defaultBackfillBands = []backfillBand{
	{Age: time.Hour, Step: 10 * time.Second},          // the 1 h chart (13 s buckets) and the tiles' sparklines
	{Age: 24 * time.Hour, Step: 5 * time.Minute},      // the 24 h chart (5 min buckets)
	{Age: 7 * 24 * time.Hour, Step: 15 * time.Minute}, // the 7 d chart (34 min or 1 h buckets), the 1-minute tier's retention
}

// backfillChunk is how many payloads are queued between flushes: one of the writer's batches,
// so each chunk is one transaction and the live writer gets the file in between.
const backfillChunk = history.DefaultBatchSize

// backfillConfig says what backfillDemoHistory writes, and where.
type backfillConfig struct {
	// Path is the history database, the Control Center's history.db. The week is written through
	// a second Store on it whose RawRetention admits week-old samples, which the live store
	// refuses as stale.
	Path string
	// Live is the Control Center's store, required: it is read to decide whether to backfill,
	// flushed between chunks so its writer is not starved of the file, and compacted at the end
	// so the raw rows older than its retention go at once.
	Live *history.Store
	// Pis are the simulated Pis; each one's seed shapes its week, and their rows are the rows
	// whose supplies get a week too.
	Pis []*pi
	// End is when the simulated agents started: the newest sample is just before it.
	End time.Time
	// Bands are the sample steps by age, newest first; the last one's Age is how far back the
	// backfill reaches. nil means defaultBackfillBands (a week).
	Bands []backfillBand
	// Logger gets the start and end lines; nil discards them.
	Logger *slog.Logger
}

func (c backfillConfig) withDefaults() backfillConfig {
	if len(c.Bands) == 0 {
		c.Bands = defaultBackfillBands
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// span is how far back the backfill reaches.
func (c backfillConfig) span() time.Duration { return c.Bands[len(c.Bands)-1].Age }

// backfillDemoHistory writes a week of simulated history for cfg.Pis and their rows, unless the
// store already has history for the first Pi in that week (an earlier run of this data
// directory). It returns the backfill store's counters: zero when it wrote nothing, and an error
// if any sample was lost (dropped, stale or failed), which the chunking is there to prevent.
func backfillDemoHistory(ctx context.Context, cfg backfillConfig) (history.Stats, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Pis) == 0 || cfg.Live == nil {
		return history.Stats{}, nil
	}
	// The live agents write only from End on, so history before it is an earlier run's. The
	// hour holding End is left out: an aggregate bucket is stamped with its start, so that
	// hour's would answer with the live samples.
	from, to := cfg.End.Add(-cfg.span()), cfg.End.Truncate(time.Hour).Add(-time.Second)
	if to.After(from) {
		has, err := cfg.Live.Series(ctx, cfg.Pis[0].mac, history.MetricLoad1, from, to, 1)
		if err != nil {
			return history.Stats{}, fmt.Errorf("history backfill: look for earlier history: %w", err)
		}
		if len(has) > 0 {
			cfg.Logger.Debug("history backfill: the data directory has history already")
			return history.Stats{}, nil
		}
	}

	start := time.Now()
	rows := newRowWeeks(cfg.Pis)
	cfg.Logger.Info("history backfill: writing simulated history", "pis", len(cfg.Pis), "rows", len(rows),
		"span", cfg.span())
	st, err := writeBackfill(ctx, cfg, rows)
	if err != nil {
		return st, err
	}
	if lost := st.Downsampled + st.Dropped + st.Stale + st.Failed; lost > 0 {
		return st, fmt.Errorf("history backfill lost %d samples (downsampled %d, dropped %d, stale %d, failed %d); see the history warnings above",
			lost, st.Downsampled, st.Dropped, st.Stale, st.Failed)
	}
	cfg.Logger.Info("history backfill done", "samples", st.Written, "events", st.Events,
		"took", time.Since(start).Round(time.Millisecond))
	return st, nil
}

// writeBackfill opens the backfill store, writes the week newest first (an interrupted backfill
// leaves the recent hours, which the charts show first), and closes it.
func writeBackfill(ctx context.Context, cfg backfillConfig, rows []*rowWeek) (st history.Stats, err error) {
	store, err := history.Open(cfg.Path, history.Options{
		RawRetention: cfg.span() + time.Hour,
		BatchSize:    backfillChunk,
		// A chunk plus one time step (or one Pi's events) fits however slow the writer is, so
		// nothing is dropped: at most 1,000 Pis and their rows make a step.
		QueueSize: 4 * backfillChunk,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return st, fmt.Errorf("history backfill: %w", err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- store.Run(ctx) }()
	defer func() {
		cerr := store.Close() // commits what is still queued
		if rerr := <-runDone; cerr == nil && !errors.Is(rerr, context.Canceled) {
			cerr = rerr
		}
		st = store.Stats()
		if err == nil && cerr != nil {
			err = fmt.Errorf("history backfill: %w", cerr)
		}
	}()

	pending := 0 // payloads queued since the last flush
	flush := func() error {
		pending = 0
		if err := store.Flush(ctx); err != nil {
			return fmt.Errorf("history backfill: %w", err)
		}
		// Let the live writer commit what the agents sent while the chunk held the file.
		if err := cfg.Live.Flush(ctx); err != nil {
			return fmt.Errorf("history backfill: flush the live store: %w", err)
		}
		return nil
	}
	queued := func(n int) error {
		if pending += n; pending < backfillChunk {
			return nil
		}
		return flush()
	}

	byName := make(map[string]*rowWeek, len(rows))
	for _, r := range rows {
		byName[r.name] = r
	}
	// Two passes over the same week: first the figures the rack view and the first charts show
	// (load, temperature, memory, disk, the rows' power), then the host figures (each core,
	// sensor, interface, disk and filesystem), which are five times as many series. The walk
	// is the same in both: each pass starts from the same seeds.
	times := backfillTimes(cfg.End, cfg.Bands)
	for _, host := range []bool{false, true} {
		weeks := make([]*piWeek, len(cfg.Pis))
		for i, pi := range cfg.Pis {
			weeks[i] = newPiWeek(pi, cfg.End, cfg.span())
			weeks[i].row = byName[pi.row]
			if host {
				continue
			}
			for _, e := range weeks[i].events {
				store.AddEvent(e)
			}
			if err := queued(len(weeks[i].events)); err != nil {
				return st, err
			}
		}
		for _, t := range times {
			for _, r := range rows {
				r.watts = 0
			}
			n := 0
			for _, w := range weeks {
				m, watts, online := w.at(t)
				w.row.watts += watts
				switch {
				case !online:
					continue
				case host:
					store.Add(w.pi.mac, w.hostAt(m))
				default:
					store.Add(w.pi.mac, m)
				}
				n++
			}
			if !host {
				for _, r := range rows {
					store.AddPower(r.name, r.at(t))
				}
				n += len(rows)
			}
			if err := queued(n); err != nil {
				return st, err
			}
		}
		if err := flush(); err != nil {
			return st, err
		}
	}
	if err := cfg.Live.Compact(ctx); err != nil {
		return st, fmt.Errorf("history backfill: compact: %w", err)
	}
	return st, nil
}

// backfillTimes returns the sample times, newest first: within each band, the whole multiples
// of its step from just before end, or the previous band, back through its age.
func backfillTimes(end time.Time, bands []backfillBand) []time.Time {
	var ts []time.Time
	t := end
	for _, b := range bands {
		for t = t.Add(-time.Nanosecond).Truncate(b.Step); t.After(end.Add(-b.Age)); t = t.Add(-b.Step) {
			ts = append(ts, t)
		}
		t = t.Add(time.Nanosecond) // t is the band's first time left out: the next band may take it
	}
	return ts
}

// piWeek is one simulated Pi's history, generated backwards in time from where its live
// simulation starts. The random walks start at 0 at the end and wander going back, so every
// series meets the live one.
type piWeek struct {
	pi  *pi
	row *rowWeek
	rng *rand.Rand
	end time.Time

	// sim writes the host figures from the walk, as the live simulation does from its own;
	// hrng is the walk of the traffic, apart from rng so that the other figures do not depend
	// on whether the host figures are written.
	sim     *agent.SimCollector
	hrng    *rand.Rand
	rxBytes float64 // received since boot, going down as the walk goes back
	hostAge time.Time

	// Where the live simulation starts.
	load0, temp0, memFrac0, memTotal, disk0, diskTotal float64

	amp, peak          float64 // daily swing of the load (peak / night - 1) and its local hour
	fill               float64 // bytes a second the card fills, logs and all
	cleanAt            time.Time
	cleanBytes         float64 // what a cleanup at cleanAt freed
	hotFrom, hotTo     time.Time
	hotC               float64 // a spell of running hot, a clogged fan perhaps
	offFrom, offTo     time.Time
	busyFrom           time.Time // start of the busy spell being walked through
	busyLoad           float64   // its load; 0 outside one
	nLoad, nTemp, nMem float64   // mean-reverting noise, in units of its own spread
	nDisk              float64
	prev               time.Time // the time of the previous (newer) sample
	cycle0             float64   // the daily cycle at end
	events             []history.Event
}

const (
	busyEvery   = 6 * 3600.0 // mean seconds between busy spells, per Pi
	simCores    = 4
	loadToTempC = 3.0 // °C per unit of load above the live start
)

func newPiWeek(pi *pi, end time.Time, span time.Duration) *piWeek {
	// The first reading of a SimCollector with this Pi's seed is exactly what its live agent
	// publishes first: the week ends there.
	sim := agent.NewSimCollector(pi.seed, func() time.Time { return end })
	m, _ := sim.Collect(context.Background())
	rng := rand.New(rand.NewPCG(pi.seed, pi.seed^0x243f6a8885a308d3)) // not the simulator's stream
	w := &piWeek{
		pi: pi, rng: rng, end: end, prev: end, busyFrom: end,
		sim: sim, hrng: rand.New(rand.NewPCG(pi.seed^0x13198a2e03707344, pi.seed)), rxBytes: 3e9, hostAge: end,
		load0:     max(*m.Load1, 0.05),
		memTotal:  float64(*m.MemTotalBytes),
		disk0:     float64(*m.DiskFreeBytes),
		diskTotal: float64(*m.DiskTotalBytes),
	}
	w.memFrac0 = float64(*m.MemAvailableBytes) / w.memTotal
	// The simulator starts at 45 °C and settles within a minute or two at its idle
	// temperature, 42 °C plus 33 °C at full load (agent/simcollector.go): end there.
	w.temp0 = 42 + 33*min(w.load0/simCores, 1)

	w.amp = 0.6 + 1.2*rng.Float64()
	w.peak = 13 + 3*rng.Float64()
	w.cycle0 = w.cycle(end)
	w.fill = (150 + 300*rng.Float64()) * 1e6 / 86400
	w.cleanAt = end.Add(-time.Duration((1 + 5*rng.Float64()) * float64(24*time.Hour)))
	w.cleanBytes = (1 + 2*rng.Float64()) * 1e9
	if rng.Float64() < 0.25 {
		w.hotFrom = randomTime(rng, end.Add(-span+6*time.Hour), end.Add(-8*time.Hour))
		w.hotTo = w.hotFrom.Add(time.Duration((1 + 4*rng.Float64()) * float64(time.Hour)))
		w.hotC = 9 + 5*rng.Float64()
	}
	if rng.Float64() < 0.12 { // a reboot: offline for a few minutes
		w.offFrom = randomTime(rng, end.Add(-span+time.Hour), end.Add(-2*time.Hour))
		w.offTo = w.offFrom.Add(time.Duration(3+rng.IntN(12)) * time.Minute)
		w.events = append(w.events,
			history.Event{Time: w.offFrom, MAC: pi.mac, Row: pi.row, Kind: history.EventOffline, By: "agent"},
			history.Event{Time: w.offTo, MAC: pi.mac, Row: pi.row, Kind: history.EventOnline, By: "agent"})
	}
	if rng.Float64() < 0.1 { // someone looked for it, in working hours one day
		day := end.Add(-time.Duration(1+rng.IntN(6)) * 24 * time.Hour).Local()
		at := time.Date(day.Year(), day.Month(), day.Day(), 9+rng.IntN(8), rng.IntN(60), rng.IntN(60), 0, time.Local)
		after := time.Duration(20+rng.IntN(150)) * time.Second
		w.events = append(w.events,
			history.Event{Time: at, MAC: pi.mac, Row: pi.row, Kind: history.EventLocate, By: "admin",
				Detail: fmt.Sprintf("%s %d times every %d ms", topics.LEDBlink, topics.DefaultBlinkCount, topics.DefaultBlinkPeriodMS)},
			history.Event{Time: at.Add(after), MAC: pi.mac, Row: pi.row, Kind: history.EventButton, Detail: topics.PressShort + " press", By: "agent"},
			history.Event{Time: at.Add(after), MAC: pi.mac, Row: pi.row, Kind: history.EventFound, By: "agent",
				Detail: fmt.Sprintf("found %s after %s's Locate", after, "admin")})
	}
	return w
}

// randomTime returns a time in [from, to), or from when the range is empty (a short span).
func randomTime(rng *rand.Rand, from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
}

// cycle is the daily load factor at t: 1 at night, 1+amp at the Pi's peak hour on a working day,
// less at weekends.
func (w *piWeek) cycle(t time.Time) float64 {
	l := t.Local()
	h := float64(l.Hour()) + float64(l.Minute())/60
	shape := 0.5 + 0.5*math.Cos(2*math.Pi*(h-w.peak)/24)
	shape *= shape
	if wd := l.Weekday(); wd == time.Saturday || wd == time.Sunday {
		shape *= 0.35
	}
	return 1 + w.amp*shape
}

// ar steps a mean-reverting walk of unit spread by dt seconds with time constant tau.
func (w *piWeek) ar(x, dt, tau float64) float64 {
	phi := math.Exp(-dt / tau)
	return x*phi + w.rng.NormFloat64()*math.Sqrt(1-phi*phi)
}

// at returns the Pi's metrics at t, which must be older than the previous call's; the watts it
// draws; and whether it was online to report them.
func (w *piWeek) at(t time.Time) (m topics.Metrics, watts float64, online bool) {
	dt := w.prev.Sub(t).Seconds()
	w.prev = t
	w.nLoad = w.ar(w.nLoad, dt, 15*60)
	w.nTemp = w.ar(w.nTemp, dt, 20*60)
	w.nMem = w.ar(w.nMem, dt, 3*3600)
	w.nDisk = w.ar(w.nDisk, dt, 2*3600)

	// Busy spells (a build, a backup): one every few hours, 5-30 minutes at 4-5.5, none in the
	// last 20 minutes so the week ends at the live start.
	if w.busyLoad > 0 && t.Before(w.busyFrom) {
		w.busyLoad = 0
	}
	if w.busyLoad == 0 && w.end.Sub(t) > 20*time.Minute && w.rng.Float64() < dt/busyEvery {
		w.busyFrom = t.Add(-time.Duration(5+w.rng.IntN(25)) * time.Minute)
		w.busyLoad = 4 + 1.5*w.rng.Float64()
	}

	load := w.load0 * w.cycle(t) / w.cycle0
	load += (0.05 + 0.1*load) * w.nLoad
	if w.busyLoad > 0 {
		load = max(load, w.busyLoad+0.3*w.nLoad)
	}
	load = round2(min(max(load, 0.01), 6.5))
	cpu := round2(min(max(load/simCores*100+3*w.rng.NormFloat64(), 0), 100))

	temp := w.temp0 + loadToTempC*(min(load, 5.5)-w.load0) + 0.7*w.nTemp
	if !t.Before(w.hotFrom) && t.Before(w.hotTo) {
		ramp := min(t.Sub(w.hotFrom), w.hotTo.Sub(t)).Minutes() / 20
		temp += w.hotC * min(ramp, 1)
	}
	temp = math.Round(min(max(temp, 40), 80)*10) / 10

	frac := w.memFrac0 + 0.05*w.nMem - 0.015*(load-w.load0)
	memAvail := uint64(min(max(frac, 0.15), 0.9) * w.memTotal)

	free := w.disk0 + w.fill*w.end.Sub(t).Seconds() + 20e6*w.nDisk
	if t.Before(w.cleanAt) {
		free -= w.cleanBytes
	}
	diskFree := uint64(min(max(free, 0.02*w.diskTotal), 0.98*w.diskTotal))

	watts = 1.55 + 0.1*min(load, simCores)
	if !t.Before(w.offFrom) && t.Before(w.offTo) {
		return m, watts, false
	}
	memTotal, diskTotal := uint64(w.memTotal), uint64(w.diskTotal)
	return topics.Metrics{
		V: topics.Version, TS: t,
		Load1: &load, CPUPercent: &cpu, CPUTempC: &temp,
		MemTotalBytes: &memTotal, MemAvailableBytes: &memAvail,
		DiskTotalBytes: &diskTotal, DiskFreeBytes: &diskFree,
	}, watts, true
}

// hostAt returns the host figures of the Pi in the state m (from at, for the same time): the
// same shapes as the live simulation's, with traffic following the load.
func (w *piWeek) hostAt(m topics.Metrics) topics.Metrics {
	dt := max(w.hostAge.Sub(m.TS).Seconds(), 1)
	w.hostAge = m.TS
	load := *m.Load1
	rx := 2000 + 25000*load*(0.5+w.hrng.Float64())
	tx := 1000 + 10000*load*(0.5+w.hrng.Float64())
	w.rxBytes = max(w.rxBytes-rx*dt, 0)
	h := topics.Metrics{V: topics.Version, TS: m.TS}
	w.sim.AddHostFigures(&h, agent.SimHost{
		CPUPercent: *m.CPUPercent, TempC: *m.CPUTempC, Runnable: load,
		MemAvail: float64(*m.MemAvailableBytes), DiskUsed: float64(*m.DiskTotalBytes - *m.DiskFreeBytes), RxBytes: w.rxBytes,
		RxPerS: rx, TxPerS: tx, DiskGrowthPerS: w.fill,
	})
	return h
}

// rowWeek is a row supply's history: the sum of its Pis' draw, on a 5 V rail that sags a
// little with the current and now and then for a moment.
type rowWeek struct {
	name  string
	rng   *rand.Rand
	watts float64 // its Pis' draw at the time being generated
}

// newRowWeeks returns the rows of pis, in order.
func newRowWeeks(pis []*pi) []*rowWeek {
	var rows []*rowWeek
	byName := map[string]*rowWeek{}
	for _, pi := range pis {
		if byName[pi.row] == nil {
			// Seeded by the row's first Pi, so a row's week is as repeatable as its Pis'.
			r := &rowWeek{name: pi.row, rng: rand.New(rand.NewPCG(pi.seed^0x13198a2e03707344, pi.seed))}
			byName[pi.row] = r
			rows = append(rows, r)
		}
	}
	return rows
}

func (r *rowWeek) at(t time.Time) topics.Power {
	watts := r.watts + 0.2*r.rng.NormFloat64()
	volts := 5.15 - 0.012*watts/5 + 0.004*r.rng.NormFloat64()
	if r.rng.Float64() < 0.003 {
		volts -= 0.05 + 0.07*r.rng.Float64()
	}
	watts, volts = round2(watts), round2(volts)
	amps := round2(watts / volts)
	return topics.Power{V: topics.Version, TS: t, Volts: &volts, Amps: &amps, Watts: &watts, Source: "sim"}
}
