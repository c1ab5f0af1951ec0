// Package broker is pirack's embedded MQTT broker: Mochi MQTT with pirack's own authentication
// and authorization hook, bolt persistence of sessions and of retained messages (the latter by
// group commit), and limits set on purpose (clients, packet size, message and session expiry,
// sockets waiting for their CONNECT and a deadline for it, which Mochi lacks). It listens on
// plain TCP, on TLS (with optional per-agent client certificates) and on WebSocket, plain or
// over TLS, with the same authentication on each.
//
// Use it in three steps so that nothing published at startup is missed:
//
//	b, err := broker.New(cfg)   // persisted retained messages and sessions are loaded
//	b.Subscribe(filter, fn)     // in-process subscribers (the dashboard) register
//	b.Start()                   // only now can MQTT clients connect
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/logthrottle"
	"github.com/pirack/pirack/internal/mqttfilter"
	"github.com/pirack/pirack/topics"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultAddr           = ":1883"
	DefaultTLSAddr        = ":8883"
	DefaultMaxClients     = 16384
	DefaultMaxPending     = 256
	DefaultMaxPacketSize  = 64 << 10
	DefaultConnectTimeout = 5 * time.Second
	DefaultRetainedExpiry = 30 * 24 * time.Hour
	DefaultSessionExpiry  = 7 * 24 * time.Hour

	DefaultRetainedFlushInterval = time.Second
)

// The broker's bolt databases inside Config.DataDir.
const (
	// DBFile holds sessions, subscriptions and queued QoS 1 messages (Mochi's bolt hook).
	// Earlier versions kept retained messages there too: New moves them to RetainedDBFile.
	DBFile = "broker.db"
	// RetainedDBFile holds retained messages, written by group commit.
	RetainedDBFile = "retained.db"
)

// hookBucket is the bucket of Mochi's bolt hook in DBFile: its default, named here because the
// retained messages of older versions are moved out of it.
const hookBucket = "mochi"

