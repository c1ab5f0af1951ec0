// Package loadtest runs a control center, as package controlcenter assembles it, under a fleet
// of simulated agents (real paho clients in this process) to measure what `pirack bench`
// reports: presses lost or duplicated, latency, memory, and how long a fleet takes to come back
// after the control center restarts.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/topics"
)

// Config is what Soak and Reconnect share.
type Config struct {
	Agents            int
	Interval          time.Duration // telemetry period of each simulated agent
	KeepAlive         time.Duration
	MaxReconnectDelay time.Duration
	DataDir           string        // "" means a temporary directory, removed at the end
	Logger            *slog.Logger  // agents and control center; nil discards
	AllBackWithin     time.Duration // how long to wait for every agent to be online
}

// SoakConfig shapes Soak.
type SoakConfig struct {
	Config
	Duration     time.Duration
	PressEvery   time.Duration // mean time between presses of one agent
	CommandEvery time.Duration // time between LED commands, each to the next agent in turn
	RestartEvery time.Duration // 0: never restart the broker during the soak
}

// Soak runs cfg.Agents agents for cfg.Duration once all are online, with presses, LED
// commands and, if asked, control-center restarts, and prints what it measured to stdout. It
// fails if a press was lost.
func Soak(ctx context.Context, cfg SoakConfig, stdout io.Writer) error {
	if cfg.Agents < 1 || cfg.Duration <= 0 || cfg.PressEvery <= 0 || cfg.CommandEvery < 0 {
		return errors.New("bench soak: --agents, --duration and --press-every must be positive")
	}
	r, err := startRig(ctx, cfg.Config)
	if err != nil {
		return err
	}
	defer r.close()

	fmt.Fprintf(stdout, "soak: %d agents, %v, a press every %v per agent, an LED command every %v, GOMAXPROCS %d\n",
		cfg.Agents, cfg.Duration, cfg.PressEvery, cfg.CommandEvery, runtime.GOMAXPROCS(0))
	if err := r.awaitAllOnline(ctx, cfg.AllBackWithin); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "all %d agents online after %v\n", cfg.Agents, time.Since(r.started).Round(time.Millisecond))
	heapStart, gorStart := heap()
	birthsStart := r.obs.births.Load()

	soakCtx, stopSoak := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	wg.Go(func() { r.pressLoop(soakCtx, cfg.PressEvery) })
	if cfg.CommandEvery > 0 {
		wg.Go(func() { r.commandLoop(soakCtx, cfg.CommandEvery) })
	}
	var restarts []time.Duration
	if cfg.RestartEvery > 0 {
		wg.Go(func() {
			t := time.NewTicker(cfg.RestartEvery)
			defer t.Stop()
			for {
				select {
				case <-soakCtx.Done():
					return
				case <-t.C:
				}
				d, err := r.restart(soakCtx, cfg.AllBackWithin)
				if err != nil {
					fmt.Fprintf(stdout, "restart: %v\n", err)
					continue
				}
				restarts = append(restarts, d)
			}
		})
	}
	wg.Wait()
	stopSoak()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Let every press and command still in flight arrive, a bounded time.
	drainStart := time.Now()
	r.awaitDrained(ctx, 2*time.Minute)
	drained := time.Since(drainStart)
	heapEnd, gorEnd := heap()

	pressed := r.pressed()
	seen, dups := r.obs.pressCounts()
	lat := r.obs.latencies()
	cmdsSent := r.commands.Load()
	var flashes uint64
	for _, a := range r.agents {
		flashes += a.led.Transitions()
	}
	st := r.cc.Load().Rack().Stats()
	fmt.Fprintf(stdout, "presses:   %d pressed, %d reached the dashboard, %d lost, %d duplicates (dashboard counted %d)\n",
		pressed, seen, pressed-min(seen, pressed), dups, st.Duplicates)
	fmt.Fprintf(stdout, "latency:   press to dashboard p50 %v, p95 %v, p99 %v, max %v (%d samples)\n",
		pct(lat, 50), pct(lat, 95), pct(lat, 99), pct(lat, 100), len(lat))
	fmt.Fprintf(stdout, "commands:  %d sent, %d delivered (LED flashes)\n", cmdsSent, flashes)
	fmt.Fprintf(stdout, "reconnects: %d (births beyond the first of each agent); control-center restarts %d, all back after %v\n",
		r.obs.births.Load()-birthsStart, len(restarts), restarts)
	fmt.Fprintf(stdout, "memory:    heap %.1f MiB at start, %.1f MiB at end (%+.1f MiB); goroutines %d -> %d\n",
		mib(heapStart), mib(heapEnd), mib(heapEnd)-mib(heapStart), gorStart, gorEnd)
	fmt.Fprintf(stdout, "drain:     %v after the soak ended\n", drained.Round(time.Millisecond))
	if pressed != seen {
		return fmt.Errorf("bench soak: %d presses lost", pressed-min(seen, pressed))
	}
	return nil
}

