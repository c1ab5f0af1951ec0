package powerbridge_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/topics"
)

const (
	wait     = 10 * time.Second
	password = "test-password-1"
)

// rig is a control center's broker with the bridge wired as `pirack serve` wires it: the
// broker lets each plug user publish to its own row's plug topics in the file, and the bridge
// subscribes before the broker listens. The file (testdata/config/example.json) has plugs for
// rows r1 (Tasmota), r2 (Shelly Gen2) and r3 (Shelly Gen1); there is a plug user for each,
// plug-r1 to plug-r3.
type rig struct {
	broker *broker.Broker
	bridge *powerbridge.Bridge
}

func newRig(t *testing.T) *rig {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, u := range []auth.User{
		{Name: "viewer", Role: auth.RoleViewer},
		{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"},
		{Name: "plug-r2", Role: auth.RolePlug, Row: "r2"},
		{Name: "plug-r3", Role: auth.RolePlug, Row: "r3"},
	} {
		if err := users.Add(u, password); err != nil {
			t.Fatal(err)
		}
	}
	file, err := powerbridge.LoadFile(filepath.Join("testdata", "config", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Users: users, PlugTopics: file.PlugTopics(),
		Logger: log.With("component", "broker")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bridge, err := powerbridge.New(powerbridge.Config{Bus: b, File: file, Logger: log.With("component", "powerbridge")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bridge.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done }) // before the broker closes
	return &rig{broker: b, bridge: bridge}
}

// client is a paho client that collects what it receives.
type client struct {
	paho.Client
	msgs chan paho.Message
	lost chan error
}

func dial(t *testing.T, addr, id, user string, opts ...func(*paho.ClientOptions)) *client {
	t.Helper()
	c := &client{msgs: make(chan paho.Message, 100), lost: make(chan error, 1)}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s as %s: %v", id, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// subscribe returns the SUBACK's code for filter (0x80: refused).
func (c *client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// publish publishes with QoS 1: once acknowledged, the broker has handed the message to the
// bridge, which has taken it in (or counted it malformed).
func (c *client) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %q: %v", topic, tok.Error())
	}
}

// nextPower returns the next row power message received.
func (c *client) nextPower(t *testing.T) (string, topics.Power, paho.Message) {
	t.Helper()
	select {
	case m := <-c.msgs:
		p, err := topics.DecodePower(m.Payload())
		if err != nil {
			t.Fatalf("%s: %v", m.Topic(), err)
		}
		return m.Topic(), p, m
	case err := <-c.lost:
		t.Fatalf("connection lost: %v", err)
	case <-time.After(wait):
		t.Fatal("no row power received")
	}
	return "", topics.Power{}, nil
}

func expectPower(t *testing.T, c *client, row string, watts float64, source string, after time.Time) {
	t.Helper()
	topic, p, _ := c.nextPower(t)
	if topic != topics.PowerTopic(row) || p.Watts == nil || *p.Watts != watts || p.Source != source {
		t.Fatalf("received %s %+v, want %s with %v W from %s", topic, p, topics.PowerTopic(row), watts, source)
	}
	if p.Volts != nil || p.Amps != nil {
		t.Errorf("%s: mains volts or amps republished as the row's: %+v", topic, p)
	}
	if p.TS.Before(after.Add(-time.Second)) || p.TS.After(time.Now().Add(time.Second)) {
		t.Errorf("%s: TS %v, want the control center's clock (%v to now)", topic, p.TS, after)
	}
}

func payload(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Plugs logged in as their rows' plug users publish their own topics over TCP; a viewer of
// rack/+/power receives each row's reading under the contract, and a late subscriber the
// retained ones. A plug cannot publish under rack/, and a malformed plug message publishes
// nothing.
func TestPlugsOverTCP(t *testing.T) {
	r := newRig(t)
	start := time.Now()
	viewer := dial(t, r.broker.Addr(), "grafana", "viewer")
	viewer.subscribe(t, topics.PowerTopic("+"))

	// As a Tasmota connects: its Will on tele/<topic>/LWT, and a subscription to its commands,
	// which is refused without ending the connection.
	plug := dial(t, r.broker.Addr(), "DVES_3F1A2C", "plug-r1", func(o *paho.ClientOptions) {
		o.SetWill("tele/rack-r1/LWT", "Offline", 1, true)
	})
	if code := plug.subscribe(t, "cmnd/rack-r1/#"); code != 0x80 {
		t.Errorf("a plug's subscription to its commands: SUBACK code %#x, want 0x80 (refused)", code)
	}

	// A plug forging row power directly is acknowledged and dropped: the first row power the
	// viewer receives is the bridge's, from the plug's own topic.
	plug.publish(t, topics.PowerTopic("r1"), []byte(`{"v":1,"ts":"2025-01-01T00:00:00Z","watts":999,"source":"forged"}`))
	plug.publish(t, "tele/rack-r1/SENSOR", payload(t, "tasmota", "pow-r2.json"))
	expectPower(t, viewer, "r1", 17, "tasmota", start)

	shellyR2 := dial(t, r.broker.Addr(), "shellyplusplugs-a8032ab1", "plug-r2", func(o *paho.ClientOptions) {
		o.SetWill("shellyplusplugs-a8032ab1/online", "false", 1, true)
	})
	shellyR2.publish(t, "shellyplusplugs-a8032ab1/status/switch:0", payload(t, "shelly-gen2", "plus-plug-s.json"))
	expectPower(t, viewer, "r2", 16.9, "shelly", start)

	shellyR3 := dial(t, r.broker.Addr(), "shellyplug-s-7AB3C1", "plug-r3", func(o *paho.ClientOptions) {
		o.SetWill("shellies/shellyplug-s-7AB3C1/online", "false", 1, true)
	})
	shellyR3.publish(t, "shellies/shellyplug-s-7AB3C1/relay/0/power", []byte("42.5"))
	expectPower(t, viewer, "r3", 42.5, "shelly", start)

	// A malformed SENSOR is counted and publishes nothing: the next row power is r2's, from a
	// later notification (had r1 been republished, it would come first: it was due earlier).
	plug.publish(t, "tele/rack-r1/SENSOR", []byte(`{"ENERGY":{"Power":"seventeen"}}`))
	if s := r.bridge.Stats(); s.Malformed != 1 || s.Published != 3 {
		t.Fatalf("after a malformed message: stats %+v, want 1 malformed and 3 published", s)
	}
	shellyR2.publish(t, "shellyplusplugs-a8032ab1/events/rpc", payload(t, "shelly-gen2", "rpc-notify-partial.json"))
	expectPower(t, viewer, "r2", 18.2, "shelly", start)

	for _, c := range []*client{plug, shellyR2, shellyR3} {
		select {
		case err := <-c.lost:
			t.Fatalf("a plug was disconnected: %v", err)
		default:
		}
	}

	// A late subscriber gets each row's last reading, retained.
	late := dial(t, r.broker.Addr(), "late", "viewer")
	late.subscribe(t, topics.PowerTopic("+"))
	got := map[string]float64{}
	for range 3 {
		topic, p, m := late.nextPower(t)
		if !m.Retained() {
			t.Errorf("%s reached the late subscriber without the retained flag", topic)
		}
		got[topic] = *p.Watts
	}
	want := map[string]float64{topics.PowerTopic("r1"): 17, topics.PowerTopic("r2"): 18.2, topics.PowerTopic("r3"): 42.5}
	for topic, w := range want {
		if got[topic] != w {
			t.Errorf("late subscriber: %s = %v W, want %v (all: %v)", topic, got[topic], w, got)
		}
	}
}

// A plug of one row cannot report another row's power: row r2's plug user publishing on row
// r1's Tasmota topic is acknowledged and dropped, so the bridge never takes the reading in and
// the first power r1 gets is its own plug's. Nor may it leave its Will in r1's plug folder.
func TestPlugOfAnotherRowRefused(t *testing.T) {
	r := newRig(t)
	start := time.Now()
	viewer := dial(t, r.broker.Addr(), "grafana", "viewer")
	viewer.subscribe(t, topics.PowerTopic("+"))

	intruder := dial(t, r.broker.Addr(), "shellyplusplugs-a8032ab1", "plug-r2")
	intruder.publish(t, "tele/rack-r1/SENSOR", []byte(`{"ENERGY":{"Power":999}}`))
	// The broker hands an allowed publish to the bridge before acknowledging it: by now a
	// reading that got through would have been counted.
	if s := r.bridge.Stats(); s.Received != 0 {
		t.Fatalf("row r2's plug user published on row r1's plug topic: bridge stats %+v, want nothing received", s)
	}
	// Its own topic still works: the refusal did not cost it its connection.
	intruder.publish(t, "shellyplusplugs-a8032ab1/status/switch:0", payload(t, "shelly-gen2", "plus-plug-s.json"))
	expectPower(t, viewer, "r2", 16.9, "shelly", start)

	plug := dial(t, r.broker.Addr(), "DVES_3F1A2C", "plug-r1")
	plug.publish(t, "tele/rack-r1/SENSOR", payload(t, "tasmota", "pow-r2.json"))
	expectPower(t, viewer, "r1", 17, "tasmota", start) // 17 W, never the intruder's 999

	if err := connectErr(t, r.broker.Addr(), "sneaky", "plug-r2", "tele/rack-r1/LWT"); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("row r2's plug user with a Will in row r1's plug folder: %v, want refused as not authorised", err)
	}
}

// A plug user may not leave its Will under rack/: the connection is refused.
func TestPlugWillUnderRackRefused(t *testing.T) {
	r := newRig(t)
	if err := connectErr(t, r.broker.Addr(), "sneaky", "plug-r1", topics.PowerTopic("r1")); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("a plug with a Will on row power: %v, want refused as not authorised", err)
	}
}

// connectErr connects as user with a Will on willTopic and returns the CONNECT's error,
// disconnecting if it was accepted.
func connectErr(t *testing.T, addr, id, user, willTopic string) error {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://"+addr).SetClientID(id).SetUsername(user).
		SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait).
		SetWill(willTopic, "Offline", 1, true)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("no CONNACK")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return tok.Error()
}

// Interoperability: mosquitto_pub, as a Tasmota-like client with its Will, publishing QoS 0
// as Tasmota does.
func TestMosquittoPubAsPlug(t *testing.T) {
	pub, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	r := newRig(t)
	start := time.Now()
	viewer := dial(t, r.broker.Addr(), "grafana", "viewer")
	viewer.subscribe(t, topics.PowerTopic("+"))
	host, port, err := net.SplitHostPort(r.broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pub, "-h", host, "-p", port, "-V", "mqttv311", "-i", "tasmota-rack-r1",
		"-u", "plug-r1", "-P", password, "--will-topic", "tele/rack-r1/LWT", "--will-payload", "Offline", "--will-retain",
		"-q", "0", "-t", "tele/rack-r1/SENSOR", "-f", filepath.Join("testdata", "tasmota", "us-plug.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	expectPower(t, viewer, "r1", 18.4, "tasmota", start)
}
