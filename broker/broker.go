// Package broker is pirack's embedded MQTT broker: Mochi MQTT with pirack's own authentication
// and authorization hook, bolt persistence of retained messages and sessions, and limits set on
// purpose (clients, packet size, message and session expiry, and a deadline for the CONNECT
// packet, which Mochi lacks).
//
// Use it in three steps so that nothing published at startup is missed:
//
//	b, err := broker.New(cfg)   // persisted retained messages and sessions are loaded
//	b.Subscribe(filter, fn)     // in-process subscribers (the dashboard) register
//	b.Start()                   // only now can MQTT clients connect
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/pirack/pirack/auth"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultAddr           = ":1883"
	DefaultMaxClients     = 4096
	DefaultMaxPacketSize  = 64 << 10
	DefaultConnectTimeout = 5 * time.Second
	DefaultRetainedExpiry = 30 * 24 * time.Hour
	DefaultSessionExpiry  = 7 * 24 * time.Hour
)

// DBFile is the name of the broker's bolt database inside Config.DataDir.
const DBFile = "broker.db"

// Config configures a Broker. Zero fields take the defaults above.
type Config struct {
	// Addr is the TCP listen address; "" means ":1883". Tests use "127.0.0.1:0".
	Addr string
	// DataDir holds broker.db (retained messages, sessions, inflight messages). Required; it is
	// created (0700) if missing.
	DataDir string
	// Users authenticates every MQTT connection. Required.
	Users *auth.Users
	// MaxClients bounds connected clients; 0 means 4096. Mochi's default is unlimited.
	MaxClients int
	// MaxPacketSize bounds an inbound packet in bytes; 0 means 64 KiB. Mochi's default is
	// unlimited, and it allocates the buffer before authentication.
	MaxPacketSize uint32
	// ConnectTimeout is how long a new socket may take to send its CONNECT packet before it is
	// closed; 0 means 5 s. Mochi has no such deadline.
	ConnectTimeout time.Duration
	// RetainedExpiry is the longest a message (retained ones included) is kept; 0 means 30 days.
	// Mochi's default of one day would silently drop the last status of a Pi that is off for a
	// weekend.
	RetainedExpiry time.Duration
	// SessionExpiry is how long the session of a disconnected persistent client is kept; 0 means
	// 7 days. Mochi's default is about 136 years.
	SessionExpiry time.Duration
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger
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
	if c.RetainedExpiry == 0 {
		c.RetainedExpiry = DefaultRetainedExpiry
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
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
	caps.MaximumMessageExpiryInterval = int64(c.RetainedExpiry / time.Second)
	caps.MaximumSessionExpiryInterval = uint32(min(c.SessionExpiry/time.Second, 1<<32-1))
	return caps
}

// Broker is a running embedded MQTT broker.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	srv  *mqtt.Server
	hook *authHook

	nextSubID atomic.Int64
	closed    atomic.Bool

	mu      sync.Mutex
	tcp     *listeners.TCP
	pending map[net.Conn]struct{} // sockets that have not sent CONNECT yet

	afterAccept func(net.Conn) // test hook: a socket was registered as pending
}

// listenerID is Mochi's name for our TCP listener.
const listenerID = "tcp"

// New builds the broker and loads what it persisted in DataDir, but does not listen yet: call
// Subscribe for in-process subscribers, then Start. Close releases it.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("broker: Config.DataDir is required (it holds broker.db)")
	}
	if cfg.Users == nil {
		return nil, errors.New("broker: Config.Users is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: create data directory: %w", err)
	}

	b := &Broker{cfg: cfg, log: cfg.Logger, pending: map[net.Conn]struct{}{}}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: cfg.capabilities(),
		Logger:       slog.New(mochiLogHandler{cfg.Logger.Handler()}),
		// $SYS values are saved to broker.db at each tick: once a second is needless disk wear
		// on an SD card.
		SysTopicResendInterval: 10,
	})
	b.hook = &authHook{users: cfg.Users, log: cfg.Logger, srv: b.srv, connected: b.connectReceived}

	// The auth hook goes first: Mochi runs OnPublish hooks in order and stops at the first that
	// ignores a packet, so no later hook ever sees a refused publish.
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	dbPath := filepath.Join(cfg.DataDir, DBFile)
	err := b.srv.AddHook(new(bolt.Hook), &bolt.Options{
		Path:    dbPath,
		Options: &bbolt.Options{Timeout: time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		err = fmt.Errorf("%w: %s is locked; is another pirack using data directory %s?", err, dbPath, cfg.DataDir)
	}
	if err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("broker: open %s: %w", dbPath, err)
	}
	// Serve with no listener yet: it loads retained messages and sessions from broker.db and
	// starts the housekeeping loop (expiry of messages and sessions).
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("broker: load %s: %w", dbPath, err)
	}
	return b, nil
}

