// Package agent is the program that runs on each Pi: it connects to the broker under the Pi's
// MAC address, announces itself with a retained birth message (and leaves a Will saying
// offline), publishes telemetry every interval, reports button presses and executes LED
// commands. Topics and payloads come from package topics; the LED and button come from package
// hardware, so the same agent drives real GPIO, the simulator of `pirack demo`, or nothing.
package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/internal/backoff"
	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/internal/logthrottle"
	"github.com/pirack/pirack/topics"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultInterval          = 5 * time.Second
	DefaultKeepAlive         = 10 * time.Second
	DefaultMaxReconnectDelay = 30 * time.Second
)

// Config configures Run. Only Broker and Row are required; every other zero value has a
// working default, documented on the field.
type Config struct {
	// Broker is the broker's URL, such as "tcp://rack-host:1883" or "ssl://rack-host:8883".
	// Required.
	Broker string
	// MAC identifies the Pi, in any form topics.NormalizeMAC accepts. "" means the MAC of the
	// primary interface: the first interface that is up, not loopback and has a 6-byte
	// hardware address. Run logs which one it picked.
	MAC string
	// Row is the rack row the Pi sits in; see topics.ValidateRow. Required.
	Row string
	// Username and Password authenticate to the broker. Username "" means the normalised MAC,
	// which is what pirack's broker expects of agents. Password may be "" when TLS presents a
	// client certificate: the broker accepts the certificate alone.
	Username, Password string
	// TLS configures the connection to an ssl:// (or tls://, mqtts://, wss://) broker; build it
	// with LoadTLS, which sets the CAs, the client certificate, TLS 1.2 at least and the server
	// name. It is used as given, and is an error with a plain tcp:// or ws:// broker. nil means
	// the system's root CAs and no client certificate for a TLS broker, and plain MQTT for
	// the others. A client certificate's CN must be the Pi's MAC in topic form (b827eb3f1a2c).
	TLS *tls.Config
	// Interval is the telemetry period. 0 means DefaultInterval.
	Interval time.Duration
	// KeepAlive is the MQTT keepalive; the broker publishes the Will after about 1.5 times this
	// without traffic. 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// Collector reads the telemetry. nil means a HostCollector reading this machine.
	Collector Collector
	// LED is the Pi's indicator LED. nil means none: LED commands are only logged.
	LED hardware.LED
	// Button is the Pi's push button. nil means none.
	Button hardware.Button
	// Hostname goes into the birth message. "" means os.Hostname().
	Hostname string
	// IP is the address reported in the birth message. "" means the first IPv4 (else global
	// IPv6) address of the interface carrying MAC, else of the primary interface, looked up at
	// each connection. The demo sets one per simulated Pi.
	IP string
	// Model is the board model for the birth message. "" means the Collector's Model() if it
	// has one (HostCollector reads the device tree), else none.
	Model string
	// Serial is the board's serial number for the birth message. "" means the Collector's
	// Serial() if it has one (HostCollector reads the device tree), else none.
	Serial string
	// Power is the row's power sensor, on the Pi that has it wired. Its readings are published,
	// retained, on the row's power topic every Interval. nil means none.
	Power PowerSensor
	// System, when set, lets the control center shut this Pi down or reboot it
	// (rack/<mac>/system, topics.SystemCommand): it is called with the action once the command
	// is checked (not retained, not expired). nil refuses every such command with a log line:
	// the agent's default (pirack-agent --allow-system-commands sets RunSystemctl).
	System func(action string) error
	// StoreDir keeps the queue of button presses not yet acknowledged by the broker
	// (presses.queue) and the press counter (button.seq), so that presses made while the
	// broker was unreachable survive an agent restart and sequence numbers keep growing. ""
	// means memory only: queued presses are lost when the agent stops. Created (0700) if
	// missing.
	StoreDir string
	// MaxQueuedPresses bounds the presses waiting for the broker; when full, the oldest is
	// dropped with a warning. 0 means DefaultMaxQueuedPresses (1000). The queue also holds at
	// most 256 KiB of payload.
	MaxQueuedPresses int
	// MaxReconnectDelay is the longest wait before a connection attempt: paho's doubling
	// backoff up to two thirds of it, plus a random jitter of up to a third. 0 means
	// DefaultMaxReconnectDelay (30 s). Tests and benchmarks shorten it.
	MaxReconnectDelay time.Duration
	// Logger receives the agent's logs. nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for timestamps and command expiry. nil means time.Now.
	Now func() time.Time
}

