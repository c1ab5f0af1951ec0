// Package powerctl switches power where the hardware allows it: a row's smart plug relay
// (Tasmota, Shelly Gen1 and Gen2, over MQTT on the control center's broker) and a single Pi's
// USB hub port (through uhubctl on the control host). Which plugs and ports exist is the power
// bridge's file (powerbridge.File: plugs with "switch": true, and "ports").
//
// A switch is confirmed by the device: a plug's report of its relay after the command, or
// uhubctl's status of the port after its action. Power cycles of a Tasmota or a Shelly Gen2
// run on the plug itself (off, then on after CycleOff), so the row comes back even if the
// control center lost the plug (or its own power) meanwhile.
package powerctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/topics"
)

// The actions.
const (
	On    = "on"
	Off   = "off"
	Cycle = "cycle" // off, then on after Config.CycleOff
)

// Defaults of Config.
const (
	DefaultCycleOff = 5 * time.Second
	DefaultWait     = 10 * time.Second
)

// ErrNotSwitchable is returned (wrapped) for a row or Pi without a switch.
var ErrNotSwitchable = errors.New("no power switch")

// Config configures a Controller.
type Config struct {
	Bus  bus.Bus
	File powerbridge.File // validated by New
	// Uhubctl is the uhubctl command, looked up on PATH when it runs; "" is "uhubctl".
	Uhubctl string
	// CycleOff is how long a power cycle leaves the power off; 0 is DefaultCycleOff.
	CycleOff time.Duration
	// Wait is how long a plug has to report its relay after a command; 0 is DefaultWait.
	Wait time.Duration
	// OnChange, when set, is called with a row whose plug reported its relay switched (from
	// pirack, the plug's own button, or its app), so that pages follow. It must not block.
	OnChange func(row string)
	Logger   *slog.Logger
}

// State is a switch as last known.
type State struct {
	// Via is the kind of switch: powerbridge.TypeTasmota, TypeShellyGen1, TypeShellyGen2 or
	// "uhubctl".
	Via string `json:"via"`
	// On is the power as last reported, nil while unknown; At is when it was reported.
	On *bool     `json:"on,omitempty"`
	At time.Time `json:"at,omitzero"`
}

// Controller switches the rows' plugs and the Pis' hub ports. It is safe for concurrent use.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	relays map[string]*relay     // by row
	ports  map[string]*hubSwitch // by MAC
}

// relay is one row's plug relay and its reports.
type relay struct {
	plug powerbridge.Plug
	r    powerbridge.Relay

	mu      sync.Mutex
	state   State
	reports int           // counts reports, so a wait can tell new ones from old
	history [16]bool      // the last reports, by number modulo 16
	changed chan struct{} // closed and replaced at each report
	busy    sync.Mutex    // one command at a time

	onChange func(row string) // Config.OnChange
}

// hubSwitch is one Pi's hub port.
type hubSwitch struct {
	port powerbridge.HubPort

	mu    sync.Mutex
	state State
	busy  sync.Mutex
}

// New checks cfg and subscribes to the switchable plugs' reports.
func New(cfg Config) (*Controller, error) {
	if cfg.Bus == nil {
		return nil, errors.New("powerctl: Config.Bus is required")
	}
	if err := cfg.File.Validate(); err != nil {
		return nil, fmt.Errorf("powerctl: %w", err)
	}
	if cfg.Uhubctl == "" {
		cfg.Uhubctl = "uhubctl"
	}
	if cfg.CycleOff <= 0 {
		cfg.CycleOff = DefaultCycleOff
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, relays: map[string]*relay{}, ports: map[string]*hubSwitch{}}
	for _, p := range cfg.File.Plugs {
		if !p.Switch {
			continue
		}
		r, err := p.Relay()
		if err != nil {
			return nil, fmt.Errorf("powerctl: row %s: %w", p.Row, err)
		}
		rl := &relay{plug: p, r: r, state: State{Via: p.Type}, changed: make(chan struct{}), onChange: cfg.OnChange}
		if err := cfg.Bus.Subscribe(r.State, rl.take); err != nil {
			return nil, fmt.Errorf("powerctl: subscribe to %s for row %s: %w", r.State, p.Row, err)
		}
		c.relays[p.Row] = rl
		c.log.Info("row power switch", "row", p.Row, "plug", p.Type, "command", r.Command)
	}
	for _, h := range cfg.File.Ports {
		mac, _ := topics.NormalizeMAC(h.MAC) // validated
		c.ports[mac] = &hubSwitch{port: h, state: State{Via: "uhubctl"}}
		c.log.Info("Pi power switch", "mac", mac, "hub", h.Hub, "port", h.Port)
	}
	return c, nil
}

