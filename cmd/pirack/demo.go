package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	var sim demo.Config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	// The banner with the URL and password is what a newcomer needs to see; 24 agents
	// connecting at info level would scroll it away.
	fs.Lookup("log-level").DefValue = "warn"
	cfg.LogLevel = "warn"
	// The simulated Pis take shutdowns (and come back a few minutes later), so the safe
	// removal can be tried end to end.
	fs.Lookup("remote-system").DefValue = "true"
	cfg.RemoteSystem = true
	fs.IntVar(&sim.Rows, "rows", 3, "rows in the simulated rack")
	fs.IntVar(&sim.PerRow, "per-row", 8, "Pis per row")
	fs.DurationVar(&sim.Interval, "interval", 2*time.Second, "telemetry period of each simulated Pi")
	fs.DurationVar(&sim.PressEvery, "press-every", 20*time.Second, "mean time between simulated button presses (0: none)")
	troubles := fs.Bool("troubles", true, "put a simulated Pi in trouble now and then (hot, under-voltage, disk filling, hung, off the network, a row's supply sagging, an NVMe drive over its limit), so every alert shows; false keeps them healthy")
	if err := parseSettings(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo takes no arguments, got %q", fs.Args())
	}
	if cfg.Broker.URL != "" {
		return fmt.Errorf("demo: the simulated Pis need the embedded broker, which holds their accounts; drop --broker")
	}
	sim.NoTroubles = !*troubles
	if err := sim.Validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	ccfg := cfg.controlCenter(log, stdout)
	sim.Backfill, sim.Logger = true, log
	ccfg.Tasks = append(ccfg.Tasks, func(ctx context.Context, cc *controlcenter.ControlCenter) error {
		printDemoBanner(stdout, cc, sim)
		return nil
	}, demo.Task(sim))
	cc, err := controlcenter.New(ccfg)
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		if err := serveDebug(ctx, cfg.DebugAddr, log); err != nil {
			return err
		}
	}
	return cc.Run(ctx)
}

func printDemoBanner(w io.Writer, cc *controlcenter.ControlCenter, sim demo.Config) {
	password := "(the one you set; see pirack user)"
	if b, err := os.ReadFile(filepath.Join(cc.DataDir(), controlcenter.AdminPasswordFile)); err == nil {
		password = strings.TrimSpace(string(b))
	} else if u, ok := cc.Users().Get("admin"); !ok || u.Role != auth.RoleAdmin {
		// Users made before the first run (a homeassistant user, say): no admin was made.
		password = "(no admin user: pirack user add admin --role admin --data-dir " + cc.DataDir() + ")"
	}
	mqtt := cc.MQTTAddr()
	host, port, _ := net.SplitHostPort(mqtt)
	fmt.Fprintf(w, `
pirack demo: %d simulated Pis in %d rows are publishing to the embedded broker.

  Control Center  %s
  user            admin
  password        %s
  MQTT            %s  (watch it: mosquitto_sub -h %s -p %s -u admin -P '%s' -v -t 'rack/#')

Press Ctrl-C to stop.

`, sim.Rows*sim.PerRow, sim.Rows, cc.HTTPURL(), password, mqtt, host, port, password)
}
