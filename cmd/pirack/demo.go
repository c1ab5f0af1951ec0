package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// demoConfig shapes the simulated rack: the original build was 3 rows of 8.
type demoConfig struct {
	serveConfig
	Rows       int
	PerRow     int
	Interval   time.Duration // telemetry period of each simulated Pi
	PressEvery time.Duration // mean time between simulated button presses; 0 disables them
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	// The banner with the URL and password is what a newcomer needs to see; 24 agents
	// connecting at info level would scroll it away.
	fs.Lookup("log-level").DefValue = "warn"
	cfg.LogLevel = "warn"
	fs.IntVar(&cfg.Rows, "rows", 3, "rows in the simulated rack")
	fs.IntVar(&cfg.PerRow, "per-row", 8, "Pis per row")
	fs.DurationVar(&cfg.Interval, "interval", 2*time.Second, "telemetry period of each simulated Pi")
	fs.DurationVar(&cfg.PressEvery, "press-every", 20*time.Second, "mean time between simulated button presses (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Rows < 1 || cfg.PerRow < 1 || cfg.Rows*cfg.PerRow > 1000 {
		return fmt.Errorf("--rows %d x --per-row %d: want 1 to 1000 Pis in all", cfg.Rows, cfg.PerRow)
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	cc, err := startControlCenter(cfg.serveConfig, log, stdout)
	if err != nil {
		return err
	}
	pis := newDemoPis(cfg.Rows, cfg.PerRow)
	if err := addDemoPis(cc.users, pis); err != nil {
		cc.broker.Close()
		return err
	}
	if err := placeDemoPis(cc.layout, pis, cfg.PerRow); err != nil {
		cc.broker.Close()
		return err
	}
	printDemoBanner(stdout, cc, cfg)

	// The simulated Pis stop before the broker, as real ones would not: they publish their
	// clean "offline" instead of reconnecting into a broker that is going away.
	agentCtx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// A first run gets a week of history, ending where the agents, starting now, take over.
	// It runs behind the banner; the store is closed only after it is joined.
	backfill := backfillConfig{Path: filepath.Join(cfg.DataDir, historyFile), Live: cc.history, Pis: pis,
		End: time.Now(), Logger: log.With("component", "demo")}
	wg.Go(func() {
		if _, err := backfillDemoHistory(agentCtx, backfill); err != nil && agentCtx.Err() == nil {
			log.Error("a week of simulated history was not written; the charts start now", "err", err)
		}
	})
	for _, pi := range pis {
		wg.Go(func() { pi.run(agentCtx, cc.broker.Addr(), cfg.Interval, log) })
	}
	if cfg.PressEvery > 0 {
		wg.Go(func() { pressButtons(agentCtx, pis, cfg.PressEvery) })
	}
	wg.Go(func() { simulateRowPower(agentCtx, cc, log, cfg.Rows, cfg.PerRow, cfg.Interval) })
	err = cc.serve(ctx)
	stopAgents()
	wg.Wait()
	if cerr := cc.close(); err == nil {
		err = cerr
	}
	return err
}

// demoPi is one simulated Pi: a real agent over real MQTT, with simulated hardware.
type demoPi struct {
	mac, row, hostname, ip, password string
	seed                             uint64
	led                              *sim.LED
	button                           *sim.Button
}

// newDemoPis returns the simulated Pis of a rack of rows x perRow, row by row, each with a fresh
// password and a seed of its own (the same on every run, so each Pi behaves alike each time).
func newDemoPis(rows, perRow int) []*demoPi {
	var pis []*demoPi
	for r := 1; r <= rows; r++ {
		for s := 1; s <= perRow; s++ {
			pis = append(pis, &demoPi{
				mac: fmt.Sprintf("b827eb%02x%02x%02x", 0xd0, r, s), row: fmt.Sprintf("r%d", r),
				hostname: fmt.Sprintf("pi-r%d-%02d", r, s), ip: fmt.Sprintf("10.0.%d.%d", r, 10+s),
				password: auth.GeneratePassword(), seed: uint64(r*100 + s),
				led: new(sim.LED), button: new(sim.Button),
			})
		}
	}
	return pis
}

// addDemoPis gives every simulated Pi an agent account with its password. The hashes use
// bcrypt's minimum cost: these accounts exist only while the demo runs on this host.
func addDemoPis(users *auth.Users, pis []*demoPi) error {
	for _, pi := range pis {
		u := auth.User{Name: pi.mac, Role: auth.RoleAgent, MAC: pi.mac, Row: pi.row}
		if err := users.SetWithCost(u, pi.password, bcrypt.MinCost); err != nil {
			return fmt.Errorf("create the simulated Pi %s's account: %w", pi.mac, err)
		}
	}
	return nil
}

// placeDemoPis puts the simulated Pis into their rows' slots in order, as an operator would
// with assign mode, unless the data directory already has a layout (kept from an earlier run,
// perhaps rearranged).
func placeDemoPis(lay *layout.Store, pis []*demoPi, perRow int) error {
	if len(lay.Layout().Rows) > 0 {
		return nil
	}
	for i, pi := range pis {
		if _, err := lay.Put(pi.row, i%perRow+1, pi.mac); err != nil {
			return fmt.Errorf("place the simulated Pi %s: %w", pi.mac, err)
		}
	}
	return nil
}

func (pi *demoPi) run(ctx context.Context, brokerAddr string, interval time.Duration, log *slog.Logger) {
	err := agent.Run(ctx, agent.Config{
		Broker:    "tcp://" + dialable(brokerAddr),
		MAC:       pi.mac,
		Row:       pi.row,
		Password:  pi.password,
		Interval:  interval,
		Collector: agent.NewSimCollector(pi.seed, nil),
		LED:       pi.led,
		Button:    pi.button,
		Hostname:  pi.hostname,
		IP:        pi.ip,
		Logger:    log.With("component", "agent"),
	})
	if err != nil {
		log.Error("simulated agent stopped", "mac", pi.mac, "err", err)
	}
}

// pressButtons presses a random Pi's button now and then, the way an operator would.
func pressButtons(ctx context.Context, pis []*demoPi, mean time.Duration) {
	for {
		wait := time.Duration(float64(mean) * (0.5 + rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			pis[rand.IntN(len(pis))].button.Press(topics.PressShort)
		}
	}
}

// simulateRowPower publishes each row's supply reading, as an INA219 on one Pi of the row
// would: the original rack drew about 15 W per row of 8, under 2 W per Pi, and its 5 V rail sags
// a little with the current.
func simulateRowPower(ctx context.Context, cc *controlCenter, log *slog.Logger, rows, perRow int, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for r := 1; r <= rows; r++ {
				watts := round2(float64(perRow) * (1.45 + 0.35*rand.Float64()))
				volts := round2(5.15 - 0.012*watts/5)
				amps := round2(watts / volts)
				p := topics.Power{V: topics.Version, TS: now.UTC(), Volts: &volts, Amps: &amps, Watts: &watts, Source: "sim"}
				payload, err := topics.Encode(p)
				if err == nil {
					err = cc.broker.Publish(ctx, bus.Message{Topic: topics.PowerTopic(fmt.Sprintf("r%d", r)), Payload: payload, Retained: true})
				}
				if err != nil {
					log.Warn("simulated row power", "row", r, "err", err)
				}
			}
		}
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// dialable turns a listen address such as "[::]:1883" into one a client can dial.
func dialable(addr string) string {
	for _, any := range []string{"[::]:", "0.0.0.0:", ":"} {
		if strings.HasPrefix(addr, any) {
			return "127.0.0.1:" + strings.TrimPrefix(addr, any)
		}
	}
	return addr
}

func printDemoBanner(w io.Writer, cc *controlCenter, cfg demoConfig) {
	password := "(the one you set; see pirack user)"
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, adminPasswordFile)); err == nil {
		password = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(w, `
pirack demo: %d simulated Pis in %d rows are publishing to the embedded broker.

  Control Center  %s
  user            admin
  password        %s
  MQTT            %s  (watch it: mosquitto_sub -h 127.0.0.1 -p %s -u admin -P '%s' -v -t 'rack/#')

Press Ctrl-C to stop.

`, cfg.Rows*cfg.PerRow, cfg.Rows, cc.httpURL(), password, dialable(cc.broker.Addr()), portOf(cc.broker.Addr()), password)
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
