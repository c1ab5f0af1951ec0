package powerbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// DefaultMinInterval is the shortest time between two readings published for one row, unless
// Config.MinInterval says otherwise. Plugs can be chatty (a Shelly Gen1 EM sends power,
// voltage and current as three messages; a Gen2 notifies every change), and the dashboard, the
// history and the alerts need no more than one reading a second.
const DefaultMinInterval = time.Second

// malformedLogEvery bounds the log lines about one plug's malformed messages: a plug that
// sends garbage every second should not flood the log.
const malformedLogEvery = time.Minute

// Sources written in topics.Power.Source.
const (
	sourceTasmota = "tasmota"
	sourceShelly  = "shelly"
)

// Config configures a Bridge.
type Config struct {
	// Bus is where plug messages come from and row power goes. Required.
	Bus bus.Bus
	// File maps plugs to rows; New validates it again. A file without plugs makes a bridge that
	// does nothing.
	File File
	// Logger receives the mappings at start, malformed messages (at most one line a minute per
	// plug) and, at debug level, each reading published. nil discards.
	Logger *slog.Logger
	// MinInterval is the shortest time between two readings published for one row; the latest
	// reading is published once it has passed. 0 means DefaultMinInterval.
	MinInterval time.Duration
}

// Stats counts what a Bridge did since New.
type Stats struct {
	Received  uint64 // plug messages taken in, malformed ones included
	Malformed uint64 // plug messages dropped because they were malformed
	Skipped   uint64 // retained plug messages found when subscribing, not republished
	Published uint64 // readings published on rack/<row>/power
}

// Bridge republishes smart plugs' readings as row power. New subscribes to the plugs' topics at
// once, so call it before the broker accepts clients; Run publishes.
type Bridge struct {
	bus      bus.Bus
	log      *slog.Logger
	interval time.Duration
	plugs    []*plugState
	wake     chan struct{} // a reading is pending

	received, malformed, skipped, published atomic.Uint64

	mu sync.Mutex // guards the mutable fields of every plugState
}

// plugState is one plug and what the bridge knows of it.
type plugState struct {
	plug   Plug
	source string // topics.Power.Source
	topic  string // rack/<row>/power

	reading  Reading   // merged from every message so far
	pending  bool      // reading has news not yet published
	readAt   time.Time // when the pending reading arrived: its TS
	lastPub  time.Time // zero: never published
	bad      uint64    // malformed messages
	loggedAt time.Time // last log line about them
	unlogged uint64    // malformed messages since that line
}

// decoder parses one of a plug's topics. ok false, without an error, means the message says
// nothing of the plug's power and is ignored.
type decoder func(payload []byte) (r Reading, ok bool, err error)

type subscription struct {
	filter string
	decode decoder
}

// subscriptions are the topics the bridge reads for p, which is valid.
func (p Plug) subscriptions() []subscription {
	whole := func(parse func([]byte) (Reading, error)) decoder {
		return func(b []byte) (Reading, bool, error) {
			r, err := parse(b)
			return r, err == nil, err
		}
	}
	switch p.Type {
	case TypeTasmota:
		return []subscription{{p.Topic, whole(ParseTasmotaSensor)}}
	case TypeShellyGen2:
		prefix, component, _ := gen2Parts(p.Topic)
		return []subscription{
			{p.Topic, whole(ParseShellyGen2Status)},
			{prefix + "/events/rpc", func(b []byte) (Reading, bool, error) { return ParseShellyGen2Event(b, component) }},
		}
	case TypeShellyGen1:
		value := func(set func(*Reading, *float64)) decoder {
			return func(b []byte) (Reading, bool, error) {
				v, err := ParseShellyGen1Value(b)
				if err != nil {
					return Reading{}, false, err
				}
				var r Reading
				set(&r, &v)
				return r, true, nil
			}
		}
		watts := value(func(r *Reading, v *float64) { r.Watts = v })
		ch := strconv.Itoa(p.Channel)
		return []subscription{
			{p.Topic + "/relay/" + ch + "/power", watts},  // plugs and relays (Plug S, 1PM, 2.5)
			{p.Topic + "/emeter/" + ch + "/power", watts}, // energy meters (EM, 3EM)
			{p.Topic + "/emeter/" + ch + "/voltage", value(func(r *Reading, v *float64) { r.Volts = v })},
			{p.Topic + "/emeter/" + ch + "/current", value(func(r *Reading, v *float64) { r.Amps = v })},
		}
	}
	return nil
}

