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

// Acknowledge, silence and maintenance in Chromium: an acknowledged alert says who and why and
// stops counting (tab title included), Undo brings it back; a Pi in maintenance holds its
// alert back and its tile says so.
func TestBrowserAckSilenceMaintenance(t *testing.T) {
	r := newRig(t, withAlerts(t, flowAlerts))
	ctx := browser(t)
	a := r.startPi(t, "b827eb00f0d1", "r1", r.mqttAddr)
	b := r.startPi(t, "b827eb00f0d2", "r1", r.mqttAddr)
	for _, p := range []*pi{a, b} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	logIn(t, ctx, r.url)
	a.stop()
	b.stop()
	li := func(p *pi) string { return `document.querySelector('#alert-list li[data-mac="` + p.mac + `"]')` }
	var title, held string
	step(t, ctx, "two live alerts", waitLimit,
		pollTrue(`document.getElementById("alert-count").textContent === "2"`),
		chromedp.SendKeys(`#hold-note`, "swapping its SD card", chromedp.ByQuery),
		chromedp.Click(`#alert-list li[data-mac="`+a.mac+`"] button[data-alert-action="ack"]`, chromedp.ByQuery),
		pollTrue(li(a)+`.dataset.held === "acknowledged"`),
		pollTrue(`document.getElementById("alert-count").textContent === "1"`),
		chromedp.Evaluate(li(a)+`.querySelector('[data-field="held"]').textContent`, &held),
		chromedp.Evaluate(`document.title`, &title),
	)
	if held != "· acknowledged by admin: swapping its SD card" || !strings.HasPrefix(title, "(1) ") {
		t.Fatalf("held %q, title %q", held, title)
	}
	step(t, ctx, "silence the other, then undo", waitLimit,
		chromedp.Click(`#alert-list li[data-mac="`+b.mac+`"] button[data-alert-action="silence"]`, chromedp.ByQuery),
		pollTrue(li(b)+`.dataset.held === "silenced"`),
		pollTrue(`document.getElementById("alert-count").textContent === "0" && !document.title.startsWith("(")`),
		chromedp.Click(`#alert-list li[data-mac="`+b.mac+`"] button[data-alert-action="unack"]`, chromedp.ByQuery),
		pollTrue(li(b)+`.dataset.held === "" && document.getElementById("alert-count").textContent === "1"`),
	)
	if !r.rack().Held(r.rack().Alerts()[0]) && !r.rack().Held(r.rack().Alerts()[1]) {
		t.Fatal("the rack holds neither alert back, yet one is acknowledged")
	}
	step(t, ctx, "maintenance on the unacknowledged Pi", waitLimit,
		chromedp.Click(tileSel(b.mac)+` button[data-action="maintenance"]`, chromedp.ByQuery),
		pollTrue(`!document.querySelector('`+tileSel(b.mac)+` [data-field="maintenance"]').hidden`),
		pollTrue(li(b)+`.dataset.held === "maintenance" && document.getElementById("alert-count").textContent === "0"`),
		chromedp.Click(tileSel(b.mac)+` button[data-action="maintenance"]`, chromedp.ByQuery),
		pollTrue(li(b)+`.dataset.held === "" && document.querySelector('`+tileSel(b.mac)+` [data-field="maintenance"]').hidden`),
	)
}

// A kiosk link: an admin makes one on the page; a wall display that opens it sees the rack,
// read-only, with nobody's password, across a restart of the control center; revoked, the
// display is back at the login page.
func TestBrowserKioskLink(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	p := r.startPi(t, "b827eb00f0e1", "r1", r.mqttAddr)
	r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	logIn(t, ctx, r.url)
	var link string
	step(t, ctx, "make a kiosk link", waitLimit,
		chromedp.Click(`#kiosk-new`, chromedp.ByQuery),
		pollTrue(`(document.getElementById("notice").dataset.kiosk || "") !== ""`),
		chromedp.Evaluate(`document.getElementById("notice").dataset.kiosk`, &link),
	)
	wall := browser(t) // another browser: the display, with no session of its own
	var buttons int
	var who string
	step(t, wall, "the display opens the link", waitLimit,
		chromedp.Navigate(link),
		chromedp.WaitVisible(`#rack `+tileSel(p.mac), chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('article.tile button[data-action]').length`, &buttons),
		chromedp.Text(`.whoami span`, &who, chromedp.ByQuery),
	)
	if buttons != 0 || !strings.HasPrefix(who, "kiosk:display-") {
		t.Fatalf("the kiosk sees %d command buttons and signs in as %q; want none, read-only", buttons, who)
	}
	r.kill(t)
	r.restart(t)
	step(t, wall, "still there after a restart", waitLimit,
		chromedp.Navigate(r.url+"/"),
		chromedp.WaitVisible(`#rack`, chromedp.ByQuery),
	)
	name := strings.TrimPrefix(who, "kiosk:")
	name = strings.Fields(name)[0]
	if code, body := r.post(t, "/api/kiosk", `{"name": "`+name+`", "revoke": true}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	var path string
	step(t, wall, "revoked: back at the login page", waitLimit,
		chromedp.Navigate(r.url+"/"),
		chromedp.WaitVisible(`input[name=password]`, chromedp.ByQuery),
		chromedp.Evaluate(`location.pathname`, &path),
	)
	if path != "/login" {
		t.Fatalf("after the revocation the display is at %s", path)
	}
}
