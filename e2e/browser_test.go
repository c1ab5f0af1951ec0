package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

var updateScreenshot = flag.Bool("screenshot", false, "save the rack view to docs/img/dashboard.png and docs/img/dashboard-phone.png for the README")

// hostileHostname must show on the page as text, never as markup.
const hostileHostname = `<img src=x onerror=alert(1)>`

// browser starts a headless Chromium for one test or benchmark, with extra command-line options.
// Without Chromium it is skipped, unless PIRACK_BROWSER_TESTS=require (set by `make test`, which
// installs it) makes that a failure.
func browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("PIRACK_BROWSER_TESTS") == "require" {
			t.Fatal("no Chromium found: install Debian's chromium package (make test does so as root)")
		}
		t.Skip("no Chromium found; `make test` installs it")
	}
	// Not t.TempDir: Chromium's helper processes may still write to the profile for a moment
	// after the browser is gone, which would fail the test in TempDir's cleanup.
	profile, err := os.MkdirTemp("", "pirack-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		// This machine's network is closed: keep Chromium from calling home at every start.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1400, 1000),
		// Chromium's start is slow on a loaded 2-core machine (the default 20 s was met once
		// while another test run shared it).
		chromedp.WSURLReadTimeout(time.Minute),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(profile) // best effort, see above
	})
	// Start the browser now, so its start-up time is not charged to the first step's deadline.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a deadline.
func step(t testing.TB, ctx context.Context, what string, limit time.Duration, actions ...chromedp.Action) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Run(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// pollTrue waits until a JavaScript expression is true on the page.
func pollTrue(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingInterval(20*time.Millisecond))
}

// asInDemo gives a Pi its own hostname, IP and simulated board, as `pirack demo` does, so the
// page (and the README's screenshot) shows a varied rack.
func asInDemo(host, ip string, seed uint64) func(*agent.Config) {
	return func(c *agent.Config) {
		c.Hostname, c.IP, c.Collector = host, ip, agent.NewSimCollector(seed, nil)
		// The demo's pace, not the rig's 50 ms: 24 Pis at 20 samples a second each would load
		// a 2-core CI machine running the race detector far beyond any real rack.
		c.Interval, c.KeepAlive = time.Second, 10*time.Second
	}
}

// logIn signs in as the admin on the login form, and waits for the rack page.
func logIn(t testing.TB, ctx context.Context, base string) {
	t.Helper()
	step(t, ctx, "log in", time.Minute,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`input[name=user]`),
		chromedp.SendKeys(`input[name=user]`, adminUser),
		chromedp.SendKeys(`input[name=password]`, adminPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#rack`),
	)
}

func tileSel(mac string) string { return fmt.Sprintf(`article.tile[data-mac="%s"]`, mac) }

