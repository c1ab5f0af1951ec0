// Package mqttbus is the control center as one client of an external MQTT broker (Mosquitto,
// EMQX, VerneMQ, HiveMQ...): a bus.Bus over paho.mqtt.golang, used by `pirack serve --broker
// mqtt://...` in place of the embedded broker.
//
// Lifecycle: New checks the configuration without connecting; Subscribe may be called before
// and after Connect; Connect starts the connection and waits for the first one; Close ends
// it. After the first connection paho reconnects by itself, with a capped backoff plus jitter.
//
//	b, err := mqttbus.New(cfg)
//	b.Subscribe(topics.AllFilter, ingest) // made again on every (re)connection
//	err = b.Connect(ctx)                  // nil once connected; ErrRefused on a bad login
//	defer b.Close()
//
// Delivery: the session is persistent (a fixed client id, CleanSession false, MQTT 3.1.1) and
// every subscription is made at QoS 1, so QoS 1 messages published while the control center is
// away are queued by the broker (within its own limits) and delivered on reconnection; QoS 0
// ones (metrics, power readings) are lost while it is away, but their retained last values
// are delivered again, with Message.Retained set, when the subscriptions are made again.
// Messages are matched to handlers here, not by paho's per-subscription routes, so that
// those the broker sends for the persistent session before the subscriptions are renewed are
// delivered, not dropped.
//
// Handlers are called one message at a time, in the order the broker sent them.
//
// QoS 1 is at least once: a message can be delivered twice (a redelivery after a lost
// PUBACK). mqttbus does not deduplicate: the dashboard drops repeated button presses by
// (mac, seq, ts) and counts replayed metrics itself.
package mqttbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/backoff"
	"github.com/pirack/pirack/internal/mqttfilter"
)

// TODO(lead): a retained control-center status with a Will ("offline") would let agents and
// watchers see that the control center is gone. It needs a topic in package topics first
// (no topic strings outside it); then set it with SetBinaryWill in clientOptions.

var _ bus.Bus = (*Bus)(nil)

// Timing that is not configurable.
const (
	writeTimeout      = 5 * time.Second  // bounds handing a packet to paho's writer
	subscribeWait     = 10 * time.Second // for a SUBACK, outside message handlers
	disconnectQuiesce = 250              // ms for in-flight work at Close
	failedLogEvery    = time.Minute      // repeats of the same connection failure
	subackFailure     = 0x80             // SUBACK return code of a refused subscription (3.1.1)
)

var (
	// ErrNotConnected is returned by Publish for a QoS 0 message while the bus is not
	// connected (paho would drop it silently), and for any message before Connect.
	ErrNotConnected = errors.New("mqttbus: not connected to the broker")
	// ErrClosed is returned by Publish, Subscribe and Connect after Close.
	ErrClosed = errors.New("mqttbus: closed")
	// ErrRefused is wrapped by the error Connect returns when the broker refuses the first
	// connection for a reason that retrying will not fix: bad user name or password, not
	// authorised, client id rejected, protocol version, or a TLS failure.
	ErrRefused = errors.New("broker refused the connection")
)

// Stats counts what the bus did since New, for health reporting.
type Stats struct {
	// Connects counts successful connections, the first and every reconnection.
	Connects uint64
	// ConnectionLosses counts connections lost (not the ones Close ended).
	ConnectionLosses uint64
	// ConnectFailures counts failed connection attempts.
	ConnectFailures uint64
	// Received counts messages delivered by the broker (each once, however many handlers).
	Received uint64
	// Published counts Publish calls that returned nil; Queued is how many of them were
	// queued while disconnected rather than acknowledged.
	Published, Queued uint64
	// PublishErrors counts Publish calls that returned an error.
	PublishErrors uint64
}

// Bus is the control center's connection to an external MQTT broker. It implements bus.Bus.
type Bus struct {
	cfg     Config
	log     *slog.Logger
	url     *url.URL
	backoff backoff.Backoff
	client  mqtt.Client

	stop      chan struct{} // closed by Close: ends jitter waits and Connect
	closeOnce sync.Once

	mu        sync.Mutex
	subs      []sub
	online    bool          // between paho's OnConnect and its connection lost
	down      chan struct{} // closed when the current connection is lost
	started   bool          // Connect was called
	waiting   bool          // Connect is waiting for the first connection
	first     chan struct{} // closed at the first connection
	refused   chan error    // a permanent refusal before the first connection (buffered 1)
	lastFail  string        // the last connection failure logged, and when
	lastFailT time.Time

	connects, losses, failures, received, published, queued, pubErrs atomic.Uint64
}