// New validates cfg, subscribes to every plug's topics on cfg.Bus and logs each mapping.
// Retained plug messages (bus.Message.Retained: a replay from the broker's store, whenever it
// arrives) are skipped: their age is unknown, and the bridge would stamp them as fresh.
func New(cfg Config) (*Bridge, error) {
	if cfg.Bus == nil {
		return nil, errors.New("power bridge: Config.Bus is required")
	}
	if err := cfg.File.Validate(); err != nil {
		return nil, fmt.Errorf("power bridge: %w", err)
	}
	if cfg.MinInterval < 0 {
		return nil, fmt.Errorf("power bridge: Config.MinInterval %v is negative", cfg.MinInterval)
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{bus: cfg.Bus, log: cfg.Logger, interval: cfg.MinInterval, wake: make(chan struct{}, 1)}
	for _, p := range cfg.File.Plugs {
		ps := &plugState{plug: p, source: sourceShelly, topic: topics.PowerTopic(p.Row)}
		if p.Type == TypeTasmota {
			ps.source = sourceTasmota
		}
		b.plugs = append(b.plugs, ps)
		for _, s := range p.subscriptions() {
			if err := b.bus.Subscribe(s.filter, b.handler(ps, s.decode)); err != nil {
				return nil, fmt.Errorf("power bridge: subscribe to %s for row %s: %w", s.filter, p.Row, err)
			}
		}
		b.log.Info("power bridge mapping", "plug", p.String())
	}
	return b, nil
}

// Stats returns what the bridge did so far.
func (b *Bridge) Stats() Stats {
	return Stats{
		Received:  b.received.Load(),
		Malformed: b.malformed.Load(),
		Skipped:   b.skipped.Load(),
		Published: b.published.Load(),
	}
}

// handler takes in one of ps's topics. It runs on the publishing plug's goroutine, before the
// broker acknowledges the message: it parses, merges and returns; Run publishes.
func (b *Bridge) handler(ps *plugState, decode decoder) bus.Handler {
	return func(m bus.Message) {
		topic, payload := m.Topic, m.Payload
		if m.Retained {
			b.skipped.Add(1)
			return
		}
		b.received.Add(1)
		now := time.Now()
		r, ok, err := decode(payload)
		if err == nil && ok {
			err = b.take(ps, r, now)
		}
		if err != nil {
			b.drop(ps, topic, err, now)
		}
	}
}

// take merges a reading into what is known of ps and, once its watts are known, hands it to
// Run.
func (b *Bridge) take(ps *plugState, r Reading, now time.Time) error {
	b.mu.Lock()
	merged := ps.reading.merge(r)
	if merged.Watts != nil {
		// The contract's range: the parsers let through any power that is not negative.
		if err := (topics.Power{V: topics.Version, TS: now, Watts: merged.Watts, Source: ps.source}).Validate(); err != nil {
			b.mu.Unlock()
			return err
		}
		ps.pending, ps.readAt = true, now
	}
	ps.reading = merged
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// drop counts a malformed message and logs it, at most once a minute per plug.
func (b *Bridge) drop(ps *plugState, topic string, err error, now time.Time) {
	b.malformed.Add(1)
	b.mu.Lock()
	ps.bad++
	logIt := ps.loggedAt.IsZero() || now.Sub(ps.loggedAt) >= malformedLogEvery
	bad, unlogged := ps.bad, ps.unlogged
	if logIt {
		ps.loggedAt, ps.unlogged = now, 0
	} else {
		ps.unlogged++
	}
	b.mu.Unlock()
	if logIt {
		b.log.Warn("power bridge: malformed plug message dropped", "row", ps.plug.Row, "type", ps.plug.Type,
			"topic", clip(topic), "error", err, "malformed_total", bad, "unlogged_since_last_line", unlogged)
	}
}

// Run publishes the plugs' readings until ctx is done, then returns nil: each row's latest
// reading at once, or as soon as MinInterval has passed since that row's previous one. A
// reading still waiting then is dropped. Only one Run may be active at a time.
func (b *Bridge) Run(ctx context.Context) error {
	for {
		wait := b.flush(ctx)
		var timer *time.Timer
		var timeout <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
		case <-b.wake:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// flush publishes the pending readings that are due, and returns how long until the next one
// is (0: none is waiting).
func (b *Bridge) flush(ctx context.Context) time.Duration {
	type out struct {
		ps      *plugState
		power   topics.Power
		reading Reading
	}
	var due []out
	var next time.Duration
	now := time.Now()
	b.mu.Lock()
	for _, ps := range b.plugs {
		if !ps.pending {
			continue
		}
		if wait := ps.lastPub.Add(b.interval).Sub(now); !ps.lastPub.IsZero() && wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		// Only watts: see the package doc on why a plug's mains volts and amps stay out of
		// the row's 5 V readings.
		w := *ps.reading.Watts
		due = append(due, out{ps, topics.Power{V: topics.Version, TS: ps.readAt.UTC(), Watts: &w, Source: ps.source}, ps.reading})
		ps.pending, ps.lastPub = false, now
	}
	b.mu.Unlock()

	for _, d := range due {
		payload, err := topics.Encode(d.power)
		if err == nil {
			err = b.bus.Publish(ctx, bus.Message{Topic: d.ps.topic, Payload: payload, Retained: true})
		}
		if err != nil {
			b.log.Error("power bridge: publish row power", "row", d.ps.plug.Row, "error", err)
			continue
		}
		b.published.Add(1)
		if b.log.Enabled(context.Background(), slog.LevelDebug) {
			attrs := []any{"row", d.ps.plug.Row, "watts", *d.power.Watts}
			if v := d.reading.Volts; v != nil {
				attrs = append(attrs, "mains_volts", *v)
			}
			if a := d.reading.Amps; a != nil {
				attrs = append(attrs, "mains_amps", *a)
			}
			b.log.Debug("power bridge: published", attrs...)
		}
	}
	return next
}