// Config configures a Broker. Zero fields take the defaults above.
type Config struct {
	// Addr is the plain TCP listen address; "" means ":1883". Tests use "127.0.0.1:0".
	Addr string
	// DisableTCP turns the plain TCP listener off, for a broker reachable only over TLS (or
	// WebSocket). Addr is then ignored.
	DisableTCP bool
	// TLS, if set, adds the MQTT-over-TLS listener (mqtts, ":8883" by default), optionally with
	// per-agent client certificates. nil means no TLS listener.
	TLS *TLSConfig
	// WSAddr is the listen address of the MQTT-over-WebSocket listener, for browsers and
	// Node-RED (any URL path; subprotocol "mqtt"); "" means no WebSocket listener. It is plain
	// ws://: passwords cross the network in clear. WSSAddr is its TLS twin.
	WSAddr string
	// WSSAddr is the listen address of the MQTT over secure WebSocket listener (wss://), like
	// WSAddr but over TLS with TLS's certificate, key and client CAs; "" means none. It needs
	// TLS: New refuses it otherwise.
	WSSAddr string
	// DataDir holds broker.db (sessions, inflight messages) and retained.db (retained
	// messages). Required; it is created (0700) if missing.
	DataDir string
	// Users authenticates every MQTT connection. Required.
	Users *auth.Users
	// PlugTopics are, by row, the MQTT topic filters a user of role plug (a smart plug
	// measuring a row's power) may publish to and leave its Will on (Write), and subscribe to
	// (Read: its relay's commands, when pirack may switch it): a plug user of row r1 only those
	// of PlugTopics["r1"]. The power bridge's configuration names them
	// (powerbridge.File.PlugTopics). A key must be a valid row name; a filter may not begin
	// with a wildcard, "$" or the pirack root, and no plug may ever publish under the pirack
	// root whatever the filters say. A row without an entry, and nil, mean its plug users may
	// do nothing. A plug user without a row (made before plugs were bound to rows) is refused
	// at CONNECT.
	PlugTopics auth.PlugTopics
	// CommandRefused, when set, is told of a refused publish on a command topic (an LED or
	// system command) by a client that may not send it, such as an automation user trying a
	// shutdown: the control center audits it. At most one call per user and topic every
	// limitLogEvery, the rest counted in Suppressed. It must not block.
	CommandRefused func(RefusedCommand)
	// MaxClients bounds connected clients; 0 means 16384. Mochi's default is unlimited. A CONNECT
	// beyond it is answered "server unavailable" (MQTT 5: "server busy") and logged, at most
	// once per 10 s with a count. An idle agent connection takes about 40 KiB of the broker's
	// memory (docs/benchmarks.md): 16384 of them some 650 MiB. The process needs an open-files
	// limit above it (deploy/pirack.service sets 65536); Start warns when it is lower.
	MaxClients int
	// MaxPacketSize bounds an inbound packet in bytes; 0 means 64 KiB. Mochi's default is
	// unlimited, and it allocates the buffer before authentication.
	MaxPacketSize uint32
	// ConnectTimeout is how long a new socket may take to send its CONNECT packet (TLS and
	// WebSocket handshakes included) before it is closed; 0 means 5 s. Mochi has no such
	// deadline.
	ConnectTimeout time.Duration
	// MaxPending bounds the sockets, over all listeners, that are connected but not yet
	// authenticated (no CONNECT yet, or its credentials being checked); beyond it a new socket is
	// closed at once, with a log line (at most one per source address and 10 s, with a count).
	// 0 means 256. Limits.MaxPendingPerSource is one address's share. MaxClients only
	// counts clients once their CONNECT is read, so without this bound a flood of silent
	// sockets would each hold a goroutine and buffers until ConnectTimeout.
	MaxPending int
	// Limits bound what one source address, client or user may take: its share of MaxPending,
	// its queue and write timeout, its sessions and subscriptions.
	Limits
	// RetainedExpiry is the longest a message (retained ones included) is kept; 0 means 30 days.
	// Mochi's default of one day would silently drop the last status of a Pi that is off for a
	// weekend.
	RetainedExpiry time.Duration
	// SessionExpiry is how long the session of a disconnected persistent client is kept; 0 means
	// 7 days. Mochi's default is about 136 years.
	SessionExpiry time.Duration
	// RetainedFlushInterval is the longest a QoS 0 retained message (agents' metrics, power
	// readings) waits in memory before it is written to retained.db, in one commit with every
	// other change of the interval; 0 means 1 s. A crash (SIGKILL, power cut) can lose the
	// QoS 0 retained changes of that last interval. QoS 1 retained messages (statuses, LED
	// states, alerts) and deletions are on disk before the publisher is acknowledged.
	RetainedFlushInterval time.Duration
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger

	// afterRetainedCommit, if set, is called after each commit of retained messages (tests).
	afterRetainedCommit func(topics int, err error)
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerSource == 0 {
		c.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if c.MaxWritesPending == 0 {
		c.MaxWritesPending = DefaultMaxWritesPending
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxSessionsPerUser == 0 {
		c.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if c.MaxSessionsPerAdmin == 0 {
		c.MaxSessionsPerAdmin = DefaultMaxSessionsPerAdmin
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxQueuedLED == 0 {
		c.MaxQueuedLED = DefaultMaxQueuedLED
	}
	if c.ViewerSessionExpiry == 0 {
		c.ViewerSessionExpiry = DefaultViewerSessionExpiry
	}
	if c.TLS != nil && c.TLS.Addr == "" {
		t := *c.TLS
		t.Addr = DefaultTLSAddr
		c.TLS = &t
	}
	if c.RetainedExpiry == 0 {
		c.RetainedExpiry = DefaultRetainedExpiry
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}

	if c.RetainedFlushInterval == 0 {
		c.RetainedFlushInterval = DefaultRetainedFlushInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// capabilities builds Mochi's capabilities from its defaults and our limits.
func (c Config) capabilities() *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(c.MaxClients)
	caps.MaximumPacketSize = c.MaxPacketSize
	caps.MaximumClientWritesPending = int32(min(c.MaxWritesPending, 1<<31-1))
	caps.MaximumMessageExpiryInterval = int64(c.RetainedExpiry / time.Second)
	caps.MaximumSessionExpiryInterval = uint32(min(c.SessionExpiry/time.Second, 1<<32-1))
	// Mochi copies a publisher's MQTT 5 properties into its PUBACK, and with them its reason
	// code, which is the QoS (0x01, not a PUBACK code): MQTT.js then resends for ever.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	return caps
}

// Broker is a running embedded MQTT broker.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	srv    *mqtt.Server
	hook   *authHook
	limits *limitsHook
	store  *boltStore
	tls    *tls.Config // nil without Config.TLS

	subs   inprocSubs
	closed atomic.Bool

	mu        sync.Mutex
	started   bool
	addrs     map[string]func() string // listener id -> its address
	pending   map[net.Conn]string      // sockets not yet authenticated, with their source
	bySource  map[string]int           // pending sockets by source (sourceKey)
	throttle  *logthrottle.Limiter     // log lines about hostile sockets, per source
	slow      atomic.Int64             // clients disconnected because a write timed out
	full      atomic.Int64             // CONNECTs refused over MaxClients
	stopSweep chan struct{}            // closed by Close: ends sweepSessions
	sweeper   sync.WaitGroup           // sweepSessions, from Start
	live      map[string]*liveConn     // by client id: its latest authenticated connection
	liveConns map[net.Conn]*liveConn   // the same, by socket

	// Test hooks: a socket was registered as pending, refused over MaxPending or
	// MaxPendingPerSource, stopped being pending, or ended (its log line written).
	afterAccept  func(net.Conn)
	afterRefuse  func(net.Conn)
	afterRelease func(net.Conn)
	afterEnd     func(net.Conn)
}

// Mochi's names for our listeners.
const (
	listenerTCP = "tcp"
	listenerTLS = "tls"
	listenerWS  = "ws"
	listenerWSS = "wss"
)

// New builds the broker and loads what it persisted in DataDir, but does not listen yet: call
// Subscribe for in-process subscribers, then Start. Close releases it. The TLS certificate and
// key are loaded here, so a missing file or a key others can read is reported before anything
// listens.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("broker: Config.DataDir is required (it holds broker.db)")
	}
	if cfg.Users == nil {
		return nil, errors.New("broker: Config.Users is required")
	}
	if cfg.DisableTCP && cfg.TLS == nil && cfg.WSAddr == "" {
		return nil, errors.New("broker: every listener is off: enable TCP, TLS or WebSocket")
	}
	if cfg.WSSAddr != "" && cfg.TLS == nil {
		return nil, errors.New("broker: Config.WSSAddr needs Config.TLS, whose certificate and key it serves")
	}
	for row, filters := range cfg.PlugTopics.Filters() {
		if err := topics.ValidateRow(row); err != nil {
			return nil, fmt.Errorf("broker: Config.PlugTopics: %w", err)
		}
		for _, f := range filters {
			if err := checkPlugFilter(f); err != nil {
				return nil, fmt.Errorf("broker: Config.PlugTopics[%q]: %w", row, err)
			}
		}
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, throttle: logthrottle.New(limitLogEvery), stopSweep: make(chan struct{}), pending: map[net.Conn]string{}, bySource: map[string]int{}, addrs: map[string]func() string{},
		live: map[string]*liveConn{}, liveConns: map[net.Conn]*liveConn{}}
	if cfg.TLS != nil {
		t, err := cfg.TLS.load()
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		b.tls = t
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: create data directory: %w", err)
	}

	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: cfg.capabilities(),
		Logger:       slog.New(mochiLogHandler{cfg.Logger.Handler()}),
		// $SYS values are saved to broker.db at each tick: once a second is needless disk wear
		// on an SD card.
		SysTopicResendInterval: 10,
	})
	b.hook = &authHook{users: cfg.Users, policy: policy{plugTopics: cfg.PlugTopics.Clone()}, log: cfg.Logger, srv: b.srv,
		maxQueuedLED: cfg.MaxQueuedLED, commandRefused: cfg.CommandRefused,
		authenticated: b.authenticated, deliver: b.subs.deliver}

	// The auth hook goes first: Mochi runs OnPublish hooks in order and stops at the first that
	// ignores a packet, so no later hook ever sees a refused publish.
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	b.hook.sessionAllowed = b.sessionAllowed
	// After the auth hook, so that it sees only the packets the auth hook let through.
	if err := b.srv.AddHook(&protocolHook{log: cfg.Logger, caps: b.srv.Options.Capabilities}, nil); err != nil {
		return nil, fmt.Errorf("broker: add protocol hook: %w", err)
	}
	// Before the store: its OnSubscribed must see the filters refused over MaxSubscriptions.
	b.limits = &limitsHook{maxSubs: cfg.MaxSubscriptions, log: b.throttle, logf: cfg.Logger.Warn}
	if err := b.srv.AddHook(b.limits, nil); err != nil {
		return nil, fmt.Errorf("broker: add limits hook: %w", err)
	}
	b.store = newBoltStore(retainedConfig{
		Path:        filepath.Join(cfg.DataDir, RetainedDBFile),
		Interval:    cfg.RetainedFlushInterval,
		Lookup:      b.srv.Topics.Retained.Get,
		Logger:      cfg.Logger,
		afterCommit: cfg.afterRetainedCommit,
	})
	err := b.srv.AddHook(b.store, &bolt.Options{
		Path:    filepath.Join(cfg.DataDir, DBFile),
		Bucket:  hookBucket,
		Options: &bbolt.Options{Timeout: time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		err = fmt.Errorf("%w: its files are locked; is another pirack using data directory %s?", err, cfg.DataDir)
	}
	if err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("broker: open the store in %s: %w", cfg.DataDir, err)
	}
	// Serve with no listener yet: it loads retained messages and sessions from the store and
	// starts the housekeeping loop (expiry of messages and sessions).
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("broker: load the store in %s: %w", cfg.DataDir, err)
	}
	return b, nil
}

