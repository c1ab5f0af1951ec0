// Package homeassistant announces the rack to Home Assistant by MQTT discovery, over the
// control center's bus, so it works on the embedded broker and on a foreign one alike.
//
// Each Pi is one Home Assistant device, announced with one retained device-based discovery
// config on homeassistant/device/pirack_<mac>/config. Its entities read pirack's own retained
// topics (the Pi's metrics and status, its row's power) with templates: nothing is published
// twice. The control center is a device too, which the Pis are reached through (via_device).
// Configs follow the rack: a new Pi, a renamed slot, a Pi that moved rows or reports a new
// metric is announced again; a forgotten Pi's config is emptied, which removes the device from
// Home Assistant. Everything is announced again when Home Assistant says it is online.
package homeassistant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/topics"
)

// Rack is what discovery reads of the control center's rack (a *dashboard.Rack).
type Rack interface {
	Nodes() []dashboard.Node
	Rows() []dashboard.Row
}

var _ Rack = (*dashboard.Rack)(nil)

// Config configures discovery. Bus and Rack are required.
type Config struct {
	Bus  bus.Bus
	Rack Rack
	// ID names the control center's device in Home Assistant; "" means DefaultID. Two control
	// centers announcing to one Home Assistant need two. Characters outside [a-zA-Z0-9_-]
	// become '_'.
	ID string
	// Version is pirack's version, in the origin of every config and the control center's
	// device; "" means the binary's (buildinfo.Version).
	Version string
	// Logger receives what went wrong; nil discards.
	Logger *slog.Logger
	// ScanEvery is how often the rack is compared with what was announced; 0 means
	// DefaultScanEvery.
	ScanEvery time.Duration
	// OrphanGrace is how long after Run starts a retained config of a Pi the rack does not
	// know (forgotten while discovery was off) is left alone, so that the rack can first hear
	// the retained statuses of a foreign broker; 0 means DefaultOrphanGrace.
	OrphanGrace time.Duration
}

// Defaults applied by New.
const (
	DefaultID          = "pirack-control-center"
	DefaultScanEvery   = 2 * time.Second
	DefaultOrphanGrace = time.Minute
)

// publishTimeout bounds one publish, so that a lost foreign broker cannot hold the loop.
const publishTimeout = 10 * time.Second

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = DefaultID
	}
	if c.Version == "" {
		c.Version = buildinfo.Version()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ScanEvery <= 0 {
		c.ScanEvery = DefaultScanEvery
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = DefaultOrphanGrace
	}
	return c
}

// Discovery keeps Home Assistant's view of the rack in step with the rack. Build it with New,
// run it with Run.
type Discovery struct {
	cfg  Config
	log  *slog.Logger
	ccID string
	// announce is signalled when Home Assistant comes online: Run announces everything again.
	announce chan struct{}

	mu       sync.Mutex
	retained map[string]bool // device ids whose config the broker holds, as last heard

	// Run's own.
	sent    map[string]string  // device id -> config last published
	seen    map[string]*piSeen // by MAC
	ccState ccState
}

// piSeen is what a Pi has reported so far. Sensors are only added: a metric missing from one
// message (a failed read) must not remove an entity, with its history, from Home Assistant.
type piSeen struct {
	row        string
	has, power metricSet
}

// New subscribes to Home Assistant's status and to the discovery configs on the broker. It
// publishes nothing until Run.
func New(cfg Config) (*Discovery, error) {
	if cfg.Bus == nil || cfg.Rack == nil {
		return nil, errors.New("homeassistant: Config.Bus and Config.Rack are required")
	}
	cfg = cfg.withDefaults()
	d := &Discovery{
		cfg: cfg, log: cfg.Logger, ccID: topics.HAObjectID(cfg.ID),
		announce: make(chan struct{}, 1),
		retained: map[string]bool{}, sent: map[string]string{}, seen: map[string]*piSeen{},
	}
	if err := cfg.Bus.Subscribe(topics.HAStatusTopic, d.onStatus); err != nil {
		return nil, fmt.Errorf("home assistant: subscribe to %s: %w", topics.HAStatusTopic, err)
	}
	if err := cfg.Bus.Subscribe(topics.HADeviceConfigFilter, d.onConfig); err != nil {
		return nil, fmt.Errorf("home assistant: subscribe to %s: %w", topics.HADeviceConfigFilter, err)
	}
	return d, nil
}

// onStatus hears Home Assistant's birth. It runs on the bus's goroutine: it only signals Run.
func (d *Discovery) onStatus(m bus.Message) {
	if string(m.Payload) != topics.HAOnline {
		return
	}
	select {
	case d.announce <- struct{}{}:
	default: // an announcement is already due
	}
}

// onConfig keeps track of the configs the broker holds, ours included.
func (d *Discovery) onConfig(m bus.Message) {
	id, ok := topics.HADeviceID(m.Topic)
	if !ok {
		return
	}
	d.mu.Lock()
	if len(m.Payload) == 0 {
		delete(d.retained, id)
	} else {
		d.retained[id] = true
	}
	d.mu.Unlock()
}

// Run announces the rack, then keeps the announcements in step with it until ctx is done; it
// then marks the control center offline. It returns nil.
func (d *Discovery) Run(ctx context.Context) error {
	start := time.Now()
	d.scan(ctx, true, false)
	tick := time.NewTicker(d.cfg.ScanEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stop()
			return nil
		case <-d.announce:
			d.log.Info("Home Assistant is online: announcing the rack again")
			d.scan(ctx, true, time.Since(start) >= d.cfg.OrphanGrace)
		case <-tick.C:
			d.scan(ctx, false, time.Since(start) >= d.cfg.OrphanGrace)
		}
	}
}

