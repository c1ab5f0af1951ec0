package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/controlcenter"
)

// Hostile scenarios, by the names HostileConfig.Scenarios takes, in the order they run.
const (
	ScenarioSlow     = "slow"     // subscribers that never read
	ScenarioFlood    = "flood"    // silent sockets from one address, agents from another
	ScenarioSessions = "sessions" // one viewer opening persistent sessions and subscriptions
	ScenarioSIGKILL  = "sigkill"  // pirack serve SIGKILLed under pressing agents
)

// HostileScenarios lists every scenario, in the order Hostile runs them.
var HostileScenarios = []string{ScenarioSlow, ScenarioFlood, ScenarioSessions, ScenarioSIGKILL}

// HostileConfig shapes Hostile. DefaultHostileConfig gives the figures of docs/reliability.md;
// each count and duration of a scenario that runs must be positive.
type HostileConfig struct {
	// Scenarios are the ones to run (HostileScenarios); none means all.
	Scenarios []string
	// Logger receives the in-process control centers' logs; nil discards. Warnings are
	// counted either way.
	Logger *slog.Logger
	// LogLevel is the --log-level of the `pirack serve` subprocesses; "" means error. ServeLog
	// receives their output; nil discards it.
	LogLevel string
	ServeLog io.Writer

	// Slow consumers: SlowViewers sessions of one viewer subscribe to rack/# and never read
	// (they send PINGREQs, so their keepalive holds, and connect again when cut off) while
	// Publishers simulated agents publish PublishRate metrics messages a second each, of
	// PayloadBytes (a valid payload padded with a field readers ignore; at most
	// topics.MaxPayload), for SlowFor. A second viewer reads everything. WriteTimeout is the
	// broker's Limits.WriteTimeout; 0 keeps its default (10 s).
	SlowViewers, Publishers, PublishRate, PayloadBytes int
	SlowFor, WriteTimeout                              time.Duration
	// Unretained publishes the metrics without the retain flag agents set. It is for runs
	// under the race detector: Mochi v2.7.9 reads a topic's retained-message path without
	// the lock it is written under when a wildcard SUBSCRIBE meets a retained publish to that
	// topic (mochi-mqtt/server#200), which the viewers' reconnections make likely here.
	Unretained bool

	// Pre-CONNECT flood: FloodRate silent sockets a second from 127.0.0.1 for FloodFor, while
	// LegitAgents agents connect again and again from 127.0.0.2.
	FloodRate, LegitAgents int
	FloodFor               time.Duration

	// Session flood: one viewer tries to open Sessions persistent sessions, and subscribes each
	// one it gets to FiltersPerSession filters (in packets of 100), while an agent presses its
	// button every 50 ms and times each acknowledgement.
	Sessions, FiltersPerSession int

	// SIGKILL loop: a `pirack serve` subprocess is SIGKILLed Kills times, each after running a
	// random time between UpMin and UpMax, and started again on the same data directory and
	// port, while PressAgents agents press their buttons, one press in flight each, a new one
	// every PressEvery.
	Kills, PressAgents int
	PressEvery         time.Duration
	UpMin, UpMax       time.Duration
	// Serve is the command that runs `pirack serve`, its flags appended; nil means this
	// executable with "serve". ServeEnv is added to its environment.
	Serve    []string
	ServeEnv []string
}

// DefaultHostileConfig is about a minute and a half on 2 cores.
func DefaultHostileConfig() HostileConfig {
	return HostileConfig{
		SlowViewers: 4, Publishers: 4, PublishRate: 50, PayloadBytes: 12 << 10, SlowFor: 20 * time.Second,
		FloodRate: 200, LegitAgents: 20, FloodFor: 15 * time.Second,
		Sessions: 2000, FiltersPerSession: 1000,
		Kills: 5, PressAgents: 8, PressEvery: 20 * time.Millisecond, UpMin: 2 * time.Second, UpMax: 5 * time.Second,
	}
}

func (c HostileConfig) check() error {
	if len(c.Scenarios) == 0 {
		c.Scenarios = HostileScenarios
	}
	for _, s := range c.Scenarios {
		var bad bool
		switch s {
		case ScenarioSlow:
			bad = c.SlowViewers < 1 || c.Publishers < 1 || c.PublishRate < 1 || c.PayloadBytes < 1 || c.SlowFor <= 0 || c.WriteTimeout < 0
		case ScenarioFlood:
			bad = c.FloodRate < 1 || c.LegitAgents < 1 || c.FloodFor <= 0
		case ScenarioSessions:
			bad = c.Sessions < 1 || c.FiltersPerSession < 0
		case ScenarioSIGKILL:
			bad = c.Kills < 1 || c.PressAgents < 1 || c.PressEvery <= 0 || c.UpMin <= 0 || c.UpMax < c.UpMin
		default:
			return fmt.Errorf("bench hostile: unknown scenario %q, want one of %s", s, strings.Join(HostileScenarios, ", "))
		}
		if bad {
			return fmt.Errorf("bench hostile: the %s scenario's counts and durations must be positive (and --up-max at least --up-min)", s)
		}
	}
	return nil
}

