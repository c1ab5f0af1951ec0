// Package demo is a simulated rack for `pirack demo`: real agents over real MQTT with simulated
// GPIO and telemetry, random button presses, each row's supply, and a week of history written
// behind them on a data directory's first run, so a newcomer sees a living rack at once.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// Config shapes the simulated rack. The original build was 3 rows of 8.
type Config struct {
	Rows, PerRow int           // the rack's shape; 0 means 3 rows of 8
	Interval     time.Duration // telemetry period of each simulated Pi; 0 means 2 s
	PressEvery   time.Duration // mean time between simulated button presses; 0 means none
	// NoTroubles keeps every simulated Pi healthy. By default one Pi gets into trouble every
	// TroubleEvery (0: DefaultTroubleEvery) for TroubleFor (0: DefaultTroubleFor), troubles
	// taken in turn, so that every state and alert shows within minutes.
	NoTroubles               bool
	TroubleEvery, TroubleFor time.Duration
	// Backfill writes a week of simulated history on a data directory's first run.
	Backfill bool
	Logger   *slog.Logger // nil discards
}

// MaxPis bounds the simulated rack.
const MaxPis = 1000

func (c Config) withDefaults() Config {
	if c.Rows == 0 && c.PerRow == 0 {
		c.Rows, c.PerRow = 3, 8
	}
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.TroubleEvery <= 0 {
		c.TroubleEvery = DefaultTroubleEvery
	}
	if c.TroubleFor <= 0 {
		c.TroubleFor = DefaultTroubleFor
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate says what is wrong with the rack's shape.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Rows < 1 || c.PerRow < 1 || c.Rows*c.PerRow > MaxPis {
		return fmt.Errorf("--rows %d x --per-row %d: want 1 to %d Pis in all", c.Rows, c.PerRow, MaxPis)
	}
	return nil
}

// Task runs the simulated rack beside a control center: it gives every simulated Pi an agent
// account, places the Pis in their rows' slots (unless the data directory has a layout
// already), starts their agents against the control center's broker, presses buttons, publishes
// each row's power, and backfills history. It returns when ctx is done, once every agent has
// said goodbye.
func Task(cfg Config) controlcenter.Task {
	cfg = cfg.withDefaults()
	return func(ctx context.Context, cc *controlcenter.ControlCenter) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		pis := newPis(cfg.Rows, cfg.PerRow)
		if err := addAccounts(cc.Users(), pis); err != nil {
			return err
		}
		if err := place(cc.Layout(), pis, cfg.PerRow); err != nil {
			return err
		}
		log := cfg.Logger
		var wg sync.WaitGroup
		if cfg.Backfill {
			// A first run gets a week of history, ending where the agents, starting now,
			// take over. The control center closes its store only after this task returns.
			bf := backfillConfig{Path: filepath.Join(cc.DataDir(), controlcenter.HistoryFile), Live: cc.History(), Pis: pis, End: time.Now(), Logger: log.With("component", "demo")}
			wg.Go(func() {
				if _, err := backfillDemoHistory(ctx, bf); err != nil && ctx.Err() == nil {
					log.Error("a week of simulated history was not written; the charts start now", "err", err)
				}
			})
		}
		for i, p := range pis {
			// A few at a time, as a rack powering up would: all at once from one address they
			// would meet the broker's limit of CONNECTs pending per source, and a newcomer's
			// first screen would be refusal warnings.
			start := time.Duration(i) * 25 * time.Millisecond
			wg.Go(func() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(start):
				}
				p.run(ctx, cc.MQTTAddr(), cfg.Interval, log)
			})
		}
		if cfg.PressEvery > 0 {
			wg.Go(func() { pressButtons(ctx, pis, cfg.PressEvery) })
		}
		if !cfg.NoTroubles {
			wg.Go(func() { makeTrouble(ctx, pis, cfg.TroubleEvery, cfg.TroubleFor, log) })
		}
		wg.Go(func() { simulateRowPower(ctx, cc.Bus(), log, pis, cfg.Rows, cfg.Interval) })
		wg.Wait()
		return nil
	}
}

// pi is one simulated Pi: a real agent over real MQTT, with simulated hardware.
type pi struct {
	mac, row, hostname, ip, password string
	seed                             uint64
	led                              *sim.LED
	button                           *sim.Button
	trouble                          *troubleState
}

// newPis returns the simulated Pis of a rack of rows x perRow, row by row, each with a fresh
// password and a seed of its own (the same on every run, so each Pi behaves alike each time).
func newPis(rows, perRow int) []*pi {
	var pis []*pi
	for r := 1; r <= rows; r++ {
		for s := 1; s <= perRow; s++ {
			pis = append(pis, &pi{
				mac: fmt.Sprintf("b827eb%02x%02x%02x", 0xd0, r, s), row: fmt.Sprintf("r%d", r),
				hostname: fmt.Sprintf("pi-r%d-%02d", r, s), ip: fmt.Sprintf("10.0.%d.%d", r, 10+s),
				password: auth.GeneratePassword(), seed: uint64(r*100 + s),
				led: new(sim.LED), button: new(sim.Button), trouble: newTroubleState(),
			})
		}
	}
	return pis
}