// Stats are counters of the broker's persistence.
type Stats struct {
	// RetainedCommits counts the transactions that saved retained messages to retained.db.
	RetainedCommits int64
	// RetainedCommitFailures counts those that failed (full disk, I/O error). Their messages
	// stay in memory and are retried, and the failure is logged.
	RetainedCommitFailures int64
	// RetainedPending is the number of topics whose retained message changed since the last
	// commit began: at most one per topic, however often it changes.
	RetainedPending int
	// PublishesRefused counts client publishes dropped because the sender may not publish
	// there; PublishesInvalid those dropped for breaking the topic contract. Both were
	// acknowledged, neither was retained nor delivered.
	PublishesRefused, PublishesInvalid int64
	// LEDCommandsDropped counts LED commands not queued for an offline Pi that already had
	// Config.MaxQueuedLED waiting.
	LEDCommandsDropped int64
	// SlowClientsDisconnected counts clients disconnected because a write to their socket
	// blocked for Limits.WriteTimeout: they stopped reading.
	SlowClientsDisconnected int64
	// ConnectsRefusedMaxClients counts CONNECTs refused because MaxClients clients were
	// connected.
	ConnectsRefusedMaxClients int64
	// MessagesDroppedQueueFull counts messages not delivered to a client because its queue
	// (Limits.MaxWritesPending) was full.
	MessagesDroppedQueueFull int64
	// SubscriptionsRefused counts topic filters refused over Limits.MaxSubscriptions.
	SubscriptionsRefused int64
	// SessionsRefused counts connections refused over the sessions a user may hold.
	SessionsRefused int64
}