// hostileRow is one scenario's line of the summary.
type hostileRow struct {
	name, load, memory, result string
	failed                     []string // broken invariants
}

// Hostile runs the hostile-client scenarios one after another, each against its own control
// center (in this process, built by package controlcenter, for the first three; a `pirack
// serve` subprocess for the SIGKILL loop), prints what each measured and a summary table to
// stdout, and fails if an invariant broke: an acknowledged press lost or a press stored twice,
// a legitimate agent kept out by the flood, the reading subscriber starved by the others.
func Hostile(ctx context.Context, cfg HostileConfig, stdout io.Writer) error {
	if err := cfg.check(); err != nil {
		return err
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = HostileScenarios
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	fmt.Fprintf(stdout, "hostile: GOMAXPROCS %d; broker limits at their defaults unless said (docs/security.md#limits)\n", runtime.GOMAXPROCS(0))
	var rows []hostileRow
	for _, s := range HostileScenarios {
		if !slices.Contains(cfg.Scenarios, s) {
			continue
		}
		start := time.Now()
		var row hostileRow
		var err error
		switch s {
		case ScenarioSlow:
			row, err = slowConsumers(ctx, cfg, stdout)
		case ScenarioFlood:
			row, err = preConnectFlood(ctx, cfg, stdout)
		case ScenarioSessions:
			row, err = sessionFlood(ctx, cfg, stdout)
		case ScenarioSIGKILL:
			row, err = sigkillLoop(ctx, cfg, stdout)
		}
		if err != nil {
			return fmt.Errorf("bench hostile: %s: %w", s, err)
		}
		fmt.Fprintf(stdout, "  (%s took %v)\n", row.name, time.Since(start).Round(100*time.Millisecond))
		rows = append(rows, row)
	}

	fmt.Fprintln(stdout, "\nsummary")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tload\tmemory\tresult")
	var failed []string
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.load, r.memory, r.result)
		for _, f := range r.failed {
			failed = append(failed, r.name+": "+f)
		}
	}
	tw.Flush()
	if len(failed) > 0 {
		return fmt.Errorf("bench hostile: %s", strings.Join(failed, "; "))
	}
	return nil
}

// hostileCC is an in-process control center of its own for one scenario, on a temporary data
// directory, with warnings counted.
type hostileCC struct {
	cc    *controlcenter.ControlCenter
	stop  func() error
	dir   string
	warns *atomic.Int64
}

// hostileUser is an account a scenario makes. Agents are bound to their MAC and row r1.
type hostileUser struct {
	name string
	role auth.Role
	pass string
}

func startHostileCC(cfg HostileConfig, limits broker.Limits, users ...hostileUser) (*hostileCC, error) {
	dir, err := os.MkdirTemp("", "pirack-hostile-")
	if err != nil {
		return nil, err
	}
	h := &hostileCC{dir: dir, warns: new(atomic.Int64)}
	log := slog.New(&warnCounter{Handler: cfg.Logger.Handler(), n: h.warns})
	h.cc, h.stop, err = runControlCenter(controlcenter.Config{
		DataDir: dir, Logger: log, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", BrokerLimits: limits,
	}, func(cc *controlcenter.ControlCenter) error {
		for _, u := range users {
			au := auth.User{Name: u.name, Role: u.role}
			if u.role == auth.RoleAgent {
				au.MAC, au.Row = u.name, "r1"
			}
			if err := cc.Users().SetWithCost(au, u.pass, bcrypt.MinCost); err != nil {
				return fmt.Errorf("create user %s: %w", u.name, err)
			}
		}
		return nil
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return h, nil
}

func (h *hostileCC) close() error {
	err := h.stop()
	os.RemoveAll(h.dir)
	return err
}

// warnCounter counts the records at warning level and above, whatever its handler keeps: how
// much a hostile client makes the control center log.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (w *warnCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || w.Handler.Enabled(ctx, l)
}

func (w *warnCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.n.Add(1)
	}
	if !w.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return w.Handler.Handle(ctx, r)
}

func (w *warnCounter) WithAttrs(a []slog.Attr) slog.Handler {
	return &warnCounter{Handler: w.Handler.WithAttrs(a), n: w.n}
}

func (w *warnCounter) WithGroup(g string) slog.Handler {
	return &warnCounter{Handler: w.Handler.WithGroup(g), n: w.n}
}

// sleepCtx waits d, or less if ctx ends; it reports whether the whole d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// memText is a scenario's memory line: heap in use at the start, its peak, and the peak RSS.
// An in-process control center shares its process with the benchmark's clients, which are
// raw sockets and a paho client or two: small beside what the broker holds for them.
func memText(m *memPeak) string {
	heap, rss := m.peaks()
	if !m.heap {
		return fmt.Sprintf("RSS peak %.1f MiB", mib(rss))
	}
	return fmt.Sprintf("heap %.1f -> peak %.1f MiB, RSS peak %.1f MiB (with the clients)", mib(m.baseHeap), mib(heap), mib(rss))
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
