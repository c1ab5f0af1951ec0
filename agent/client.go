package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/topics"
)

// Connection timing. A reconnect waits paho's own exponential backoff (1 s doubling, capped at
// two thirds of Config.MaxReconnectDelay) plus a random jitter (capped at a third of it), so
// at most about 30 s by default. paho's backoff is the same on every Pi: without jitter a
// whole rack that lost the broker would hammer it in lockstep when it comes back.
const (
	connectTimeout      = 10 * time.Second
	writeTimeout        = 5 * time.Second // bounds how long a Publish call may block
	ackWait             = 5 * time.Second // for tokens waited on outside handlers
	shutdownWait        = 2 * time.Second
	flushWait           = 3 * time.Second // at a clean stop, for queued presses to be delivered
	retryPause          = 100 * time.Millisecond
	stuckWait           = time.Minute // for a PUBACK on a live connection, before re-sending
	disconnectQuiesceMS = 250
)

const connectFailedKey = "connect"

func (a *agent) clientOptions() *mqtt.ClientOptions {
	will := a.offlineStatus(time.Time{}, "")
	willPayload, err := topics.Encode(will)
	if err != nil {
		panic("agent: will status does not validate: " + err.Error()) // a bug, not an input
	}
	o := mqtt.NewClientOptions().
		AddBroker(a.cfg.Broker).
		SetClientID(a.mac).
		SetUsername(a.cfg.Username).
		SetPassword(a.cfg.Password).
		SetTLSConfig(a.cfg.TLS). // nil for a plain broker
		SetProtocolVersion(4).
		SetCleanSession(false). // keep subscriptions and queued QoS1 across reconnects
		SetKeepAlive(a.cfg.KeepAlive).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(a.backoff.ConnectRetry).
		SetMaxReconnectInterval(a.backoff.MaxBackoff).
		SetOrderMatters(false). // handlers run concurrently, so a slow one cannot stall the client
		SetBinaryWill(topics.StatusTopic(a.row, a.mac), willPayload, 1, true).
		SetOnConnectHandler(func(mqtt.Client) {
			a.link.up()
			select {
			case a.connected <- struct{}{}:
			default: // an announcement is already pending
			}
		}).
		SetConnectionLostHandler(func(c mqtt.Client, err error) {
			// paho runs this on its own goroutine, which may be late: if it already
			// reconnected, the link stays up (and the press in flight is re-sent).
			a.link.lost(c.IsConnectionOpen())
			a.log.Warn("connection to broker lost; reconnecting", "err", err)
		}).
		SetConnectionNotificationHandler(a.onConnectionNotification).
		SetStore(noStore{}) // presses are kept by pressQueue; see noStore
	return o
}

// newClient is the agent's paho client, its LED route already in place. A broker re-sends a
// command queued for this Pi's persistent session right after the CONNACK, before announce
// has called Subscribe (always so for a new agent process, after a reboot); paho drops a
// message no route matches and never acknowledges it, so the command would be lost until the
// next reconnect.
func (a *agent) newClient() mqtt.Client {
	client := mqtt.NewClient(a.clientOptions())
	client.AddRoute(topics.LEDTopic(a.mac), a.onLED)
	client.AddRoute(topics.SystemTopic(a.mac), a.onSystem)
	return client
}

// onConnectionNotification adds jitter before connection attempts. paho calls it synchronously
// from its connect goroutine just before dialling, so waiting here delays the attempt; the wait
// ends early when Run stops, so a Disconnect is never held up.
// It also reports failed attempts, at most once per logEvery until a connection succeeds.
func (a *agent) onConnectionNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	var c mqtt.ConnectionNotificationConnecting
	switch n := n.(type) {
	case mqtt.ConnectionNotificationFailed:
		args := []any{"broker", a.cfg.Broker, "err", n.Reason}
		if h := connectHint(n.Reason); h != "" {
			args = append(args, "fix", h)
		}
		a.logLimited(connectFailedKey, slog.LevelWarn, "cannot connect to broker; retrying", args...)
		return
	case mqtt.ConnectionNotificationConnected:
		a.limit.Forget(connectFailedKey) // the next outage is reported at once
		return
	case mqtt.ConnectionNotificationConnecting:
		c = n
	default:
		return
	}
	w := a.backoff.JitterWindow(c.IsReconnect, c.Attempt)
	if w <= 0 {
		return
	}
	d := rand.N(w)
	a.log.Debug("waiting before connecting", "delay", d, "reconnect", c.IsReconnect, "attempt", c.Attempt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.stop:
	}
}

