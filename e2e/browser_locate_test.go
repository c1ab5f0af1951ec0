package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pirack/pirack/dashboard"
)

// Locate as a job in Chromium: Locate flashes the Pi's LED until its button is pressed at the
// rack, and the tile then says it was found, by whose Locate and how long it took; Stop ends
// another locate, and its note goes.
func TestBrowserLocateUntilFound(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	p := r.startPi(t, "b827eb00f0a1", "r1", r.mqttAddr)
	r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	logIn(t, ctx, r.url)
	sel := tileSel(p.mac)
	note := `document.querySelector('` + sel + ` [data-field="locate"]')`
	stop := `document.querySelector('` + sel + ` [data-field="locate_stop"]')`

	before := p.led.Transitions()
	step(t, ctx, "Locate", waitLimit,
		chromedp.Click(sel+` button[data-action="locate"]`, chromedp.ByQuery),
		pollTrue(note+`.textContent === "Locating for admin: press its button when found" && !`+note+`.hidden`),
		pollTrue(`!`+stop+`.hidden`),
	)
	deadline := time.Now().Add(waitLimit)
	for p.led.Transitions()-before < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Locate clicked, but the LED does not flash")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.button.Press("short") // found at the rack
	step(t, ctx, "found", waitLimit,
		pollTrue(note+`.textContent.startsWith("Found at the rack ") && `+note+`.textContent.endsWith(" after admin's Locate")`),
		pollTrue(stop+`.hidden`),
	)
	for p.led.On() {
		if time.Now().After(deadline) {
			t.Fatal("found, but the LED stays on")
		}
		time.Sleep(20 * time.Millisecond)
	}

	step(t, ctx, "Locate, then Stop", waitLimit,
		chromedp.Click(sel+` button[data-action="locate"]`, chromedp.ByQuery),
		pollTrue(note+`.textContent.startsWith("Locating for admin")`),
		chromedp.Click(sel+` button[data-action="locate-stop"]`, chromedp.ByQuery),
		pollTrue(note+`.hidden`),
	)
	deadline = time.Now().Add(waitLimit)
	for {
		n := r.rack().Nodes()
		if len(n) == 1 && n[0].LED != nil && n[0].LED.State == "off" && n[0].LED.Action == "off" && !p.led.On() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stop clicked, but the LED does not report off: %+v", n[0].LED)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A restart of the control center signs nobody out: the page reloads on the rack, not the
// login form (a wall display stays up).
func TestBrowserSessionSurvivesRestart(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	logIn(t, ctx, r.url)
	r.kill(t)
	r.restart(t)
	var path string
	step(t, ctx, "reload after the restart", waitLimit,
		chromedp.Navigate(r.url+"/"),
		chromedp.WaitVisible(`#rack`, chromedp.ByQuery),
		chromedp.Evaluate(`location.pathname`, &path),
	)
	if path != "/" {
		t.Fatalf("after a restart the page is %s, want the rack", path)
	}
}

// A selection made by a press clears itself after the control center's selection expiry, on
// the page too; "Clear N selections" clears every selection at once.
func TestBrowserSelectionsExpireAndClear(t *testing.T) {
	const expiry = 6 * time.Second
	r := newRig(t, func(_ *testing.T, r *rig) { r.base.SelectionExpiry = expiry })
	ctx := browser(t)
	a := r.startPi(t, "b827eb00f0b1", "r1", r.mqttAddr)
	b := r.startPi(t, "b827eb00f0b2", "r1", r.mqttAddr)
	c := r.startPi(t, "b827eb00f0b3", "r1", r.mqttAddr)
	for _, p := range []*pi{a, b, c} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	logIn(t, ctx, r.url)
	selected := func(p *pi) string { return `document.querySelector('` + tileSel(p.mac) + `').dataset.selected` }
	a.button.Press("short")
	step(t, ctx, "selected by its press", waitLimit, pollTrue(selected(a)+` === "true"`))
	step(t, ctx, "the selection expires", waitLimit, pollTrue(selected(a)+` === "false"`))

	b.button.Press("short")
	c.button.Press("short")
	pressed := time.Now()
	step(t, ctx, "both selected", waitLimit,
		pollTrue(selected(b)+` === "true" && `+selected(c)+` === "true"`),
		pollTrue(`!document.getElementById("clear-selections").hidden`),
	)
	// Cleared by the button, well before the expiry would.
	step(t, ctx, "clear both at once", expiry/2,
		chromedp.Click(`#clear-selections`, chromedp.ByQuery),
		pollTrue(selected(b)+` === "false" && `+selected(c)+` === "false"`),
	)
	if time.Since(pressed) >= expiry {
		t.Fatalf("the check took %v, past the %v expiry: it proves nothing about the button", time.Since(pressed), expiry)
	}
}

// Alerts an operator can act on: the banner puts the oldest first and says for how long, live;
// the tab title counts them; the tile's stripe shows its worst alert; and losing the control
// center puts a page-wide banner up, gone when it is back.
func TestBrowserAlertsAndLostControlCenter(t *testing.T) {
	r := newRig(t, withAlerts(t, flowAlerts))
	ctx := browser(t)
	a := r.startPi(t, "b827eb00f0c1", "r1", r.mqttAddr)
	b := r.startPi(t, "b827eb00f0c2", "r1", r.mqttAddr)
	for _, p := range []*pi{a, b} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	logIn(t, ctx, r.url)
	a.stop()
	time.Sleep(1100 * time.Millisecond) // a's alert is older by a second
	b.stop()
	banner := `document.querySelectorAll("#alert-list li")`
	var first, forText, title, worst string
	step(t, ctx, "two offline alerts, oldest first", waitLimit,
		pollTrue(banner+`.length === 2`),
		chromedp.Evaluate(banner+`[0].dataset.mac`, &first),
		chromedp.Evaluate(`document.title`, &title),
		chromedp.Evaluate(`document.querySelector('`+tileSel(a.mac)+`').dataset.worst`, &worst),
		chromedp.Evaluate(banner+`[0].querySelector('[data-field="for"]').textContent`, &forText),
	)
	if first != a.mac || !strings.HasPrefix(title, "(2) ") || worst == "" || !strings.HasPrefix(forText, "for ") {
		t.Fatalf("first %s (want %s), title %q, worst %q, duration %q", first, a.mac, title, worst, forText)
	}
	step(t, ctx, "the duration runs", 15*time.Second,
		pollTrue(banner+`[0].querySelector('[data-field="for"]').textContent !== `+strconv.Quote(forText)),
	)

	r.kill(t)
	step(t, ctx, "a page-wide banner once the control center is gone", waitLimit,
		pollTrue(`!document.getElementById("lost").hidden`),
	)
	r.restart(t)
	step(t, ctx, "gone again once it is back", waitLimit,
		pollTrue(`document.getElementById("lost").hidden && document.getElementById("live").dataset.live === "on"`),
	)
}
