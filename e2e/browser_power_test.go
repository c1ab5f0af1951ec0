package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/powerctl/powerctltest"
)

// Power control from the page, on a control center whose power bridge file has a switchable
// Tasmota for row r1 and a Pi on a USB hub port: the row's Power… power-cycles the row through a
// fake Tasmota connected over real MQTT as the row's plug user (on the plug itself: one Backlog
// command), refusing a wrong name first; the Pi's Power… runs a fake uhubctl on PATH. Both are
// audited. A row without a switch offers no Power….
func TestBrowserPowerControl(t *testing.T) {
	uhubctl, calls := powerctltest.FakeUhubctl(t, false)
	t.Setenv("PATH", filepath.Dir(uhubctl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	const hung = "b827eb00d0a2"
	r := newRig(t, func(t *testing.T, r *rig) {
		file := `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR","switch":true}],
			"ports":[{"mac":"` + hung + `","hub":"1-1","port":2}]}`
		if err := os.WriteFile(filepath.Join(r.dir, "power-bridge.json"), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	r.addUser(t, auth.User{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"}, "plug-password-1")
	commands := make(chan string, 10)
	plug := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + r.mqttAddr).SetClientID("tasmota-r1").
		SetUsername("plug-r1").SetPassword("plug-password-1").SetProtocolVersion(4))
	if tok := plug.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("plug connect: %v", tok.Error())
	}
	defer plug.Disconnect(0)
	if tok := plug.Subscribe("cmnd/rack-r1/#", 1, func(c paho.Client, m paho.Message) {
		commands <- m.Topic() + " " + string(m.Payload())
		go func() { // Tasmota runs the Backlog: off, then on after the delay
			c.Publish("stat/rack-r1/POWER", 1, false, "OFF").WaitTimeout(waitLimit)
			c.Publish("stat/rack-r1/POWER", 1, false, "ON").WaitTimeout(waitLimit)
		}()
	}); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("plug subscribe: %v", tok.Error())
	}
	p := r.startPi(t, hung, "r1", r.mqttAddr)
	other := r.startPi(t, "b827eb00d0b1", "r2", r.mqttAddr)
	for _, x := range []*pi{p, other} {
		r.awaitNode(t, x.mac, "online", func(n dashboard.Node) bool { return n.State == dashboard.StateOnline })
	}
	ctx := browser(t)
	logIn(t, ctx, r.url)

	rowHead := `section.row[data-row="r1"]`
	result := `document.getElementById("power-result").textContent`
	step(t, ctx, "a wrong name is refused", waitLimit,
		chromedp.WaitVisible(rowHead+` button[data-action="row-power"]`, chromedp.ByQuery),
		chromedp.Click(rowHead+` button[data-action="row-power"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#power-dialog input[name="confirm"]`, chromedp.ByQuery),
		chromedp.SendKeys(`#power-dialog input[name="confirm"]`, "r2", chromedp.ByQuery),
		chromedp.Click(`#power-dialog button[value="cycle"]`, chromedp.ByQuery),
		pollTrue(result+`.startsWith("confirm must repeat \"r1\"")`),
	)
	select {
	case c := <-commands:
		t.Fatalf("a refused cycle reached the plug: %s", c)
	default:
	}
	step(t, ctx, "the row's plug power-cycles", waitLimit,
		chromedp.SetValue(`#power-dialog input[name="confirm"]`, "r1", chromedp.ByQuery),
		chromedp.Click(`#power-dialog button[value="cycle"]`, chromedp.ByQuery),
		pollTrue(result+` === "Done: the power is on (tasmota)."`),
	)
	if c := <-commands; c != "cmnd/rack-r1/Backlog Power 0; Delay 50; Power 1" {
		t.Fatalf("the plug got %q", c)
	}
	step(t, ctx, "the row says its plug is on; r2 has no Power…", waitLimit,
		pollTrue(`document.querySelector('`+rowHead+` [data-field="switch_state"]').textContent === "\u00b7 plug on"`),
		pollTrue(`document.querySelector('section.row[data-row="r2"] button[data-action="row-power"]').hidden`),
		pollTrue(`document.querySelector('`+tileSel(other.mac)+` button[data-action="power"]').hidden`),
	)

	sel := tileSel(p.mac)
	step(t, ctx, "the Pi's hub port power-cycles", waitLimit,
		pollTrue(`document.getElementById("power-dialog").open === false`),
		chromedp.Click(sel+` button[data-action="power"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#power-dialog input[name="confirm"]`, chromedp.ByQuery),
		chromedp.SendKeys(`#power-dialog input[name="confirm"]`, "pi-"+p.mac[8:], chromedp.ByQuery),
		chromedp.Click(`#power-dialog button[value="cycle"]`, chromedp.ByQuery),
		pollTrue(result+` === "Done: the power is on (uhubctl)."`),
	)
	b, err := os.ReadFile(calls)
	if err != nil || string(b) != "-l 1-1 -p 2 -a cycle -d 5\n" {
		t.Fatalf("uhubctl ran with %q (%v)", b, err)
	}

	var entries []dashboard.AuditEntry
	if code := r.getJSON(t, "/api/audit", &entries); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var outcomes []string
	for _, e := range entries {
		if e.Action == dashboard.AuditPower {
			outcomes = append(outcomes, e.Outcome+" "+e.MAC)
		}
	}
	if got := strings.Join(outcomes, ", "); got != "denied , allowed , allowed "+p.mac {
		t.Errorf("power audit entries: %s", got)
	}
}
