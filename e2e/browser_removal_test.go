package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// Safe removal end to end in Chromium, with real agents: Remove… flashes the Pi's LED; a press
// of its button at the rack shuts it down (the agent's system hook stops the agent, as
// systemctl poweroff would stop its service); its clean stop and the row's power dropping by
// about one Pi's share make it safe to pull, and the agent leaves its LED lit; the press of a
// new board of the row puts it into the freed slot, where it can take the old one's history.
// Every step is audited or in the event log. A click on a tile selects it.
func TestBrowserSafeRemoval(t *testing.T) {
	r := newRig(t, func(_ *testing.T, r *rig) { r.base.RemoteSystem = true })
	ctx := browser(t)
	var old *pi
	ran := make(chan string, 1)
	old = r.startPi(t, "b827eb00c0a1", "r1", r.mqttAddr, func(c *agent.Config) {
		c.System = func(action string) error {
			ran <- action
			go old.stop() // the system stops the agent's service on its way down
			return nil
		}
	})
	neighbour := r.startPi(t, "b827eb00c0a2", "r1", r.mqttAddr)
	for _, p := range []*pi{old, neighbour} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	if code, body := r.post(t, "/api/rows/r1/slots/3", `{"mac": "`+old.mac+`", "name": "web-3"}`); code != 200 {
		t.Fatalf("place the Pi: %d %s", code, body)
	}
	power := func(w float64) {
		p, err := topics.Encode(topics.Power{V: 1, TS: time.Now(), Watts: &w, Source: "sim"})
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, bus.Message{Topic: topics.PowerTopic("r1"), Payload: p, Retained: true})
	}
	power(10) // two Pis: 5 W each
	logIn(t, ctx, r.url)

	// A click on the neighbour's tile selects it, in the admin's name.
	nsel := tileSel(neighbour.mac)
	step(t, ctx, "click to select", waitLimit,
		chromedp.Click(nsel+` [data-field="ip"]`, chromedp.ByQuery),
		pollTrue(`document.querySelector('`+nsel+`').dataset.selected === "true"`),
		pollTrue(`document.querySelector('`+nsel+` [data-field="selected"]').textContent.startsWith("\u2605 selected by admin on the page")`),
	)

	sel := tileSel(old.mac)
	panel := `document.querySelector('` + sel + ` [data-field="removal"]')`
	note := `document.querySelector('` + sel + ` [data-field="removal_note"]').textContent`
	before := old.led.Transitions()
	step(t, ctx, "Remove… flashes the LED", waitLimit,
		chromedp.Click(sel+` button[data-action="removal"]`, chromedp.ByQuery),
		pollTrue(`!`+panel+`.hidden && `+panel+`.dataset.step === "locate"`),
		pollTrue(note+`.startsWith("its LED flashes: press its button")`),
	)
	deadline := time.Now().Add(waitLimit)
	for old.led.Transitions()-before < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Remove… clicked, but the LED does not flash")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Nothing is shut down until the press at the rack.
	select {
	case a := <-ran:
		t.Fatalf("%s before the press at the rack", a)
	case <-time.After(300 * time.Millisecond):
	}
	old.button.Press("short")
	select {
	case a := <-ran:
		if a != topics.SystemShutdown {
			t.Fatalf("the press ran %q, want a shutdown", a)
		}
	case <-time.After(waitLimit):
		t.Fatal("the press at the rack did not shut the Pi down")
	}
	step(t, ctx, "offline through its clean stop, waiting for the power to drop", waitLimit,
		pollTrue(panel+`.dataset.step === "verify"`),
		pollTrue(note+`.includes("waiting for the row's power to drop by about 5.0 W")`),
	)
	if !old.led.On() {
		t.Error("the agent stopped for a shutdown but left its LED off: the rack shows no safe to pull")
	}
	power(9.5) // not a Pi's share: not yet
	time.Sleep(300 * time.Millisecond)
	var stepNow string
	if err := chromedp.Run(ctx, chromedp.Evaluate(panel+`.dataset.step`, &stepNow)); err != nil || stepNow != "verify" {
		t.Fatalf("a 0.5 W drop made it %q (%v), want still verify", stepNow, err)
	}
	power(5.2)
	step(t, ctx, "safe to pull", waitLimit,
		pollTrue(panel+`.dataset.step === "safe"`),
		pollTrue(`document.querySelector('`+sel+` [data-field="removal_title"]').textContent === "SAFE TO PULL"`),
		pollTrue(note+`.includes("dropped from 10.0 W to 5.2 W")`),
		pollTrue(note+`.includes("slot 3")`),
	)

	// The new board: its press puts it into slot 3, and its tile offers the old history.
	repl := r.startPi(t, "b827eb00c0a3", "r1", r.mqttAddr)
	r.awaitNode(t, repl.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	repl.button.Press("short")
	rsel := tileSel(repl.mac)
	step(t, ctx, "the replacement takes the slot", waitLimit,
		pollTrue(panel+`.dataset.step === "replaced"`),
		pollTrue(`document.querySelector('`+rsel+`').dataset.slot === "3"`),
		pollTrue(`!document.querySelector('`+rsel+` [data-field="previous"]').hidden`),
		chromedp.Click(rsel+` button[data-action="inherit"]`, chromedp.ByQuery),
		pollTrue(`document.querySelector('`+rsel+` [data-field="previous"]').hidden`),
	)
	n := r.awaitNode(t, repl.mac, "in slot 3", func(n dashboard.Node) bool { return n.Slot == 3 })
	if n.SlotName != "web-3" || n.Selected {
		t.Errorf("the replacement: slot name %q, selected %v; want web-3, not selected (its press was the replacement's)", n.SlotName, n.Selected)
	}

	// Audited: the start in the admin's name, and the shutdown the press set off.
	var entries []dashboard.AuditEntry
	if code := r.getJSON(t, "/api/audit", &entries); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var started, shutdown bool
	for _, e := range entries {
		started = started || (e.Action == dashboard.AuditRemoval && e.MAC == old.mac && e.User == "admin")
		shutdown = shutdown || (e.Action == dashboard.AuditSystem && e.MAC == old.mac && e.User == "admin" && strings.Contains(e.Via, "press at the rack"))
	}
	if !started || !shutdown {
		t.Errorf("audit log: removal start %v, its shutdown %v; want both: %+v", started, shutdown, entries)
	}
}