type sub struct {
	filter string
	h      bus.Handler
}

// New checks cfg (the URL, the TLS files, the client id) and builds the bus, without
// connecting.
func New(cfg Config) (*Bus, error) {
	cfg = cfg.withDefaults()
	u, secure, err := brokerURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := validClientID(cfg.ClientID); err != nil {
		return nil, err
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("mqttbus: a password without a user name: MQTT 3.1.1 sends a password only with a user name")
	}
	tlsConfig, err := cfg.loadTLS(u, secure)
	if err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:     cfg,
		log:     cfg.Logger.With("broker", u.Redacted()),
		url:     u,
		backoff: backoff.New(cfg.MaxReconnectDelay),
		stop:    make(chan struct{}),
		down:    make(chan struct{}),
		first:   make(chan struct{}),
		refused: make(chan error, 1),
	}
	var store mqtt.Store = mqtt.NewMemoryStore()
	if cfg.StoreDir != "" {
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("mqttbus: message store: %w", err)
		}
		store = mqtt.NewFileStore(cfg.StoreDir)
	}
	o := mqtt.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetTLSConfig(tlsConfig).
		SetProtocolVersion(4).
		SetCleanSession(false). // the broker queues QoS 1 for us while we are away
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(writeTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(b.backoff.ConnectRetry).
		SetMaxReconnectInterval(b.backoff.MaxBackoff).
		// In the order received, one at a time: one Pi's presses must reach the dashboard in
		// the order it made them, and paho runs each message on a goroutine of its own
		// otherwise. Handlers never block (bus.Handler), so the client is not stalled.
		SetOrderMatters(true).
		SetStore(store).
		SetDefaultPublishHandler(b.deliver).
		SetOnConnectHandler(b.onConnect).
		SetConnectionLostHandler(b.onConnectionLost).
		SetConnectionNotificationHandler(b.onNotification)
	b.client = mqtt.NewClient(o)
	return b, nil
}

// Subscribe calls h for every message matching filter, retained ones included (with
// Message.Retained set). It may be called before Connect; the subscription is made at QoS 1
// on every connection. Called while connected it also subscribes at once and returns the
// broker's refusal, if any; the subscription is kept and tried again on each reconnection.
// Then it waits (bounded) for the broker's answer: do not call it from a Handler.
func (b *Bus) Subscribe(filter string, h bus.Handler) error {
	if !mqttfilter.Valid(filter) {
		return fmt.Errorf("mqttbus: %q is not a valid topic filter", filter)
	}
	if h == nil {
		return errors.New("mqttbus: Subscribe with a nil handler")
	}
	if b.isClosed() {
		return ErrClosed
	}
	b.mu.Lock()
	b.subs = append(b.subs, sub{filter, h})
	online := b.online
	b.mu.Unlock()
	if !online {
		return nil // made by onConnect
	}
	return b.subscribe(filter)
}

// subscribe makes one subscription at QoS 1 and waits, bounded, for the broker's answer.
// Never called from a message handler.
func (b *Bus) subscribe(filter string) error {
	tok := b.client.Subscribe(filter, 1, nil) // nil: delivered by the default handler
	select {
	case <-tok.Done():
	case <-time.After(subscribeWait):
		return fmt.Errorf("mqttbus: subscribe to %q: no SUBACK within %v", filter, subscribeWait)
	case <-b.stop:
		return ErrClosed
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqttbus: subscribe to %q: %w", filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		if q, ok := st.Result()[filter]; ok && q == subackFailure {
			return fmt.Errorf("mqttbus: broker refused the subscription to %q: give the control center's user read access to it", filter)
		}
	}
	return nil
}

// Connect connects to the broker and waits for the first connection. It returns nil once
// connected. If the broker refuses the login for a reason retrying will not fix, it stops
// and returns an error wrapping ErrRefused that says what failed and what to do; the Bus is
// then of no further use (Close it). If ctx ends first (the broker is unreachable, or still
// refusing for a passing reason), it returns ctx's error wrapped with "broker unreachable"
// and keeps trying in the background, logging failures: the caller may carry on (Connected
// says when it is up; subscriptions are made then) or Close. Connect may be called once.
func (b *Bus) Connect(ctx context.Context) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return errors.New("mqttbus: Connect called twice")
	}
	b.started, b.waiting = true, true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.waiting = false
		b.mu.Unlock()
	}()
	if b.isClosed() {
		return ErrClosed
	}
	b.log.Info("connecting to broker", "client_id", b.cfg.ClientID, "username", b.cfg.Username)
	b.client.Connect() // retries until connected or disconnected: its token is not waited on
	select {
	case <-b.first:
		return nil
	case err := <-b.refused:
		b.client.Disconnect(0) // stops the retries
		return err
	case <-b.stop:
		return ErrClosed
	case <-ctx.Done():
		b.log.Warn("broker not reachable yet; still trying in the background", "err", ctx.Err())
		return fmt.Errorf("mqttbus: broker %s unreachable: %w", b.url.Redacted(), ctx.Err())
	}
}