// publish validates p, encodes it and publishes it. The token is only a hint: paho can report
// success for a message the broker dropped.
func (a *agent) publish(client mqtt.Client, topic string, qos byte, retained bool, p topics.Validator) (mqtt.Token, error) {
	b, err := topics.Encode(p)
	if err != nil {
		return nil, err
	}
	return client.Publish(topic, qos, retained, b), nil
}

// announce subscribes to LED commands, then publishes the birth, after each connection. The
// order matters: "online" tells the dashboard it may send a Locate, so the subscription must be
// in place first, or a command sent right after the birth of a fresh session is lost.
func (a *agent) announce(client mqtt.Client) {
	// Subscribed on every connection, not only the first: the broker may have lost the session.
	a.await(client.Subscribe(topics.LEDTopic(a.mac), 1, a.onLED), "subscribe to LED commands")
	a.await(client.Subscribe(topics.SystemTopic(a.mac), 1, a.onSystem), "subscribe to system commands")
	birth := topics.Status{
		V:            topics.Version,
		State:        topics.StateOnline,
		TS:           a.now(),
		Session:      a.session,
		Hostname:     a.cfg.Hostname,
		IP:           a.ip(),
		Model:        a.cfg.Model,
		Serial:       a.cfg.Serial,
		AgentVersion: buildinfo.Version(),
		BootTime:     a.bootTime(),
	}
	if tok, err := a.publish(client, topics.StatusTopic(a.row, a.mac), 1, true, birth); err != nil {
		a.log.Error("birth message does not validate", "err", err)
	} else {
		a.await(tok, "publish birth")
	}
	a.log.Info("connected", "session", a.session)
}

// offlineStatus is the retained status that replaces the birth when the Pi goes: it keeps the
// Pi's identity (hostname, model, serial, version, and the last IP when known), so that an
// offline Pi is still known by name to anyone who subscribes later, or to a restarted control
// center. ts is zero for the Will, made at connect, which carries no time.
func (a *agent) offlineStatus(ts time.Time, ip string) topics.Status {
	return topics.Status{V: topics.Version, State: topics.StateOffline, TS: ts, Session: a.session,
		Hostname: a.cfg.Hostname, IP: ip, Model: a.cfg.Model, Serial: a.cfg.Serial, AgentVersion: buildinfo.Version()}
}

// await waits a bounded time for a token; only ever called from the agent's own goroutines.
func (a *agent) await(tok mqtt.Token, what string) {
	if !tok.WaitTimeout(ackWait) {
		a.log.Warn(what+": no acknowledgement yet", "waited", ackWait)
		return
	}
	if err := tok.Error(); err != nil {
		a.log.Warn(what, "err", err)
	}
}

// onLED is paho's handler for LED commands. It never blocks: a valid command goes to the LED
// driver's mailbox.
func (a *agent) onLED(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() {
		// A retained command would fire again on every reconnect of every session.
		a.logLimited("led/retained", slog.LevelWarn, "ignoring retained LED command; publish commands without the retain flag")
		return
	}
	cmd, err := topics.ParseLEDCommand(m.Payload())
	if err != nil {
		a.logLimited("led/invalid", slog.LevelWarn, "dropping invalid LED command", "err", err)
		return
	}
	now := a.now()
	if cmd.Expired(now) {
		a.log.Info("ignoring expired LED command", "action", cmd.Action, "expires_at", cmd.ExpiresAt, "by", cmd.By)
		return
	}
	if !cmd.IssuedAt.IsZero() {
		// With SetOrderMatters(false) two commands can be handled out of order; issue times,
		// when given, decide which is newer.
		a.mu.Lock()
		stale := cmd.IssuedAt.Before(a.lastIssued)
		if !stale {
			a.lastIssued = cmd.IssuedAt
		}
		a.mu.Unlock()
		if stale {
			a.log.Info("ignoring LED command older than the current one", "action", cmd.Action, "issued_at", cmd.IssuedAt)
			return
		}
	}
	a.log.Info("LED command", "action", cmd.Action, "count", cmd.Count, "period_ms", cmd.PeriodMS, "timeout_s", cmd.TimeoutS, "by", cmd.By)
	if a.leds != nil {
		a.leds.put(cmd)
	}
}

