package main

import (
	"context"
	"errors"
	"flag"
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

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/switchbus"
	"github.com/pirack/pirack/topics"
)

// benchConfig is what `pirack bench soak` and `pirack bench reconnect` share.
type benchConfig struct {
	Agents            int
	Interval          time.Duration // telemetry period of each simulated agent
	KeepAlive         time.Duration
	MaxReconnectDelay time.Duration
	DataDir           string // "" means a temporary directory, removed at the end
	LogLevel          string
	AllBackWithin     time.Duration // how long to wait for every agent to be online
}

func (c *benchConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.Agents, "agents", 100, "simulated agents (real paho clients in this process)")
	fs.DurationVar(&c.Interval, "interval", agent.DefaultInterval, "telemetry period of each agent")
	fs.DurationVar(&c.KeepAlive, "keepalive", agent.DefaultKeepAlive, "MQTT keepalive of each agent")
	fs.DurationVar(&c.MaxReconnectDelay, "max-reconnect-delay", agent.DefaultMaxReconnectDelay, "agents' longest wait before a reconnection attempt (backoff + jitter)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the broker and the agents' stores (default: a temporary one, removed)")
	fs.StringVar(&c.LogLevel, "log-level", "error", "debug, info, warn or error (agents and control center)")
	fs.DurationVar(&c.AllBackWithin, "wait", 5*time.Minute, "how long to wait for every agent to be online")
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: pirack bench soak|reconnect [flags]\n\n" +
		"  soak       N agents for a while, with presses and LED commands: lost, duplicated, latency, memory\n" +
		"  reconnect  N agents, then restart the broker: how long until every agent is back\n\n" +
		"Both run an embedded control center (broker and dashboard) in this process on 127.0.0.1.\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("bench: which benchmark? soak or reconnect")
	}
	switch args[0] {
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	case "reconnect":
		return runReconnectBench(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("bench: unknown benchmark %q", args[0])
}

// soakConfig shapes `pirack bench soak`.
type soakConfig struct {
	benchConfig
	Duration     time.Duration
	PressEvery   time.Duration // mean time between presses of one agent
	CommandEvery time.Duration // time between LED commands, each to the next agent in turn
	RestartEvery time.Duration // 0: never restart the broker during the soak
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg soakConfig
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "how long to press and command once every agent is online")
	fs.DurationVar(&cfg.PressEvery, "press-every", 30*time.Second, "mean time between two presses of one agent's button")
	fs.DurationVar(&cfg.CommandEvery, "command-every", time.Second, "time between LED commands (round robin over the agents; 0: none)")
	fs.DurationVar(&cfg.RestartEvery, "restart-every", 0, "restart the broker this often during the soak (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench soak takes no arguments, got %q", fs.Args())
	}
	if cfg.Agents < 1 || cfg.Duration <= 0 || cfg.PressEvery <= 0 || cfg.CommandEvery < 0 {
		return errors.New("bench soak: --agents, --duration and --press-every must be positive")
	}
	r, err := startBenchRig(ctx, cfg.benchConfig, stderr)
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
					fmt.Fprintf(stderr, "restart: %v\n", err)
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
	st := r.dash.Stats()
	fmt.Fprintf(stdout, "presses:   %d pressed, %d reached the dashboard, %d lost, %d duplicates (dashboard counted %d)\n",
		pressed, seen, pressed-min(seen, pressed), dups, st.Duplicates)
	fmt.Fprintf(stdout, "latency:   press to dashboard p50 %v, p95 %v, p99 %v, max %v (%d samples)\n",
		pct(lat, 50), pct(lat, 95), pct(lat, 99), pct(lat, 100), len(lat))
	fmt.Fprintf(stdout, "commands:  %d sent, %d delivered (LED flashes)\n", cmdsSent, flashes)
	fmt.Fprintf(stdout, "reconnects: %d (births beyond the first of each agent); broker restarts %d, all back after %v\n",
		r.obs.births.Load()-birthsStart, len(restarts), restarts)
	fmt.Fprintf(stdout, "memory:    heap %.1f MiB at start, %.1f MiB at end (%+.1f MiB); goroutines %d -> %d\n",
		mib(heapStart), mib(heapEnd), mib(heapEnd)-mib(heapStart), gorStart, gorEnd)
	fmt.Fprintf(stdout, "drain:     %v after the soak ended\n", drained.Round(time.Millisecond))
	if pressed != seen {
		return fmt.Errorf("bench soak: %d presses lost", pressed-min(seen, pressed))
	}
	return nil
}