// Refusals are the latest CONNECTs the broker refused, the latest first: one entry per user
// name, client id and reason, with a count; a user's entries go once it connects.
func (b *Broker) Refusals() []Refusal { return b.hook.refusals.snapshot() }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	s := b.store.retained.stats()
	return Stats{RetainedCommits: s.commits, RetainedCommitFailures: s.failures, RetainedPending: s.pending,
		PublishesRefused: b.hook.refused.Load(), PublishesInvalid: b.hook.invalid.Load(),
		LEDCommandsDropped:        b.hook.ledDropped.Load(),
		SlowClientsDisconnected:   b.slow.Load(),
		ConnectsRefusedMaxClients: b.full.Load(),
		MessagesDroppedQueueFull:  b.limits.dropped.Load(),
		SubscriptionsRefused:      b.limits.subsRefused.Load(),
		SessionsRefused:           b.limits.sessionRefused.Load(),
	}
}

// Start opens the configured listeners (TCP, TLS, WebSocket, secure WebSocket) and accepts MQTT
// clients. Register in-process subscribers before. If Start fails, Close the broker.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return errors.New("broker: Start after Close")
	}
	if b.started {
		return errors.New("broker: already started")
	}
	b.started = true
	b.warnOpenFiles()
	b.sweeper.Go(func() { b.sweepSessions(b.stopSweep) })
	if !b.cfg.DisableTCP {
		l := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: listenerTCP, Address: b.cfg.Addr})
		if err := b.listen(l, b.cfg.Addr, "MQTT"); err != nil {
			return err
		}
	}
	if b.cfg.TLS != nil {
		l := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: listenerTLS, Address: b.cfg.TLS.Addr, TLSConfig: b.tls})
		if err := b.listen(l, b.cfg.TLS.Addr, "MQTT over TLS"); err != nil {
			return err
		}
	}
	if b.cfg.WSAddr != "" {
		l := newWSListener(listenerWS, b.cfg.WSAddr, nil, b.cfg.ConnectTimeout, b.wsConnState, b.log)
		if err := b.listen(l, b.cfg.WSAddr, "MQTT over WebSocket"); err != nil {
			return err
		}
	}
	if b.cfg.WSSAddr != "" {
		l := newWSListener(listenerWSS, b.cfg.WSSAddr, b.tls, b.cfg.ConnectTimeout, b.wsConnState, b.log)
		if err := b.listen(l, b.cfg.WSSAddr, "MQTT over secure WebSocket"); err != nil {
			return err
		}
	}
	return nil
}

