package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/pirack/pirack/powerctl"
	"github.com/pirack/pirack/topics"
)

// fakePower has a switch for row rowA and for macA; switching fails with fail when set.
type fakePower struct {
	fail     error
	switched []string
}

func (f *fakePower) Row(row string) (powerctl.State, bool) {
	return powerctl.State{Via: "tasmota"}, row == rowA
}
func (f *fakePower) Pi(mac string) (powerctl.State, bool) {
	return powerctl.State{Via: "uhubctl"}, mac == macA
}
func (f *fakePower) SwitchRow(_ context.Context, row, action string) (powerctl.State, error) {
	f.switched = append(f.switched, row+" "+action)
	on := action != powerctl.Off
	return powerctl.State{Via: "tasmota", On: &on}, f.fail
}
func (f *fakePower) SwitchPi(_ context.Context, mac, action string) (powerctl.State, error) {
	f.switched = append(f.switched, mac+" "+action)
	on := action != powerctl.Off
	return powerctl.State{Via: "uhubctl", On: &on}, f.fail
}

// The power endpoints: admins only, the name typed to switch off or cycle (not to switch on),
// only where there is a switch, a failure reported with the switch's own words; every attempt
// audited, refusals and failures too. The row and the node say they have a switch.
func TestPowerAPI(t *testing.T) {
	power := &fakePower{}
	f := newFixture(t, func(c *Config) { c.Power, c.AuditDir = power, t.TempDir() })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s"))
	admin, viewer := f.login(t, "admin", "admin-pw"), f.login(t, "viewer", "viewer-pw")
	for _, c := range []struct {
		who        *http.Cookie
		path, body string
		code       int
		say        string
	}{
		{viewer, "/api/rows/" + rowA + "/power", `{"action":"cycle","confirm":"` + rowA + `"}`, http.StatusForbidden, ""},
		{admin, "/api/rows/" + rowA + "/power", `{"action":"cycle","confirm":"nope"}`, http.StatusBadRequest, `confirm must repeat "` + rowA + `"`},
		{admin, "/api/rows/" + rowA + "/power", `{"action":"explode","confirm":"` + rowA + `"}`, http.StatusBadRequest, "want on, off or cycle"},
		{admin, "/api/rows/other/power", `{"action":"on"}`, http.StatusNotFound, "has no power switch"},
		{admin, "/api/nodes/" + macB + "/power", `{"action":"on"}`, http.StatusNotFound, "has no power switch"},
		{admin, "/api/rows/" + rowA + "/power", `{"action":"on"}`, http.StatusOK, ""},
		{admin, "/api/nodes/" + macA + "/power", `{"action":"cycle","confirm":"pi-a"}`, http.StatusOK, ""},
	} {
		w := f.do(t, "POST", c.path, c.body, withCookie(c.who))
		if w.Code != c.code || (c.say != "" && !strings.Contains(jsonError(t, w), c.say)) {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.path, c.body, w.Code, w.Body, c.code, c.say)
		}
	}
	if got := strings.Join(power.switched, ", "); got != rowA+" on, "+macA+" cycle" {
		t.Errorf("switched: %s", got)
	}
	power.fail = errors.New("row r1: the tasmota plug did not report its relay off within 10s")
	w := f.do(t, "POST", "/api/rows/"+rowA+"/power", `{"action":"off","confirm":"`+rowA+`"}`, withCookie(admin))
	if w.Code != http.StatusBadGateway || !strings.Contains(jsonError(t, w), "did not report") {
		t.Errorf("a failed switch: %d %s", w.Code, w.Body)
	}
	entries, err := f.srv.audit.Tail(100)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range entries {
		if e.Action == AuditPower {
			outcomes = append(outcomes, e.Outcome)
		}
	}
	if got := strings.Join(outcomes, " "); got != "denied denied denied denied denied allowed allowed allowed failed" {
		t.Errorf("audited outcomes: %s", got)
	}
	if n, _ := f.rack.node(macA); n.PowerSwitch == nil || n.PowerSwitch.Via != "uhubctl" {
		t.Errorf("node: %+v", n.PowerSwitch)
	}
	if r, _ := f.rack.row(rowA); r.PowerSwitch == nil || r.PowerSwitch.Via != "tasmota" {
		t.Errorf("row: %+v", r.PowerSwitch)
	}
}
