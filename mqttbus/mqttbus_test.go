package mqttbus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/topics"
)

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "Config.URL is required"},
		{"not a url", Config{URL: "broker-host"}, "not a URL"},
		{"scheme", Config{URL: "http://broker-host:1883"}, `scheme "http" is not supported`},
		{"credentials in url", Config{URL: "mqtt://cc:secret@broker-host"}, "holds credentials"},
		{"tls files on plain", Config{URL: "mqtt://broker-host", CAFile: "ca.pem"}, "plain MQTT, but TLS files"},
		{"cert without key", Config{URL: "mqtts://broker-host", CertFile: "c.pem"}, "without its key"},
		{"key without cert", Config{URL: "mqtts://broker-host", KeyFile: key}, "without its certificate"},
		{"key open to others", Config{URL: "mqtts://broker-host", CertFile: "c.pem", KeyFile: key}, "chmod"},
		{"missing CA", Config{URL: "wss://broker-host/mqtt", CAFile: filepath.Join(dir, "none.pem")}, "broker CA file"},
		{"client id", Config{URL: "mqtt://broker-host", ClientID: "a/b"}, "client id"},
		{"password alone", Config{URL: "mqtt://broker-host", Password: "x"}, "without a user name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBrokerURL(t *testing.T) {
	for raw, want := range map[string]string{
		"mqtt://h":          "mqtt://h:1883",
		"tcp://h:1999":      "tcp://h:1999",
		"mqtts://h":         "mqtts://h:8883",
		"ssl://h":           "ssl://h:8883",
		"tls://[::1]":       "tls://[::1]:8883",
		"ws://h/mqtt":       "ws://h/mqtt",
		"wss://h:9443/mqtt": "wss://h:9443/mqtt",
	} {
		u, _, err := brokerURL(raw)
		if err != nil || u.String() != want {
			t.Errorf("brokerURL(%q) = %v, %v; want %s", raw, u, err, want)
		}
	}
}

func TestLifecycleWithoutBroker(t *testing.T) {
	b := newBus(t, Config{URL: "mqtt://" + reservePort(t)})
	err := b.Publish(t.Context(), bus.Message{Topic: topics.LEDTopic(mac), QoS: 1, Payload: []byte("blink")})
	if !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish before Connect: %v, want ErrNotConnected", err)
	}
	if err := b.Publish(t.Context(), bus.Message{Topic: "a/+", QoS: 1}); err == nil {
		t.Error("Publish to a wildcard: no error")
	}
	if err := b.Subscribe("a/#/b", func(bus.Message) {}); err == nil {
		t.Error("Subscribe to an invalid filter: no error")
	}
	b.Close()
	b.Close() // idempotent
	if err := b.Publish(t.Context(), bus.Message{Topic: topics.LEDTopic(mac)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := b.Connect(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: %v, want ErrClosed", err)
	}
	if s := b.Stats(); s.PublishErrors != 3 || s.Published != 0 {
		t.Errorf("Stats = %+v, want 3 publish errors", s)
	}
}

// TestSubscribePublish runs the bus against the embedded broker: retained and live messages
// in, QoS 1 and QoS 0 out.
func TestSubscribePublish(t *testing.T) {
	e := startEmbedded(t)
	agent := pahoClient(t, e.url(), mac, mac, false)
	metrics := topics.MetricsTopic(row, mac)
	await(t, agent.Publish(metrics, 1, true, encode(t, topics.Metrics{V: topics.Version, Seq: 1, TS: time.Now().UTC()})), "publish retained metrics")

	b := newBus(t, Config{URL: e.url(), Username: ccUser, Password: password})
	all := newRecorder()
	if err := b.Subscribe(topics.AllFilter, all.handle); err != nil { // before Connect
		t.Fatal(err)
	}
	connect(t, b)
	if !b.Connected() {
		t.Error("Connected() = false after Connect")
	}
	if m := all.expect(t, metrics, true); m.QoS != 1 {
		t.Errorf("retained metrics arrived with QoS %d, want 1", m.QoS)
	}

	// A subscription made while connected gets the retained message too.
	late := newRecorder()
	if err := b.Subscribe(topics.MetricsTopic("+", mac), late.handle); err != nil {
		t.Fatal(err)
	}
	late.expect(t, metrics, true)

	button := topics.ButtonTopic(row, mac)
	await(t, agent.Publish(button, 1, false, buttonPayload(t, 1)), "publish button")
	if m := all.expect(t, button, false); m.QoS != 1 || !strings.Contains(string(m.Payload), `"seq":1`) {
		t.Errorf("button press arrived as %+v", m)
	}
	select {
	case m := <-late:
		t.Errorf("the metrics subscription got %s", m.Topic)
	default:
	}

	leds := pahoRecorder(t, agent, topics.LEDTopic(mac))
	for _, qos := range []byte{1, 0} {
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		err := b.Publish(ctx, bus.Message{Topic: topics.LEDTopic(mac), QoS: qos, Payload: ledPayload(t, "qos"+string('0'+qos))})
		cancel()
		if err != nil {
			t.Fatalf("Publish QoS %d: %v", qos, err)
		}
		m := leds.expect(t, topics.LEDTopic(mac), false)
		if by := ledBy(t, m); by != "qos"+string('0'+qos) {
			t.Errorf("agent got the command of %q, want qos%d", by, qos)
		}
	}
	s := b.Stats()
	if s.Connects != 1 || s.Published != 2 || s.Queued != 0 || s.PublishErrors != 0 || s.Received < 3 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestWrongPasswordIsRefused(t *testing.T) {
	e := startEmbedded(t)
	b := newBus(t, Config{URL: e.url(), Username: ccUser, Password: "wrong"})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	start := time.Now()
	err := b.Connect(ctx)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Connect: %v, want ErrRefused", err)
	}
	if d := time.Since(start); d > wait/2 {
		t.Errorf("the refusal took %v", d)
	}
	want := `broker ` + e.url() + ` refused the control center's login as "cc": bad user name or password (check --broker-user and --broker-password-file)`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Connect: %q\nwant it to contain %q", err, want)
	}
	if b.Connected() {
		t.Error("Connected() after a refusal")
	}
}