// onSystem takes a shutdown or reboot command: checked, then handed to Config.System, which
// stops this agent with the system (its clean stop publishes "offline"). What it did is
// reported on its system_result topic, so the control center can tell the operator at once.
func (a *agent) onSystem(client mqtt.Client, m mqtt.Message) {
	if m.Retained() {
		a.logLimited("system/retained", slog.LevelWarn, "ignoring a retained system command; the control center never retains them")
		return
	}
	cmd, err := topics.DecodeSystemCommand(m.Payload())
	if err != nil {
		a.logLimited("system/invalid", slog.LevelWarn, "dropping invalid system command", "err", err)
		return
	}
	result := func(outcome, reason string) {
		r := topics.SystemResult{V: topics.Version, TS: a.now().UTC(), Action: cmd.Action, IssuedAt: cmd.IssuedAt, By: cmd.By, Outcome: outcome, Reason: reason}
		// Not waited for: this runs on paho's router, and the message goes out before the
		// "offline" of the clean stop that follows a shutdown.
		if _, err := a.publish(client, topics.SystemResultTopic(a.row, a.mac), 1, false, r); err != nil {
			a.log.Warn("system result not sent", "err", err)
		}
	}
	if cmd.Expired(a.now()) {
		a.log.Warn("ignoring expired system command: it waited too long for this Pi", "action", cmd.Action, "by", cmd.By, "expires_at", cmd.ExpiresAt)
		result(topics.SystemRefused, "expired at "+cmd.ExpiresAt.UTC().Format(time.RFC3339)+" before it reached the Pi (it was offline or unreachable)")
		return
	}
	if a.cfg.System == nil {
		a.log.Warn("system command refused: this agent does not take them (pirack-agent --allow-system-commands)", "action", cmd.Action, "by", cmd.By)
		result(topics.SystemRefused, "this Pi's agent does not take system commands: start it with --allow-system-commands (docs/deploy.md)")
		return
	}
	a.log.Warn("system command: "+cmd.Action+" now", "by", cmd.By)
	if cmd.Action == topics.SystemShutdown && a.driver != nil {
		a.driver.haltLit.Store(true)
		a.leds.put(shutdownPattern(cmd.By, a.now().UTC()))
	}
	result(topics.SystemRunning, "")
	if err := a.cfg.System(cmd.Action); err != nil {
		a.log.Error("system command failed; see docs/deploy.md for the privilege it needs", "action", cmd.Action, "err", err)
		result(topics.SystemFailed, clipReason(err.Error())+" (docs/deploy.md: the polkit rule the package installs)")
		if cmd.Action == topics.SystemShutdown && a.driver != nil {
			a.driver.haltLit.Store(false) // not halting after all
			a.leds.put(topics.LEDCommand{Action: topics.LEDOff, By: cmd.By + " (shutdown failed)", IssuedAt: a.now().UTC()})
		}
	}
}

// clipReason bounds an error for a SystemResult's reason.
func clipReason(s string) string {
	if len(s) > 180 {
		return s[:180] + "..."
	}
	return s
}