// take records a plug's report of its relay.
func (rl *relay) take(m bus.Message) {
	on, ok := rl.r.ParseState(m.Payload)
	if !ok {
		return // a status without the relay (a Gen2 meter update, say)
	}
	rl.mu.Lock()
	switched := rl.state.On == nil || *rl.state.On != on
	rl.state.On, rl.state.At = &on, time.Now()
	rl.reports++
	rl.history[rl.reports%len(rl.history)] = on
	close(rl.changed)
	rl.changed = make(chan struct{})
	rl.mu.Unlock()
	if switched && rl.onChange != nil {
		rl.onChange(rl.plug.Row)
	}
}

// Row returns the state of row's switch, and false when the row has none.
func (c *Controller) Row(row string) (State, bool) {
	rl, ok := c.relays[row]
	if !ok {
		return State{}, false
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.state, true
}

// Pi returns the state of the Pi's hub port (mac normalised), and false when it has none.
func (c *Controller) Pi(mac string) (State, bool) {
	h, ok := c.ports[mac]
	if !ok {
		return State{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state, true
}

func checkAction(action string) error {
	switch action {
	case On, Off, Cycle:
		return nil
	}
	return fmt.Errorf("action %q: want on, off or cycle", action)
}

// SwitchRow switches row's plug and waits for the plug to report its relay: on, off, or, for a
// cycle, off and then on again. An error says what failed and what to check.
func (c *Controller) SwitchRow(ctx context.Context, row, action string) (State, error) {
	rl, ok := c.relays[row]
	if !ok {
		return State{}, fmt.Errorf("row %s: %w: its plug is not in the power bridge file with \"switch\": true", row, ErrNotSwitchable)
	}
	if err := checkAction(action); err != nil {
		return State{}, err
	}
	rl.busy.Lock()
	defer rl.busy.Unlock()
	// QoS 0: a command is carried out now or never. Queued for a plug that is away, an "off"
	// would cut a row's power whenever the plug came back.
	publish := func(topic, payload string) error {
		err := c.cfg.Bus.Publish(ctx, bus.Message{Topic: topic, Payload: []byte(payload), QoS: 0})
		if err != nil {
			return fmt.Errorf("row %s: publish %s: %w", row, topic, err)
		}
		c.log.Info("row power command", "row", row, "topic", topic, "payload", payload)
		return nil
	}
	switch {
	case action == On || action == Off:
		from := rl.seen()
		if err := publish(rl.r.Command, map[string]string{On: rl.r.On, Off: rl.r.Off}[action]); err != nil {
			return State{}, err
		}
		st, _, err := rl.await(ctx, from, action == On, c.cfg.Wait, row)
		return st, err
	case rl.r.CycleOff != nil:
		from := rl.seen()
		if err := publish(rl.r.CycleTopic, rl.r.CycleOff(int(c.cfg.CycleOff.Round(time.Second)/time.Second))); err != nil {
			return State{}, err
		}
		_, off, err := rl.await(ctx, from, false, c.cfg.Wait, row)
		if err != nil {
			return State{}, err
		}
		// The "on" must come after that "off" (a plug may report both at once).
		st, _, err := rl.await(ctx, off, true, c.cfg.CycleOff+c.cfg.Wait, row)
		return st, err
	default: // a Shelly Gen1 cannot time it: off, wait, on
		from := rl.seen()
		if err := publish(rl.r.Command, rl.r.Off); err != nil {
			return State{}, err
		}
		if _, _, err := rl.await(ctx, from, false, c.cfg.Wait, row); err != nil {
			return State{}, err
		}
		select {
		case <-time.After(c.cfg.CycleOff):
		case <-ctx.Done():
			return State{}, fmt.Errorf("row %s is OFF: the power cycle was interrupted before switching it on again: %w", row, ctx.Err())
		}
		from = rl.seen()
		if err := publish(rl.r.Command, rl.r.On); err != nil {
			return State{}, fmt.Errorf("row %s is OFF, and switching it on failed: %w", row, err)
		}
		st, _, err := rl.await(ctx, from, true, c.cfg.Wait, row)
		return st, err
	}
}

// seen returns how many reports the relay has had.
func (rl *relay) seen() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.reports
}

// await waits up to d for a report after the from-th saying the relay is on (or off), and
// returns it with its number. Every report is looked at, not only the latest: a plug may send
// "off" and "on" back to back.
func (rl *relay) await(ctx context.Context, from int, on bool, d time.Duration, row string) (State, int, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		rl.mu.Lock()
		st, n, changed := rl.state, rl.reports, rl.changed
		at := -1
		for k := max(from+1, n-len(rl.history)+1); k <= n; k++ { // older ones are overwritten
			if rl.history[k%len(rl.history)] == on {
				at = k
				break
			}
		}
		rl.mu.Unlock()
		if at > 0 {
			return st, at, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			want := map[bool]string{true: "on", false: "off"}[on]
			return st, 0, fmt.Errorf("row %s: the %s plug did not report its relay %s within %s: check that it is connected to this broker as a plug user of row %s, and (Shelly Gen2) that MQTT control is enabled; see docs/hardware.md",
				row, rl.plug.Type, want, d, row)
		case <-ctx.Done():
			return st, 0, ctx.Err()
		}
	}
}

// SwitchPi switches the hub port of the Pi (mac normalised) with uhubctl and returns the port's
// state as uhubctl then reports it.
func (c *Controller) SwitchPi(ctx context.Context, mac, action string) (State, error) {
	h, ok := c.ports[mac]
	if !ok {
		return State{}, fmt.Errorf("Pi %s: %w: it is on no hub port in the power bridge file", mac, ErrNotSwitchable)
	}
	if err := checkAction(action); err != nil {
		return State{}, err
	}
	h.busy.Lock()
	defer h.busy.Unlock()
	args := []string{"-l", h.port.Hub, "-p", strconv.Itoa(h.port.Port), "-a", action}
	if action == Cycle {
		args = append(args, "-d", strconv.Itoa(max(1, int(c.cfg.CycleOff.Round(time.Second)/time.Second))))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CycleOff+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.cfg.Uhubctl, args...).CombinedOutput()
	c.log.Info("uhubctl", "mac", mac, "args", strings.Join(args, " "), "err", err)
	if err != nil {
		return State{}, fmt.Errorf("Pi %s: %s %s: %v: %s (uhubctl needs write access to the hub: see docs/hardware.md)",
			mac, c.cfg.Uhubctl, strings.Join(args, " "), err, lastLines(out, 3))
	}
	on, ok := portPower(out, h.port.Port)
	if !ok {
		return State{}, fmt.Errorf("Pi %s: uhubctl did not report hub %s port %d: %s", mac, h.port.Hub, h.port.Port, lastLines(out, 3))
	}
	if want := action != Off; on != want {
		return State{}, fmt.Errorf("Pi %s: after %s, uhubctl reports hub %s port %d %s: the hub may not switch its ports' power (uhubctl's list of compatible hubs)",
			mac, action, h.port.Hub, h.port.Port, map[bool]string{true: "on", false: "off"}[on])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state.On, h.state.At = &on, time.Now()
	return h.state, nil
}

// portLine is a port's status line in uhubctl's output: "  Port 2: 0503 power highspeed
// enable connect [...]", or "  Port 2: 0000 off".
var portLine = regexp.MustCompile(`(?m)^\s*Port (\d+): [0-9a-f]{4}\b(.*)$`)

// portPower reads port's power from the last status uhubctl printed for it.
func portPower(out []byte, port int) (on, ok bool) {
	for _, m := range portLine.FindAllSubmatch(out, -1) {
		if n, _ := strconv.Atoi(string(m[1])); n == port {
			flags := strings.Fields(string(m[2]))
			on, ok = !slices.Contains(flags, "off"), true
		}
	}
	return on, ok
}

// lastLines returns the last n lines of out, trimmed, on one line.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