// TestBrowserRack drives the Control Center as an operator does: log in, see the rack, press a
// Pi's button, locate a Pi, watch one go offline, and read a hostile hostname as plain text.
func TestBrowserRack(t *testing.T) {
	r := newRig(t)
	ctx := browser(t) // after the rig: its cleanup closes the browser's live stream first

	const rows, perRow = 3, 8
	pis := map[string]*pi{}
	var macs []string
	for row := 1; row <= rows; row++ {
		for slot := 1; slot <= perRow; slot++ {
			mac := fmt.Sprintf("b827eb%02x%02x%02x", 0xd0, row, slot)
			host := fmt.Sprintf("pi-r%d-%02d", row, slot)
			if row == 3 && slot == 8 && !*updateScreenshot { // the README's picture shows a plain rack
				host = hostileHostname
			}
			pis[mac] = r.startPi(t, mac, fmt.Sprintf("r%d", row), r.mqttAddr,
				asInDemo(host, fmt.Sprintf("10.0.%d.%d", row, 10+slot), uint64(row*100+slot)))
			macs = append(macs, mac)
		}
	}
	for _, mac := range macs {
		r.awaitNode(t, mac, "online with metrics", func(n dashboard.Node) bool { return n.Online() && n.Metrics != nil })
	}

	logIn(t, ctx, r.url)
	var tiles, sections int
	step(t, ctx, "see 24 tiles in 3 rows", 10*time.Second,
		pollTrue(`document.querySelectorAll("article.tile").length === 24 && document.getElementById("live").dataset.live === "on"`),
		chromedp.Evaluate(`document.querySelectorAll("article.tile").length`, &tiles),
		chromedp.Evaluate(`document.querySelectorAll("section.row").length`, &sections),
	)
	if tiles != rows*perRow || sections != rows {
		t.Fatalf("rack view shows %d tiles in %d rows, want %d in %d", tiles, sections, rows*perRow, rows)
	}

	// The hostile hostname is text: the heading reads it back verbatim and no <img> exists.
	hostileMAC := macs[len(macs)-1]
	var heading string
	var images int
	step(t, ctx, "read the hostile hostname", 5*time.Second,
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector('%s [data-field="hostname"]').textContent`, tileSel(hostileMAC)), &heading),
		chromedp.Evaluate(`document.querySelectorAll("#rack img").length`, &images),
	)
	if (heading != hostileHostname && !*updateScreenshot) || images != 0 {
		t.Fatalf("hostile hostname shown as %q with %d <img> in the rack; want the literal text and none", heading, images)
	}

	// Assign mode: along each row, press the buttons left to right; each Pi takes the next slot.
	for row := 1; row <= rows; row++ {
		assignRow(t, ctx, fmt.Sprintf("r%d", row), macs[(row-1)*perRow:row*perRow], pis)
	}
	// A shelf of 8 fits one line of the default view at 1400 px, as the rack stands.
	var lines []int
	step(t, ctx, "each row on one line", 10*time.Second,
		chromedp.Evaluate(`[...document.querySelectorAll("section.row")].map((sec) => new Set([...sec.querySelectorAll("article.tile")].map((t) => t.offsetTop)).size)`, &lines),
	)
	for i, n := range lines {
		if n != 1 {
			t.Errorf("row %d's 8 tiles take %d lines at 1400 px, want 1", i+1, n)
		}
	}
	nameSlot(t, ctx, macs[0], "gateway")
	compactView(t, ctx, rows*perRow)

	if *updateScreenshot {
		// The README's picture: the whole rack at once, with each row's supply as an INA219
		// would report it (the demo simulates the same).
		for row := 1; row <= rows; row++ {
			w, v := 12.5+0.8*float64(row), 5.12-0.01*float64(row)
			p, err := topics.Encode(topics.Power{V: 1, TS: time.Now(), Watts: &w, Volts: &v, Source: "sim"})
			if err != nil {
				t.Fatal(err)
			}
			r.publish(t, bus.Message{Topic: topics.PowerTopic(fmt.Sprintf("r%d", row)), Payload: p, Retained: true})
		}
		var png []byte
		step(t, ctx, "screenshot", 10*time.Second,
			pollTrue(`[...document.querySelectorAll('[data-field="power_text"]')].every(p => p.textContent.includes(" W"))`),
			chromedp.Click(`#density`, chromedp.ByQuery),
			chromedp.Evaluate(`document.getElementById("notice").hidden = true`, nil),
			chromedp.FullScreenshot(&png, 100),
			chromedp.Click(`#density`, chromedp.ByQuery),
		)
		if err := os.WriteFile(filepath.Join("..", "docs", "img", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A button press highlights the tile within a second.
	pressed := macs[3]
	pis[pressed].button.Press(topics.PressShort)
	t0 := time.Now()
	step(t, ctx, "see the pressed Pi highlighted", waitLimit,
		pollTrue(fmt.Sprintf(`document.querySelector('%s').dataset.selected === "true"`, tileSel(pressed))),
	)
	// The issue asks for a second; on a loaded 2-core CI machine under -race it is measured and
	// logged, and only an order of magnitude more fails the test.
	latency := time.Since(t0)
	t.Logf("latency: simulated button press to tile highlighted in Chromium = %v (target 1s; fails over 10s)", latency.Round(time.Millisecond))
	if latency > 10*time.Second {
		t.Fatalf("press took %v to show", latency)
	}

	// Locate makes the Pi's LED blink, and its tile says so.
	locate(t, ctx, pis[macs[10]])

	// A Pi that stops shows offline, in words and not by colour alone.
	gone := pis[macs[5]]
	gone.stop()
	var state string
	step(t, ctx, "see the stopped Pi offline", 10*time.Second,
		pollTrue(fmt.Sprintf(`document.querySelector('%s').dataset.state === "offline"`, tileSel(gone.mac))),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector('%s [data-field="state"]').textContent`, tileSel(gone.mac)), &state),
	)
	if state != "offline" {
		t.Fatalf("stopped Pi's state reads %q, want \"offline\"", state)
	}

	// Finding Pis: by name, then only the problems (the offline Pi and the selected one).
	findPis(t, ctx, "pi-r2-0", macs[perRow:2*perRow])
	problemsOnly(t, ctx, []string{pressed, gone.mac})

	// A board removed for good is forgotten: its tile goes, its slot stays, empty.
	forget(t, ctx, gone.mac, "r1", 6)

	phoneCheck(t, ctx, pis[macs[0]], rows*perRow-1)
}

// assignRow starts assign mode on a row, presses the Pis' buttons in the order given, checks
// that each took the next slot (and was not selected), and ends assign mode.
func assignRow(t *testing.T, ctx context.Context, row string, order []string, pis map[string]*pi) {
	t.Helper()
	sec := fmt.Sprintf(`section.row[data-row="%s"]`, row)
	step(t, ctx, "start assign mode on row "+row, 10*time.Second,
		chromedp.Click(sec+` button[data-action="assign"]`, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.querySelector('%s').dataset.assign === "on"`, sec)),
	)
	for i, mac := range order {
		pis[mac].button.Press(topics.PressShort)
		step(t, ctx, fmt.Sprintf("see %s take slot %d", mac, i+1), waitLimit,
			pollTrue(fmt.Sprintf(`document.querySelector('%s').dataset.slot === "%d"`, tileSel(mac), i+1)),
		)
	}
	var got []string
	var selected int
	step(t, ctx, "end assign mode on row "+row, 10*time.Second,
		chromedp.Click(sec+` button[data-action="assign-stop"]`, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.querySelector('%s').dataset.assign === ""`, sec)),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll('%s article.tile')].map(t => t.dataset.mac + " " + t.querySelector('[data-field="slot"]').textContent)`, sec), &got),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll('%s article.tile[data-selected="true"]').length`, sec), &selected),
	)
	for i, mac := range order {
		if want := fmt.Sprintf("%s #%d", mac, i+1); i >= len(got) || got[i] != want {
			t.Fatalf("row %s reads %q; want %q at position %d", row, got, want, i)
		}
	}
	if selected != 0 {
		t.Errorf("row %s: %d tiles selected by assign-mode presses, want none", row, selected)
	}
}

// visibleTiles is a script listing the MACs of the tiles shown, in page order.
const visibleTiles = `[...document.querySelectorAll("article.tile")].filter(t => t.getClientRects().length > 0).map(t => t.dataset.mac)`

// findPis types into the filter and checks that exactly want's tiles stay shown, then clears it.
func findPis(t *testing.T, ctx context.Context, query string, want []string) {
	t.Helper()
	var shown []string
	var count string
	step(t, ctx, "find "+query, 10*time.Second,
		chromedp.SendKeys(`#filter`, query, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.getElementById("match-count").textContent.startsWith("%d of ")`, len(want))),
		chromedp.Evaluate(visibleTiles, &shown),
		chromedp.Evaluate(`document.getElementById("match-count").textContent`, &count),
		chromedp.Evaluate(`(f => { f.value = ""; f.dispatchEvent(new Event("input")); })(document.getElementById("filter"))`, nil),
		pollTrue(`document.getElementById("match-count").textContent === ""`),
	)
	if !slices.Equal(shown, want) {
		t.Fatalf("finding %q shows %q (%s), want %q", query, shown, count, want)
	}
}

