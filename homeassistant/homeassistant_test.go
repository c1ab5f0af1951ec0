package homeassistant_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/homeassistant"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// wait bounds every wait; a scan runs every homeassistant.DefaultScanEvery.
const wait = 15 * time.Second

const (
	mac      = "b827eb3f1a2c"
	row      = "r1"
	password = "test-password-1"
)

// rig is a control center with Home Assistant discovery on, its embedded broker on loopback,
// and a Home Assistant client connected with Home Assistant's default options.
type rig struct {
	cc   *controlcenter.ControlCenter
	ha   paho.Client
	msgs chan paho.Message // what Home Assistant receives under homeassistant/#
}

func startRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, u := range []auth.User{
		{Name: "admin", Role: auth.RoleAdmin},
		{Name: "homeassistant", Role: auth.RoleHomeAssistant},
		{Role: auth.RoleAgent, MAC: mac, Row: row},
	} {
		if err := users.Add(u, password); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := controlcenter.New(controlcenter.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		HomeAssistant: true, Logger: slog.New(slog.NewTextHandler(testlog.NewWriter(t), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	}

	r := &rig{cc: cc, msgs: make(chan paho.Message, 256)}
	// Home Assistant's defaults: a generated 22-character client id, MQTT 3.1.1, clean
	// session, a Will "offline" on homeassistant/status, discovery on homeassistant/# at QoS 0.
	r.ha = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://"+cc.MQTTAddr()).SetClientID("4PLc2vQm9ZtK1rYbXw7sJd").
		SetUsername("homeassistant").SetPassword(password).SetProtocolVersion(4).SetCleanSession(true).
		SetWill(topics.HAStatusTopic, topics.HAOffline, 0, false).SetAutoReconnect(false).SetConnectTimeout(wait))
	if tok := r.ha.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("Home Assistant's connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.ha.Disconnect(0) })
	if tok := r.ha.Subscribe(topics.HAFilter, 0, func(_ paho.Client, m paho.Message) { r.msgs <- m }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topics.HAFilter, tok.Error())
	}
	return r
}

// agent connects the Pi's agent and publishes its birth and one metrics message, retained. It
// leaves no Will, so that a test decides when the Pi goes offline.
func (r *rig) agent(t *testing.T) paho.Client {
	t.Helper()
	a := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.cc.MQTTAddr()).SetClientID(mac).
		SetUsername(mac).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := a.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	t.Cleanup(func() { a.Disconnect(0) })
	now := time.Now().UTC()
	temp, load, total, avail := 48.5, 0.25, uint64(4<<30), uint64(3<<30)
	pub := func(topic string, p topics.Validator) {
		b, err := topics.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if tok := a.Publish(topic, 1, true, b); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub(topics.StatusTopic(row, mac), topics.Status{V: topics.Version, State: topics.StateOnline, TS: now, Session: "s1",
		Hostname: "pi-a", Model: "Raspberry Pi 4 Model B Rev 1.4", Serial: "10000000abcdef01", AgentVersion: "1.4.0"})
	pub(topics.MetricsTopic(row, mac), topics.Metrics{V: topics.Version, Seq: 1, TS: now, CPUTempC: &temp,
		Load1: &load, Load5: &load, Load15: &load, MemTotalBytes: &total, MemAvailableBytes: &avail, ThrottledNow: []string{}})
	return a
}

// announced is a Pi's discovery config as Home Assistant receives it.
type announced struct {
	raw    []byte
	Device struct {
		Name          string      `json:"name"`
		Connections   [][2]string `json:"connections"`
		SWVersion     string      `json:"sw_version"`
		SerialNumber  string      `json:"serial_number"`
		SuggestedArea string      `json:"suggested_area"`
		ViaDevice     string      `json:"via_device"`
	} `json:"device"`
	Components map[string]struct {
		Platform   string `json:"platform"`
		StateTopic string `json:"state_topic"`
	} `json:"components"`
}

// next returns the next message on topic that satisfies ok (any, when ok is nil), skipping
// others.
func (r *rig) next(t *testing.T, topic string, ok func(announced) bool) announced {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-r.msgs:
			if m.Topic() != topic {
				continue
			}
			var a announced
			a.raw = m.Payload()
			if len(a.raw) > 0 {
				if err := json.Unmarshal(a.raw, &a); err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
			}
			if ok == nil || ok(a) {
				return a
			}
		case <-deadline:
			t.Fatalf("no such message on %s within %v", topic, wait)
		}
	}
}

