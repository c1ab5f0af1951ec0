package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/enroll/enrollapi"
	"github.com/pirack/pirack/hardware/sim"
)

// An operator in Chromium sees an enrolled Pi waiting for approval and approves it, reads the
// broker's refusals as plain text under "Not in the rack", and changes their own password.
func TestBrowserApproveRefusedPassword(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)

	const mac = "b827eb00e0a1"
	p := &pi{mac: mac, row: "r1", password: auth.GeneratePassword(), led: new(sim.LED), button: new(sim.Button)}
	r.addUser(t, auth.User{Role: auth.RoleAgent, MAC: mac, Row: "r1", Pending: true}, p.password)
	r.runPi(t, p, r.mqttAddr)

	// A client with a hostile user name knocks, before the page loads its panel.
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.mqttAddr).SetClientID("knock").
		SetUsername(hostileHostname).SetPassword("nope-nope").SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); tok.WaitTimeout(waitLimit) && tok.Error() == nil {
		t.Fatal("the broker let an unknown user in")
	}

	logIn(t, ctx, r.url)
	sel := tileSel(mac)
	step(t, ctx, "the enrolled Pi waits for approval", waitLimit,
		chromedp.WaitVisible(sel+` [data-field="pending"]`, chromedp.ByQuery),
		pollTrue(`document.querySelector('`+sel+`').dataset.pending === "true"`),
	)
	var refused string
	var imgs int
	step(t, ctx, "the refusal is listed as text", waitLimit,
		chromedp.WaitVisible(`#joining li[data-kind="refused"]`, chromedp.ByQuery),
		chromedp.Text(`#joining li[data-kind="refused"]`, &refused, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#joining img").length`, &imgs),
	)
	if !strings.Contains(refused, hostileHostname) || !strings.Contains(refused, "unknown user") || imgs != 0 {
		t.Fatalf("refused entry %q, %d img elements", refused, imgs)
	}

	step(t, ctx, "approve it", waitLimit,
		chromedp.Click(sel+` button[data-action="approve"]`, chromedp.ByQuery),
		pollTrue(`document.querySelector('`+sel+`').dataset.pending === "false"`),
		pollTrue(`document.querySelector('`+sel+` [data-field="slot"]').textContent === "#1"`),
	)
	if u, _ := r.users.Get(mac); u.Pending {
		t.Fatal("approved on the page, still pending in the users file")
	}

	const newPassword = "a-new-admin-password"
	var said string
	step(t, ctx, "change my password", waitLimit,
		chromedp.Click(`#password-open`, chromedp.ByQuery),
		chromedp.WaitVisible(`#password-dialog input[name="current"]`, chromedp.ByQuery),
		chromedp.SendKeys(`#password-dialog input[name="current"]`, adminPassword, chromedp.ByQuery),
		chromedp.SendKeys(`#password-dialog input[name="new"]`, newPassword, chromedp.ByQuery),
		chromedp.SendKeys(`#password-dialog input[name="again"]`, newPassword, chromedp.ByQuery),
		chromedp.Click(`#password-dialog button[value="save"]`, chromedp.ByQuery),
		pollTrue(`document.getElementById("password-result").textContent === "Password changed."`),
		chromedp.Text(`#password-result`, &said, chromedp.ByQuery),
	)
	var status int
	step(t, ctx, "still signed in after the change", waitLimit,
		chromedp.Evaluate(`fetch("/api/stats", {credentials: "same-origin"}).then((r) => r.status)`, &status, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}),
	)
	if status != 200 {
		t.Fatalf("after changing the password, the page's session gets %d", status)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := r.users.Authenticate(adminUser, newPassword); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page said %q, but the new password does not work", said)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// "Add a Pi" on the page issues a token that enrols a new Pi of the chosen row (traded over
// HTTP as pirack-agent enroll does), and "Locate selected" locates every selected Pi.
func TestBrowserAddAPiAndLocateSelected(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	a := r.startPi(t, "b827eb00e0b1", "r1", r.mqttAddr)
	b := r.startPi(t, "b827eb00e0b2", "r1", r.mqttAddr)
	for _, p := range []*pi{a, b} {
		r.awaitNode(t, p.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	logIn(t, ctx, r.url)
	var command string
	step(t, ctx, "issue a token for row r2", waitLimit,
		chromedp.Click(`#enrol-open`, chromedp.ByQuery),
		chromedp.WaitVisible(`#enrol-dialog input[name="row"]`, chromedp.ByQuery),
		chromedp.SetValue(`#enrol-dialog input[name="row"]`, "r2", chromedp.ByQuery),
		chromedp.Click(`#enrol-dialog button[value="issue"]`, chromedp.ByQuery),
		pollTrue(`document.getElementById("enrol-command").textContent.startsWith("sudo pirack-agent enroll ")`),
		chromedp.Text(`#enrol-command`, &command, chromedp.ByQuery),
		chromedp.Click(`#enrol-cancel`, chromedp.ByQuery),
	)
	f := strings.Fields(command) // sudo pirack-agent enroll <url> <token>
	base, err := url.Parse(f[3])
	if err != nil {
		t.Fatalf("command %q: %v", command, err)
	}
	acct, err := enrollapi.Enrol(t.Context(), http.DefaultClient, base, enrollapi.Request{Token: f[4], MAC: "b827eb00e0c1"})
	if err != nil || acct.Row != "r2" {
		t.Fatalf("enrol with the page's token: %+v %v", acct, err)
	}
	if u, ok := r.users.Get("b827eb00e0c1"); !ok || !u.Pending || u.Row != "r2" {
		t.Fatalf("the enrolled account: %+v %v", u, ok)
	}
	// A token lets a Pi join the rack: its issue is in the audit log, with who and for which row.
	var entries []dashboard.AuditEntry
	if code := r.getJSON(t, "/api/audit", &entries); code != 200 {
		t.Fatalf("GET /api/audit: %d", code)
	}
	if !slices.ContainsFunc(entries, func(e dashboard.AuditEntry) bool {
		return e.Action == dashboard.AuditToken && e.Outcome == dashboard.AuditAllowed && e.User == adminUser && e.Params["row"] == "r2"
	}) {
		t.Errorf("no audit entry for the token issued from the page: %+v", entries)
	}

	a.button.Press("short")
	b.button.Press("short")
	step(t, ctx, "locate the selected Pis", waitLimit,
		pollTrue(`!document.getElementById("locate-selected").hidden`),
		pollTrue(`document.querySelector('`+tileSel(b.mac)+`').dataset.selected === "true"`),
		chromedp.Click(`#locate-selected`, chromedp.ByQuery),
		pollTrue(`["`+a.mac+`", "`+b.mac+`"].every((m) => document.querySelector('article.tile[data-mac="' + m + '"] [data-field="locate"]').textContent.startsWith("Locating for admin"))`),
	)
}