// addAccounts gives every simulated Pi an agent account with its password. The hashes use
// bcrypt's minimum cost: these accounts exist only while the demo runs on this host.
func addAccounts(users *auth.Users, pis []*pi) error {
	for _, p := range pis {
		u := auth.User{Name: p.mac, Role: auth.RoleAgent, MAC: p.mac, Row: p.row}
		if err := users.SetWithCost(u, p.password, bcrypt.MinCost); err != nil {
			return fmt.Errorf("create the simulated Pi %s's account: %w", p.mac, err)
		}
	}
	return nil
}

// place puts the simulated Pis into their rows' slots in order, as an operator would with
// assign mode, unless the data directory already has a layout (kept from an earlier run,
// perhaps rearranged).
func place(lay *layout.Store, pis []*pi, perRow int) error {
	if len(lay.Layout().Rows) > 0 {
		return nil
	}
	for i, p := range pis {
		if _, err := lay.Put(p.row, i%perRow+1, p.mac); err != nil {
			return fmt.Errorf("place the simulated Pi %s: %w", p.mac, err)
		}
	}
	return nil
}

// run runs the Pi's agent until ctx is done; while the Pi is "off the network" (a trouble) its
// agent is stopped, and it starts again once the trouble ends, as a Pi that was unplugged.
func (p *pi) run(ctx context.Context, brokerAddr string, interval time.Duration, log *slog.Logger) {
	cfg := agent.Config{
		Broker:    "tcp://" + brokerAddr,
		MAC:       p.mac,
		Row:       p.row,
		Password:  p.password,
		Interval:  interval,
		Collector: troubledCollector{SimCollector: agent.NewSimCollector(p.seed, nil), state: p.trouble},
		LED:       p.led,
		Button:    p.button,
		Hostname:  p.hostname,
		IP:        p.ip,
		Logger:    log.With("component", "agent"),
		System:    func(action string) error { go p.powerOff(action, log); return nil },
	}
	for ctx.Err() == nil {
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := agent.Run(actx, cfg); err != nil {
				log.Error("simulated agent stopped", "mac", p.mac, "err", err)
			}
		}()
		for { // until ctx ends or the Pi goes off the network
			t, changed := p.trouble.get()
			if t == troubleOffline || t == troubleHalted {
				break
			}
			select {
			case <-ctx.Done():
			case <-changed:
				continue
			}
			break
		}
		cancel()
		<-done
		for { // off the network until the trouble ends
			t, changed := p.trouble.get()
			if (t != troubleOffline && t != troubleHalted) || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-changed:
			}
		}
	}
}

// powerOff is what the simulated Pi's system does with a shutdown or a reboot: its agent stops
// (cleanly: offline, LED left lit for a shutdown), it draws no power, and it comes back after
// haltedFor (as if pulled and plugged back in) or rebootFor.
func (p *pi) powerOff(action string, log *slog.Logger) {
	off := haltedFor
	if action == topics.SystemReboot {
		off = rebootFor
	}
	log.Info("demo: a Pi goes down", "pi", p.hostname, "action", action, "for", off)
	p.trouble.set(troubleHalted)
	time.Sleep(off)
	if t, _ := p.trouble.get(); t == troubleHalted {
		p.trouble.set("")
	}
}

// pressButtons presses a random Pi's button now and then, the way an operator would.
func pressButtons(ctx context.Context, pis []*pi, mean time.Duration) {
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
func simulateRowPower(ctx context.Context, b bus.Bus, log *slog.Logger, pis []*pi, rows int, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			sagging := map[string]bool{}
			powered := map[string]int{} // a shut-down Pi draws nothing
			for _, p := range pis {
				t, _ := p.trouble.get()
				if t == troubleRowPower {
					sagging[p.row] = true
				}
				if t != troubleHalted {
					powered[p.row]++
				}
			}
			for r := 1; r <= rows; r++ {
				watts := round2(float64(powered[fmt.Sprintf("r%d", r)]) * (1.45 + 0.35*rand.Float64()))
				volts := round2(5.15 - 0.012*watts/5)
				if sagging[fmt.Sprintf("r%d", r)] { // a failing supply: less power, low voltage
					watts, volts = round2(watts*0.55), round2(volts-0.45)
				}
				amps := round2(watts / volts)
				p := topics.Power{V: topics.Version, TS: now.UTC(), Volts: &volts, Amps: &amps, Watts: &watts, Source: "sim"}
				payload, err := topics.Encode(p)
				if err == nil {
					err = b.Publish(ctx, bus.Message{Topic: topics.PowerTopic(fmt.Sprintf("r%d", r)), Payload: payload, Retained: true})
				}
				if err != nil && ctx.Err() == nil {
					log.Warn("simulated row power", "row", r, "err", err)
				}
			}
		}
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