// warnOpenFiles warns when the process may not open a socket for every client MaxClients
// allows: past the open-files limit, accept fails and clients are turned away with no CONNACK.
func (b *Broker) warnOpenFiles() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	// Sockets of connected clients and of those waiting for CONNECT, and some for files.
	need := uint64(b.cfg.MaxClients) + uint64(b.cfg.MaxPending) + 64
	if rl.Cur < need {
		b.log.Warn("the open-files limit is below what the MQTT broker's client limit needs: clients past it are dropped at accept",
			"open_files_limit", rl.Cur, "max_clients", b.cfg.MaxClients, "want_at_least", need,
			"fix", "raise LimitNOFILE (systemd) or ulimit -n, or lower --mqtt-max-clients")
	}
}

// listen opens l and serves it. b.mu is held.
func (b *Broker) listen(l listeners.Listener, addr, what string) error {
	if err := b.srv.AddListener(l); err != nil {
		return fmt.Errorf("broker: %s: listen on %s: %w", what, addr, err)
	}
	b.addrs[l.ID()] = l.Address
	b.srv.Listeners.Serve(l.ID(), b.establish)
	b.log.Info("MQTT broker listening", "listener", l.ID(), "addr", l.Address())
	return nil
}

// Addr is the address of the plain TCP listener (the real port when Config.Addr ends in ":0"),
// or "" before Start or when it is off.
func (b *Broker) Addr() string { return b.addr(listenerTCP) }

// TLSAddr is the address of the TLS listener, or "" before Start or without Config.TLS.
func (b *Broker) TLSAddr() string { return b.addr(listenerTLS) }

// WSAddr is the address of the WebSocket listener, or "" before Start or without
// Config.WSAddr.
func (b *Broker) WSAddr() string { return b.addr(listenerWS) }

// WSSAddr is the address of the secure WebSocket listener, or "" before Start or without
// Config.WSSAddr.
func (b *Broker) WSSAddr() string { return b.addr(listenerWSS) }