// stop publishes the control center's state as offline, on a context of its own: Run's is done.
func (d *Discovery) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	st := d.ccState
	st.State = topics.HAOffline
	d.publishState(ctx, st)
}

// scan compares the rack with what was announced and publishes the difference; all publishes
// every config again. orphans also empties the retained configs of Pis the rack does not know.
func (d *Discovery) scan(ctx context.Context, all, orphans bool) {
	nodes := d.cfg.Rack.Nodes()
	rows := map[string]dashboard.Row{}
	for _, r := range d.cfg.Rack.Rows() {
		rows[r.Name] = r
	}
	want := make(map[string][]byte, len(nodes)+1)
	want[d.ccID] = ccConfig(d.ccID, d.cfg.Version)
	online := 0
	for _, n := range nodes {
		if !topics.IsMAC(n.MAC) || topics.ValidateRow(n.Row) != nil {
			continue // the rack only holds valid ones; a config with a bad topic is worse than none
		}
		if n.Online() {
			online++
		}
		b, err := piConfig(d.observe(n, rows[n.Row]), d.ccID, d.cfg.Version)
		if err != nil {
			d.log.Error("build a Home Assistant discovery config", "mac", n.MAC, "err", err)
			continue
		}
		want[PiDeviceID(n.MAC)] = b
	}

	failed := 0
	for id, b := range want {
		if !all && d.sent[id] == string(b) {
			continue
		}
		if d.publish(ctx, topics.HADeviceConfigTopic(id), b) {
			d.sent[id] = string(b)
		} else {
			failed++
		}
	}
	for id := range d.sent {
		if _, ok := want[id]; ok {
			continue
		}
		// Forgotten: an empty config removes the device and its entities from Home Assistant.
		if d.publish(ctx, topics.HADeviceConfigTopic(id), nil) {
			delete(d.sent, id)
			if mac, ok := piMAC(id); ok {
				delete(d.seen, mac)
			}
			d.log.Info("Pi removed from Home Assistant", "device", id)
		} else {
			failed++
		}
	}
	if orphans {
		for _, id := range d.orphans(want) {
			if d.publish(ctx, topics.HADeviceConfigTopic(id), nil) {
				d.log.Info("Home Assistant config of a Pi the rack does not know removed", "device", id)
			}
		}
	}
	st := ccState{State: topics.HAOnline, Pis: len(nodes), PisOnline: online}
	if all || st != d.ccState {
		if !d.publishState(ctx, st) {
			failed++
		}
	}
	if failed > 0 && ctx.Err() == nil {
		d.log.Warn("Home Assistant discovery: publishes failed; retrying at the next scan", "failed", failed)
	}
}

// observe adds what n reports now to what its Pi reported before, and returns the Pi as
// discovery describes it.
func (d *Discovery) observe(n dashboard.Node, row dashboard.Row) pi {
	s := d.seen[n.MAC]
	if s == nil || s.row != n.Row {
		s = &piSeen{row: n.Row}
		d.seen[n.MAC] = s
	}
	if m := n.Metrics; m != nil {
		for _, f := range []struct {
			ok  bool
			has metricSet
		}{
			{m.Load1 != nil && m.Load5 != nil && m.Load15 != nil, hasLoad},
			{m.CPUPercent != nil, hasCPUPercent},
			{m.CPUTempC != nil, hasCPUTemp},
			{m.MemTotalBytes != nil && m.MemAvailableBytes != nil, hasMemory},
			{m.DiskTotalBytes != nil && m.DiskFreeBytes != nil, hasDisk},
			{m.UptimeS != nil, hasUptime},
			{m.NetRxBytes != nil && m.NetTxBytes != nil, hasNet},
			{m.ThrottledNow != nil, hasThrottle},
		} {
			if f.ok {
				s.has |= f.has
			}
		}
	}
	if p := row.Power; p != nil {
		for _, f := range []struct {
			ok  bool
			has metricSet
		}{{p.Watts != nil, hasWatts}, {p.Volts != nil, hasVolts}, {p.Amps != nil, hasAmps}} {
			if f.ok {
				s.power |= f.has
			}
		}
	}
	name := n.SlotName
	if name == "" {
		name = n.Hostname
	}
	if name == "" {
		name = topics.DisplayMAC(n.MAC)
	}
	return pi{MAC: n.MAC, Row: n.Row, Name: name, Model: n.Model, Serial: n.Serial, AgentVersion: n.AgentVersion,
		Has: s.has, RowPower: s.power, RowPis: row.Pis}
}

// orphans are the Pis' configs the broker holds that are neither wanted nor ours to remove.
func (d *Discovery) orphans(want map[string][]byte) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id := range d.retained {
		if _, ok := piMAC(id); !ok {
			continue // not a Pi's: another program's device, or a control center's
		}
		if _, ok := want[id]; ok {
			continue
		}
		if _, ok := d.sent[id]; ok {
			continue // being removed as forgotten
		}
		ids = append(ids, id)
	}
	return ids
}

// publishState publishes the control center's state, retained, and remembers it once sent.
func (d *Discovery) publishState(ctx context.Context, st ccState) bool {
	b, err := encodeState(st)
	if err != nil {
		d.log.Error("encode the control center's state", "err", err)
		return false
	}
	if !d.publish(ctx, topics.HAStateTopic(d.ccID), b) {
		return false
	}
	d.ccState = st
	return true
}

// publish publishes payload retained at QoS 1; an empty payload deletes the retained message.
func (d *Discovery) publish(ctx context.Context, topic string, payload []byte) bool {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := d.cfg.Bus.Publish(ctx, bus.Message{Topic: topic, Payload: payload, QoS: 1, Retained: true}); err != nil {
		if ctx.Err() == nil {
			d.log.Debug("publish for Home Assistant", "topic", topic, "err", err)
		}
		return false
	}
	return true
}
