package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/topics"
)

// flowAlerts makes the offline alert immediate, so the flow sees it without waiting 30 s.
const flowAlerts = `{"offline": {"for": "0s"}}`

// testFlow is the whole end-to-end flow, on whatever broker r runs on: metrics reach the tiles,
// a press selects, Locate blinks the agent's LED and its tile shows it, an agent whose link dies
// shows offline through its Will, the offline alert is raised and published on MQTT, and a
// restart of the control center keeps what it knew.
func testFlow(t *testing.T, r *rig) {
	a := r.startPi(t, macA, "r1", newProxyAddr(t, r, "a"))
	b := r.startPi(t, macB, "r1", r.mqttAddr)
	alerts := r.watchAlerts(t)

	// Telemetry reaches the tiles and the API.
	for _, mac := range []string{macA, macB} {
		r.awaitNode(t, mac, "online with metrics", func(n dashboard.Node) bool { return n.Online() && n.Metrics != nil })
	}
	var nodes []dashboard.Node
	if code := r.getJSON(t, "/api/nodes", &nodes); code != http.StatusOK || len(nodes) != 2 {
		t.Fatalf("GET /api/nodes: HTTP %d, %d nodes, want 2", code, len(nodes))
	}

	// A press selects.
	if !b.button.Press(topics.PressShort) {
		t.Fatal("simulated button refused the press")
	}
	r.awaitNode(t, macB, "selected", func(n dashboard.Node) bool { return n.Selected })

	// Locate blinks the LED, and the tile shows the agent's report of it.
	changes, unwatch := b.led.Watch()
	defer unwatch()
	if code, body := r.post(t, "/api/nodes/"+macB+"/blink", `{"count":2,"period_ms":100}`); code != http.StatusAccepted {
		t.Fatalf("blink: HTTP %d %s", code, body)
	}
	for ons, deadline := 0, time.After(waitLimit); ons < 2; {
		select {
		case on := <-changes:
			if on {
				ons++
			}
		case <-deadline:
			t.Fatalf("LED lit %d times, want 2", ons)
		}
	}
	r.awaitNode(t, macB, "showing the LED report", func(n dashboard.Node) bool { return n.LED != nil && n.Locate != nil })

	// The link of A dies without a DISCONNECT: the broker publishes its Will, the tile shows
	// offline, and the offline alert is raised and published retained.
	r.proxies["a"].Cut()
	r.awaitNode(t, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
	al := alerts.await(t, macA, "offline", topics.AlertRaised)
	if al.Row != "r1" || al.Severity == "" {
		t.Errorf("published alert %+v, want row r1 and a severity", al)
	}
	a.stop()

	// A restart of the control center keeps the rack: B online with its identity, A offline
	// with its alert, and the press in the history.
	r.kill(t)
	r.restart(t)
	r.awaitNode(t, macB, "online after the restart", func(n dashboard.Node) bool { return n.Online() && n.Hostname == "pi-"+macB[8:] })
	n := r.awaitNode(t, macA, "offline with its alert after the restart", func(n dashboard.Node) bool {
		return n.State == dashboard.StateOffline && len(n.Alerts) > 0
	})
	if n.Alerts[0].Rule != "offline" {
		t.Errorf("A's alerts after the restart: %+v, want offline", n.Alerts)
	}
	var events []history.Event
	if code := r.getJSON(t, "/api/nodes/"+macB+"/events", &events); code != http.StatusOK {
		t.Fatalf("GET events: HTTP %d", code)
	}
	pressed := false
	for _, e := range events {
		pressed = pressed || e.Kind == history.EventButton
	}
	if !pressed {
		t.Errorf("B's press is not in its history after the restart: %+v", events)
	}
}

func TestFlowOnTheEmbeddedBroker(t *testing.T) {
	t.Parallel()
	testFlow(t, newRig(t, withAlerts(t, flowAlerts)))
}

// rigOption changes a rig's control center before its first run.
type rigOption func(t *testing.T, r *rig)

func withAlerts(t *testing.T, js string) rigOption {
	path := filepath.Join(t.TempDir(), "alerts.json")
	if err := os.WriteFile(path, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(_ *testing.T, r *rig) { r.base.AlertsFile = path }
}

// newProxyAddr puts a cuttable link (see tcpproxy) named name between an agent and the broker,
// and returns the address the agent dials.
func newProxyAddr(t *testing.T, r *rig, name string) string {
	p := tcpproxy.New(t, r.mqttAddr)
	if r.proxies == nil {
		r.proxies = map[string]*tcpproxy.Proxy{}
	}
	r.proxies[name] = p
	return p.Addr()
}

// alertWatch is an MQTT client of the rig's broker that records the alerts published there.
type alertWatch struct {
	mu   sync.Mutex
	got  []topics.Alert
	news chan struct{}
}

// watchAlerts subscribes an admin MQTT client to every pirack topic on the rig's broker.
func (r *rig) watchAlerts(t *testing.T) *alertWatch {
	t.Helper()
	const user, password = "alert-watch", "alert-watch-password"
	r.addUser(t, auth.User{Name: user, Role: auth.RoleViewer}, password)
	w := &alertWatch{news: make(chan struct{}, 1)}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.mqttAddr).SetClientID(user).
		SetUsername(user).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("alert watcher: connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(topics.AllFilter, 1, func(_ paho.Client, m paho.Message) {
		if tp, err := topics.Parse(m.Topic()); err != nil || tp.Kind != topics.KindAlert || len(m.Payload()) == 0 {
			return
		}
		al, err := topics.DecodeAlert(m.Payload())
		if err != nil {
			return
		}
		w.mu.Lock()
		w.got = append(w.got, al)
		w.mu.Unlock()
		select {
		case w.news <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("alert watcher: subscribe: %v", tok.Error())
	}
	return w
}

// await returns the first alert of rule for mac in state, failing after waitLimit.
func (w *alertWatch) await(t *testing.T, mac, rule, state string) topics.Alert {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		w.mu.Lock()
		for _, al := range w.got {
			if al.MAC == mac && al.Rule == rule && al.State == state {
				w.mu.Unlock()
				return al
			}
		}
		seen := len(w.got)
		w.mu.Unlock()
		select {
		case <-w.news:
		case <-deadline:
			t.Fatalf("no %s alert %s for %s published on MQTT within %v (%d alerts seen)", rule, state, mac, waitLimit, seen)
		}
	}
}