func (b *Broker) addr(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.addrs[id]; ok {
		return f()
	}
	return ""
}

// Close disconnects every client, stops listening, saves the retained messages still pending
// and closes the store. Connected agents' Wills are published (and retained) first, so their
// status reads offline. Close is idempotent.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Mochi waits for every connection to end, but stops only the clients registered when it
	// looks: a client authenticating at that moment was missed, kept pinging, and Close waited
	// for ever. So every admitted socket is closed here, pending or live (establish admits no
	// new one once closed is set); each live client's Will is still published as it ends.
	b.mu.Lock()
	for c := range b.pending {
		_ = c.Close()
	}
	for c := range b.liveConns {
		_ = c.Close()
	}
	b.mu.Unlock()
	close(b.stopSweep)
	b.sweeper.Wait()
	return b.srv.Close()
}

// Subscribe registers an in-process subscriber for an MQTT topic filter. Retained messages that
// match (those loaded from broker.db included) are passed to fn at once, before Subscribe
// returns; then every message published to a matching topic is, once: client publishes,
// in-process Publish calls, and Wills.
//
// A client's publish reaches fn after the ACL check and before the broker acknowledges it: by
// the time a QoS 1 publisher has its PUBACK, fn has returned. So an event fn stores before
// returning is never lost, even if the broker dies right after the acknowledgement. (Mochi
// acknowledges before its own fan-out; in-process subscribers do not use that fan-out.)
//
// fn runs on the goroutine of the client that published, and may run on several goroutines at
// once: it must be safe for concurrent use, must not block (hand the message to a buffered
// channel or a mutex-guarded structure and return), and must not modify payload. A blocked fn
// stalls the publishing client and delays its acknowledgement.
//
// Filters beginning with "$" ($SYS, $share) are refused: $SYS messages are not delivered
// in-process. Subscriptions are not persisted: register them again after each New.
func (b *Broker) Subscribe(filter string, fn bus.Handler) error {
	if fn == nil {
		return errors.New("broker: Subscribe with a nil handler")
	}
	return b.SubscribeChecked(filter, func(m bus.Message) error { fn(m); return nil })
}

// SubscribeChecked is Subscribe with a handler that can refuse a client's publish: when fn
// returns an error for a QoS 1 or 2 publish, the broker does not acknowledge it and closes the
// client's connection (without its Will), so that the client sends it again when it reconnects
// (MQTT 3.1.1 has no negative acknowledgement, and a publish left unacknowledged on a live
// connection would only be sent again by a client's own timeout, if it has one). fn may block
// until the message is safe, for a bounded time: the client's connection waits meanwhile.
// Errors for QoS 0 publishes, in-process publishes, Wills and retained messages delivered here
// are ignored: there is no acknowledgement to withhold.
func (b *Broker) SubscribeChecked(filter string, fn bus.CheckedHandler) error {
	if fn == nil {
		return errors.New("broker: Subscribe with a nil handler")
	}
	if !mqttfilter.Valid(filter) {
		return fmt.Errorf("broker: subscribe %q: %w", clip(filter), packets.ErrTopicFilterInvalid)
	}
	if strings.HasPrefix(filter, "$") {
		return fmt.Errorf("broker: subscribe %q: $SYS and shared subscriptions are not available in-process", clip(filter))
	}
	b.subs.add(filter, fn)
	for _, pk := range b.srv.Topics.Messages(filter) { // [MQTT-3.8.4-4]
		if mqttfilter.Within(pk.TopicName, filter) { // the same matching as live messages: no $SYS for "#"
			fn(bus.Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retained: true})
		}
	}
	return nil
}

// Publish publishes a message from inside the process (the dashboard's LED commands). It is not
// subject to the ACL. m.QoS is the most the subscribers receive it with (0-2). It does not
// block on clients, so ctx is not used.
func (b *Broker) Publish(_ context.Context, m bus.Message) error {
	topic, payload, retain, qos := m.Topic, m.Payload, m.Retained, m.QoS
	if b.closed.Load() {
		return errors.New("broker: Publish after Close")
	}
	if qos > 2 {
		return fmt.Errorf("broker: publish %q: QoS %d, want 0, 1 or 2", topic, qos)
	}
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	return nil
}