// runReconnectBench measures how long a fleet takes to come back after broker restarts.
func runReconnectBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg benchConfig
	var restarts int
	fs := flag.NewFlagSet("bench reconnect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	fs.IntVar(&restarts, "restarts", 3, "broker restarts to measure")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Agents < 1 || restarts < 1 {
		return errors.New("bench reconnect: --agents and --restarts must be positive")
	}
	r, err := startBenchRig(ctx, cfg, stderr)
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
		d, err := r.restart(ctx, cfg.AllBackWithin)
		if err != nil {
			return err
		}
		times := r.obs.backTimes()
		fmt.Fprintf(stdout, "restart %d: all back after %v; per agent p50 %v, p95 %v, max %v; peak %d connections in one 100 ms window\n",
			i+1, d.Round(time.Millisecond), pct(times, 50), pct(times, 95), pct(times, 100), r.obs.peakPer100ms())
	}
	return nil
}

// benchRig is an embedded control center with simulated agents, and an observer that sees what
// the dashboard ingests.
type benchRig struct {
	cfg    benchConfig
	log    *slog.Logger
	dir    string
	tmp    bool
	addr   string // the broker's address, kept across restarts
	users  *auth.Users
	bus    *switchbus.Bus
	dash   *dashboard.Server
	obs    *observer
	agents []*benchAgent

	started  time.Time // when the agents were started
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

func startBenchRig(ctx context.Context, cfg benchConfig, stderr io.Writer) (*benchRig, error) {
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	r := &benchRig{cfg: cfg, log: log, dir: cfg.DataDir, obs: newObserver()}
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "pirack-bench-"); err != nil {
			return nil, err
		}
		r.tmp = true
	}
	if r.users, err = auth.Open(filepath.Join(r.dir, "users.json")); err != nil {
		return nil, err
	}
	// Reserve a port, so that the restarted broker listens where the agents look.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.addr = ln.Addr().String()
	ln.Close()

	r.bus = &switchbus.Bus{}
	b, err := r.newBroker()
	if err != nil {
		return nil, err
	}
	r.bus.Swap(b) // no subscriptions yet: cannot fail
	r.dash, err = dashboard.New(dashboard.Config{Bus: r.bus, Auth: r.users, Logger: log.With("component", "dashboard")})
	if err != nil {
		b.Close()
		return nil, err
	}
	if err := r.bus.Subscribe(topics.AllFilter, r.obs.ingest); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Close()
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
		if err := r.users.SetWithCost(u, a.password, bcrypt.MinCost); err != nil {
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

func (r *benchRig) newBroker() (*broker.Broker, error) {
	return broker.New(broker.Config{
		Addr: r.addr, DataDir: r.dir, Users: r.users, MaxClients: r.cfg.Agents + 64,
		Logger: r.log.With("component", "broker"),
	})
}

// restart closes the broker, opens it again on the same data directory and port with the
// dashboard re-subscribed, and returns how long until every agent was online again.
func (r *benchRig) restart(ctx context.Context, within time.Duration) (time.Duration, error) {
	if err := r.bus.Current().Close(); err != nil {
		return 0, fmt.Errorf("close broker: %w", err)
	}
	b, err := r.newBroker()
	if err != nil {
		return 0, fmt.Errorf("reopen broker: %w", err)
	}
	if err := r.bus.Swap(b); err != nil { // replays the dashboard's and the observer's subscriptions
		b.Close()
		return 0, err
	}
	start := time.Now()
	r.obs.resetRound(start)
	if err := b.Start(); err != nil {
		return 0, fmt.Errorf("restart broker: %w", err)
	}
	if err := r.awaitAllOnline(ctx, within); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// awaitAllOnline waits until every agent has published an online birth in the current round
// (see observer.resetRound).
func (r *benchRig) awaitAllOnline(ctx context.Context, within time.Duration) error {
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
func (r *benchRig) pressLoop(ctx context.Context, every time.Duration) {
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
func (r *benchRig) commandLoop(ctx context.Context, every time.Duration) {
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
		if err := r.bus.Publish(ctx, bus.Message{Topic: topics.LEDTopic(a.mac), Payload: b, QoS: 1}); err == nil {
			r.commands.Add(1)
		}
	}
}

// pressed is the number of presses the agents' buttons accepted.
func (r *benchRig) pressed() uint64 {
	var n uint64
	for _, a := range r.agents {
		n += a.pressed.Load()
	}
	return n
}

// awaitDrained waits until every press has reached the dashboard and every command flashed its
// LED, or until within has passed.
func (r *benchRig) awaitDrained(ctx context.Context, within time.Duration) {
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

func (r *benchRig) close() {
	if r.stopAll != nil {
		r.stopAll()
	}
	r.wg.Wait() // agents stop cleanly, before the broker
	if b := r.bus.Current(); b != nil {
		b.Close()
	}
	if r.tmp {
		os.RemoveAll(r.dir)
	}
}

var _ bus.Bus = (*switchbus.Bus)(nil)

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
