package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// A restart of the control center in the middle of a safe removal carries it on: started
// before the restart, the removal is still on the Pi's tile after it; the press at the rack
// then shuts the Pi down (its agent really stops), its clean stop makes it safe to pull, and
// the new board's press takes the freed slot.
func TestRemovalAcrossARestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(_ *testing.T, r *rig) { r.base.RemoteSystem = true })
	var old *pi
	ran := make(chan string, 1)
	old = r.startPi(t, "b827eb00c1a1", "r1", r.mqttAddr, func(c *agent.Config) {
		c.System = func(action string) error {
			ran <- action
			go old.stop() // the system stops the agent's service on its way down
			return nil
		}
	})
	r.awaitNode(t, old.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	if code, body := r.post(t, "/api/rows/r1/slots/4", `{"mac": "`+old.mac+`"}`); code != http.StatusOK {
		t.Fatalf("place the Pi: %d %s", code, body)
	}
	if code, body := r.post(t, "/api/nodes/"+old.mac+"/removal", ""); code != http.StatusAccepted {
		t.Fatalf("start the removal: %d %s", code, body)
	}
	r.awaitNode(t, old.mac, "removal started", func(n dashboard.Node) bool { return n.Removal != nil && n.Removal.Step == dashboard.RemovalLocate })

	r.kill(t)
	r.restart(t)
	n := r.awaitNode(t, old.mac, "the removal after the restart", func(n dashboard.Node) bool { return n.Removal != nil && n.Online() })
	if n.Removal.Step != dashboard.RemovalLocate || n.Removal.By != adminUser || n.Removal.Slot != 4 {
		t.Fatalf("after the restart: %+v", n.Removal)
	}

	// The press at the rack, as after no restart.
	if !old.button.Press(topics.PressShort) {
		t.Fatal("simulated button refused the press")
	}
	select {
	case a := <-ran:
		if a != topics.SystemShutdown {
			t.Fatalf("the agent ran %q", a)
		}
	case <-time.After(waitLimit):
		t.Fatal("the press after the restart did not shut the Pi down")
	}
	r.awaitNode(t, old.mac, "verify after the clean stop", func(n dashboard.Node) bool {
		return n.Removal != nil && n.Removal.Step == dashboard.RemovalVerify && n.Removal.CleanStop
	})
}