// TestBrokerDownAtStart: Connect gives up when its ctx ends, the bus keeps trying, and once
// the broker is up it connects and makes its subscriptions.
func TestBrokerDownAtStart(t *testing.T) {
	e := newEmbedded(t, reservePort(t))
	b := newBus(t, Config{URL: e.url(), Username: ccUser, Password: password})
	all := newRecorder()
	if err := b.Subscribe(topics.AllFilter, all.handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := b.Connect(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Connect with the broker down: %v, want a wrapped deadline saying unreachable", err)
	}
	eventually(t, "a failed attempt", func() bool { return b.Stats().ConnectFailures > 0 })

	e.start()
	eventually(t, "connected", b.Connected)
	agent := pahoClient(t, e.url(), mac, mac, false)
	button := topics.ButtonTopic(row, mac)
	// The subscription is made in OnConnect, just after Connected turns true: publish until
	// a press arrives.
	deadline := time.Now().Add(wait)
	for seq := uint64(1); ; seq++ {
		await(t, agent.Publish(button, 1, false, buttonPayload(t, seq)), "publish button")
		select {
		case <-all:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no press delivered after the broker came up")
		}
	}
}

// TestBrokerRestart: the broker stops and starts again on the same port and data directory
// under a running bus, which reconnects by itself with its subscriptions.
func TestBrokerRestart(t *testing.T) {
	e := startEmbedded(t)
	b := newBus(t, Config{URL: e.url(), Username: ccUser, Password: password})
	all := newRecorder()
	if err := b.Subscribe(topics.AllFilter, all.handle); err != nil {
		t.Fatal(err)
	}
	connect(t, b)

	e.stop()
	eventually(t, "connection lost", func() bool { return !b.Connected() })
	err := b.Publish(t.Context(), bus.Message{Topic: topics.LEDTopic(mac), QoS: 0, Payload: ledPayload(t, "lost")})
	if !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish QoS 0 while disconnected: %v, want ErrNotConnected", err)
	}
	e.start()
	eventually(t, "reconnected", b.Connected)

	agent := pahoClient(t, e.url(), mac, mac, false)
	button := topics.ButtonTopic(row, mac)
	await(t, agent.Publish(button, 1, false, buttonPayload(t, 7)), "publish button")
	all.expect(t, button, false)
	if s := b.Stats(); s.Connects < 2 || s.ConnectionLosses < 1 {
		t.Errorf("Stats = %+v, want a loss and a reconnection", s)
	}
}