// Collector reads one telemetry sample. It fills the readings it can and leaves the others nil;
// the agent sets V, Seq and TS. A non-nil error reports the readings that failed (the agent
// logs it, rate-limited) and does not discard the readings that succeeded.
type Collector interface {
	Collect(ctx context.Context) (topics.Metrics, error)
}

// modeler is implemented by collectors that know the board model (HostCollector, SimCollector).
type modeler interface{ Model() string }

// serialer is implemented by collectors that know the board's serial number.
type serialer interface{ Serial() string }

// PowerSensor reads the supply of the agent's row; package hardware/powersensor reads an INA219
// or INA226. Read returns the quantities it measured and its Source; the agent sets V and TS.
// An error skips the reading: the agent logs it, rate-limited, and reads again at the next
// interval.
type PowerSensor interface {
	Read() (topics.Power, error)
}

// Run runs the agent until ctx is done. It connects in the background and keeps reconnecting,
// so an unreachable broker is not an error. When ctx is done it publishes a retained offline
// status, disconnects cleanly (so the Will does not fire) and returns nil once every goroutine
// it started has ended. It returns an error only for an invalid Config or an unusable StoreDir.
func Run(ctx context.Context, cfg Config) error {
	a, err := newAgent(cfg)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// agent is one run of the agent: the resolved config plus the state shared by its goroutines.
type agent struct {
	cfg       Config
	mac, row  string
	ip        func() string // IP of the primary interface, looked up at each birth
	session   string
	log       *slog.Logger
	limit     *logthrottle.Limiter
	leds      *mailbox[topics.LEDCommand] // nil when there is no LED
	ledStates *mailbox[topics.LEDState]   // driver → ledStateLoop; nil when there is no LED
	driver    *ledDriver                  // nil when there is no LED
	republish chan struct{}               // mainLoop → ledStateLoop after each connection, buffered 1
	presses   *pressCounter
	queue     *pressQueue   // presses not yet acknowledged by the broker
	sent      chan struct{} // signalled (buffered 1) each time a press is acknowledged
	link      *link         // whether paho is connected, for the press sender
	backoff   backoff.Backoff
	connected chan struct{} // OnConnect → main loop, buffered 1
	stop      chan struct{} // closed when Run is stopping; releases connect attempts

	powerFailing bool // the last power reading failed; only the main loop uses it

	mu         sync.Mutex
	lastIssued time.Time // IssuedAt of the newest LED command accepted
}

// newAgent validates cfg and applies its defaults, in this one place.
func newAgent(cfg Config) (*agent, error) {
	if cfg.Broker == "" {
		return nil, errors.New("agent: no broker URL; set one such as tcp://rack-host:1883")
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("agent: broker %q is not a URL such as tcp://rack-host:1883", cfg.Broker)
	}
	if cfg.TLS != nil && !isTLSScheme(u.Scheme) {
		return nil, fmt.Errorf("agent: %w", errPlainBroker(u))
	}
	if err := topics.ValidateRow(cfg.Row); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Interval < 0 || cfg.KeepAlive < 0 || cfg.MaxQueuedPresses < 0 || cfg.MaxReconnectDelay < 0 {
		return nil, errors.New("agent: interval, keepalive, queue size and reconnect delay must not be negative")
	}
	if cfg.MaxQueuedPresses == 0 {
		cfg.MaxQueuedPresses = DefaultMaxQueuedPresses
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TLS == nil && isTLSScheme(u.Scheme) {
		if cfg.TLS, err = LoadTLS(cfg.Broker, TLSFiles{}, cfg.Now()); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if cfg.Collector == nil {
		cfg.Collector = new(HostCollector)
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			cfg.Logger.Warn("no hostname for the birth message", "err", err)
		}
		cfg.Hostname = h
	}
	if m, ok := cfg.Collector.(modeler); ok && cfg.Model == "" {
		cfg.Model = m.Model()
	}
	if s, ok := cfg.Collector.(serialer); ok && cfg.Serial == "" {
		cfg.Serial = s.Serial()
	}

	ifaces, err := systemInterfaces()
	if err != nil {
		cfg.Logger.Warn("cannot list network interfaces", "err", err)
	}
	primary, hasPrimary := pickPrimary(ifaces)
	mac := cfg.MAC
	if mac == "" {
		if !hasPrimary {
			return nil, errors.New("agent: no MAC given and no network interface that is up with a hardware address; pass the MAC explicitly")
		}
		mac = primary.mac
		cfg.Logger.Info("using the MAC of the primary interface", "interface", primary.name, "mac", mac)
	}
	mac, err = topics.NormalizeMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Username == "" {
		cfg.Username = mac
	}
	if err := checkCertCN(cfg.TLS, mac); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}

	session := make([]byte, 8)
	rand.Read(session) // never fails (crypto/rand documents so since Go 1.24)

	log := cfg.Logger.With("mac", mac, "row", cfg.Row)
	a := &agent{
		cfg:       cfg,
		mac:       mac,
		row:       cfg.Row,
		ip:        func() string { return interfaceIP(mac) },
		session:   hex.EncodeToString(session),
		log:       log,
		limit:     logthrottle.New(logEvery),
		sent:      make(chan struct{}, 1),
		link:      newLink(),
		backoff:   backoff.New(cfg.MaxReconnectDelay),
		connected: make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if cfg.IP != "" {
		a.ip = func() string { return cfg.IP }
	}
	if cfg.LED != nil {
		a.leds = newMailbox[topics.LEDCommand]()
		a.ledStates = newMailbox[topics.LEDState]()
		a.republish = make(chan struct{}, 1)
		a.driver = newLEDDriver(cfg.LED, a.leds.ch, a.ledStates.put, a.now, log)
	}
	a.presses = &pressCounter{}
	queuePath := ""
	if cfg.StoreDir != "" {
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("agent: create store directory: %w", err)
		}
		a.presses.path = filepath.Join(cfg.StoreDir, pressSeqFile)
		if err := a.presses.load(); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		queuePath = filepath.Join(cfg.StoreDir, pressQueueFile)
	}
	q, rep, err := openQueue(queuePath, cfg.MaxQueuedPresses, maxQueuedBytes)
	if err != nil {
		return nil, fmt.Errorf("agent: %w (delete %s to start with an empty queue)", err, queuePath)
	}
	if rep.Corrupt > 0 {
		log.Warn("press queue had damaged entries (an interrupted write?); skipped them", "path", queuePath, "skipped", rep.Corrupt, "loaded", rep.Items)
	}
	if rep.Items > 0 {
		log.Info("presses from an earlier run wait for the broker", "queued", rep.Items)
	}
	// A lost counter file must not hand out numbers still queued: they would be taken for
	// redeliveries.
	a.presses.atLeast(q.maxID())
	a.queue = q
	return a, nil
}

func (a *agent) run(ctx context.Context) error {
	defer a.queue.close()
	client := a.newClient()
	a.log.Info("agent starting", "broker", a.cfg.Broker, "session", a.session, "version", buildinfo.Version())
	// With ConnectRetry the token only completes once connected, so it is not waited on:
	// OnConnect tells the main loop instead.
	connected := client.Connect()

	// The sender outlives ctx: at a clean stop it delivers what is queued before the offline
	// status goes out (see flush).
	sendCtx, stopSending := context.WithCancel(context.Background())
	var sender sync.WaitGroup
	sender.Go(func() { a.sendLoop(sendCtx, client) })

	var wg sync.WaitGroup
	wg.Go(func() { a.mainLoop(ctx, client, connected) })
	if a.driver != nil {
		wg.Go(func() { a.driver.run(ctx) })
		wg.Go(func() { a.ledStateLoop(ctx, client) })
	}
	if a.cfg.Button != nil {
		wg.Go(func() { a.buttonLoop(ctx, client) })
	}
	<-ctx.Done()
	close(a.stop)
	wg.Wait() // no new presses from here on
	a.flush(client)
	stopSending()
	sender.Wait()
	a.shutdown(client)
	return nil
}

// mainLoop announces the agent on every (re)connection and publishes telemetry and the row's
// power. Doing this
// here rather than in OnConnect keeps paho's handlers non-blocking.
//
// The first birth waits for the first connection's token, which completes once paho has
// finished connecting.
func (a *agent) mainLoop(ctx context.Context, client mqtt.Client, firstConnect mqtt.Token) {
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.connected:
			select {
			case <-firstConnect.Done():
			case <-ctx.Done():
				return
			}
			a.announce(client)
			if a.republish != nil {
				select {
				case a.republish <- struct{}{}:
				default: // one is already pending
				}
			}
			// Fresh readings at once, so a dashboard does not wait an interval after a reconnect.
			seq++
			a.publishMetrics(ctx, client, seq)
			a.publishPower(client)
		case <-tick.C:
			if !client.IsConnectionOpen() {
				continue // QoS0 would be dropped anyway; the next connect publishes at once
			}
			seq++
			a.publishMetrics(ctx, client, seq)
			a.publishPower(client)
		}
	}
}

