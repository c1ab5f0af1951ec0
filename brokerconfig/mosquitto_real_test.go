package brokerconfig_test

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/brokerconfig"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/topics"
)

// wait bounds every wait on the broker.
const wait = 10 * time.Second

const (
	macA = "b827eb00000a" // agent in row r1
	macB = "b827eb00000b" // agent in row r2
	macC = "b827eb00000c" // another agent in row r1
)

// rack is a real Mosquitto running the files generated from a users store, and each user's
// password.
type rack struct {
	broker *mosquittotest.Broker
	pw     map[string]string
}

// startRack makes users of every role, generates the Mosquitto files from them and starts
// Mosquitto with those files. "legacy" is a viewer made before pirack stored Mosquitto hashes.
func startRack(t *testing.T) *rack {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost // DefaultMosquittoIterations, as in production: Mosquitto must read it
	r := &rack{pw: map[string]string{}}
	for _, u := range []auth.User{
		{Name: "root", Role: auth.RoleAdmin},
		{Name: "viewer", Role: auth.RoleViewer},
		{Name: "auto", Role: auth.RoleAutomation},
		{Role: auth.RoleAgent, MAC: macA, Row: "r1"},
		{Role: auth.RoleAgent, MAC: macB, Row: "r2"},
		{Role: auth.RoleAgent, MAC: macC, Row: "r1"},
		{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"},
		{Name: "plug-r2", Role: auth.RolePlug, Row: "r2"},
		{Name: "legacy", Role: auth.RoleViewer},
	} {
		name := u.Name
		if name == "" {
			name = u.MAC
		}
		r.pw[name] = "pw-" + name + "-secret"
		if err := users.Add(u, r.pw[name]); err != nil {
			t.Fatal(err)
		}
	}
	list := users.List()
	for i := range list {
		if list[i].Name == "legacy" {
			list[i].MosquittoHash = "" // as stored by an earlier pirack
		}
	}
	plugs, err := powerbridge.ParseFile([]byte(`{"plugs":[
		{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"},
		{"row":"r2","type":"tasmota","topic":"tele/rack-r2/SENSOR"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := brokerconfig.GenerateMosquitto(list, plugs.PlugTopics())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.NoHash) != 1 || m.NoHash[0] != "legacy" {
		t.Fatalf("NoHash = %v, want [legacy]", m.NoHash)
	}
	out := t.TempDir()
	if err := brokerconfig.WriteMosquitto(out, m); err != nil {
		t.Fatal(err)
	}
	r.broker = mosquittotest.Start(t, mosquittotest.Options{
		PasswordFile: filepath.Join(out, brokerconfig.PasswdFileName),
		ACLFile:      filepath.Join(out, brokerconfig.ACLFileName),
		Debug:        true, // denied publishes are logged at debug level
	})
	return r
}

// dial connects as user with client id id and returns the client or the CONNECT error.
func (r *rack) dial(t *testing.T, user, password, id string) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID(id).
		SetUsername(user).SetPassword(password).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(wait)) // handlers in order: tests rely on it
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// connect connects as user with its own password; an agent's client id is its MAC.
func (r *rack) connect(t *testing.T, user string) paho.Client {
	t.Helper()
	id := user + "-test"
	if topics.IsMAC(user) {
		id = user
	}
	c, err := r.dial(t, user, r.pw[user], id)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return c
}

// subscribe subscribes c to filter at QoS 1 and returns the SUBACK code and the messages.
func subscribe(t *testing.T, c paho.Client, filter string) (byte, chan paho.Message) {
	t.Helper()
	ch := make(chan paho.Message, 64)
	return subscribeTo(t, c, filter, ch), ch
}

// subscribeTo subscribes c to filter, sending its messages to ch (never full in these tests),
// and returns the SUBACK code.
func subscribeTo(t *testing.T, c paho.Client, filter string, ch chan paho.Message) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// publish publishes at QoS 1 and waits for the PUBACK, which Mosquitto sends for refused
// publishes too.
func publish(t *testing.T, c paho.Client, topic, payload string, retained bool) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the next message on ch, failing the test after wait.
func next(t *testing.T, ch <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return nil
	}
}

// expectFirst asserts that the next message on ch is topic with payload: a refused message sent
// before it on an ordered path (the same connection, or a PUBACK awaited before the allowed
// publish) would have reached the subscriber first, since Mosquitto handles packets one at a time
// and queues a subscriber's messages in order.
func expectFirst(t *testing.T, ch <-chan paho.Message, topic, payload string) {
	t.Helper()
	m := next(t, ch)
	if m.Topic() != topic || string(m.Payload()) != payload {
		t.Fatalf("subscriber got %s %q first, want only the allowed %s %q", m.Topic(), m.Payload(), topic, payload)
	}
}

// watch connects the admin and subscribes it to every topic, pirack's and the plugs'.
func (r *rack) watch(t *testing.T) <-chan paho.Message {
	t.Helper()
	_, ch := subscribe(t, r.connect(t, "root"), "#")
	return ch
}

func TestAgentPublishesOnlyItsOwnTopics(t *testing.T) {
	r := startRack(t)
	all := r.watch(t)
	a := r.connect(t, macA)
	for _, tc := range []struct{ name, refused, allowed string }{
		{"another Pi of its row", topics.StatusTopic("r1", macC), topics.StatusTopic("r1", macA)},
		{"another Pi of another row", topics.MetricsTopic("r2", macB), topics.MetricsTopic("r1", macA)},
		{"its MAC in another row", topics.StatusTopic("r2", macA), topics.ButtonTopic("r1", macA)},
		{"another row's power", topics.PowerTopic("r2"), topics.PowerTopic("r1")},
		{"an alert about itself", topics.AlertTopic("r1", macA, "temp_high"), topics.LEDStateTopic("r1", macA)},
		{"an LED command", topics.LEDTopic(macC), topics.StatusTopic("r1", macA)},
		{"a plug's topic", "tele/rack-r1/SENSOR", topics.MetricsTopic("r1", macA)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, a, tc.refused, "forged", false) // PUBACKed and dropped
			publish(t, a, tc.allowed, "own", false)
			expectFirst(t, all, tc.allowed, "own")
		})
	}
}

func TestAgentReceivesOnlyItsOwnLEDCommands(t *testing.T) {
	r := startRack(t)
	a := r.connect(t, macA)
	// Mosquitto 2.0 grants any subscription and checks read access per message delivered.
	_, led := subscribe(t, a, topics.AllFilter)
	auto := r.connect(t, "auto")
	publish(t, auto, topics.LEDTopic(macB), "blink", false)
	publish(t, auto, topics.StatusTopic("r1", macC), "forged", false) // refused: not an LED command
	publish(t, auto, topics.LEDTopic(macA), "identify", false)
	expectFirst(t, led, topics.LEDTopic(macA), "identify")

	// Another Pi's status, published by its own agent, is not delivered to agent A either.
	publish(t, r.connect(t, macC), topics.StatusTopic("r1", macC), "online", false)
	publish(t, auto, topics.LEDTopic(macA), "off", false)
	expectFirst(t, led, topics.LEDTopic(macA), "off")
}

func TestViewerCannotSendLEDCommands(t *testing.T) {
	r := startRack(t)
	_, led := subscribe(t, r.connect(t, macA), topics.LEDTopic(macA))
	v := r.connect(t, "viewer")
	_, seen := subscribe(t, v, topics.AllFilter)
	publish(t, v, topics.LEDTopic(macA), "blink", false) // refused: PUBACKed, silently dropped
	publish(t, r.connect(t, "auto"), topics.LEDTopic(macA), "identify", false)
	expectFirst(t, led, topics.LEDTopic(macA), "identify")
	expectFirst(t, seen, topics.LEDTopic(macA), "identify") // the viewer reads rack/#
}

func TestPlugPublishesOnlyItsRowsPlugTopics(t *testing.T) {
	r := startRack(t)
	all := r.watch(t)
	p := r.connect(t, "plug-r1")
	for _, refused := range []string{"tele/rack-r2/SENSOR", topics.PowerTopic("r1"), topics.StatusTopic("r1", macA), "other/topic"} {
		publish(t, p, refused, "forged", false)
	}
	publish(t, p, "tele/rack-r1/SENSOR", "reading", false)
	publish(t, p, "tele/rack-r1/STATE", "state", false) // the whole device folder
	expectFirst(t, all, "tele/rack-r1/SENSOR", "reading")
	expectFirst(t, all, "tele/rack-r1/STATE", "state")

	// A plug reads nothing: the subscription is granted, nothing is delivered.
	_, in := subscribe(t, p, "#")
	publish(t, r.connect(t, "auto"), topics.LEDTopic(macA), "blink", false)
	publish(t, p, "tele/rack-r1/SENSOR", "again", false)
	expectFirst(t, all, topics.LEDTopic(macA), "blink")
	expectFirst(t, all, "tele/rack-r1/SENSOR", "again")
	select {
	case m := <-in:
		t.Fatalf("plug received %s", m.Topic())
	default:
	}
}

func TestAdminReadsSysAndOthersDoNot(t *testing.T) {
	r := startRack(t)
	_, sys := subscribe(t, r.connect(t, "root"), "$SYS/broker/version") // retained by Mosquitto
	if m := next(t, sys); !strings.HasPrefix(string(m.Payload()), "mosquitto version") {
		t.Fatalf("admin got %s %q", m.Topic(), m.Payload())
	}
	publish(t, r.connect(t, "root"), topics.PowerTopic("r1"), "marker", true)
	for _, user := range []string{"viewer", "auto", macA} {
		c := r.connect(t, user)
		// Mosquitto grants the subscription (SUBACK 1) and withholds the retained message; a
		// retained message it would deliver comes at once, before the next SUBSCRIBE's.
		_, ch := subscribe(t, c, "$SYS/#")
		subscribeTo(t, c, topics.AllFilter, ch)
		if user == macA {
			publish(t, r.connect(t, "auto"), topics.LEDTopic(macA), "marker", false)
			expectFirst(t, ch, topics.LEDTopic(macA), "marker")
			continue
		}
		expectFirst(t, ch, topics.PowerTopic("r1"), "marker")
	}
}

func TestAutomationSendsLEDCommands(t *testing.T) {
	r := startRack(t)
	all := r.watch(t)
	auto := r.connect(t, "auto")
	publish(t, auto, topics.MetricsTopic("r1", macA), "forged", false)
	publish(t, auto, topics.LEDTopic(macB), "blink", false)
	expectFirst(t, all, topics.LEDTopic(macB), "blink")
}

func TestLogin(t *testing.T) {
	r := startRack(t)
	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "viewer", "pw-viewer-wrong"},
		{"agent with another's password", macA, "pw-" + macB + "-secret"},
		{"user without a Mosquitto hash", "legacy", "pw-legacy-secret"},
		{"unknown user", "nobody", "pw-nobody-secret"},
		{"no password", "viewer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.dial(t, tc.user, tc.password, "login-test"); err == nil {
				t.Fatal("connection accepted")
			}
		})
	}
	if _, err := r.dial(t, "viewer", r.pw["viewer"], "login-test"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
}

// rawConnect connects as agent A over a raw socket with a Will on will and returns the socket.
func rawConnect(t *testing.T, r *rack, id, will string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.broker.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.Keepalive, cp.CleanSession = "MQTT", 4, 30, true
	cp.ClientIdentifier = id
	cp.UsernameFlag, cp.Username = true, macA
	cp.PasswordFlag, cp.Password = true, []byte(r.pw[macA])
	cp.WillFlag, cp.WillTopic, cp.WillMessage, cp.WillQos = true, will, []byte("offline"), 1
	if err := cp.Write(conn); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(wait))
	pk, err := packets.ReadPacket(conn)
	if err != nil {
		t.Fatal(err)
	}
	if ack, ok := pk.(*packets.ConnackPacket); !ok || ack.ReturnCode != packets.Accepted {
		t.Fatalf("CONNACK %v, want accepted", pk)
	}
	return conn
}

// Mosquitto 2.0.11 accepts a CONNECT whose Will topic the user may not write (pirack's broker
// refuses it), and checks the Will against the ACL when it would publish it: a Will on another
// Pi's status is dropped, a Will on the agent's own status is delivered.
func TestAgentWillOnAnotherPisStatusIsDropped(t *testing.T) {
	r := startRack(t)
	all := r.watch(t)
	marker := r.connect(t, "auto")
	for i, tc := range []struct {
		will      string
		delivered bool
	}{
		{topics.StatusTopic("r1", macC), false},
		{topics.StatusTopic("r2", macA), false},
		{topics.StatusTopic("r1", macA), true}, // the control: this method does see a Will
	} {
		id := "will-" + string(rune('a'+i))
		conn := rawConnect(t, r, id, tc.will)
		conn.Close() // no DISCONNECT: the Will is due
		if !r.broker.WaitLog("Client "+id+" closed its connection", wait) {
			t.Fatalf("Mosquitto did not see %s close within %v", id, wait)
		}
		// Mosquitto has finished with the closed connection before it reads this publish.
		publish(t, marker, topics.LEDTopic(macA), id, false)
		if tc.delivered {
			expectFirst(t, all, tc.will, "offline")
		}
		expectFirst(t, all, topics.LEDTopic(macA), id)
	}
}

// Mosquitto cannot bind client ids to users: any user may connect with an agent's client id
// (its MAC), and Mosquitto then closes the agent's connection (pirack's broker refuses the
// newcomer). The ACL still binds what the newcomer may do to its own user.
func TestClientIDNotBoundToUser(t *testing.T) {
	r := startRack(t)
	lost := make(chan error, 1)
	a := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID(macA).
		SetUsername(macA).SetPassword(r.pw[macA]).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(wait).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	if tok := a.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	defer a.Disconnect(0)
	v, err := r.dial(t, "viewer", r.pw["viewer"], macA)
	if err != nil {
		t.Fatalf("viewer with the agent's client id refused (%v): Mosquitto now binds client ids; update docs/security.md", err)
	}
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("agent still connected after a viewer took its client id")
	}
	// The viewer holding the agent's client id has the viewer's rights, not the agent's.
	all := r.watch(t)
	publish(t, v, topics.StatusTopic("r1", macA), "forged", false)
	publish(t, r.connect(t, "auto"), topics.LEDTopic(macA), "marker", false)
	expectFirst(t, all, topics.LEDTopic(macA), "marker")
}
