package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/topics"
)

const (
	macA = "b827eb000a01"
	macB = "b827eb000b02"
)

func TestAgentTelemetryReachesDashboard(t *testing.T) {
	r := newRig(t)
	r.startPi(t, macA, "r1", r.mqttAddr)

	n := r.awaitNode(t, macA, "online with metrics", func(n dashboard.Node) bool {
		return n.State == dashboard.StateOnline && n.Metrics != nil
	})
	if n.Row != "r1" || n.Hostname != "pi-"+macA[8:] {
		t.Errorf("identity = row %q hostname %q, want r1 and pi-%s", n.Row, n.Hostname, macA[8:])
	}
	m := n.Metrics
	if m.Load1 == nil || m.MemTotalBytes == nil || m.MemAvailableBytes == nil || m.DiskTotalBytes == nil || m.CPUTempC == nil {
		t.Errorf("metrics lack readings the simulator provides: %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("metrics on the dashboard do not validate: %v", err)
	}

	// The JSON API shows the same Pi.
	var nodes []dashboard.Node
	if code := r.getJSON(t, "/api/nodes", &nodes); code != http.StatusOK {
		t.Fatalf("GET /api/nodes: HTTP %d", code)
	}
	if len(nodes) != 1 || nodes[0].MAC != macA {
		t.Fatalf("GET /api/nodes = %+v, want just %s", nodes, macA)
	}
}

func TestButtonPressSelectsPi(t *testing.T) {
	r := newRig(t)
	a := r.startPi(t, macA, "r1", r.mqttAddr)
	r.startPi(t, macB, "r1", r.mqttAddr)
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })

	if !a.button.Press(topics.PressShort) {
		t.Fatal("simulated button refused the press")
	}
	n := r.awaitNode(t, macA, "selected", func(n dashboard.Node) bool { return n.Selected })
	if n.SelectedAt.IsZero() {
		t.Error("selected without a time")
	}
	for _, other := range r.rack().Nodes() {
		if other.MAC == macB && other.Selected {
			t.Errorf("pressing %s's button selected %s too", macA, macB)
		}
	}

	if code, body := r.post(t, "/api/nodes/"+macA+"/clear", ""); code != http.StatusOK {
		t.Fatalf("clear: HTTP %d %s", code, body)
	}
	r.awaitNode(t, macA, "cleared", func(n dashboard.Node) bool { return !n.Selected })
}

func TestLocateBlinksAgentLED(t *testing.T) {
	r := newRig(t)
	p := r.startPi(t, macA, "r1", r.mqttAddr)
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	changes, stopWatch := p.led.Watch()
	defer stopWatch()

	// The MAC may be written any way an operator copies it.
	code, body := r.post(t, "/api/nodes/B8:27:EB:00:0A:01/blink", `{"count":3,"period_ms":100}`)
	if code != http.StatusAccepted {
		t.Fatalf("blink: HTTP %d %s", code, body)
	}
	var sent topics.LEDCommand
	if err := json.Unmarshal([]byte(body), &sent); err != nil || sent.By != adminUser || sent.ExpiresAt.IsZero() {
		t.Fatalf("blink answer %s: want the command with by=admin and an expiry (%v)", body, err)
	}

	ons := 0
	deadline := time.After(waitLimit)
	for ons < 3 {
		select {
		case on := <-changes:
			if on {
				ons++
			}
		case <-deadline:
			t.Fatalf("LED lit %d times in %v, want 3", ons, waitLimit)
		}
	}
	// The blink ends with the LED off, and no fourth flash follows.
	for {
		select {
		case on := <-changes:
			if on {
				t.Fatal("LED lit a fourth time for a blink of 3")
			}
		case <-time.After(500 * time.Millisecond):
			if p.led.On() {
				t.Fatal("LED left on after the blink")
			}
			if got := p.led.Transitions(); got != 3 {
				t.Fatalf("LED turned on %d times, want 3", got)
			}
			return
		}
	}
}

func TestLocateUnknownPiIsNotFound(t *testing.T) {
	r := newRig(t)
	code, body := r.post(t, "/api/nodes/b827ebffffff/blink", "")
	if code != http.StatusNotFound {
		t.Fatalf("blink of a Pi never seen: HTTP %d %s, want 404", code, body)
	}
	code, body = r.post(t, "/api/nodes/not-a-mac/blink", "")
	if code != http.StatusBadRequest {
		t.Fatalf("blink of a malformed MAC: HTTP %d %s, want 400", code, body)
	}
}

func TestPiMarkedOfflineWhenConnectionDies(t *testing.T) {
	r := newRig(t)
	link := tcpproxy.New(t, r.mqttAddr)
	r.startPi(t, macA, "r1", link.Addr())
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })

	link.Cut() // no DISCONNECT: the broker must publish the agent's Will
	r.awaitNode(t, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
}

func TestCleanAgentStopShowsOffline(t *testing.T) {
	r := newRig(t)
	p := r.startPi(t, macA, "r1", r.mqttAddr)
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })

	p.stop()
	r.awaitNode(t, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
}