// Publish sends m. QoS 0 is handed to the connection and returns at once; while the bus is
// not connected it returns ErrNotConnected. QoS 1 (and 2) returns once the broker has
// acknowledged it, or once it is queued: a message published while the bus is disconnected,
// or whose connection is lost before its acknowledgement, is kept in paho's store (on disk with
// Config.StoreDir) and sent on the next connection, and Publish returns nil for it. If ctx
// ends while waiting for the acknowledgement, Publish returns ctx's error, but the message
// stays in the store and may still be delivered. An acknowledgement is not proof of delivery:
// a broker may acknowledge and drop a message its ACLs refuse. A QoS 1 Publish waits for the
// broker, so a Handler must not call it (hand the message to a goroutine of its own instead).
func (b *Bus) Publish(ctx context.Context, m bus.Message) (err error) {
	defer func() {
		if err != nil {
			b.pubErrs.Add(1)
		} else {
			b.published.Add(1)
		}
	}()
	switch {
	case !mqttfilter.ValidTopic(m.Topic):
		return fmt.Errorf("mqttbus: publish: %q is not a topic name", m.Topic)
	case m.QoS > 2:
		return fmt.Errorf("mqttbus: publish to %s: QoS %d does not exist", m.Topic, m.QoS)
	case b.isClosed():
		return ErrClosed
	}
	b.mu.Lock()
	online, started, down := b.online, b.started, b.down
	b.mu.Unlock()
	if !started || (m.QoS == 0 && !online) {
		return ErrNotConnected
	}
	tok := b.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	if !online {
		// paho stored it (connecting or reconnecting) and sends it on the next connection.
		if tok.WaitTimeout(0) && tok.Error() != nil {
			return fmt.Errorf("mqttbus: publish to %s: %w", m.Topic, tok.Error())
		}
		b.queued.Add(1)
		return nil
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqttbus: publish to %s: %w", m.Topic, err)
		}
		return nil
	case <-down:
		if m.QoS == 0 {
			return fmt.Errorf("mqttbus: publish to %s: %w", m.Topic, ErrNotConnected)
		}
		b.queued.Add(1)
		return nil // in the store, re-sent on the next connection
	case <-ctx.Done():
		return fmt.Errorf("mqttbus: publish to %s: no acknowledgement yet (still queued): %w", m.Topic, ctx.Err())
	}
}

// Connected reports whether the bus is connected to the broker now.
func (b *Bus) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.online
}

// Stats returns the counters since New.
func (b *Bus) Stats() Stats {
	return Stats{
		Connects:         b.connects.Load(),
		ConnectionLosses: b.losses.Load(),
		ConnectFailures:  b.failures.Load(),
		Received:         b.received.Load(),
		Published:        b.published.Load(),
		Queued:           b.queued.Load(),
		PublishErrors:    b.pubErrs.Load(),
	}
}

// Close disconnects cleanly (a DISCONNECT, so the broker does not treat it as a failure) and
// stops reconnecting. It is idempotent and returns within a fraction of a second; a paho
// goroutine sleeping between reconnection attempts ends when its sleep does.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.client.Disconnect(disconnectQuiesce)
		b.mu.Lock()
		if b.online {
			b.online = false
			close(b.down)
			b.down = make(chan struct{})
		}
		b.mu.Unlock()
		b.log.Info("disconnected from broker")
	})
	return nil
}

func (b *Bus) isClosed() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// deliver is paho's default publish handler: every message goes to the handlers whose filter
// matches it. It never blocks on paho.
func (b *Bus) deliver(_ mqtt.Client, pm mqtt.Message) {
	b.received.Add(1)
	m := bus.Message{Topic: pm.Topic(), Payload: pm.Payload(), QoS: pm.Qos(), Retained: pm.Retained()}
	b.mu.Lock()
	subs := b.subs // appended only: the prefix seen here stays valid
	b.mu.Unlock()
	for _, s := range subs {
		if mqttfilter.Match(s.filter, m.Topic) {
			s.h(m)
		}
	}
}