// RunSystemctl carries a system command out with `systemctl poweroff` or `systemctl reboot`,
// which an unprivileged agent may run through the polkit rule the pirack-agent package installs
// (deploy/50-pirack-agent.rules).
func RunSystemctl(action string) error {
	verb := map[string]string{topics.SystemShutdown: "poweroff", topics.SystemReboot: "reboot"}[action]
	if verb == "" {
		return fmt.Errorf("unknown system action %q", action)
	}
	out, err := exec.Command("systemctl", verb).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", verb, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ledStateLoop publishes the LED driver's state reports, retained, and the current state again
// after each connection. It is the only publisher of led_state, so a late report can never
// overwrite a newer one; the driver never waits for it.
func (a *agent) ledStateLoop(ctx context.Context, client mqtt.Client) {
	var (
		cur  topics.LEDState
		have bool
	)
	topic := topics.LEDStateTopic(a.row, a.mac)
	for {
		select {
		case <-ctx.Done():
			return
		case cur = <-a.ledStates.ch:
			have = true
		case <-a.republish:
		}
		if !have || !client.IsConnectionOpen() {
			continue // published after the next connection
		}
		if tok, err := a.publish(client, topic, 1, true, cur); err != nil {
			a.logLimited("led_state/invalid", slog.LevelError, "LED state does not validate; not published", "err", err)
		} else {
			a.await(tok, "publish LED state")
		}
	}
}

// buttonLoop runs the button and queues each press for the sender. A broken button is logged
// and the agent carries on without it.
func (a *agent) buttonLoop(ctx context.Context, client mqtt.Client) {
	err := a.cfg.Button.Run(ctx, func(kind string) {
		seq, err := a.presses.next()
		if err != nil {
			a.logLimited("button/store", slog.LevelWarn, "cannot persist the press counter; sequence numbers may repeat after a restart", "err", err)
		}
		// Any press while the LED is locating the Pi acknowledges it, and stops the LED.
		found := a.driver != nil && a.driver.found(ctx)
		ev := topics.ButtonEvent{V: topics.Version, Press: kind, Seq: seq, TS: a.now(), Found: found}
		b, err := topics.Encode(ev)
		if err != nil {
			a.logLimited("button/invalid", slog.LevelWarn, "dropping invalid button press", "err", err)
			return
		}
		dropped, err := a.queue.push(seq, b)
		for _, d := range dropped {
			a.log.Warn("press queue full; dropped the oldest press", "dropped_seq", d, "max", a.cfg.MaxQueuedPresses, "dropped_total", a.queue.droppedTotal())
		}
		if err != nil {
			a.logLimited("button/queue", slog.LevelWarn, "cannot save the press to disk", "seq", seq, "err", err)
		}
		a.log.Info("button pressed", "press", kind, "seq", seq, "found", found)
	})
	if err != nil {
		a.log.Error("button stopped working; carrying on without it", "err", err)
	}
}

// sendLoop publishes the queued presses one at a time, oldest first, and removes each only
// once the broker has acknowledged it. A press whose connection is lost before its PUBACK is
// published again on the next connection, with the same bytes: QoS 1 is at least once, and
// the dashboard drops the redelivery by (mac, seq, ts). On a live connection it is not re-sent
// for a slow PUBACK (TCP loses nothing; a busy broker only gets busier), except after
// stuckWait, in case a broker dropped it silently. One press in flight at a time keeps the
// order across reconnects.
func (a *agent) sendLoop(ctx context.Context, client mqtt.Client) {
	topic := topics.ButtonTopic(a.row, a.mac)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		it, ok := a.queue.head()
		if !ok {
			select {
			case <-a.queue.pushed:
				continue
			case <-ctx.Done():
				return
			}
		}
		down, ok := a.link.wait(ctx)
		if !ok {
			return
		}
		tok := client.Publish(topic, 1, false, it.payload)
		timer.Reset(stuckWait)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				a.logLimited("button/publish", slog.LevelWarn, "publish button press; retrying", "seq", it.id, "err", err)
				timer.Reset(retryPause)
				select { // paho's state may lag behind the link's: do not spin
				case <-timer.C:
				case <-down:
				case <-ctx.Done():
					return
				}
				continue
			}
			if err := a.queue.remove(it.id); err != nil {
				a.logLimited("button/queue", slog.LevelWarn, "cannot update the press queue", "err", err)
			}
			select {
			case a.sent <- struct{}{}:
			default:
			}
		case <-down:
			a.log.Debug("connection lost before the press was acknowledged; it will be sent again", "seq", it.id)
		case <-timer.C:
			a.log.Warn("press not acknowledged; sending it again", "seq", it.id, "waited", stuckWait)
		case <-ctx.Done():
			return
		}
	}
}

// publishMetrics collects and publishes one sample; failures are logged, never fatal.
func (a *agent) publishMetrics(ctx context.Context, client mqtt.Client, seq uint64) {
	m, err := a.cfg.Collector.Collect(ctx)
	if err != nil && ctx.Err() == nil {
		a.logLimited("metrics/"+err.Error(), slog.LevelWarn, "some readings failed and are left out", "err", err)
	}
	m.V, m.Seq, m.TS = topics.Version, seq, a.now()
	if n := trimToFit(&m); n > 0 {
		a.logLimited("metrics/trimmed", slog.LevelWarn, "metrics sample too big for the contract: list entries left out (containers first)", "dropped", n, "limit_bytes", topics.MaxPayload)
	}
	if _, err := a.publish(client, topics.MetricsTopic(a.row, a.mac), 0, true, m); err != nil {
		a.logLimited("metrics/invalid", slog.LevelError, "metrics sample does not validate; not published", "err", err)
	}
}

