package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	const usage = "usage: pirack bench soak|reconnect [flags]\n\n" +
		"  soak       N agents for a while, with presses and LED commands: lost, duplicated, latency, memory\n" +
		"  reconnect  N agents, then restart the control center: how long until every agent is back\n\n" +
		"Both run a control center (broker, dashboard, history) in this process on 127.0.0.1.\n"
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