// Reconnect measures how long cfg.Agents agents take to come back after each of restarts
// restarts of the control center, and prints it to stdout.
func Reconnect(ctx context.Context, cfg Config, restarts int, stdout io.Writer) error {
	if cfg.Agents < 1 || restarts < 1 {
		return errors.New("bench reconnect: --agents and --restarts must be positive")
	}
	r, err := startRig(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.close()
	fmt.Fprintf(stdout, "reconnect: %d agents, max reconnect delay %v, GOMAXPROCS %d\n", cfg.Agents, cfg.MaxReconnectDelay, runtime.GOMAXPROCS(0))
	if err := r.awaitAllOnline(ctx, cfg.AllBackWithin); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "all %d agents online after %v (first start)\n", cfg.Agents, time.Since(r.started).Round(time.Millisecond))
	for i := range restarts {
		cpu0 := processCPU()
		d, err := r.restart(ctx, cfg.AllBackWithin)
		if err != nil {
			return err
		}
		cpu := processCPU() - cpu0
		times := r.obs.backTimes()
		fmt.Fprintf(stdout, "restart %d: all back after %v, %.2f s of CPU (control center and agents); per agent p50 %v, p95 %v, max %v; peak %d connections in one 100 ms window\n",
			i+1, d.Round(time.Millisecond), cpu.Seconds(), pct(times, 50), pct(times, 95), pct(times, 100), r.obs.peakPer100ms())
	}
	return nil
}

// rig is a control center with simulated agents, and an observer that sees what the control
// center ingests. The agents outlive the control center's restarts, as Pis do.
type rig struct {
	cfg    Config
	log    *slog.Logger
	dir    string
	tmp    bool
	addr   string // the broker's address, kept across restarts
	users  *auth.Users
	obs    *observer
	agents []*benchAgent

	cc       atomic.Pointer[controlcenter.ControlCenter] // the current run
	stopCC   func() error                                // stops the current run and waits for it
	started  time.Time                                   // when the agents were started
	commands atomic.Uint64
	stopAll  context.CancelFunc
	wg       sync.WaitGroup
}

type benchAgent struct {
	mac, row, password string
	led                *sim.LED
	button             *sim.Button
	pressed            atomic.Uint64
}

func startRig(ctx context.Context, cfg Config) (*rig, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &rig{cfg: cfg, log: log, dir: cfg.DataDir, obs: newObserver()}
	var err error
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "pirack-bench-"); err != nil {
			return nil, err
		}
		r.tmp = true
	}
	if r.users, err = auth.Open(filepath.Join(r.dir, controlcenter.UsersFile)); err != nil {
		return nil, err
	}
	// Reserve a port, so that the restarted control center listens where the agents look.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.addr = ln.Addr().String()
	ln.Close()
	if err := r.startControlCenter(); err != nil {
		r.close()
		return nil, err
	}

	agentCtx, stop := context.WithCancel(ctx)
	r.stopAll = stop
	r.started = time.Now()
	r.obs.resetRound(r.started)
	for i := range cfg.Agents {
		a := &benchAgent{
			mac: fmt.Sprintf("b827eb%06x", 0xe00000+i), row: fmt.Sprintf("r%d", i/24+1),
			password: auth.GeneratePassword(), led: new(sim.LED), button: new(sim.Button),
		}
		u := auth.User{Name: a.mac, Role: auth.RoleAgent, MAC: a.mac, Row: a.row}
		// Hashed as `pirack user add` hashes it: what the control center checks at each
		// restart is what a real fleet costs.
		if err := r.users.Set(u, a.password); err != nil {
			r.close()
			return nil, fmt.Errorf("create agent account: %w", err)
		}
		r.agents = append(r.agents, a)
		r.wg.Go(func() {
			err := agent.Run(agentCtx, agent.Config{
				Broker: "tcp://" + r.addr, MAC: a.mac, Row: a.row, Password: a.password,
				Interval: cfg.Interval, KeepAlive: cfg.KeepAlive, MaxReconnectDelay: cfg.MaxReconnectDelay,
				Collector: agent.NewSimCollector(uint64(i), nil),
				LED:       a.led, Button: a.button, Hostname: "bench-" + a.mac[6:],
				StoreDir: filepath.Join(r.dir, "agents", a.mac),
				Logger:   log.With("component", "agent"),
			})
			if err != nil {
				log.Error("simulated agent failed", "mac", a.mac, "err", err)
			}
		})
	}
	return r, nil
}

