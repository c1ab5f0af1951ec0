package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/loadtest"
)

func registerBench(fs *flag.FlagSet, c *loadtest.Config, logLevel *string) {
	fs.IntVar(&c.Agents, "agents", 100, "simulated agents (real paho clients in this process)")
	fs.DurationVar(&c.Interval, "interval", agent.DefaultInterval, "telemetry period of each agent")
	fs.DurationVar(&c.KeepAlive, "keepalive", agent.DefaultKeepAlive, "MQTT keepalive of each agent")
	fs.DurationVar(&c.MaxReconnectDelay, "max-reconnect-delay", agent.DefaultMaxReconnectDelay, "agents' longest wait before a reconnection attempt (backoff + jitter)")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the control center and the agents' stores (default: a temporary one, removed)")
	fs.StringVar(logLevel, "log-level", "error", "debug, info, warn or error (agents and control center)")
	fs.DurationVar(&c.AllBackWithin, "wait", 5*time.Minute, "how long to wait for every agent to be online")
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: pirack bench soak|reconnect|hostile|compare [flags]\n\n" +
		"  soak       N agents for a while, with presses and LED commands: lost, duplicated, latency, memory\n" +
		"  reconnect  N agents, then restart the control center: how long until every agent is back\n" +
		"  hostile    slow consumers, pre-CONNECT flood, session flood, SIGKILLs of pirack serve under\n" +
		"             pressing agents: memory, refusals, presses lost or duplicated\n" +
		"  compare    pirack serve against Mosquitto and pirack-agent against node_exporter, side by\n" +
		"             side, interleaved: throughput, loss, latency, CPU, memory (docs/benchmarks.md)\n\n" +
		"They run a control center (broker, dashboard, history) in this process on 127.0.0.1;\n" +
		"hostile's SIGKILL loop runs this binary's serve as a subprocess.\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("bench: which benchmark? soak, reconnect, hostile or compare")
	}
	switch args[0] {
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	case "reconnect":
		return runReconnectBench(ctx, args[1:], stdout, stderr)
	case "hostile":
		return runHostileBench(ctx, args[1:], stdout, stderr)
	case "compare":
		return runCompare(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("bench: unknown benchmark %q", args[0])
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg loadtest.SoakConfig
	var level string
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerBench(fs, &cfg.Config, &level)
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "how long to press and command once every agent is online")
	fs.DurationVar(&cfg.PressEvery, "press-every", 30*time.Second, "mean time between two presses of one agent's button")
	fs.DurationVar(&cfg.CommandEvery, "command-every", time.Second, "time between LED commands (round robin over the agents; 0: none)")
	fs.DurationVar(&cfg.RestartEvery, "restart-every", 0, "restart the control center this often during the soak (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench soak takes no arguments, got %q", fs.Args())
	}
	var err error
	if cfg.Logger, err = newLogger(stderr, level); err != nil {
		return err
	}
	return loadtest.Soak(ctx, cfg, stdout)
}

func runReconnectBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg loadtest.Config
	var level string
	var restarts int
	fs := flag.NewFlagSet("bench reconnect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerBench(fs, &cfg, &level)
	fs.IntVar(&restarts, "restarts", 3, "control-center restarts to measure")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Logger, err = newLogger(stderr, level); err != nil {
		return err
	}
	return loadtest.Reconnect(ctx, cfg, restarts, stdout)
}

// hostileServe, when set (tests), is the command the hostile SIGKILL loop runs as `pirack
// serve`, with its environment: a test binary is not pirack.
var hostileServe struct{ argv, env []string }

func runHostileBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := loadtest.DefaultHostileConfig()
	var level, only string
	fs := flag.NewFlagSet("bench hostile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run, of "+strings.Join(loadtest.HostileScenarios, ",")+" (default: all)")
	fs.StringVar(&level, "log-level", "error", "debug, info, warn or error (control centers, and serve's output to stderr)")
	fs.IntVar(&cfg.SlowViewers, "slow-viewers", cfg.SlowViewers, "slow: sessions of one viewer that subscribe to rack/# and never read")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "slow: simulated agents publishing metrics")
	fs.IntVar(&cfg.PublishRate, "publish-rate", cfg.PublishRate, "slow: metrics messages a second, each publisher")
	fs.IntVar(&cfg.PayloadBytes, "payload", cfg.PayloadBytes, "slow: bytes of each metrics payload (at most 16384, the contract's limit)")
	fs.DurationVar(&cfg.SlowFor, "slow-for", cfg.SlowFor, "slow: how long to publish")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 0, "slow: the broker's --mqtt-write-timeout (0: its default)")
	retain := fs.Bool("retain", true, "slow: publish metrics retained, as agents do (false for race-detector runs: mochi-mqtt/server#200)")
	fs.IntVar(&cfg.FloodRate, "flood-rate", cfg.FloodRate, "flood: silent sockets a second from 127.0.0.1")
	fs.IntVar(&cfg.LegitAgents, "legit-agents", cfg.LegitAgents, "flood: agents connecting again and again from 127.0.0.2 meanwhile")
	fs.DurationVar(&cfg.FloodFor, "flood-for", cfg.FloodFor, "flood: how long")
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "sessions: persistent sessions one viewer tries to open")
	fs.IntVar(&cfg.FiltersPerSession, "filters", cfg.FiltersPerSession, "sessions: filters each session it gets tries to subscribe to")
	fs.IntVar(&cfg.Kills, "kills", cfg.Kills, "sigkill: SIGKILLs of pirack serve")
	fs.IntVar(&cfg.PressAgents, "press-agents", cfg.PressAgents, "sigkill: agents pressing their buttons")
	fs.DurationVar(&cfg.PressEvery, "press-every", cfg.PressEvery, "sigkill: time between two presses of one agent (one in flight each)")
	fs.DurationVar(&cfg.UpMin, "up-min", cfg.UpMin, "sigkill: shortest time serve runs before a kill")
	fs.DurationVar(&cfg.UpMax, "up-max", cfg.UpMax, "sigkill: longest time serve runs before a kill")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench hostile takes no arguments, got %q", fs.Args())
	}
	cfg.Unretained = !*retain
	if only != "" {
		cfg.Scenarios = strings.Split(only, ",")
	}
	var err error
	if cfg.Logger, err = newLogger(stderr, level); err != nil {
		return err
	}
	cfg.LogLevel, cfg.ServeLog = level, stderr
	cfg.Serve, cfg.ServeEnv = hostileServe.argv, hostileServe.env
	return loadtest.Hostile(ctx, cfg, stdout)
}

// runCompare is `pirack bench compare`: pirack against Mosquitto and node_exporter, side by
// side, as docs/benchmarks.md reports it.
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := loadtest.DefaultCompareConfig()
	var quick bool
	var jsonPath, only, idle string
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&quick, "quick", false, "the short run (make bench-quick): fewer agents, shorter windows, one repetition; the flags below override it")
	fs.StringVar(&jsonPath, "json", "bench-results.json", "file to write the results to as JSON (empty: none)")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run, of "+strings.Join(loadtest.CompareScenarios, ",")+" (default: all)")
	reps := fs.Int("reps", 0, "runs of each scenario on each side, interleaved (0: 3, or 1 with --quick)")
	agents := fs.Int("agents", 0, "simulated agents in the throughput, press and Locate scenarios (0: 1000, or 200 with --quick)")
	saturate := fs.Duration("saturate-for", 0, "publishing time at saturation (0: 8s, or 3s with --quick)")
	paced := fs.Duration("paced-for", 0, "publishing time at a set rate (0: 10s, or 5s with --quick)")
	fs.StringVar(&idle, "idle", "", "comma-separated fleet sizes for memory per idle connection (default: 1000,5000, or 200,1000 with --quick)")
	presses := fs.Int("presses", 0, "presses, and Locates, timed (0: 1000, or 200 with --quick)")
	footprint := fs.Duration("footprint-for", 0, "how long agent and node_exporter CPU is measured (0: 20s, or 8s with --quick)")
	fs.StringVar(&cfg.Agent, "agent", "", "pirack-agent binary (default: beside this pirack)")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", "", "mosquitto binary (default: from PATH or /usr/sbin)")
	fs.StringVar(&cfg.NodeExporter, "node-exporter", "", "node_exporter binary (default: prometheus-node-exporter from PATH)")
	fs.StringVar(&cfg.Commit, "commit", "", "the commit measured, recorded in the JSON")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "directory for a CPU profile of pirack serve over each throughput window (go tool pprof bin/pirack DIR/<scenario>-<run>.pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench compare takes no arguments, got %q", fs.Args())
	}
	if quick {
		q := loadtest.QuickCompareConfig()
		q.Agent, q.Mosquitto, q.NodeExporter, q.Commit, q.ProfileDir = cfg.Agent, cfg.Mosquitto, cfg.NodeExporter, cfg.Commit, cfg.ProfileDir
		cfg = q
	}
	if *reps > 0 {
		cfg.Reps = *reps
	}
	if *agents > 0 {
		cfg.Agents = *agents
	}
	if *saturate > 0 {
		cfg.SaturateFor = *saturate
	}
	if *paced > 0 {
		cfg.PacedFor = *paced
	}
	if *presses > 0 {
		cfg.Presses = *presses
	}
	if *footprint > 0 {
		cfg.FootprintFor = *footprint
	}
	if idle != "" {
		cfg.IdleAgents = nil
		for _, s := range strings.Split(idle, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--idle %q: %w", idle, err)
			}
			cfg.IdleAgents = append(cfg.IdleAgents, n)
		}
	}
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	cfg.Serve, cfg.ServeEnv = hostileServe.argv, hostileServe.env
	res, err := loadtest.Compare(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	if jsonPath != "" {
		if err := res.WriteJSON(jsonPath); err != nil {
			return fmt.Errorf("bench compare: write %s: %w", jsonPath, err)
		}
		fmt.Fprintf(stdout, "results written to %s\n", jsonPath)
	}
	return nil
}
