package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// Remote shutdown end to end: an admin's shutdown reaches an agent that allows it, which runs
// its system hook (systemctl poweroff on a Pi; here the test stops the agent as the system
// would) and goes offline through its clean stop. An agent that does not allow it, an expired
// command and an automation user's command are not carried out, and each refusal is in the
// audit log with its reason: the agents report theirs on system_result, the broker its own.
func TestRemoteShutdown(t *testing.T) {
	r := newRig(t, func(_ *testing.T, r *rig) { r.base.RemoteSystem = true })
	ran := make(chan string, 4)
	hook := func(c *agent.Config) { c.System = func(action string) error { ran <- action; return nil } }
	willing := r.startPi(t, "b827eb00a0a1", "r1", r.mqttAddr, hook)
	unwilling := r.startPi(t, "b827eb00a0a2", "r1", r.mqttAddr)
	// A Pi whose clock runs 2 minutes ahead sees every command as expired (as one does that
	// was queued while the Pi was away).
	late := r.startPi(t, "b827eb00a0a3", "r1", r.mqttAddr, hook, func(c *agent.Config) {
		c.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	})
	for _, p := range []*pi{willing, unwilling, late} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	nothingRan := func(what string) {
		t.Helper()
		select {
		case a := <-ran:
			t.Fatalf("%s: the agent ran %q", what, a)
		case <-time.After(time.Second):
		}
	}

	// An expired command (it waited too long, say for a Pi that was off) is ignored.
	now := time.Now().UTC()
	old, err := topics.Encode(topics.SystemCommand{V: 1, Action: topics.SystemShutdown, IssuedAt: now.Add(-10 * time.Minute), ExpiresAt: now.Add(-9 * time.Minute), By: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, bus.Message{Topic: topics.SystemTopic(willing.mac), Payload: old, QoS: 1})
	nothingRan("an expired command")

	// An automation user may send LED commands, not this: the broker drops it.
	r.addUser(t, auth.User{Name: "nodered", Role: auth.RoleAutomation}, "automation-password")
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.mqttAddr).SetClientID("nodered-1").
		SetUsername("nodered").SetPassword("automation-password").SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("automation connect: %v", tok.Error())
	}
	fresh, _ := topics.Encode(topics.SystemCommand{V: 1, Action: topics.SystemShutdown, IssuedAt: now, ExpiresAt: now.Add(time.Minute), By: "nodered"})
	c.Publish(topics.SystemTopic(willing.mac), 1, false, fresh).WaitTimeout(waitLimit)
	c.Disconnect(100)
	nothingRan("an automation user's command")

	// An agent without --allow-system-commands refuses an admin's shutdown and stays up.
	if code, body := r.post(t, "/api/nodes/"+unwilling.mac+"/system", `{"action": "shutdown", "confirm": "pi-`+unwilling.mac[8:]+`"}`); code != 202 {
		t.Fatalf("shutdown of the unwilling Pi: %d %s", code, body)
	}
	nothingRan("an agent that does not allow it")
	if code, body := r.post(t, "/api/nodes/"+late.mac+"/system", `{"action": "shutdown", "confirm": "pi-`+late.mac[8:]+`"}`); code != 202 {
		t.Fatalf("shutdown of the late Pi: %d %s", code, body)
	}
	nothingRan("an expired command")
	audited := func(what string, match func(dashboard.AuditEntry) bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			var entries []dashboard.AuditEntry
			r.getJSON(t, "/api/audit", &entries)
			for _, e := range entries {
				if match(e) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no audit entry for %s in %+v", what, entries)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	audited("the automation user's shutdown", func(e dashboard.AuditEntry) bool {
		return e.Action == dashboard.AuditSystem && e.Outcome == dashboard.AuditDenied && e.User == "nodered" && e.MAC == willing.mac &&
			strings.Contains(e.Reason, "role automation may not send this command")
	})
	audited("the unwilling agent's refusal", func(e dashboard.AuditEntry) bool {
		return e.Action == dashboard.AuditSystem && e.Outcome == dashboard.AuditDenied && e.User == "admin" && e.MAC == unwilling.mac &&
			strings.Contains(e.Reason, "--allow-system-commands")
	})
	audited("the expired command", func(e dashboard.AuditEntry) bool {
		return e.Action == dashboard.AuditSystem && e.Outcome == dashboard.AuditDenied && e.MAC == late.mac && strings.Contains(e.Reason, "expired at")
	})
	for _, n := range r.rack().Nodes() {
		if n.MAC == unwilling.mac && n.State != dashboard.StateOnline {
			t.Fatalf("the unwilling Pi went %s", n.State)
		}
	}

	// The willing one shuts down: its hook runs, then the system stops the agent.
	if code, body := r.post(t, "/api/nodes/"+willing.mac+"/system", `{"action": "shutdown", "confirm": "pi-`+willing.mac[8:]+`"}`); code != 202 {
		t.Fatalf("shutdown: %d %s", code, body)
	}
	select {
	case a := <-ran:
		if a != topics.SystemShutdown {
			t.Fatalf("the agent ran %q, want shutdown", a)
		}
	case <-time.After(waitLimit):
		t.Fatal("the shutdown never reached the agent")
	}
	audited("the shutdown carried out", func(e dashboard.AuditEntry) bool {
		return e.Action == dashboard.AuditSystem && e.Outcome == dashboard.AuditAllowed && e.MAC == willing.mac && strings.HasPrefix(e.Via, "agent ")
	})
	willing.stop() // what systemctl poweroff does to the service
	n := r.awaitNode(t, willing.mac, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
	if !strings.HasPrefix(n.Hostname, "pi-") {
		t.Errorf("the offline Pi lost its name: %+v", n)
	}
}

