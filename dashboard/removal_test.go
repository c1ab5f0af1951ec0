package dashboard

import (
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// removalFixture has macA (placed in slot 2 of rowA) and macB online, and an admin signed in.
func removalFixture(t *testing.T, remoteSystem bool) (*fixture, *http.Cookie) {
	t.Helper()
	f := newFixture(t, func(c *Config) { c.RemoteSystem = remoteSystem })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s"))
	c := f.login(t, "admin", "admin-pw")
	if w := f.do(t, "POST", "/api/rows/"+rowA+"/slots/2", `{"mac": "`+macA+`"}`, withCookie(c)); w.Code != http.StatusOK {
		t.Fatalf("place: %d %s", w.Code, w.Body)
	}
	return f, c
}

// removalOf returns macA's removal, waiting a little for the goroutine that sends a shutdown.
func (f *fixture) removal(t *testing.T, mac string, cond func(*Removal) bool) *Removal {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, _ := f.rack.node(mac)
		if cond(n.Removal) {
			return n.Removal
		}
		if time.Now().After(deadline) {
			t.Fatalf("removal of %s: %+v", mac, n.Removal)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// systemCommands returns the system commands published to mac.
func (f *fixture) systemCommands(mac string) []topics.SystemCommand {
	var out []topics.SystemCommand
	for _, m := range f.bus.Published() {
		if m.Topic == topics.SystemTopic(mac) {
			c, _ := topics.DecodeSystemCommand(m.Payload)
			out = append(out, c)
		}
	}
	return out
}

func found(seq uint64) topics.ButtonEvent {
	ev := press(seq)
	ev.Found = true
	return ev
}

// Without a power sensor: the press at the rack sends the shutdown in the admin's name, the
// clean stop starts the halt grace, after which the Pi is safe to pull; another board's press
// takes its slot. A viewer may not start a removal.
func TestRemovalWithoutPowerSensor(t *testing.T) {
	f, c := removalFixture(t, true)
	v := f.login(t, "viewer", "viewer-pw")
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(v)); w.Code != http.StatusForbidden {
		t.Fatalf("a viewer's removal: %d", w.Code)
	}
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("removal: %d %s", w.Code, w.Body)
	}
	x := f.removal(t, macA, func(x *Removal) bool { return x != nil && x.Step == RemovalLocate })
	if x.By != "admin" || x.Slot != 2 {
		t.Fatalf("started: %+v", x)
	}
	if n, _ := f.rack.node(macA); n.Locate == nil || n.Locate.Action != topics.LEDIdentify {
		t.Fatalf("no identify sent: %+v", n.Locate)
	}
	if len(f.systemCommands(macA)) != 0 {
		t.Fatal("shut down before the press at the rack")
	}

	f.publish(t, topics.ButtonTopic(rowA, macA), found(1))
	f.removal(t, macA, func(x *Removal) bool { return !x.ShutdownAt.IsZero() })
	cmds := f.systemCommands(macA)
	if len(cmds) != 1 || cmds[0].Action != topics.SystemShutdown || cmds[0].By != "admin" {
		t.Fatalf("system commands after the press: %+v", cmds)
	}
	if n, _ := f.rack.node(macA); n.Selected {
		t.Error("the confirming press also selected the Pi")
	}

	f.publish(t, topics.StatusTopic(rowA, macA), offline("s"))
	x = f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify })
	if !x.CleanStop || x.NeedsCheck || !strings.Contains(x.Note, "no power sensor") {
		t.Fatalf("after the clean stop: %+v", x)
	}
	f.clock.Advance(haltGrace - time.Second)
	f.rack.tick()
	f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify })
	f.clock.Advance(time.Second)
	f.rack.tick()
	x = f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalSafe })
	if !strings.Contains(x.Note, "slot 2") {
		t.Errorf("safe, but the note does not say which slot to fill: %q", x.Note)
	}

	f.publish(t, topics.ButtonTopic(rowA, macB), press(1))
	x = f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalReplaced })
	if x.Replacement != macB {
		t.Fatalf("replaced by %q", x.Replacement)
	}
	if n, _ := f.rack.node(macB); n.Slot != 2 || n.Previous != macA || n.Selected {
		t.Fatalf("the replacement: slot %d, previous %q, selected %v", n.Slot, n.Previous, n.Selected)
	}
	// Finished removals leave the tile after removalKeep.
	f.clock.Advance(removalKeep)
	f.rack.tick()
	f.removal(t, macA, func(x *Removal) bool { return x == nil })
}

