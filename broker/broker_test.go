package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// wait bounds every wait for something that should happen.
const wait = 5 * time.Second

// Test users. Every password is the same: what differs is the role.
const (
	password = "test-password-1"
	macA     = "b827eb000001" // agent in row r1
	macB     = "b827eb000002" // agent in row r2
)

func testUsers(t testing.TB) *auth.Users {
	t.Helper()
	users, err := auth.Open(t.TempDir() + "/users.json")
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, u := range []auth.User{
		{Name: "admin", Role: auth.RoleAdmin},
		{Name: "viewer", Role: auth.RoleViewer},
		{Name: "auto", Role: auth.RoleAutomation},
		userPlug,
		userPlugR2,
		userPlugR3,
		{Role: auth.RoleAgent, MAC: macA, Row: "r1"},
		{Role: auth.RoleAgent, MAC: macB, Row: "r2"},
	} {
		if err := users.Add(u, password); err != nil {
			t.Fatal(err)
		}
	}
	addRowlessPlug(t, users, userPlugNo.Name)
	return users
}

// addRowlessPlug writes a plug user without a row straight into the users file, as a pirack
// that did not bind plugs to rows stored it: Add refuses one now. Its password is password.
func addRowlessPlug(t testing.TB, users *auth.Users, name string) {
	t.Helper()
	u, ok := users.Get(userPlug.Name)
	if !ok {
		t.Fatal("no plug user to copy")
	}
	u.Name, u.Row = name, ""
	b, err := os.ReadFile(users.Path())
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		V     int         `json:"v"`
		Users []auth.User `json:"users"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	f.Users = append(f.Users, u)
	if b, err = json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users.Path(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := users.Get(name); !ok || got.Role != auth.RolePlug || got.Row != "" {
		t.Fatalf("rowless plug user not loaded: %+v, %v", got, ok)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newBroker builds a broker on 127.0.0.1:0. start=false leaves it to the test to Start.
func newBroker(t testing.TB, dataDir string, users *auth.Users, start bool, mods ...func(*Config)) *Broker {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: dataDir, Users: users, Logger: testLogger(t)}
	for _, m := range mods {
		m(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if start {
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// newBufferLogger logs to buf as well as to the test's output.
func newBufferLogger(t testing.TB, buf *testlog.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), buf), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startBroker(t *testing.T) *Broker {
	return newBroker(t, t.TempDir(), testUsers(t), true)
}

// client is a paho client that records what it receives and whether it lost its connection.
type client struct {
	paho.Client
	msgs chan paho.Message
	lost chan error
}

type clientOpt func(*paho.ClientOptions)

func withWill(topic string) clientOpt {
	return func(o *paho.ClientOptions) { o.SetWill(topic, "offline", 1, true) }
}

func withKeepAlive(d time.Duration) clientOpt {
	return func(o *paho.ClientOptions) { o.SetKeepAlive(d) }
}

func dial(t *testing.T, b *Broker, id, user, pass string, opts ...clientOpt) (*client, error) {
	t.Helper()
	c := &client{msgs: make(chan paho.Message, 100), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + b.Addr()).
		SetClientID(id).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect %s: no CONNACK within %v", id, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustDial(t *testing.T, b *Broker, id, user string, opts ...clientOpt) *client {
	t.Helper()
	c, err := dial(t, b, id, user, password, opts...)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", id, user, err)
	}
	return c
}

func (c *client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("subscribe %q: no SUBACK", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (c *client) publish(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("publish %q: not acknowledged within %v", topic, wait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// barrier returns once the broker has finished with everything c sent before, fan-out
// included: Mochi acknowledges a publish before delivering it, but handles a client's packets
// one at a time, so the SUBACK of a later SUBSCRIBE proves the earlier publish was delivered.
func (c *client) barrier(t *testing.T) {
	t.Helper()
	c.subscribe(t, "barrier")
}

// next returns the next message received, failing the test if none comes.
func (c *client) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case err := <-c.lost:
		t.Fatalf("connection lost while waiting for a message: %v", err)
	case <-time.After(wait):
		t.Fatal("no message received")
	}
	return nil
}

func (c *client) expectConnected(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.lost:
		t.Fatalf("client was disconnected: %v", err)
	default:
	}
	if !c.IsConnectionOpen() {
		t.Fatal("client connection is closed")
	}
}

func TestConnectRefused(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name       string
		id, user   string
		pass       string
		opts       []clientOpt
		wantErr    error
		wantAccept bool
	}{
		{name: "admin", id: "admin-1", user: "admin", pass: password, wantAccept: true},
		{name: "agent", id: macA, user: macA, pass: password, opts: []clientOpt{withWill(topics.StatusTopic("r1", macA))}, wantAccept: true},
		{name: "wrong password", id: "admin-2", user: "admin", pass: "wrong-password", wantErr: pahopackets.ErrorRefusedBadUsernameOrPassword},
		{name: "unknown user", id: "x", user: "mallory", pass: password, wantErr: pahopackets.ErrorRefusedBadUsernameOrPassword},
		{name: "no credentials", id: "anon", user: "", pass: "", wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "agent with another client id", id: "pi-1", user: macA, pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "agent with the other agent's client id", id: macB, user: macA, pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "agent with a foreign Will", id: macA, user: macA, pass: password, opts: []clientOpt{withWill(topics.StatusTopic("r2", macB))}, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "agent with a Will in another row", id: macA, user: macA, pass: password, opts: []clientOpt{withWill(topics.StatusTopic("r2", macA))}, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "agent with a Will on its metrics", id: macA, user: macA, pass: password, opts: []clientOpt{withWill(topics.MetricsTopic("r1", macA))}, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "viewer with a Will", id: "v1", user: "viewer", pass: password, opts: []clientOpt{withWill(topics.StatusTopic("r1", macA))}, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "viewer with an agent's client id", id: macA, user: "viewer", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "admin with an agent's client id", id: macB, user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "agent without a client id", id: "", user: macA, pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "client id with slash", id: "a/b", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "client id with plus", id: "a+b", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "client id with hash", id: "a#", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "inline client id", id: "inline", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedIDRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, b, tc.id, tc.user, tc.pass, tc.opts...)
			if tc.wantAccept {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Disconnect(0)
				return
			}
			if err == nil {
				t.Fatal("connection accepted")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("refused with %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// A client id held by one user's session cannot be taken over by another user.
func TestClientIDTakeoverByAnotherUser(t *testing.T) {
	b := startBroker(t)
	owner := mustDial(t, b, "node-red", "auto")
	if _, err := dial(t, b, "node-red", "viewer", password); !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
		t.Fatalf("viewer took client id node-red: %v", err)
	}
	owner.expectConnected(t)

	// A persistent session stays its user's while it is disconnected (commands may be queued
	// for it), and the same user may take it over.
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	held := mustDial(t, b, "flows", "auto", persistent)
	held.Disconnect(0)
	if _, err := dial(t, b, "flows", "admin", password, persistent); !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
		t.Fatalf("admin took the disconnected persistent session of flows: %v", err)
	}
	again := mustDial(t, b, "flows", "auto", persistent)
	// The same user taking over a live connection ends the old one.
	takeover := mustDial(t, b, "flows", "auto", persistent)
	select {
	case <-again.lost:
	case <-time.After(wait):
		t.Fatal("the taken-over connection is still open")
	}
	takeover.expectConnected(t)
}

// A raw client that sends CONNECT without credentials, then SUBSCRIBE, gets a refusal and the
// connection closed, and nothing else: no SUBACK, no retained message.
func TestNoCredentialsReceivesNothing(t *testing.T) {
	b := startBroker(t)
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.StatusTopic("r1", macA), Payload: []byte("online"), QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 4, 'a', 'n', 'o', 'n'}
	subscribe := []byte{0x82, 6, 0, 1, 0, 1, '#', 0}
	if _, err := conn.Write(append(connect, subscribe...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after a refused CONNECT; received % x", got)
	}
	refused := []byte{0x20, 2, 0, 5} // CONNACK, not authorized
	if !bytes.Equal(got, refused) {
		t.Fatalf("received % x, want only the refusal % x", got, refused)
	}
}

func TestAgentCannotPublishForOthers(t *testing.T) {
	b := startBroker(t)
	watcher := mustDial(t, b, "watcher", "admin")
	watcher.subscribe(t, "#")
	agent := mustDial(t, b, macA, macA, withWill(topics.StatusTopic("r1", macA)))

	for _, tc := range []struct {
		name  string
		topic string
		qos   byte
	}{
		{"other MAC metrics QoS1", topics.MetricsTopic("r2", macB), 1},
		{"other MAC status QoS1 retained", topics.StatusTopic("r2", macB), 1},
		{"other MAC button QoS0", topics.ButtonTopic("r2", macB), 0},
		{"own MAC in another row QoS1", topics.MetricsTopic("r2", macA), 1},
		{"an LED command QoS1", topics.LEDTopic(macB), 1},
		{"another row's power QoS1", topics.PowerTopic("r2"), 1}, // its own row's is allowed
		{"outside rack QoS2", "home/kitchen", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The refused publish is acknowledged (the token completes)...
			agent.publish(t, tc.topic, tc.qos, true, valid(tc.topic, "forged"))
			// ...the agent keeps its connection, and its next, allowed, publish is the first
			// thing the watcher sees: the refused one was dropped.
			own := valid(topics.MetricsTopic("r1", macA), "own")
			agent.publish(t, topics.MetricsTopic("r1", macA), 1, false, own)
			m := watcher.next(t)
			if m.Topic() != topics.MetricsTopic("r1", macA) || string(m.Payload()) != own {
				t.Fatalf("watcher received %s %q, want only the agent's own metrics", m.Topic(), m.Payload())
			}
			agent.expectConnected(t)
		})
	}

	// Nothing refused was retained either.
	// A retained message would be replayed on subscribe, before the marker published after.
	late := mustDial(t, b, "late", "admin")
	late.subscribe(t, "#")
	late.publish(t, "end/marker", 1, false, "end")
	if m := late.next(t); m.Topic() != "end/marker" {
		t.Fatalf("a refused publish was retained: %s %q", m.Topic(), m.Payload())
	}
}

func TestSubscribeACL(t *testing.T) {
	b := startBroker(t)
	const refused = 0x80
	for _, tc := range []struct {
		name, id, user, filter string
		granted                bool
	}{
		{"agent own LED", macA, macA, topics.LEDTopic(macA), true},
		{"agent everything", macA, macA, topics.AllFilter, false},
		{"agent other LED", macA, macA, topics.LEDTopic(macB), false},
		{"agent all LEDs", macA, macA, topics.LEDTopic("+"), false},
		{"agent SYS", macA, macA, "$SYS/#", false},
		{"viewer everything", "v", "viewer", topics.AllFilter, true},
		{"viewer hash", "v", "viewer", "#", false},
		{"viewer SYS", "v", "viewer", "$SYS/#", false},
		{"automation statuses", "a", "auto", topics.StatusTopic("+", "+"), true},
		{"automation SYS", "a", "auto", "$SYS/#", false},
		{"admin SYS", "root", "admin", "$SYS/#", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, b, tc.id, tc.user)
			defer c.Disconnect(0)
			code := c.subscribe(t, tc.filter)
			if granted := code != refused; granted != tc.granted {
				t.Errorf("SUBACK code %#x, want granted=%v", code, tc.granted)
			}
		})
	}
}

// Retained messages are replayed on subscribe; an agent must not get those of other Pis
// through a refused subscription.
func TestAgentReceivesOnlyItsLED(t *testing.T) {
	b := startBroker(t)
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.StatusTopic("r2", macB), Payload: []byte("online"), QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
	agent := mustDial(t, b, macA, macA)
	agent.subscribe(t, topics.AllFilter)
	agent.subscribe(t, topics.LEDTopic(macA))
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macB), Payload: []byte("blink"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macA), Payload: []byte("on"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := agent.next(t); m.Topic() != topics.LEDTopic(macA) || string(m.Payload()) != "on" {
		t.Fatalf("agent received %s %q first, want its own LED command", m.Topic(), m.Payload())
	}
}

func TestLEDCommands(t *testing.T) {
	b := startBroker(t)
	agent := mustDial(t, b, macA, macA)
	agent.subscribe(t, topics.LEDTopic(macA))

	for _, tc := range []struct {
		name, id, user string
		allowed        bool
	}{
		{"viewer", "v", "viewer", false},
		{"other agent", macB, macB, false},
		{"automation", "a", "auto", true},
		{"admin", "root", "admin", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := mustDial(t, b, tc.id, tc.user)
			defer sender.Disconnect(0)
			sender.publish(t, topics.LEDTopic(macA), 1, false, valid(topics.LEDTopic(macA), tc.name))
			sender.barrier(t)
			sender.expectConnected(t)
			// The dashboard's in-process publish is never blocked by the ACL; it marks the end.
			if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macA), Payload: []byte("marker"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			first := string(agent.next(t).Payload())
			if tc.allowed {
				if first != valid(topics.LEDTopic(macA), tc.name) {
					t.Fatalf("agent received %q, want the command from %s", first, tc.name)
				}
				first = string(agent.next(t).Payload())
			}
			if first != "marker" {
				t.Fatalf("agent received %q, want the marker (a refused command got through?)", first)
			}
		})
	}
}

// The dashboard's in-process subscription receives every message once: agents' publishes
// (not subject to the subscriber's ACL), in-process publishes, and Wills.
func TestInProcessSubscribe(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	got := make(chan string, 100)
	if err := b.Subscribe(topics.AllFilter, func(m bus.Message) {
		topic, payload := m.Topic, m.Payload
		got <- topic + " " + string(payload)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	expect := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("in-process subscriber got %q, want %q", s, want)
			}
		case <-time.After(wait):
			t.Fatalf("in-process subscriber received nothing, want %q", want)
		}
	}

	agent := mustDial(t, b, macA, macA)
	for _, qos := range []byte{0, 1, 2} {
		label := fmt.Sprintf("qos%d", qos)
		agent.publish(t, topics.ButtonTopic("r1", macA), qos, false, valid(topics.ButtonTopic("r1", macA), label))
		expect(topics.ButtonTopic("r1", macA) + " " + valid(topics.ButtonTopic("r1", macA), label))
	}
	// A refused publish reaches no one, in-process included.
	agent.publish(t, topics.ButtonTopic("r2", macB), 1, false, valid(topics.ButtonTopic("r2", macB), "forged"))
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macA), Payload: []byte("blink"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	expect(topics.LEDTopic(macA) + " blink")

	// A Will: a raw agent with a Will on its status drops its socket.
	conn := rawConnect(t, b.Addr(), connectPacket{id: macB, user: macB, pass: password, will: topics.StatusTopic("r2", macB), willPayload: "offline"})
	expectConnack(t, conn, 0)
	conn.Close()
	expect(topics.StatusTopic("r2", macB) + " offline")

	// Exactly once each: nothing else arrived (a second delivery through Mochi's inline
	// fan-out would be queued by now, since the marker went through the same path).
	if err := b.Publish(context.Background(), bus.Message{Topic: "rack/end", Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	expect("rack/end marker")
	select {
	case s := <-got:
		t.Fatalf("in-process subscriber got a second delivery: %q", s)
	default:
	}
}

// A QoS 1 publish is handed to the in-process subscriber before the broker acknowledges it:
// while the subscriber holds the message, the publisher's token does not complete.
func TestInProcessBeforePuback(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the broker's Close, which would wait for the handler
	if err := b.Subscribe(topics.ButtonTopic("+", "+"), func(bus.Message) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release // blocking here is what the contract forbids; it proves the ordering
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	agent := mustDial(t, b, macA, macA)
	tok := agent.Publish(topics.ButtonTopic("r1", macA), 1, false, valid(topics.ButtonTopic("r1", macA), "short"))
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("in-process subscriber never received the publish")
	}
	// With the subscriber holding the message, the PUBACK must not have been sent. Give it a
	// fair chance to arrive if it had been.
	select {
	case <-tok.Done():
		t.Fatal("the publisher was acknowledged before the in-process subscriber returned")
	case <-time.After(300 * time.Millisecond):
	}
	unblock()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish not acknowledged after the subscriber returned: %v", tok.Error())
	}
}

func TestSubscribeErrors(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	fn := func(bus.Message) {}
	for _, filter := range []string{"", "a/#/b", "$SYS/#", "$share/g/rack/#", "a#"} {
		if err := b.Subscribe(filter, fn); err == nil {
			t.Errorf("Subscribe(%q) succeeded", filter)
		}
	}
	if err := b.Subscribe("rack/#", nil); err == nil {
		t.Error("Subscribe with a nil handler succeeded")
	}
}

func TestRetainedSurviveRestart(t *testing.T) {
	dir, users := t.TempDir(), testUsers(t)
	b1 := newBroker(t, dir, users, true)
	agent := mustDial(t, b1, macA, macA)
	agent.publish(t, topics.StatusTopic("r1", macA), 1, true, "online")
	agent.Disconnect(0)
	if err := b1.Publish(context.Background(), bus.Message{Topic: topics.PowerTopic("r1"), Payload: []byte("5.1V"), Retained: true}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b2 := newBroker(t, dir, users, false)
	// Before Start: the inline subscriber gets the persisted retained messages at once.
	want := map[string]string{
		topics.StatusTopic("r1", macA): "online",
		topics.PowerTopic("r1"):        "5.1V",
	}
	got := map[string]string{}
	if err := b2.Subscribe(topics.AllFilter, func(m bus.Message) {
		topic, payload := m.Topic, m.Payload
		got[topic] = string(payload) // replayed synchronously, inside Subscribe
	}); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("inline subscriber after restart: %s = %q, want %q (got %v)", k, got[k], v, got)
		}
	}
	if err := b2.Start(); err != nil {
		t.Fatal(err)
	}
	viewer := mustDial(t, b2, "v", "viewer")
	viewer.subscribe(t, topics.StatusTopic("r1", macA))
	if m := viewer.next(t); string(m.Payload()) != "online" || !m.Retained() {
		t.Fatalf("viewer after restart got %q retained=%v, want retained online", m.Payload(), m.Retained())
	}
}

func TestConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.ConnectTimeout = timeout })

	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	n, err := conn.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a socket that sent nothing was still open after %v", wait)
	}
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
	}
	if d := time.Since(start); d < timeout*8/10 {
		t.Errorf("closed after %v, before the %v timeout", d, timeout)
	}

	// The deadline is for CONNECT only: a connected client outlives it.
	c := mustDial(t, b, "admin-1", "admin", withKeepAlive(30*time.Second))
	select {
	case err := <-c.lost:
		t.Fatalf("connected client was disconnected: %v", err)
	case <-time.After(3 * timeout):
	}
	c.subscribe(t, "x/y")
	c.publish(t, "x/y", 1, false, "still here")
	if m := c.next(t); string(m.Payload()) != "still here" {
		t.Fatalf("got %q", m.Payload())
	}
}

// Close does not wait for sockets that have not sent CONNECT.
func TestClosePendingSocket(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) { c.ConnectTimeout = time.Minute })
	accepted := make(chan struct{})
	b.afterAccept = func(net.Conn) { close(accepted) }
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-accepted:
	case <-time.After(wait):
		t.Fatal("socket not accepted")
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Close waited for a socket that never sent CONNECT")
	}
}

func TestMaxPacketSize(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.MaxPacketSize = 1024 })
	c := mustDial(t, b, "root", "admin")
	c.Publish("big", 0, false, strings.Repeat("x", 4096))
	select {
	case <-c.lost:
	case <-time.After(wait):
		t.Fatal("a packet over MaxPacketSize did not close the connection")
	}
}

func TestNewErrors(t *testing.T) {
	users := testUsers(t)
	if _, err := New(Config{Users: users}); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("New without DataDir: %v", err)
	}
	if _, err := New(Config{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "Users") {
		t.Errorf("New without Users: %v", err)
	}
	dir := t.TempDir()
	newBroker(t, dir, users, false)
	_, err := New(Config{DataDir: dir, Users: users, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "another pirack") {
		t.Errorf("second New on a data directory in use: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	b := startBroker(t)
	if err := b.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	other := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) { c.Addr = b.Addr() })
	if err := other.Start(); err == nil || !strings.Contains(err.Error(), b.Addr()) {
		t.Errorf("Start on a port in use: %v", err)
	}
	_ = b.Close()
	if err := b.Publish(context.Background(), bus.Message{Topic: "x"}); err == nil {
		t.Error("Publish after Close succeeded")
	}
}