// problemsOnly shows only the Pis that need a look and checks they are exactly want, in any order.
func problemsOnly(t *testing.T, ctx context.Context, want []string) {
	t.Helper()
	var shown []string
	step(t, ctx, "show problems only", 10*time.Second,
		chromedp.Click(`#problems`, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.getElementById("match-count").textContent.startsWith("%d of ")`, len(want))),
		chromedp.Evaluate(visibleTiles, &shown),
		chromedp.Click(`#problems`, chromedp.ByQuery),
		pollTrue(`document.getElementById("match-count").textContent === ""`),
	)
	slices.Sort(shown)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(shown, want) {
		t.Fatalf("problems only shows %q, want %q", shown, want)
	}
}

// nameSlot names a Pi's slot through its Slot… dialog and sees the name on the tile.
func nameSlot(t *testing.T, ctx context.Context, mac, name string) {
	t.Helper()
	sel := tileSel(mac)
	step(t, ctx, "name the slot of "+mac, 10*time.Second,
		chromedp.Click(sel+` button[data-action="edit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#edit-dialog input[name="name"]`, chromedp.ByQuery),
		chromedp.SetValue(`#edit-dialog input[name="name"]`, name, chromedp.ByQuery),
		chromedp.Click(`#edit-dialog button[value="save"]`, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.querySelector('%s [data-field="slot_name"]').textContent === %q`, sel, name)),
	)
}

// compactView switches to compact tiles and back: every tile stays, each much shorter.
func compactView(t *testing.T, ctx context.Context, tiles int) {
	t.Helper()
	var full, compact float64
	var shown int
	height := `document.querySelector("article.tile").getBoundingClientRect().height`
	step(t, ctx, "switch to compact tiles and back", 10*time.Second,
		chromedp.Evaluate(height, &full),
		chromedp.Click(`#density`, chromedp.ByQuery),
		pollTrue(`document.body.dataset.density === "compact"`),
		chromedp.Evaluate(height, &compact),
		chromedp.Evaluate(`[...document.querySelectorAll("article.tile")].filter(t => t.getBoundingClientRect().height > 0).length`, &shown),
		chromedp.Click(`#density`, chromedp.ByQuery),
		pollTrue(`document.body.dataset.density === ""`),
	)
	if shown != tiles || compact <= 0 || compact > full*0.6 {
		t.Errorf("compact view: %d of %d tiles shown, %.0f px high against %.0f px; want all, at most 60%% as high", shown, tiles, compact, full)
	}
}

// forget forgets an offline Pi through its Slot… dialog: its tile goes, its slot is drawn empty.
func forget(t *testing.T, ctx context.Context, mac, row string, slot int) {
	t.Helper()
	sel := tileSel(mac)
	step(t, ctx, "forget "+mac, 10*time.Second,
		chromedp.Click(sel+` button[data-action="edit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#edit-dialog button[value="forget"]`, chromedp.ByQuery),
		chromedp.Click(`#edit-dialog button[value="forget"]`, chromedp.ByQuery),
		pollTrue(fmt.Sprintf(`document.querySelector('%s') === null && document.querySelector('section.row[data-row="%s"] .slot-empty[data-slot="%d"]') !== null`, sel, row, slot)),
	)
}

// phoneWidth and phoneHeight are a small phone's viewport in CSS pixels, held upright.
const phoneWidth, phoneHeight = 400, 800

// phoneCheck reloads the rack on a phone-sized screen and checks an operator can still use it:
// nothing scrolls sideways, every tile fits the width with its text readable and unclipped,
// and a Locate button is visible, on top, and works. With -screenshot it saves the first
// screen for the README.
func phoneCheck(t *testing.T, ctx context.Context, p *pi, tiles int) {
	t.Helper()
	step(t, ctx, "open the rack on a phone", 20*time.Second,
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulatePortrait),
		chromedp.Reload(),
		pollTrue(fmt.Sprintf(`document.querySelectorAll("article.tile").length === %d && document.getElementById("live").dataset.live === "on"`, tiles)),
	)
	if *updateScreenshot {
		var png []byte
		step(t, ctx, "phone screenshot", 10*time.Second,
			chromedp.Evaluate(`window.scrollTo(0, 0)`, nil),
			chromedp.CaptureScreenshot(&png),
		)
		if err := os.WriteFile(filepath.Join("..", "docs", "img", "dashboard-phone.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var got phoneLayout
	step(t, ctx, "measure the phone layout", 5*time.Second,
		chromedp.Evaluate(fmt.Sprintf(phoneLayoutJS, tileSel(p.mac)+` button[data-action="blink"]`), &got),
	)
	if got.InnerWidth != phoneWidth || got.ScrollWidth > phoneWidth {
		t.Errorf("page is %d px wide in a %d px viewport (window.innerWidth %d): it scrolls sideways on a phone",
			got.ScrollWidth, phoneWidth, got.InnerWidth)
	}
	if len(got.Tiles) != tiles {
		t.Fatalf("measured %d tiles, want %d", len(got.Tiles), tiles)
	}
	// One tile per line on a phone, using most of the width: the layout gives 362 px of 400.
	const minTileWidth = 0.75 * phoneWidth
	var outside []string
	for _, tl := range got.Tiles {
		if tl.Left < 0 || tl.Right > phoneWidth || tl.Width < minTileWidth {
			outside = append(outside, fmt.Sprintf("%s at x %.0f-%.0f", tl.MAC, tl.Left, tl.Right))
		}
	}
	someErrors(t, fmt.Sprintf("tiles not inside the %d px screen or narrower than %.0f px", phoneWidth, minTileWidth), outside)
	someErrors(t, "text clipped or overflowing its box on a phone", got.Clipped)
	someErrors(t, "text under 12 px on a phone", got.Small)
	b := got.Locate
	if !b.OnTop || b.Left < 0 || b.Right > phoneWidth || b.Top < 0 || b.Bottom > phoneHeight || b.Width < 44 || b.Height < 24 {
		t.Errorf("Locate button of %s on a phone: %+v; want it inside the screen, on top and at least 44 x 24 px", p.mac, b)
	}
	locate(t, ctx, p)
}

// someErrors fails the test with the first few of a list of problems, and how many there are.
func someErrors(t *testing.T, what string, problems []string) {
	t.Helper()
	const shown = 3
	if len(problems) > shown {
		problems = append(problems[:shown:shown], fmt.Sprintf("and %d more", len(problems)-shown))
	}
	if len(problems) > 0 {
		t.Errorf("%s: %s", what, strings.Join(problems, "; "))
	}
}

// phoneLayout is what phoneLayoutJS measures, in CSS pixels (JSON keys match the fields).
type phoneLayout struct {
	InnerWidth, ScrollWidth int
	Tiles                   []struct {
		MAC                string
		Left, Right, Width float64
	}
	Clipped, Small []string // "<mac> <tag>: <text>" of each offending element
	Locate         struct {
		Left, Right, Top, Bottom, Width, Height float64
		OnTop                                   bool // what a tap at its centre hits
	}
}

// phoneLayoutJS measures the page for phoneCheck; %s is the selector of the Locate button to
// bring into view. Only the stable hooks are used: tiles, their data-mac, and data-action.
const phoneLayoutJS = `(() => {
  const out = {innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    tiles: [], clipped: [], small: []};
  for (const t of document.querySelectorAll("article.tile")) {
    const r = t.getBoundingClientRect();
    out.tiles.push({mac: t.dataset.mac, left: r.left, right: r.right, width: r.width});
    for (const el of [t, ...t.querySelectorAll("*")]) {
      if (el.closest("[hidden]") || getComputedStyle(el).display === "inline" || el.clientWidth === 0) continue;
      const what = () => t.dataset.mac + " " + el.tagName.toLowerCase() + ": " + el.textContent.trim().slice(0, 40);
      if (el.scrollWidth > el.clientWidth + 1) out.clipped.push(what() + " (" + el.scrollWidth + " px in " + el.clientWidth + ")");
      if (el.textContent.trim() && parseFloat(getComputedStyle(el).fontSize) < 12) out.small.push(what() + " (" + getComputedStyle(el).fontSize + ")");
    }
  }
  const b = document.querySelector(%q);
  b.scrollIntoView({block: "center"});
  const r = b.getBoundingClientRect();
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  out.locate = {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height,
    onTop: !!hit && (hit === b || b.contains(hit))};
  return out;
})()`

// ledWatchJS records, from now on, each LED state the tile %[1]s shows together with its LED
// dot's animation at that moment, in window.pirackLEDSeen[%[1]s]. A blink lasts a few seconds;
// polling alone could miss it on a loaded machine, a MutationObserver cannot.
const ledWatchJS = `(() => {
  const sel = %[1]q, seen = [];
  const look = () => {
    const tile = document.querySelector(sel);
    if (!tile) return;
    const dot = tile.querySelector(".led-dot");
    const s = {led: tile.dataset.led, anim: dot ? getComputedStyle(dot).animationName : "no LED dot"};
    const last = seen[seen.length - 1];
    if (!last || last.led !== s.led || last.anim !== s.anim) seen.push(s);
  };
  look();
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-led"]});
  (window.pirackLEDSeen ||= {})[sel] = seen;
})()`

// locate clicks a tile's Locate button and follows the command through: the Pi's LED really
// blinks (all its flashes) and goes off again, and the tile shows data-led="blinking" with an
// animated LED dot while it does, then "off" with the dot still.
func locate(t *testing.T, ctx context.Context, p *pi) {
	t.Helper()
	sel := tileSel(p.mac)
	changes, stopWatch := p.led.Watch()
	defer stopWatch()
	flashes := p.led.Transitions()
	step(t, ctx, "click Locate on "+p.mac, 5*time.Second,
		chromedp.Evaluate(fmt.Sprintf(ledWatchJS, sel), nil),
		chromedp.Click(sel+` button[data-action="blink"]`, chromedp.ByQuery),
	)
	deadline := time.After(waitLimit)
	for _, want := range []bool{true, false} {
		for on := !want; on != want; {
			select {
			case on = <-changes:
			case <-deadline:
				t.Fatalf("Locate clicked, but %s's LED did not turn %v within %v", p.mac, map[bool]string{true: "on", false: "off"}[want], waitLimit)
			}
		}
	}

	seenExpr := fmt.Sprintf(`window.pirackLEDSeen[%q]`, sel)
	var seen []struct{ LED, Anim string }
	step(t, ctx, "see "+p.mac+"'s tile blink, then stop", waitLimit,
		pollTrue(fmt.Sprintf(`((s) => s.some((x) => x.led === "blinking") && s[s.length - 1].led === "off")(%s)`, seenExpr)),
		chromedp.Evaluate(seenExpr, &seen),
	)
	for _, s := range seen {
		if s.LED == "blinking" && (s.Anim == "none" || s.Anim == "no LED dot") {
			t.Errorf("tile %s shows data-led=\"blinking\" but its LED dot is still (animation %q); seen: %+v", p.mac, s.Anim, seen)
		}
	}
	if last := seen[len(seen)-1]; last.Anim != "none" {
		t.Errorf("tile %s shows data-led=\"off\" with its LED dot animated (%q)", p.mac, last.Anim)
	}
	// The agent reports "off" only after the last flash, so the count is complete by now.
	if got := p.led.Transitions() - flashes; got != topics.DefaultBlinkCount || p.led.On() {
		t.Errorf("Locate flashed %s's LED %d times and left it on=%v; want %d flashes and off", p.mac, got, p.led.On(), topics.DefaultBlinkCount)
	}
}

// heldRequests holds back the page's requests that a test picks, so that their answers can be
// made to arrive late and out of order, as on a slow link.
type heldRequests struct {
	ctx  context.Context
	mu   sync.Mutex
	held []fetch.RequestID
}

// holdRequests intercepts the requests matching pattern (the wildcards of the DevTools Fetch
// domain): those for which hold is true wait for release, the others go on at once.
func holdRequests(t testing.TB, ctx context.Context, pattern string, hold func(url string) bool) *heldRequests {
	t.Helper()
	h := &heldRequests{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		e, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		if hold(e.Request.URL) {
			h.mu.Lock()
			h.held = append(h.held, e.RequestID)
			h.mu.Unlock()
			return
		}
		go chromedp.Run(ctx, fetch.ContinueRequest(e.RequestID)) // not from the listener: it would wait on itself
	})
	if err := chromedp.Run(ctx, fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: pattern}})); err != nil {
		t.Fatal(err)
	}
	return h
}

// release lets the requests held so far go on, and says how many there were.
func (h *heldRequests) release(t testing.TB) int {
	t.Helper()
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, id := range held {
		if err := chromedp.Run(h.ctx, fetch.ContinueRequest(id)); err != nil {
			t.Fatalf("let a held request go: %v", err)
		}
	}
	return len(held)
}