// flush waits, a bounded time, for the sender to deliver the presses still queued, so that a
// clean stop does not leave them for the next start (or lose them, without a StoreDir). It
// does not wait while disconnected: the presses stay queued.
func (a *agent) flush(client mqtt.Client) {
	deadline := time.NewTimer(flushWait)
	defer deadline.Stop()
	for a.queue.len() > 0 {
		if !client.IsConnectionOpen() {
			a.log.Warn("stopping while disconnected; presses stay queued", "queued", a.queue.len(), "on_disk", a.cfg.StoreDir != "")
			return
		}
		select {
		case <-a.sent:
		case <-deadline.C:
			a.log.Warn("presses not delivered before stopping; they stay queued", "queued", a.queue.len(), "waited", flushWait, "on_disk", a.cfg.StoreDir != "")
			return
		}
	}
}

// shutdown publishes the retained offline status and disconnects. A graceful DISCONNECT
// discards the Will, so the offline status has to be published by hand.
func (a *agent) shutdown(client mqtt.Client) {
	if client.IsConnectionOpen() {
		// Not published while disconnected: a QoS1 offline left in the store would be re-sent
		// after the next start's birth. The Will covers that case.
		st := a.offlineStatus(a.now(), a.ip())
		if tok, err := a.publish(client, topics.StatusTopic(a.row, a.mac), 1, true, st); err != nil {
			a.log.Error("encode offline status", "err", err)
		} else if !tok.WaitTimeout(shutdownWait) {
			a.log.Warn("offline status not acknowledged before disconnecting", "waited", shutdownWait)
		} else if err := tok.Error(); err != nil {
			a.log.Warn("publish offline status", "err", err)
		}
	}
	client.Disconnect(disconnectQuiesceMS)
	a.log.Info("agent stopped")
}

func (a *agent) now() time.Time { return a.cfg.Now().UTC() }