// Shut down from the page: the tile's Shut down… asks for the Pi's name, refuses a wrong one
// with the reason, and with the right one the agent runs its shutdown and the tile goes
// offline. Without --remote-system the button is not there.
func TestBrowserShutdown(t *testing.T) {
	r := newRig(t, func(_ *testing.T, r *rig) { r.base.RemoteSystem = true })
	ctx := browser(t)
	ran := make(chan string, 1)
	p := r.startPi(t, "b827eb00a0b1", "r1", r.mqttAddr, func(c *agent.Config) {
		c.System = func(action string) error { ran <- action; return nil }
	})
	r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	logIn(t, ctx, r.url)
	sel := tileSel(p.mac)
	var said string
	step(t, ctx, "a wrong name is refused", waitLimit,
		chromedp.Click(sel+` button[data-action="system"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#system-dialog input[name="confirm"]`, chromedp.ByQuery),
		chromedp.SendKeys(`#system-dialog input[name="confirm"]`, "pi-other", chromedp.ByQuery),
		chromedp.Click(`#system-dialog button[value="shutdown"]`, chromedp.ByQuery),
		pollTrue(`document.getElementById("system-result").textContent !== ""`),
		chromedp.Text(`#system-result`, &said, chromedp.ByQuery),
	)
	if !strings.Contains(said, "confirm must repeat the Pi's name") {
		t.Fatalf("a wrong name: %q", said)
	}
	step(t, ctx, "the right name shuts it down", waitLimit,
		chromedp.SetValue(`#system-dialog input[name="confirm"]`, "pi-"+p.mac[8:], chromedp.ByQuery),
		chromedp.Click(`#system-dialog button[value="shutdown"]`, chromedp.ByQuery),
		pollTrue(`document.getElementById("system-result").textContent.startsWith("Shutting down")`),
	)
	select {
	case a := <-ran:
		if a != topics.SystemShutdown {
			t.Fatalf("ran %q", a)
		}
	case <-time.After(waitLimit):
		t.Fatal("the page's shutdown never reached the agent")
	}
	p.stop()
	step(t, ctx, "the tile goes offline", waitLimit,
		pollTrue(`document.querySelector('`+sel+`').dataset.state === "offline"`),
	)

	plain := newRig(t)
	ctx2 := browser(t)
	q := plain.startPi(t, "b827eb00a0b2", "r1", plain.mqttAddr)
	plain.awaitNode(t, q.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	logIn(t, ctx2, plain.url)
	var shown bool
	step(t, ctx2, "no Shut down… without --remote-system", waitLimit,
		chromedp.WaitVisible(tileSel(q.mac), chromedp.ByQuery),
		chromedp.Evaluate(`(() => { const b = document.querySelector('`+tileSel(q.mac)+` button[data-action="system"]'); return !!b && b.offsetParent !== null; })()`, &shown),
	)
	if shown {
		t.Fatal("Shut down… is offered on a control center without --remote-system")
	}
}