// Start listens on Config.Addr and accepts MQTT clients. Register in-process subscribers before.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return errors.New("broker: Start after Close")
	}
	if b.tcp != nil {
		return errors.New("broker: already started")
	}
	l := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: listenerID, Address: b.cfg.Addr})
	if err := b.srv.AddListener(l); err != nil {
		return fmt.Errorf("broker: listen on %s: %w", b.cfg.Addr, err)
	}
	b.tcp = l
	b.srv.Listeners.Serve(listenerID, b.establish)
	b.log.Info("MQTT broker listening", "addr", l.Address())
	return nil
}

// Addr is the address the broker listens on (the real port when Config.Addr ends in ":0"), or
// "" before Start.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// Close disconnects every client, stops listening and closes broker.db. Connected agents'
// Wills are published (and retained) first, so their status reads offline. Close is idempotent.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Mochi waits for every connection to end, and knows nothing of sockets still before
	// CONNECT: close them, or Close would wait out their deadline.
	b.mu.Lock()
	for c := range b.pending {
		_ = c.Close()
	}
	b.mu.Unlock()
	return b.srv.Close()
}

// Subscribe registers an in-process subscriber for an MQTT topic filter. Retained messages that
// match are passed to fn at once, before Subscribe returns; then every message published to a
// matching topic is.
//
// fn runs on the goroutine of the client that published, and may run on several goroutines at
// once: it must be safe for concurrent use, must not block (hand the message to a buffered
// channel or a mutex-guarded structure and return), and must not modify payload. A blocked fn
// stalls the publishing client.
//
// Inline subscriptions are not persisted: register them again after each New.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	if fn == nil {
		return errors.New("broker: Subscribe with a nil handler")
	}
	id := int(b.nextSubID.Add(1))
	err := b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("broker: subscribe %q: %w", filter, err)
	}
	return nil
}

// Publish publishes a message from inside the process (the dashboard's LED commands). It is not
// subject to the ACL. qos is the most the subscribers receive it with (0-2).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
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
// keepalive once the CONNECT is read, and refreshes it at each packet.
func (b *Broker) establish(listener string, c net.Conn) error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return c.Close()
	}
	b.pending[c] = struct{}{}
	// Mochi counts a connection in ClientsWg only once it runs, so its Close may Wait while a
	// just-accepted socket Adds: a WaitGroup misuse. Counting it here, under the lock Close
	// takes first, orders the two.
	b.srv.Listeners.ClientsWg.Add(1)
	b.mu.Unlock()
	defer b.srv.Listeners.ClientsWg.Done()
	_ = c.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout))
	if b.afterAccept != nil {
		b.afterAccept(c)
	}

	err := b.srv.EstablishConnection(listener, c)

	b.mu.Lock()
	_, beforeConnect := b.pending[c]
	delete(b.pending, c)
	b.mu.Unlock()

	// Log here rather than returning the error: Mochi's listener would log it without a message
	// or the remote address.
	remote := c.RemoteAddr().String()
	switch {
	case err == nil, errors.Is(err, errRefused): // refusals are logged by the hook
	case beforeConnect && errors.Is(err, os.ErrDeadlineExceeded):
		b.log.Warn("MQTT connection closed: no CONNECT packet in time", "remote", remote, "timeout", b.cfg.ConnectTimeout)
	case beforeConnect:
		b.log.Warn("MQTT connection closed at CONNECT", "remote", remote, "error", err)
	default:
		b.log.Info("MQTT connection ended", "remote", remote, "error", err)
	}
	return nil
}

// connectReceived is called by the hook once a socket's CONNECT packet has been read.
func (b *Broker) connectReceived(c net.Conn) {
	b.mu.Lock()
	delete(b.pending, c)
	b.mu.Unlock()
}
