package nodered

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/noderedtest"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// waitLimit bounds every wait for an event; they normally take milliseconds.
const waitLimit = 15 * time.Second

// flowFile is the example flow users import, tested as committed but for the broker's address.
const flowFile = "../../docs/examples/node-red-pirack.json"

// The automation user docs/node-red.md has users create; its credentials reach Node-RED through
// these environment variables, as the doc suggests, so no password is written in a flow file.
const (
	automationUser = "nodered"
	userEnv        = "PIRACK_MQTT_USER"
	passwordEnv    = "PIRACK_MQTT_PASSWORD"
)

// Two Pis: the flow's inject node locates pi-r1-03; the other one's button is pressed.
var (
	located = piSpec{mac: "b827eb3f1a2c", row: "r1", hostname: "pi-r1-03"}
	pressed = piSpec{mac: "dca632a0b1c2", row: "r2", hostname: "pi-r2-05"}
)

type piSpec struct{ mac, row, hostname string }

// TestExampleFlow imports the example flow into Node-RED, connected as the automation user to
// a running control center with two Pis, and runs what the doc promises: a press blinks that
// Pi's LED back and notifies, the inject node locates pi-r1-03 by name (and only warns about a
// name no Pi has), and the press that ends that Locate is not blinked back. Node-RED starts
// once for all of it.
func TestExampleFlow(t *testing.T) {
	noderedtest.Find(t)
	flow := readFlow(t)
	password := auth.GeneratePassword()
	cc, users := startControlCenter(t, auth.User{Name: automationUser, Role: auth.RoleAutomation}, password)
	rec := record(t, cc.Bus())

	// The Pis come first, so their retained births are there when Node-RED subscribes.
	pis := map[string]*pi{}
	for _, s := range []piSpec{located, pressed} {
		pis[s.mac] = startPi(t, users, cc.Broker().Addr(), s)
	}
	for _, s := range []piSpec{located, pressed} {
		rec.awaitBirth(t, s.mac)
	}

	host, port, err := net.SplitHostPort(cc.Broker().Addr())
	if err != nil {
		t.Fatal(err)
	}
	flows, brokerID := flow.withBroker(t, host, port)
	began := time.Now()
	nr := noderedtest.Start(t, noderedtest.Options{
		Flows:       flows,
		Credentials: map[string]map[string]string{brokerID: {"user": "${" + userEnv + "}", "password": "${" + passwordEnv + "}"}},
		Env:         []string{userEnv + "=" + automationUser, passwordEnv + "=" + password},
	})
	t.Logf("Node-RED started its flows in %v", time.Since(began).Round(time.Millisecond))
	// "remember names" logs each Pi it learns from the retained statuses. The button
	// subscription comes before the status one in the flow, and MQTT.js sends a connection's
	// SUBSCRIBEs in that order, which the broker handles in order: once both names are
	// learned, presses reach the flow too.
	for _, s := range []piSpec{located, pressed} {
		line := s.hostname + " is " + s.mac + " in row " + s.row
		if !nr.WaitLog(line, waitLimit) {
			t.Fatalf("Node-RED did not log %q within %v: it did not connect as %s or read the statuses", line, waitLimit, automationUser)
		}
	}
	t.Logf("Node-RED knew both Pis %v after it started", time.Since(began).Round(time.Millisecond))

	if !t.Run("PressBlinksThatPiBack", func(t *testing.T) {
		p := pis[pressed.mac]
		on, stop := p.led.Watch()
		defer stop()
		at := time.Now()
		if !p.button.Press(topics.PressShort) {
			t.Fatal("the simulated button dropped the press")
		}
		cmd := rec.awaitCommand(t, pressed.mac)
		if cmd.Action != topics.LEDBlink || cmd.Count != 3 || cmd.PeriodMS != 300 || cmd.By != automationUser {
			t.Errorf("the flow blinked back with %+v, want a blink of 3 x 300 ms by %s", cmd, automationUser)
		}
		if cmd.ExpiresAt.IsZero() || !cmd.ExpiresAt.After(cmd.IssuedAt) {
			t.Errorf("the blink back has no expiry after its issue: %+v", cmd)
		}
		awaitOn(t, on, pressed.hostname)
		t.Logf("press to LED on: %v", time.Since(at).Round(time.Millisecond))
		// The blink ends by itself; a press before then would end it, reported as found.
		rec.awaitLEDStates(t, pressed.mac, topics.LEDStateBlinking, topics.LEDStateOff)
		note := pressed.hostname + " (" + pressed.mac + ", row " + pressed.row + "): short press"
		if !nr.WaitLog(note, waitLimit) {
			t.Errorf("the notify node did not log %q", note)
		}
	}) {
		return
	}

	if !t.Run("InjectLocatesAPiByName", func(t *testing.T) {
		p := pis[located.mac]
		on, stop := p.led.Watch()
		defer stop()
		inject := flow.nodeID(t, "inject", "locate "+located.hostname)
		// A name no Pi has is a warning and sends nothing: the next command is the next
		// inject's, for pi-r1-03.
		nr.InjectString(t, inject, "pi-nowhere")
		if warning := `no Pi named "pi-nowhere" has reported its status`; !nr.WaitLog(warning, waitLimit) {
			t.Errorf("locating an unknown name: Node-RED did not warn %q", warning)
		}
		nr.Inject(t, inject)
		cmd := rec.awaitCommand(t, located.mac)
		if cmd.Action != topics.LEDIdentify || cmd.TimeoutS != 30 || cmd.By != automationUser {
			t.Errorf("the flow located with %+v, want an identify of 30 s by %s", cmd, automationUser)
		}
		awaitOn(t, on, located.hostname)
	}) {
		return
	}

	t.Run("PressEndingALocateIsNotBlinkedBack", func(t *testing.T) {
		// pi-r1-03 is flashing its identify; its press reports found and stops it.
		if !pis[located.mac].button.Press(topics.PressShort) {
			t.Fatal("the simulated button dropped the press")
		}
		note := located.hostname + " (" + located.mac + ", row " + located.row + "): short press, found after a Locate"
		if !nr.WaitLog(note, waitLimit) {
			t.Fatalf("the notify node did not log %q", note)
		}
		// Presses reach the flow in order, one subscription on one connection, and Node-RED
		// passes messages on in order: a blink back of the found press would be published
		// before the blink back of this later press.
		if !pis[pressed.mac].button.Press(topics.PressShort) {
			t.Fatal("the simulated button dropped the press")
		}
		rec.awaitCommand(t, pressed.mac)
	})

	if st := cc.Broker().Stats(); st.PublishesInvalid != 0 || st.PublishesRefused != 0 {
		t.Errorf("the broker dropped publishes: %d breaking the contract, %d refused", st.PublishesInvalid, st.PublishesRefused)
	}
}