// onConnect runs on its own goroutine after each connection: it marks the bus online and
// makes every subscription again (the broker may have lost the session).
func (b *Bus) onConnect(mqtt.Client) {
	b.mu.Lock()
	if b.isClosed() {
		b.mu.Unlock()
		return
	}
	b.online = true
	subs := b.subs
	b.lastFail = ""
	if f := b.cfg.OnConnectionChange; f != nil {
		f(true) // under mu: in order with the losses
	}
	b.mu.Unlock()
	n := b.connects.Add(1)
	if n == 1 {
		b.log.Info("connected to broker", "client_id", b.cfg.ClientID)
		close(b.first)
	} else {
		b.log.Info("reconnected to broker", "client_id", b.cfg.ClientID, "connects", n)
	}
	for _, s := range subs {
		if err := b.subscribe(s.filter); err != nil && !errors.Is(err, ErrClosed) {
			b.log.Error("cannot subscribe", "filter", s.filter, "err", err)
		}
	}
}

func (b *Bus) onConnectionLost(_ mqtt.Client, err error) {
	b.mu.Lock()
	if b.online {
		b.online = false
		close(b.down)
		b.down = make(chan struct{})
		if f := b.cfg.OnConnectionChange; f != nil {
			f(false)
		}
	}
	b.mu.Unlock()
	b.losses.Add(1)
	b.log.Warn("connection to broker lost; reconnecting", "err", err)
}

// onNotification adds jitter before connection attempts (paho calls it synchronously just
// before dialling; the wait ends early at Close), and reports failed attempts: a permanent
// refusal of the first connection ends Connect, other failures are logged, the same one at
// most once per failedLogEvery.
func (b *Bus) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationConnecting:
		w := b.backoff.JitterWindow(n.IsReconnect, n.Attempt)
		if w <= 0 {
			return
		}
		t := time.NewTimer(rand.N(w))
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.stop:
		}
	case mqtt.ConnectionNotificationFailed:
		b.failed(n.Reason)
	}
}

func (b *Bus) failed(reason error) {
	b.failures.Add(1)
	what, permanent := b.explain(reason)
	b.mu.Lock()
	if permanent && b.waiting {
		b.mu.Unlock()
		select {
		case b.refused <- fmt.Errorf("%w: %s", ErrRefused, what):
		default:
		}
		return
	}
	now := time.Now()
	repeat := what == b.lastFail && now.Sub(b.lastFailT) < failedLogEvery
	if !repeat {
		b.lastFail, b.lastFailT = what, now
	}
	b.mu.Unlock()
	if repeat {
		return
	}
	level := slog.LevelWarn
	if permanent {
		level = slog.LevelError
	}
	b.log.Log(context.Background(), level, "cannot connect to broker; retrying", "err", what)
}

// explain says what a failed connection attempt means for the operator, and whether retrying
// can fix it.
func (b *Bus) explain(err error) (string, bool) {
	who := fmt.Sprintf("broker %s refused the control center's login", b.url.Redacted())
	if b.cfg.Username != "" {
		who += fmt.Sprintf(" as %q", b.cfg.Username)
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return who + ": bad user name or password (check --broker-user and --broker-password-file)", true
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return who + ": not authorised (check the user name, password and client certificate, and that the broker lets this user connect)", true
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Sprintf("%s: client id %q rejected (choose another with --broker-client-id)", who, b.cfg.ClientID), true
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return who + ": it does not accept MQTT 3.1.1", true
	case errors.As(err, &unknown):
		return fmt.Sprintf("TLS to broker %s: its certificate is not signed by a CA the control center trusts: give the CA that signed it (--broker-ca): %v", b.url.Redacted(), err), true
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS to broker %s: its certificate is not made for %s: use a name it lists in the broker URL, or reissue it: %v", b.url.Redacted(), b.url.Hostname(), err), true
	case errors.As(err, &invalid):
		return fmt.Sprintf("TLS to broker %s: its certificate is not valid (expired, or this host's clock is wrong): %v", b.url.Redacted(), err), true
	case errors.As(err, &record):
		return fmt.Sprintf("TLS to broker %s: it does not speak TLS on that port: use mqtt:// or the broker's TLS port: %v", b.url.Redacted(), err), true
	case strings.Contains(msg, "remote error: tls: "):
		return fmt.Sprintf("TLS to broker %s: it refused the control center's client certificate (check --broker-cert and --broker-key): %v", b.url.Redacted(), err), true
	}
	return msg, false
}
