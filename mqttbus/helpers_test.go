package mqttbus

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// wait bounds every wait for something that should happen.
const wait = 10 * time.Second

// Test accounts on the embedded broker.
const (
	ccUser   = "cc" // the control center: admin
	password = "test-password-1"
	mac      = "b827eb000001" // an agent in row r1
	row      = "r1"
)

func testUsers(t testing.TB) *auth.Users {
	t.Helper()
	users, err := auth.Open(t.TempDir() + "/users.json")
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, u := range []auth.User{
		{Name: ccUser, Role: auth.RoleAdmin},
		{Role: auth.RoleAgent, MAC: mac, Row: row},
	} {
		if err := users.Add(u, password); err != nil {
			t.Fatal(err)
		}
	}
	return users
}

// embedded is an embedded broker that a test can stop and start again on the same address
// and data directory.
type embedded struct {
	t       testing.TB
	users   *auth.Users
	dataDir string
	addr    string
	b       *broker.Broker
}

// newEmbedded returns a stopped broker for addr ("" picks a free port at first start).
func newEmbedded(t testing.TB, addr string) *embedded {
	t.Helper()
	e := &embedded{t: t, users: testUsers(t), dataDir: t.TempDir(), addr: addr}
	t.Cleanup(e.stop)
	return e
}

func startEmbedded(t testing.TB) *embedded {
	e := newEmbedded(t, "")
	e.start()
	return e
}

func (e *embedded) start() {
	e.t.Helper()
	addr := e.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	b, err := broker.New(broker.Config{Addr: addr, DataDir: e.dataDir, Users: e.users, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		e.t.Fatal(err)
	}
	e.b, e.addr = b, b.Addr()
}

func (e *embedded) stop() {
	if e.b != nil {
		e.b.Close()
		e.b = nil
	}
}

func (e *embedded) url() string { return "mqtt://" + e.addr }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// reservePort returns a free 127.0.0.1 address nobody listens on yet.
func reservePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newBus builds a bus closed at the end of the test, with fast reconnection.
func newBus(t testing.TB, cfg Config) *Bus {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = 600 * time.Millisecond
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func connect(t testing.TB, b *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := b.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

// pahoClient connects another MQTT client, with a persistent session unless clean.
func pahoClient(t testing.TB, url, user, id string, clean bool) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(wait)
	if user != "" {
		o.SetUsername(user).SetPassword(password)
	}
	c := paho.NewClient(o)
	await(t, c.Connect(), "connect "+id)
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func await(t testing.TB, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("%s: no answer within %v", what, wait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// recorder collects delivered messages.
type recorder chan bus.Message

func newRecorder() recorder { return make(recorder, 256) }

func (r recorder) handle(m bus.Message) {
	m.Payload = append([]byte(nil), m.Payload...)
	select {
	case r <- m:
	default: // a test that floods has failed already
	}
}

// expect waits for a message on topic with the given retained flag, skipping others.
func (r recorder) expect(t testing.TB, topic string, retained bool) bus.Message {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-r:
			if m.Topic == topic && m.Retained == retained {
				return m
			}
		case <-timer.C:
			t.Fatalf("no message on %s (retained %v) within %v", topic, retained, wait)
		}
	}
}

// pahoRecorder subscribes c to filter and records what arrives.
func pahoRecorder(t testing.TB, c paho.Client, filter string) recorder {
	r := newRecorder()
	await(t, c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		r.handle(bus.Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
	}), "subscribe "+filter)
	return r
}

// eventually polls cond until it holds, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		<-tick.C
	}
}

func encode(t testing.TB, p topics.Validator) []byte {
	t.Helper()
	b, err := topics.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buttonPayload(t testing.TB, seq uint64) []byte {
	return encode(t, topics.ButtonEvent{V: topics.Version, Press: topics.PressShort, Seq: seq, TS: time.Now().UTC()})
}

func ledPayload(t testing.TB, by string) []byte {
	return encode(t, topics.LEDCommand{Action: topics.LEDBlink, By: by}.WithDefaults())
}

func ledBy(t testing.TB, m bus.Message) string {
	t.Helper()
	var c topics.LEDCommand
	if err := json.Unmarshal(m.Payload, &c); err != nil {
		t.Fatalf("LED command %q: %v", m.Payload, err)
	}
	return c.By
}
