package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// A press while the Pi blinks for a Locate marks it found: the node says who asked, when it
// was found and how long that took, and the tile says so.
func TestLocateThenFound(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	c := f.login(t, "admin", "admin-pw")
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/locate", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("locate: %d %s", w.Code, w.Body)
	}
	n, _ := f.rack.node(macA)
	if n.Locate == nil || n.Locate.By != "admin" || !n.Locate.At.Equal(t0) || !n.Locate.FoundAt.IsZero() {
		t.Fatalf("after Locate: %+v, want by admin at t0, not found", n.Locate)
	}

	// A press without found (the operator pressed before the blink, say) changes nothing.
	f.clock.Advance(10 * time.Second)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	if n, _ := f.rack.node(macA); !n.Locate.FoundAt.IsZero() {
		t.Fatalf("a press without found marked the Pi found: %+v", n.Locate)
	}

	f.clock.Advance(32 * time.Second)
	found := press(2)
	found.Found = true
	f.publish(t, topics.ButtonTopic(rowA, macA), found)
	n, _ = f.rack.node(macA)
	if n.Locate == nil || !n.Locate.FoundAt.Equal(t0.Add(42*time.Second)) || n.Locate.FoundAfterS != 42 {
		t.Fatalf("after the found press: %+v, want found 42 s after the Locate", n.Locate)
	}
	page := f.do(t, "GET", "/", "", withCookie(c)).Body.String()
	if !strings.Contains(page, "Found at the rack 42 s after admin&#39;s Locate") {
		t.Errorf("the tile does not say the Pi was found and how long it took")
	}
}

// Locate as a job: identify until found (at most an hour), Stop (the LED goes off and the note
// goes), a locate that runs out says so and its note goes after locateKeep, a whole row at once
// (offline Pis skipped), and viewers may not.
func TestLocateJob(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s"))
	c := f.login(t, "admin", "admin-pw")
	sent := func() topics.LEDCommand {
		t.Helper()
		msgs := f.bus.Published()
		cmd, err := topics.ParseLEDCommand(msgs[len(msgs)-1].Payload)
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	if w := f.do(t, "POST", "/api/nodes/"+macA+"/locate", `{"for_s": 4000}`, withCookie(c)); w.Code != http.StatusBadRequest {
		t.Fatalf("for_s over an hour: %d", w.Code)
	}
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/locate", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("locate: %d %s", w.Code, w.Body)
	}
	if cmd := sent(); cmd.Action != topics.LEDIdentify || cmd.TimeoutS != 3600 || cmd.By != "admin" {
		t.Fatalf("sent %+v, want identify for 3600 s by admin", cmd)
	}
	if n, _ := f.rack.node(macA); !n.Locate.running() || locateText(n.Locate) != "Locating for admin: press its button when found" {
		t.Fatalf("while locating: %+v %q", n.Locate, locateText(n.Locate))
	}

	// Stop: an off command, and the note goes.
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/locate/stop", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("stop: %d %s", w.Code, w.Body)
	}
	if cmd := sent(); cmd.Action != topics.LEDOff {
		t.Fatalf("stop sent %+v, want off", cmd)
	}
	if n, _ := f.rack.node(macA); n.Locate != nil {
		t.Fatalf("after Stop the note stays: %+v", n.Locate)
	}

	// A locate whose LED stops by itself ran out.
	f.do(t, "POST", "/api/nodes/"+macA+"/locate", `{"for_s": 60}`, withCookie(c))
	f.publish(t, topics.LEDStateTopic(rowA, macA), topics.LEDState{V: 1, TS: t0.Add(time.Second), State: topics.LEDStateBlinking, Action: topics.LEDIdentify, By: "admin"})
	f.clock.Advance(61 * time.Second)
	f.publish(t, topics.LEDStateTopic(rowA, macA), topics.LEDState{V: 1, TS: t0.Add(61 * time.Second), State: topics.LEDStateOff})
	n, _ := f.rack.node(macA)
	if got := locateText(n.Locate); got != "admin's Locate ran out after 1 min 1 s, not found" {
		t.Fatalf("ran out: %q (%+v)", got, n.Locate)
	}
	f.clock.Advance(locateKeep)
	f.rack.tick()
	if n, _ := f.rack.node(macA); n.Locate != nil {
		t.Fatalf("an ended locate's note outlived locateKeep: %+v", n.Locate)
	}

	// A whole row: online Pis only.
	f.publish(t, topics.StatusTopic(rowA, macB), statusTS(offline("s"), t0.Add(time.Hour)))
	w := f.do(t, "POST", "/api/rows/"+rowA+"/locate", "", withCookie(c))
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"sent":["`+macA+`"]`) || !strings.Contains(w.Body.String(), `"offline":["`+macB+`"]`) {
		t.Fatalf("row locate: %d %s", w.Code, w.Body)
	}
	viewer := f.login(t, "viewer", "viewer-pw")
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/locate", "", withCookie(viewer)); w.Code != http.StatusForbidden {
		t.Fatalf("a viewer's locate: %d, want 403", w.Code)
	}
}

// A locate this dashboard did not start (pirack locate, Node-RED, or one running across a
// restart of the control center) is known from the Pi's LED report: the tile says who is
// locating it, and the press that finds it is timed from when the LED started. An identify
// already over (a replayed report) is not one.
func TestLocateFromElsewhere(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s"))
	f.publish(t, topics.LEDStateTopic(rowA, macB), topics.LEDState{V: 1, TS: t0.Add(-2 * time.Hour), State: topics.LEDStateBlinking,
		Action: topics.LEDIdentify, By: "alice", Until: t0.Add(-time.Hour)})
	if n, _ := f.rack.node(macB); n.Locate != nil {
		t.Fatalf("an identify over an hour ago made a locate: %+v", n.Locate)
	}

	f.publish(t, topics.LEDStateTopic(rowA, macA), topics.LEDState{V: 1, TS: t0, State: topics.LEDStateBlinking,
		Action: topics.LEDIdentify, By: "nodered", Until: t0.Add(10 * time.Minute)})
	n, _ := f.rack.node(macA)
	if !n.Locate.running() || locateText(n.Locate) != "Locating for nodered: press its button when found" {
		t.Fatalf("from the LED report: %+v %q", n.Locate, locateText(n.Locate))
	}
	f.clock.Advance(75 * time.Second)
	found := press(1)
	found.Found = true
	f.publish(t, topics.ButtonTopic(rowA, macA), found)
	if n, _ = f.rack.node(macA); n.Locate == nil || n.Locate.FoundAfterS != 75 {
		t.Fatalf("found: %+v, want 75 s after the LED started", n.Locate)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		42 * time.Second: "42 s", 3*time.Minute + 12*time.Second: "3 min 12 s", 5 * time.Minute: "5 min",
		time.Hour: "1 h", time.Hour + 5*time.Minute + 30*time.Second: "1 h 5 min", 499 * time.Millisecond: "0 s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// Selections clear themselves SelectionExpiry after their press, and all at once on request.
func TestSelectionsExpireAndClearAll(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SelectionExpiry = 10 * time.Minute })
	for _, mac := range []string{macA, macB} {
		f.publish(t, topics.StatusTopic(rowA, mac), online("pi", "s"))
	}
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	f.clock.Advance(5 * time.Minute)
	f.publish(t, topics.ButtonTopic(rowA, macB), press(1))
	f.clock.Advance(5*time.Minute + time.Second)
	f.rack.tick()
	if a, _ := f.rack.node(macA); a.Selected {
		t.Fatal("a selection outlived SelectionExpiry")
	}
	if b, _ := f.rack.node(macB); !b.Selected {
		t.Fatal("a younger selection was cleared too")
	}
	f.publish(t, topics.ButtonTopic(rowA, macA), press(2))
	c := f.login(t, "admin", "admin-pw")
	w := f.do(t, "POST", "/api/selection/clear", "", withCookie(c))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"cleared":2`) {
		t.Fatalf("clear all: %d %s", w.Code, w.Body)
	}
	for _, n := range f.rack.Nodes() {
		if n.Selected {
			t.Fatalf("%s still selected after clear all", n.MAC)
		}
	}
	if w := f.do(t, "POST", "/api/selection/clear", "", withCookie(f.login(t, "viewer", "viewer-pw"))); w.Code != http.StatusForbidden {
		t.Fatalf("a viewer's clear all: %d", w.Code)
	}
}