// establish runs for each accepted socket, for as long as it stays connected. It gives the
// socket a deadline for its CONNECT packet; Mochi replaces that deadline with the client's
// keepalive once the client is authenticated, and refreshes it at each packet.
func (b *Broker) establish(listener string, raw net.Conn) error {
	wc := &writeLimitConn{Conn: raw, timeout: b.cfg.WriteTimeout}
	c := net.Conn(wc)
	b.mu.Lock()
	if b.closed.Load() || !b.admitLocked(c) {
		b.mu.Unlock()
		return c.Close()
	}
	// Mochi counts a connection in ClientsWg only once it runs, so its Close may Wait while a
	// just-accepted socket Adds: a WaitGroup misuse. Counting it here, under the lock Close
	// takes first, orders the two.
	b.srv.Listeners.ClientsWg.Add(1)
	b.mu.Unlock()
	defer b.srv.Listeners.ClientsWg.Done()
	_ = raw.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout))
	if b.afterAccept != nil {
		b.afterAccept(c)
	}

	err := b.srv.EstablishConnection(listener, c)

	beforeAuth := b.release(c)
	id := b.ended(c)

	// Log here rather than returning the error: Mochi's listener would log it without a message
	// or the remote address. What unauthenticated sockets cause is logged once per source and
	// interval, with a count.
	remote := c.RemoteAddr().String()
	warn := func(kind, msg string, args ...any) {
		if ok, held := b.throttle.Allow(kind+"|"+sourceKey(c.RemoteAddr()), time.Now()); ok {
			b.log.Warn(msg, append(args, "listener", listener, "remote", remote, "count", held+1)...)
		}
	}
	switch {
	case wc.stalled.Load():
		b.slow.Add(1)
		warn("slow", "MQTT client disconnected: it stopped reading (a write to it blocked)", "client", id, "write_timeout", b.cfg.WriteTimeout)
	case errors.Is(err, packets.ErrServerBusy): // Mochi's MaximumClients, checked before any hook
		b.full.Add(1)
		if ok, held := b.throttle.Allow("max-clients", time.Now()); ok {
			b.log.Warn("MQTT connection refused: the broker holds its most clients; raise --mqtt-max-clients",
				"listener", listener, "remote", remote, "max_clients", b.cfg.MaxClients, "refused", held+1)
		}
	case err == nil, errors.Is(err, errRefused): // refusals are logged by the hook
	case beforeAuth && errors.Is(err, os.ErrDeadlineExceeded):
		warn("timeout", "MQTT connection closed: no CONNECT packet in time", "timeout", b.cfg.ConnectTimeout)
	case beforeAuth:
		warn("closed", "MQTT connection closed at CONNECT", "error", err)
	default:
		b.log.Info("MQTT connection ended", "listener", listener, "remote", remote, "error", err)
	}
	if b.afterEnd != nil {
		b.afterEnd(raw)
	}
	return nil
}

// admitLocked registers c as pending, or refuses it when MaxPending sockets already are, or
// MaxPendingPerSource from its source: one host flooding silent sockets fills its own share,
// not everyone's. b.mu is held.
func (b *Broker) admitLocked(c net.Conn) bool {
	src := sourceKey(c.RemoteAddr())
	var limit string
	switch {
	case b.bySource[src] >= b.cfg.MaxPendingPerSource:
		limit = "per_source"
	case len(b.pending) >= b.cfg.MaxPending:
		limit = "total"
	default:
		b.pending[c] = src
		b.bySource[src]++
		return true
	}
	if b.afterRefuse != nil {
		b.afterRefuse(c)
	}
	if ok, held := b.throttle.Allow("refused|"+src, time.Now()); ok {
		n := held + 1
		b.log.Warn("MQTT connection refused: too many sockets waiting for CONNECT", "remote", c.RemoteAddr().String(),
			"limit", limit, "max_pending", b.cfg.MaxPending, "max_pending_per_source", b.cfg.MaxPendingPerSource, "refused", n)
	}
	return false
}