// TestQueuedWhileAway cuts only the bus's connection (through a proxy): QoS 1 messages for
// the bus are queued by the broker in its persistent session, the bus's own QoS 1 publishes are
// queued by paho, and both are delivered once the link is back.
func TestQueuedWhileAway(t *testing.T) {
	e := startEmbedded(t)
	p := tcpproxy.New(t, e.addr)
	b := newBus(t, Config{URL: "mqtt://" + p.Addr(), Username: ccUser, Password: password})
	all := newRecorder()
	if err := b.Subscribe(topics.AllFilter, all.handle); err != nil {
		t.Fatal(err)
	}
	connect(t, b)
	agent := pahoClient(t, e.url(), mac, mac, false)
	leds := pahoRecorder(t, agent, topics.LEDTopic(mac))

	p.Cut()
	eventually(t, "connection lost", func() bool { return !b.Connected() })
	button := topics.ButtonTopic(row, mac)
	await(t, agent.Publish(button, 1, false, buttonPayload(t, 42)), "publish button while the bus is away")
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := b.Publish(ctx, bus.Message{Topic: topics.LEDTopic(mac), QoS: 1, Payload: ledPayload(t, "queued")}); err != nil {
		t.Fatalf("Publish QoS 1 while disconnected: %v, want nil (queued)", err)
	}
	if s := b.Stats(); s.Queued != 1 {
		t.Errorf("Stats.Queued = %d, want 1", s.Queued)
	}

	p.Restore()
	eventually(t, "reconnected", b.Connected)
	if m := all.expect(t, button, false); !strings.Contains(string(m.Payload), `"seq":42`) {
		t.Errorf("got %s, want press 42", m.Payload)
	}
	if by := ledBy(t, leds.expect(t, topics.LEDTopic(mac), false)); by != "queued" {
		t.Errorf("agent got the command of %q, want the queued one", by)
	}
}

// TestStoreDirKeepsQueuedAcrossRestart: a QoS 1 message published while the broker is away
// survives a restart of the control center with a StoreDir.
func TestStoreDirKeepsQueuedAcrossRestart(t *testing.T) {
	e := startEmbedded(t)
	p := tcpproxy.New(t, e.addr)
	store := t.TempDir()
	cfg := Config{URL: "mqtt://" + p.Addr(), Username: ccUser, Password: password, StoreDir: store}
	agent := pahoClient(t, e.url(), mac, mac, false)
	leds := pahoRecorder(t, agent, topics.LEDTopic(mac))

	b1 := newBus(t, cfg)
	connect(t, b1)
	p.Cut()
	eventually(t, "connection lost", func() bool { return !b1.Connected() })
	if err := b1.Publish(t.Context(), bus.Message{Topic: topics.LEDTopic(mac), QoS: 1, Payload: ledPayload(t, "stored")}); err != nil {
		t.Fatal(err)
	}
	b1.Close()

	p.Restore()
	b2 := newBus(t, cfg)
	connect(t, b2)
	if by := ledBy(t, leds.expect(t, topics.LEDTopic(mac), false)); by != "stored" {
		t.Errorf("agent got the command of %q, want the stored one", by)
	}
}

// One Pi's presses reach the handler in the order it published them, also when the broker sends
// a burst queued while the bus was away: paho would otherwise run each message on a goroutine
// of its own. On Mosquitto: Mochi v2.7.9 resends a session's queued messages sorted by the
// second they were created (truncated to 16 bits, with an unstable sort), so it reorders them
// itself within a second.
func TestDeliveredInOrder(t *testing.T) {
	url := startMosquitto(t)
	p := tcpproxy.New(t, strings.TrimPrefix(url, "mqtt://"))
	b := newBus(t, Config{URL: "mqtt://" + p.Addr(), MaxReconnectDelay: 300 * time.Millisecond})
	got := make(chan uint64, 300)
	if err := b.Subscribe(topics.ButtonTopic(row, mac), func(m bus.Message) {
		ev, err := topics.DecodeButton(m.Payload)
		if err == nil {
			got <- ev.Seq
		}
	}); err != nil {
		t.Fatal(err)
	}
	connect(t, b)
	agent := pahoClient(t, url, "", mac, false)
	// The bus subscribes after it connects: send probe presses until one arrives, so the
	// broker holds the subscription before the link is cut (else the presses meanwhile have
	// nowhere to be queued, and the test measures that race instead of the order). A probe
	// sent before the subscription is dropped by the broker: hence more than one.
	const probe = 1000
	deadline := time.After(wait)
	for seq := uint64(0); seq != probe; {
		await(t, agent.Publish(topics.ButtonTopic(row, mac), 1, false, buttonPayload(t, probe)), "publish the probe")
		select {
		case seq = <-got:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no probe press arrived: the bus did not subscribe")
		}
	}
	p.Cut()
	eventually(t, "connection lost", func() bool { return !b.Connected() })
	const n = 200
	var toks []paho.Token
	for seq := uint64(1); seq <= n; seq++ {
		toks = append(toks, agent.Publish(topics.ButtonTopic(row, mac), 1, false, buttonPayload(t, seq)))
	}
	for _, tok := range toks {
		await(t, tok, "publish a press")
	}
	p.Restore()
	for want := uint64(1); want <= n; {
		select {
		case seq := <-got:
			if seq == probe {
				continue // the probe again: its PUBACK may have died with the link
			}
			if seq != want {
				t.Fatalf("press %d arrived where %d was due: delivery reordered", seq, want)
			}
			want++
		case <-time.After(wait):
			t.Fatalf("only %d of %d presses arrived", want-1, n)
		}
	}
}
