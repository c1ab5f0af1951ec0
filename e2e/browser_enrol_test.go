package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
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