// release forgets a pending socket, once it is authenticated or gone, and says whether it was
// still pending.
func (b *Broker) release(c net.Conn) bool {
	b.mu.Lock()
	src, ok := b.pending[c]
	if ok {
		delete(b.pending, c)
		if b.bySource[src]--; b.bySource[src] <= 0 {
			delete(b.bySource, src)
		}
	}
	b.mu.Unlock()
	if ok && b.afterRelease != nil {
		b.afterRelease(c)
	}
	return ok
}

// liveConn is an authenticated connection, until Mochi has finished with it.
type liveConn struct {
	id   string
	cl   *mqtt.Client
	done chan struct{} // closed once EstablishConnection returned
}

// authenticated is called by the hook once a client passed every check, before Mochi takes
// over (or starts) its session. It ends the socket's pending state and, if an earlier
// connection with the same client id is still running, ends that one and waits until Mochi
// has cleaned up after it. Otherwise that cleanup, which deletes clients by id, can run after
// the new client is registered and unregister it: a client that reconnects at once (clean
// session) would then receive nothing. Waiting also publishes the old connection's Will before
// the new one is acknowledged, never after its birth message. It returns false if the old
// connection did not end in time.
func (b *Broker) authenticated(cl *mqtt.Client) bool {
	c := cl.Net.Conn
	e := &liveConn{id: cl.ID, cl: cl, done: make(chan struct{})}
	b.mu.Lock()
	prev := b.live[cl.ID]
	b.live[cl.ID] = e
	b.liveConns[c] = e
	b.mu.Unlock()
	// Released only once it is live: Close finds every admitted socket in one of the two sets.
	b.release(c)
	if prev == nil {
		return true
	}
	prev.cl.Stop(packets.ErrSessionTakenOver)
	select {
	case <-prev.done:
		return true
	case <-time.After(b.cfg.ConnectTimeout):
		b.log.Error("MQTT session takeover: the previous connection did not end", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
}

// ended is called once Mochi is done with c. It returns c's client id, if it authenticated.
func (b *Broker) ended(c net.Conn) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.liveConns[c]
	if !ok {
		return ""
	}
	delete(b.liveConns, c)
	if b.live[e.id] == e {
		delete(b.live, e.id)
	}
	close(e.done)
	return e.id
}

// wsConnState counts WebSocket sockets as pending from their first byte of HTTP to the upgrade,
// so the MaxPending bound and Close cover the HTTP handshake too.
func (b *Broker) wsConnState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		b.mu.Lock()
		ok := !b.closed.Load() && b.admitLocked(c)
		b.mu.Unlock()
		if !ok {
			_ = c.Close()
			return
		}
		if b.afterAccept != nil {
			b.afterAccept(c)
		}
	case http.StateHijacked, http.StateClosed:
		b.release(c)
	}
}

// RefusedCommand is a command the broker refused (Config.CommandRefused).
type RefusedCommand struct {
	Username, Role, ClientID, Topic, Address string
	Suppressed                               int // refusals of the same since the last call
}

// checkPlugFilter refuses a PlugTopics filter that is malformed or could match a pirack topic
// or a "$" topic: a leading wildcard, the pirack root, or "$".
func checkPlugFilter(f string) error {
	first, _, _ := strings.Cut(f, "/")
	switch {
	case !mqttfilter.Valid(f) || strings.ContainsRune(f, 0):
		return fmt.Errorf("%q is not a valid MQTT topic filter", clip(f))
	case first == "+" || first == "#":
		return fmt.Errorf("%q begins with a wildcard: it could match pirack's own topics; name the plug's own topic prefix", clip(f))
	case first == topics.Root:
		return fmt.Errorf("%q is under %s/: plugs may never publish pirack topics", clip(f), topics.Root)
	case strings.HasPrefix(first, "$"):
		return fmt.Errorf("%q is a $ topic, which only the broker publishes", clip(f))
	}
	return nil
}