const powerReadKey = "power/read"

// publishPower reads the row's power sensor, if there is one, and publishes the reading,
// retained. A failed read is logged, at most once per logEvery, and skipped: a loose wire or
// a reset sensor must not stop the agent, and the next interval tries again.
func (a *agent) publishPower(client mqtt.Client) {
	if a.cfg.Power == nil {
		return
	}
	p, err := a.cfg.Power.Read()
	if err != nil {
		a.powerFailing = true
		a.logLimited(powerReadKey, slog.LevelWarn, "cannot read the row's power sensor; reading skipped", "err", err, "see", "docs/hardware.md#row-power")
		return
	}
	if a.powerFailing {
		a.powerFailing = false
		a.limit.Forget(powerReadKey) // the next failure is reported at once
		a.log.Info("power sensor readings are back")
	}
	p.V, p.TS = topics.Version, a.now()
	if _, err := a.publish(client, topics.PowerTopic(a.row), 0, true, p); err != nil {
		a.logLimited("power/invalid", slog.LevelError, "power reading does not validate; not published", "err", err)
	}
}

// booter is implemented by collectors that know when the machine booted.
type booter interface {
	BootTime(ctx context.Context) (time.Time, error)
}

// bootTime asks the collector for the boot time; zero (left out of the birth) if it cannot say.
func (a *agent) bootTime() time.Time {
	b, ok := a.cfg.Collector.(booter)
	if !ok {
		return time.Time{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackWait)
	defer cancel()
	t, err := b.BootTime(ctx)
	if err != nil {
		a.logLimited("boottime", slog.LevelWarn, "cannot read boot time", "err", err)
		return time.Time{}
	}
	return t.UTC()
}

// link tracks whether paho is connected, for the press sender: wait blocks until it is, and
// returns a channel closed when that connection is lost.
type link struct {
	mu     sync.Mutex
	isUp   bool
	upCh   chan struct{} // closed when the link comes up
	downCh chan struct{} // closed when the current connection is lost
}

func newLink() *link { return &link{upCh: make(chan struct{}), downCh: make(chan struct{})} }

func (l *link) up() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.isUp {
		l.isUp = true
		close(l.upCh)
		l.downCh = make(chan struct{})
	}
}

// lost ends the current connection; reconnected says paho is already connected again.
func (l *link) lost(reconnected bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.isUp {
		return
	}
	close(l.downCh)
	l.downCh = make(chan struct{})
	if !reconnected {
		l.isUp = false
		l.upCh = make(chan struct{})
	}
}