// flowNodes is the example flow, node by node.
type flowNodes []map[string]any

func readFlow(t *testing.T) flowNodes {
	t.Helper()
	b, err := os.ReadFile(flowFile)
	if err != nil {
		t.Fatal(err)
	}
	var f flowNodes
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s is not a Node-RED flow (a JSON array of nodes): %v", flowFile, err)
	}
	return f
}

// nodeID returns the id of the one node of that type and name.
func (f flowNodes) nodeID(t *testing.T, typ, name string) string {
	t.Helper()
	var ids []string
	for _, n := range f {
		if n["type"] == typ && n["name"] == name {
			id, _ := n["id"].(string)
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s has %d %s nodes named %q, want 1", flowFile, len(ids), typ, name)
	}
	return ids[0]
}

// withBroker returns the flow with its one mqtt-broker config node pointed at host:port, and
// that node's id, under which Node-RED keeps its credentials.
func (f flowNodes) withBroker(t *testing.T, host, port string) ([]byte, string) {
	t.Helper()
	id := f.nodeID(t, "mqtt-broker", "pirack")
	out := make(flowNodes, len(f))
	for i, n := range f {
		if n["id"] == id {
			c := map[string]any{}
			for k, v := range n {
				c[k] = v
			}
			c["broker"], c["port"] = host, port
			n = c
		}
		out[i] = n
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, id
}

// startControlCenter runs a control center as `pirack serve` does, on loopback ports, with
// the user u in its users file, and returns it with that file opened for more users.
func startControlCenter(t *testing.T, u auth.User, password string) (*controlcenter.ControlCenter, *auth.Users) {
	t.Helper()
	logs := testlog.NewWriter(t)
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(u, password); err != nil {
		t.Fatal(err)
	}
	cc, err := controlcenter.New(controlcenter.Config{
		DataDir:  dir,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MQTTAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start the control center: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control center stopped with: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("control center did not stop within %v", waitLimit)
		}
	})
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("control center stopped at start: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("control center not up within %v", waitLimit)
	}
	return cc, users
}

// pi is an agent with a simulated LED and button.
type pi struct {
	led    *sim.LED
	button *sim.Button
}

// startPi adds the Pi's agent user and runs its agent until the test ends.
func startPi(t *testing.T, users *auth.Users, brokerAddr string, s piSpec) *pi {
	t.Helper()
	password := auth.GeneratePassword()
	if err := users.Add(auth.User{Name: s.mac, Role: auth.RoleAgent, MAC: s.mac, Row: s.row}, password); err != nil {
		t.Fatal(err)
	}
	p := &pi{led: new(sim.LED), button: new(sim.Button)}
	logs := testlog.NewWriter(t)
	cfg := agent.Config{
		Broker:    "tcp://" + brokerAddr,
		MAC:       s.mac,
		Row:       s.row,
		Password:  password,
		Interval:  time.Second,
		KeepAlive: 2 * time.Second,
		Collector: agent.NewSimCollector(1, nil),
		LED:       p.led,
		Button:    p.button,
		Hostname:  s.hostname,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "agent", "mac", s.mac),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s: %v", s.mac, err)
			}
		case <-time.After(waitLimit):
			t.Errorf("agent %s did not stop within %v", s.mac, waitLimit)
		}
	})
	return p
}