// Doubt is never "safe": offline through a Will (a lost connection, not a shutdown) and a row
// power that does not drop both ask an operator to check at the rack; a Pi that comes back ends
// its removal; without --remote-system the press asks for a shutdown by hand and sends none.
func TestRemovalDoubtsAndManualShutdown(t *testing.T) {
	t.Run("lost connection", func(t *testing.T) {
		f, c := removalFixture(t, true)
		f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c))
		f.publish(t, topics.ButtonTopic(rowA, macA), found(1))
		f.removal(t, macA, func(x *Removal) bool { return !x.ShutdownAt.IsZero() })
		will := offline("s")
		will.TS = time.Time{}
		f.publish(t, topics.StatusTopic(rowA, macA), will)
		x := f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify })
		if !x.NeedsCheck || x.CleanStop {
			t.Fatalf("offline by its Will: %+v", x)
		}
		f.clock.Advance(time.Hour)
		f.rack.tick()
		f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify })
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal/off", "", withCookie(f.login(t, "viewer", "viewer-pw"))); w.Code != http.StatusForbidden {
			t.Fatalf("a viewer confirmed it off: %d", w.Code)
		}
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal/off", "", withCookie(c)); w.Code != http.StatusOK {
			t.Fatalf("confirm off: %d %s", w.Code, w.Body)
		}
		x = f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalSafe })
		if !strings.Contains(x.Note, "checked at the rack by admin") {
			t.Errorf("note: %q", x.Note)
		}
		// It comes back (someone plugged it in again): the removal ends.
		f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s2"))
		f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalEnded })
	})
	t.Run("power does not drop", func(t *testing.T) {
		f, c := removalFixture(t, true)
		w10 := 10.0
		f.publish(t, topics.PowerTopic(rowA), topics.Power{V: 1, TS: t0, Watts: &w10})
		f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c))
		f.publish(t, topics.ButtonTopic(rowA, macA), found(1))
		x := f.removal(t, macA, func(x *Removal) bool { return !x.ShutdownAt.IsZero() })
		if x.WattsBefore == nil || *x.WattsBefore != 10 || *x.ShareW != 5 {
			t.Fatalf("baseline: %+v", x)
		}
		f.publish(t, topics.StatusTopic(rowA, macA), offline("s"))
		f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify })
		f.clock.Advance(haltGrace)
		f.rack.tick() // the grace is for Pis without a sensor
		f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify && !x.NeedsCheck })
		f.clock.Advance(powerDropWait)
		f.rack.tick()
		x = f.removal(t, macA, func(x *Removal) bool { return x.NeedsCheck })
		if x.Step != RemovalVerify || !strings.Contains(x.Note, "did not drop") {
			t.Fatalf("no drop: %+v", x)
		}
	})
	t.Run("remote shutdown off", func(t *testing.T) {
		f, c := removalFixture(t, false)
		f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c))
		f.publish(t, topics.ButtonTopic(rowA, macA), found(1))
		x := f.removal(t, macA, func(x *Removal) bool { return strings.Contains(x.Note, "shut it down yourself") })
		if x.Step != RemovalShutdown || len(f.systemCommands(macA)) != 0 {
			t.Fatalf("without --remote-system: %+v, %d commands", x, len(f.systemCommands(macA)))
		}
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal/cancel", "", withCookie(c)); w.Code != http.StatusOK {
			t.Fatalf("cancel: %d %s", w.Code, w.Body)
		}
		f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalEnded && strings.Contains(x.Note, "cancelled by admin") })
	})
	t.Run("the agent refuses", func(t *testing.T) {
		f, c := removalFixture(t, true)
		f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c))
		f.publish(t, topics.ButtonTopic(rowA, macA), found(1))
		f.removal(t, macA, func(x *Removal) bool { return !x.ShutdownAt.IsZero() })
		cmd := f.systemCommands(macA)[0]
		res := topics.SystemResult{V: 1, TS: t0, Action: cmd.Action, By: cmd.By, Outcome: topics.SystemRefused, Reason: "made up"}
		res.IssuedAt = cmd.IssuedAt.Add(time.Second) // a command this control center never sent
		f.publish(t, topics.SystemResultTopic(rowA, macA), res)
		if x := f.removal(t, macA, func(*Removal) bool { return true }); strings.Contains(x.Note, "made up") {
			t.Fatalf("a result for a command never sent was taken: %q", x.Note)
		}
		res.IssuedAt, res.Reason = cmd.IssuedAt, "this Pi's agent does not take system commands: start it with --allow-system-commands (docs/deploy.md)"
		f.publish(t, topics.SystemResultTopic(rowA, macA), res)
		x := f.removal(t, macA, func(x *Removal) bool { return strings.HasPrefix(x.Note, "the Pi did not shut down") })
		if x.Step != RemovalShutdown || !strings.Contains(x.Note, "--allow-system-commands") || !strings.Contains(x.Note, "sudo poweroff") {
			t.Fatalf("refused: %+v", x)
		}
	})
	t.Run("already offline", func(t *testing.T) {
		f, c := removalFixture(t, true)
		f.publish(t, topics.StatusTopic(rowA, macA), offline("s"))
		if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c)); w.Code != http.StatusAccepted {
			t.Fatalf("removal: %d %s", w.Code, w.Body)
		}
		x := f.removal(t, macA, func(x *Removal) bool { return x != nil })
		if x.Step != RemovalVerify || !x.NeedsCheck {
			t.Fatalf("an offline Pi: %+v", x)
		}
	})
}