// wait returns once the link is up, with the channel closed when it goes down; ok is false
// when ctx ended first.
func (l *link) wait(ctx context.Context) (down <-chan struct{}, ok bool) {
	for {
		l.mu.Lock()
		if l.isUp {
			down = l.downCh
			l.mu.Unlock()
			return down, true
		}
		up := l.upCh
		l.mu.Unlock()
		select {
		case <-up:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// TLSFiles names the PEM files LoadTLS reads. Every field may be "".
type TLSFiles struct {
	// CAFile is a bundle of the CAs that sign the broker's certificate: a control host's
	// private CA or its self-signed certificate. "" means the system's root CAs.
	CAFile string
	// CertFile and KeyFile are the agent's client certificate (its CN the Pi's MAC in topic
	// form) and private key. Both or neither; the key must be readable by its owner only.
	CertFile, KeyFile string
}

// LoadTLS builds the TLS configuration of an agent connecting to broker, which must be a TLS
// URL (ssl://host:8883). It checks the files now, so that a mistake stops the agent at start
// with a message saying what to fix, rather than as a retried connection failure: a missing
// file, one without PEM, a key readable by others, a key that is not the certificate's, and a
// certificate that has expired at now or is not valid yet. The files are read once: replacing
// them takes a restart.
func LoadTLS(broker string, f TLSFiles, now time.Time) (*tls.Config, error) {
	u, err := url.Parse(broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker %q is not a URL such as ssl://rack-host:8883", broker)
	}
	if !isTLSScheme(u.Scheme) {
		return nil, errPlainBroker(u)
	}
	// ServerName is set here rather than left to the dialer: paho's proxy path does not set it.
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if f.CAFile != "" {
		b, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("broker CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("broker CA file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", f.CAFile)
		}
		t.RootCAs = pool
	}
	switch {
	case f.CertFile == "" && f.KeyFile == "":
		return t, nil
	case f.KeyFile == "":
		return nil, fmt.Errorf("client certificate %s given without its key file", f.CertFile)
	case f.CertFile == "":
		return nil, fmt.Errorf("client key %s given without its certificate file", f.KeyFile)
	}
	cert, err := loadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	switch leaf := cert.Leaf; {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("client certificate %s expired on %s (this Pi's clock says %s): issue a new one, see docs/security.md",
			f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("client certificate %s is valid only from %s, and this Pi's clock says %s: check the clock (NTP)",
			f.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	t.Certificates = []tls.Certificate{cert}
	// Always present the certificate. Go's client otherwise leaves out one that the broker's
	// list of acceptable CAs does not name, and the broker would then refuse a missing
	// password instead of saying that the certificate's CA is wrong.
	t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return t, nil
}

// loadKeyPair reads a client certificate and its key, saying which file is wrong.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	if err := secretfile.Check(keyFile, "client key"); err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client key: %w", err)
	}
	if !hasPEM(certPEM, func(typ string) bool { return typ == "CERTIFICATE" }) {
		return tls.Certificate{}, fmt.Errorf("client certificate %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", certFile)
	}
	if !hasPEM(keyPEM, func(typ string) bool { return strings.HasSuffix(typ, "PRIVATE KEY") }) {
		return tls.Certificate{}, fmt.Errorf("client key %s holds no PEM private key (-----BEGIN PRIVATE KEY-----)", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return tls.Certificate{}, fmt.Errorf("client key %s is not the key of certificate %s (%w): give the key the certificate was made for", keyFile, certFile, err)
		}
		return tls.Certificate{}, fmt.Errorf("load client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, nil // X509KeyPair fills Leaf
}

// hasPEM reports whether b holds a PEM block whose type satisfies ok.
func hasPEM(b []byte, ok func(typ string) bool) bool {
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return false
		}
		if ok(blk.Type) {
			return true
		}
	}
}

// checkCertCN refuses a client certificate made for another Pi: the broker would refuse it.
func checkCertCN(t *tls.Config, mac string) error {
	if t == nil || len(t.Certificates) == 0 || t.Certificates[0].Leaf == nil {
		return nil
	}
	if cn := t.Certificates[0].Leaf.Subject.CommonName; cn != mac {
		return fmt.Errorf("client certificate is for CN %q, not this Pi's MAC %s; the broker would refuse it: issue one with CN=%s", cn, mac, mac)
	}
	return nil
}

// isTLSScheme reports whether paho connects to a broker URL of this scheme over TLS.
func isTLSScheme(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss":
		return true
	}
	return false
}

func errPlainBroker(u *url.URL) error {
	return fmt.Errorf("broker %s is plain MQTT, but TLS settings are given: use ssl://%s:8883 (the broker's mqtts port), or leave out the CA, certificate and key", u.Redacted(), u.Hostname())
}

// connectHint says what to do about a failed connection whose cause is TLS; "" for others.
func connectHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "the broker's certificate is not signed by a CA this agent trusts: give the CA that signed it (pirack-agent --ca-file)"
	case errors.As(err, &hostname):
		return "the broker's certificate is not made for this host name: use a name or address it lists in the broker URL, or reissue it"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the broker's certificate has expired or is not valid yet: renew it, or check this Pi's clock"
	}
	// The broker's refusal of a client certificate arrives as an alert, which crypto/tls
	// reports only as text ("remote error: tls: unknown certificate authority").
	msg := err.Error()
	switch {
	case !strings.Contains(msg, "remote error: tls: "):
	case strings.Contains(msg, "expired certificate"):
		return "the broker says this agent's client certificate has expired: issue a new one, or check this Pi's clock"
	case strings.Contains(msg, "certificate required"):
		return "the broker wants a client certificate: give one (pirack-agent --cert-file and --key-file)"
	case strings.Contains(msg, "certificate"), strings.Contains(msg, "access denied"):
		return "the broker refused this agent's client certificate: it must be signed by the CA given to the broker's --mqtt-client-ca"
	}
	return ""
}