func (r *rig) drain() {
	for {
		select {
		case <-r.msgs:
		default:
			return
		}
	}
}

var config = topics.HADeviceConfigTopic(homeassistant.PiDeviceID(mac))

// A Pi that comes online is announced as one device with what it reports; Home Assistant's
// birth announces everything again; a slot's new name renames the device.
func TestAnnounceReannounceRename(t *testing.T) {
	r := startRig(t)
	r.next(t, topics.HADeviceConfigTopic(controlcenter.DefaultClientID), nil) // the control center, at start
	r.agent(t)
	a := r.next(t, config, func(a announced) bool { _, ok := a.Components["cpu_temp"]; return ok })
	d := a.Device
	if d.Name != "pi-a" || d.SWVersion != "1.4.0" || d.SerialNumber != "10000000abcdef01" || d.SuggestedArea != row ||
		d.ViaDevice != controlcenter.DefaultClientID || len(d.Connections) != 1 || d.Connections[0] != [2]string{"mac", topics.DisplayMAC(mac)} {
		t.Errorf("device %+v", d)
	}
	for _, k := range []string{"load_1", "memory_used", "throttled", "under_voltage", "locate", "press_short", "press_long", "press_double"} {
		if _, ok := a.Components[k]; !ok {
			t.Errorf("no component %s", k)
		}
	}
	if _, ok := a.Components["disk_used"]; ok {
		t.Error("a disk sensor for a Pi that reports no disk")
	}
	if c := a.Components["cpu_temp"]; c.StateTopic != topics.MetricsTopic(row, mac) {
		t.Errorf("cpu_temp reads %s, want the Pi's metrics topic", c.StateTopic)
	}

	// Home Assistant restarts: its birth brings every config again, unchanged.
	r.drain()
	if tok := r.ha.Publish(topics.HAStatusTopic, 0, false, topics.HAOnline); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	again := r.next(t, config, nil)
	if string(again.raw) != string(a.raw) {
		t.Errorf("announced again as\n%s\nwant\n%s", again.raw, a.raw)
	}

	// The operator places the Pi and names its slot.
	if _, err := r.cc.Layout().Put(row, 1, mac); err != nil {
		t.Fatal(err)
	}
	if err := r.cc.Layout().Name(row, 1, "web-1"); err != nil {
		t.Fatal(err)
	}
	r.next(t, config, func(a announced) bool { return a.Device.Name == "web-1" })
}

// A forgotten Pi's config is emptied, which removes the device from Home Assistant, and the
// broker no longer keeps it for a Home Assistant that starts later.
func TestForgetRemoves(t *testing.T) {
	r := startRig(t)
	a := r.agent(t)
	r.next(t, config, nil)
	// The agent goes away, saying so, then an admin forgets the Pi.
	b, _ := topics.Encode(topics.Status{V: topics.Version, State: topics.StateOffline, Session: "s1"})
	if tok := a.Publish(topics.StatusTopic(row, mac), 1, true, b); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	a.Disconnect(0)
	// The embedded broker hands a publish to the rack before acknowledging it.
	if n := r.cc.Rack().Nodes(); len(n) != 1 || n[0].Online() {
		t.Fatalf("rack after the offline status: %+v", n)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.cc.HTTPAddr()+"/api/nodes/"+mac+"/forget", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("forget: %s", resp.Status)
	}
	if got := r.next(t, config, func(a announced) bool { return len(a.raw) == 0 }); len(got.raw) != 0 {
		t.Fatal("unreachable")
	}

	// A Home Assistant subscribing now finds the control center's config, not the Pi's.
	later := make(chan paho.Message, 16)
	if tok := r.ha.Subscribe(topics.HADeviceConfigFilter, 0, func(_ paho.Client, m paho.Message) { later <- m }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := r.ha.Subscribe("barrier", 0, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for len(later) > 0 {
		if m := <-later; m.Topic() == config {
			t.Errorf("the broker still holds the forgotten Pi's config: %q", m.Payload())
		}
	}
}