// Before the press at the rack, a lost connection (a Will, which a restart of the control
// center also leaves retained) does not move the removal on: the note says so until the Pi is
// back. A clean stop (shut down by hand) does.
func TestRemovalLocateSurvivesALostConnection(t *testing.T) {
	f, c := removalFixture(t, true)
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/removal", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("removal: %d %s", w.Code, w.Body)
	}
	f.publish(t, topics.StatusTopic(rowA, macA), topics.Status{V: 1, State: topics.StateOffline, Session: "s"}) // a Will: no ts
	x := f.removal(t, macA, func(x *Removal) bool { return x != nil && x.Note == lostNote })
	if x.Step != RemovalLocate {
		t.Fatalf("after a lost connection: %+v", x)
	}
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s2"))
	f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalLocate && x.Note == locateNote })
	f.publish(t, topics.StatusTopic(rowA, macA), offline("s2"))
	f.removal(t, macA, func(x *Removal) bool { return x.Step == RemovalVerify && x.CleanStop })
}

// A removal in progress is kept in removals.json, so a restart of the control center carries
// it on (TestRemovalAcrossARestart does it end to end).
func TestRemovalsFile(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	rs := openRemovals(removalsPath(dir), log)
	rs.put(&Removal{MAC: macA, Row: rowA, Slot: 2, By: "admin", At: t0, Step: RemovalLocate, Note: locateNote})
	rs.put(&Removal{MAC: macB, Row: rowA, By: "admin", At: t0, Step: RemovalSafe})
	rs.update(macB, func(x *Removal) bool { x.Step = RemovalEnded; return true })
	again := openRemovals(removalsPath(dir), log)
	if len(again.m) != 2 || again.get(macA).Slot != 2 || again.get(macB).Step != RemovalEnded {
		t.Fatalf("after reopening: %+v", again.m)
	}
	again.drop([]string{macB})
	if third := openRemovals(removalsPath(dir), log); len(third.m) != 1 || third.get(macA) == nil {
		t.Fatalf("after dropping one: %+v", third.m)
	}
	if err := os.WriteFile(removalsPath(dir), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if broken := openRemovals(removalsPath(dir), log); len(broken.m) != 0 {
		t.Fatalf("an unreadable file gave %+v", broken.m)
	}
}