// awaitOn waits for the LED to light.
func awaitOn(t *testing.T, changes <-chan bool, hostname string) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case lit := <-changes:
			if lit {
				return
			}
		case <-timeout:
			t.Fatalf("the LED of %s did not light within %v", hostname, waitLimit)
		}
	}
}

// recorder keeps what crosses the control center's bus that the test waits for: the Pis'
// births, their LED states and every LED command, in the order the broker delivered them.
type recorder struct {
	mu        sync.Mutex
	births    map[string]bool
	ledStates map[string][]string
	changed   chan struct{} // closed and replaced at each birth or LED state
	commands  chan bus.Message
}

func record(t *testing.T, b bus.Bus) *recorder {
	t.Helper()
	r := &recorder{
		births: map[string]bool{}, ledStates: map[string][]string{},
		changed: make(chan struct{}), commands: make(chan bus.Message, 64),
	}
	if err := b.Subscribe(topics.AllFilter, r.ingest); err != nil {
		t.Fatal(err)
	}
	return r
}

// ingest runs on the broker's goroutines: it never blocks.
func (r *recorder) ingest(m bus.Message) {
	tp, err := topics.Parse(m.Topic)
	if err != nil {
		return
	}
	switch tp.Kind {
	case topics.KindLED:
		select {
		case r.commands <- m:
		default: // the test fails on the commands it misses
		}
	case topics.KindStatus:
		if s, err := topics.DecodeStatus(m.Payload); err == nil && s.State == topics.StateOnline {
			r.update(func() { r.births[tp.MAC] = true })
		}
	case topics.KindLEDState:
		if s, err := topics.DecodeLEDState(m.Payload); err == nil {
			r.update(func() { r.ledStates[tp.MAC] = append(r.ledStates[tp.MAC], s.State) })
		}
	}
}

func (r *recorder) update(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
}

// await waits until cond, called under the lock, holds.
func (r *recorder) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
	}
}

func (r *recorder) awaitBirth(t *testing.T, mac string) {
	t.Helper()
	r.await(t, "Pi "+mac+" to come online", func() bool { return r.births[mac] })
}

// awaitLEDStates waits until the Pi has reported these LED states in this order, others
// between them allowed.
func (r *recorder) awaitLEDStates(t *testing.T, mac string, states ...string) {
	t.Helper()
	r.await(t, fmt.Sprintf("Pi %s to report its LED %v", mac, states), func() bool {
		i := 0
		for _, s := range r.ledStates[mac] {
			if i < len(states) && s == states[i] {
				i++
			}
		}
		return i == len(states)
	})
}

// awaitCommand returns the next LED command, which must be for mac and valid.
func (r *recorder) awaitCommand(t *testing.T, mac string) topics.LEDCommand {
	t.Helper()
	select {
	case m := <-r.commands:
		tp, _ := topics.Parse(m.Topic)
		if tp.MAC != mac {
			t.Fatalf("the next LED command went to %s (%s), want %s", tp.MAC, m.Payload, mac)
		}
		cmd, err := topics.ParseLEDCommand(m.Payload)
		if err != nil {
			t.Fatalf("the LED command %s: %v", m.Payload, err)
		}
		return cmd
	case <-time.After(waitLimit):
		t.Fatalf("no LED command for %s within %v", mac, waitLimit)
		return topics.LEDCommand{}
	}
}