// startControlCenter runs a control center on the rig's data directory and broker address,
// with the observer subscribed before MQTT is up, and returns once it is.
func (r *rig) startControlCenter() error {
	cc, stop, err := runControlCenter(controlcenter.Config{
		DataDir: r.dir, Logger: r.log, MQTTAddr: r.addr, HTTPAddr: "127.0.0.1:0", MaxClients: r.cfg.Agents + 64,
	}, func(cc *controlcenter.ControlCenter) error {
		return cc.Bus().Subscribe(topics.AllFilter, r.obs.ingest)
	})
	if err != nil {
		return err
	}
	r.cc.Store(cc)
	r.stopCC = stop
	return nil
}

// runControlCenter builds a control center from cfg, lets before subscribe (or add users)
// ahead of MQTT, runs it, and returns once MQTT is up; stop cancels it and waits for Run.
func runControlCenter(cfg controlcenter.Config, before func(*controlcenter.ControlCenter) error) (cc *controlcenter.ControlCenter, stop func() error, err error) {
	if cc, err = controlcenter.New(cfg); err != nil {
		return nil, nil, err
	}
	if before != nil {
		if err := before(cc); err != nil {
			cc.Close()
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	select {
	case <-cc.Ready():
	case err := <-done:
		cancel()
		return nil, nil, err
	}
	return cc, func() error {
		cancel()
		return <-done
	}, nil
}

// restart stops the control center and starts it again on the same data directory and port,
// and returns how long until every agent was online again.
func (r *rig) restart(ctx context.Context, within time.Duration) (time.Duration, error) {
	if err := r.stopCC(); err != nil {
		return 0, fmt.Errorf("stop the control center: %w", err)
	}
	start := time.Now()
	r.obs.resetRound(start)
	if err := r.startControlCenter(); err != nil {
		return 0, fmt.Errorf("restart the control center: %w", err)
	}
	if err := r.awaitAllOnline(ctx, within); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// awaitAllOnline waits until every agent has published an online birth in the current round
// (see observer.resetRound).
func (r *rig) awaitAllOnline(ctx context.Context, within time.Duration) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		n, ch := r.obs.roundOnline()
		if n >= len(r.agents) {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("only %d of %d agents online after %v", n, len(r.agents), within)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pressLoop presses the agents' buttons at random, each about once per every.
func (r *rig) pressLoop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(max(every/time.Duration(len(r.agents)), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a := r.agents[rand.IntN(len(r.agents))]
			if a.button.Press(topics.PressShort) {
				a.pressed.Add(1)
			}
		}
	}
}

// commandLoop sends a one-flash blink to each agent in turn, with an expiry, as the dashboard
// does.
func (r *rig) commandLoop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a := r.agents[i%len(r.agents)]
		now := time.Now().UTC()
		cmd := topics.LEDCommand{Action: topics.LEDBlink, Count: 1, PeriodMS: 100, IssuedAt: now, ExpiresAt: now.Add(time.Minute), By: "bench"}.WithDefaults()
		b, err := topics.Encode(cmd)
		if err != nil {
			panic(err) // a constant command
		}
		if err := r.cc.Load().Bus().Publish(ctx, bus.Message{Topic: topics.LEDTopic(a.mac), Payload: b, QoS: 1}); err == nil {
			r.commands.Add(1)
		}
	}
}

// pressed is the number of presses the agents' buttons accepted.
func (r *rig) pressed() uint64 {
	var n uint64
	for _, a := range r.agents {
		n += a.pressed.Load()
	}
	return n
}

// awaitDrained waits until every press has reached the dashboard and every command flashed its
// LED, or until within has passed.
func (r *rig) awaitDrained(ctx context.Context, within time.Duration) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		seen, _ := r.obs.pressCounts()
		var flashes uint64
		for _, a := range r.agents {
			flashes += a.led.Transitions()
		}
		if seen >= r.pressed() && flashes >= r.commands.Load() {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (r *rig) close() {
	if r.stopAll != nil {
		r.stopAll()
	}
	r.wg.Wait() // agents stop cleanly, before the broker
	if r.stopCC != nil {
		if err := r.stopCC(); err != nil {
			r.log.Error("control center stopped with an error", "err", err)
		}
	}
	if r.tmp {
		os.RemoveAll(r.dir)
	}
}

// observer sees every message the dashboard ingests, to count presses by (mac, seq) and the
// agents' births.
type observer struct {
	births atomic.Uint64

	mu        sync.Mutex
	presses   map[pressKey]struct{}
	dups      uint64
	lat       []time.Duration
	since     time.Time            // start of the current round (a start or restart)
	back      map[string]time.Time // agents online in the current round, and when
	changed   chan struct{}        // closed and replaced when back grows
	perWindow map[int64]int        // births per 100 ms window of the current round
}

type pressKey struct {
	mac string
	seq uint64
}

func newObserver() *observer {
	return &observer{presses: map[pressKey]struct{}{}, back: map[string]time.Time{}, changed: make(chan struct{}), perWindow: map[int64]int{}}
}

// ingest runs inside the broker, on the publisher's goroutine: it only records.
func (o *observer) ingest(m bus.Message) {
	topic, payload := m.Topic, m.Payload
	t, err := topics.Parse(topic)
	if err != nil {
		return
	}
	now := time.Now()
	switch t.Kind {
	case topics.KindButton:
		ev, err := topics.DecodeButton(payload)
		if err != nil {
			return
		}
		o.mu.Lock()
		k := pressKey{t.MAC, ev.Seq}
		if _, ok := o.presses[k]; ok {
			o.dups++
		} else {
			o.presses[k] = struct{}{}
			o.lat = append(o.lat, now.Sub(ev.TS))
		}
		o.mu.Unlock()
	case topics.KindStatus:
		st, err := topics.DecodeStatus(payload)
		if err != nil || st.State != topics.StateOnline {
			return
		}
		o.births.Add(1)
		o.mu.Lock()
		if _, ok := o.back[t.MAC]; !ok && !o.since.IsZero() {
			o.back[t.MAC] = now
			o.perWindow[int64(now.Sub(o.since)/(100*time.Millisecond))]++
			close(o.changed)
			o.changed = make(chan struct{})
		}
		o.mu.Unlock()
	}
}

func (o *observer) resetRound(since time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.since = since
	clear(o.back)
	clear(o.perWindow)
}

func (o *observer) roundOnline() (int, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.back), o.changed
}

// backTimes is how long after the round's start each agent came back, sorted.
func (o *observer) backTimes() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	var d []time.Duration
	for _, at := range o.back {
		d = append(d, at.Sub(o.since))
	}
	slices.Sort(d)
	return d
}

func (o *observer) peakPer100ms() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	peak := 0
	for _, n := range o.perWindow {
		peak = max(peak, n)
	}
	return peak
}

func (o *observer) pressCounts() (distinct, dups uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return uint64(len(o.presses)), o.dups
}

func (o *observer) latencies() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := slices.Clone(o.lat)
	slices.Sort(l)
	return l
}

// pct is the p-th percentile of sorted durations (nearest rank), rounded for printing.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i].Round(10 * time.Microsecond)
}

func heap() (bytes uint64, goroutines int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