// Remote shutdown: refused, with a clear message and an audit entry, on a control center that
// does not allow it, to a viewer, without the Pi's name repeated; allowed, it publishes a
// command that expires within a minute.
func TestSystemCommandRefusals(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		dir := t.TempDir()
		f := newFixture(t, func(c *Config) { c.RemoteSystem = allowed; c.AuditDir = dir })
		f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
		admin := f.login(t, "admin", "admin-pw")
		body := `{"action": "shutdown", "confirm": "pi-a"}`
		if !allowed {
			w := f.do(t, "POST", "/api/nodes/"+macA+"/system", body, withCookie(admin))
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "remote shutdown and reboot are off on this control center") {
				t.Fatalf("disabled: %d %s", w.Code, w.Body)
			}
			if log := f.do(t, "GET", "/api/audit", "", withCookie(admin)).Body.String(); !strings.Contains(log, "remote shutdown and reboot are off") {
				t.Fatalf("the refusal is not audited:\n%s", log)
			}
			continue
		}
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/system", body, withCookie(f.login(t, "viewer", "viewer-pw"))); w.Code != http.StatusForbidden {
			t.Fatalf("a viewer's shutdown: %d", w.Code)
		}
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/system", `{"action": "shutdown", "confirm": "pi-b"}`, withCookie(admin)); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `confirm must repeat the Pi's name, \"pi-a\"`) {
			t.Fatalf("wrong confirmation: %d %s", w.Code, w.Body)
		}
		w := f.do(t, "POST", "/api/nodes/"+macA+"/system", body, withCookie(admin))
		if w.Code != http.StatusAccepted {
			t.Fatalf("allowed: %d %s", w.Code, w.Body)
		}
		msgs := f.bus.Published()
		last := msgs[len(msgs)-1]
		cmd, err := topics.DecodeSystemCommand(last.Payload)
		if err != nil || last.Topic != topics.SystemTopic(macA) || cmd.Action != topics.SystemShutdown || cmd.By != "admin" || cmd.ExpiresAt.Sub(cmd.IssuedAt) != time.Minute {
			t.Fatalf("published %s %+v %v", last.Topic, cmd, err)
		}
		log := f.do(t, "GET", "/api/audit", "", withCookie(admin)).Body.String()
		if strings.Count(log, `"action":"system"`) < 3 || !strings.Contains(log, "confirm must repeat") {
			t.Fatalf("the audit log lacks the refused and the allowed attempts:\n%s", log)
		}
	}
}
