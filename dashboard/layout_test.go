package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

const macC = "b827eb0000cc"

func admin() reqOpt { return basic("admin", "admin-pw") }

// post sends an admin POST and checks its status, returning the body.
func (f *fixture) post(t *testing.T, path, body string, want int) string {
	t.Helper()
	w := f.do(t, http.MethodPost, path, body, admin())
	if w.Code != want {
		t.Fatalf("POST %s %s: %d %s, want %d", path, body, w.Code, w.Body, want)
	}
	return w.Body.String()
}

// slotsOf renders a row's slots as "slot:mac" for the placed ones.
func slotsOf(t *testing.T, f *fixture, row string) []string {
	t.Helper()
	var out []string
	for _, r := range getJSON[[]Row](t, f, "/api/rows", http.StatusOK) {
		if r.Name != row {
			continue
		}
		for _, sl := range r.Slots {
			switch {
			case sl.Name == "":
				out = append(out, sl.MAC)
			case sl.MAC == "":
				out = append(out, sl.Name)
			default:
				out = append(out, sl.Name+":"+sl.MAC)
			}
		}
	}
	return out
}

// Assign mode: the operator starts it on a row and presses the buttons left to right; each
// Pi takes the next slot, its press selects nothing, and a second press of a Pi just placed
// does not move it on. Pis of other rows are not affected. Once stopped, presses select again.
func TestAssignMode(t *testing.T) {
	f := newFixture(t)
	for _, p := range []struct{ row, mac string }{{rowA, macA}, {rowA, macB}, {rowA, macC}, {rowB, "dca6320a0b0d"}} {
		f.publish(t, topics.StatusTopic(p.row, p.mac), online("pi-"+p.mac[10:], "s1"))
	}
	f.post(t, "/api/rows/"+rowA+"/assign", `{"from": 1}`, http.StatusOK)
	if rows := getJSON[[]Row](t, f, "/api/rows", http.StatusOK); rows[0].Assign == nil || rows[0].Assign.Next != 1 || rows[0].Assign.By != "admin" {
		t.Fatalf("rows after starting assign mode: %+v", rows)
	}

	f.publish(t, topics.ButtonTopic(rowA, macC), press(1))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1)) // redelivery
	f.publish(t, topics.ButtonTopic(rowA, macC), press(2)) // pressed twice by mistake
	f.publish(t, topics.ButtonTopic(rowB, "dca6320a0b0d"), press(1))
	f.publish(t, topics.ButtonTopic(rowA, macB), press(1))
	if got := slotsOf(t, f, rowA); !slices.Equal(got, []string{macC, macA, macB}) {
		t.Fatalf("slots after assigning %v, want %s %s %s", got, macC, macA, macB)
	}
	for i, mac := range []string{macC, macA, macB} {
		n := getJSON[Node](t, f, "/api/nodes/"+mac, http.StatusOK)
		if n.Slot != i+1 || n.Selected {
			t.Errorf("%s: slot %d selected %v, want slot %d and not selected", mac, n.Slot, n.Selected, i+1)
		}
	}
	if n := getJSON[Node](t, f, "/api/nodes/dca6320a0b0d", http.StatusOK); !n.Selected || n.Slot != 0 {
		t.Errorf("a Pi of another row: %+v, want selected by its press and in no slot", n)
	}
	nodes := getJSON[[]Node](t, f, "/api/nodes", http.StatusOK)
	var order []string
	for _, n := range nodes {
		order = append(order, n.MAC)
	}
	if want := []string{macC, macA, macB, "dca6320a0b0d"}; !slices.Equal(order, want) {
		t.Errorf("GET /api/nodes in order %v, want the rack's order %v", order, want)
	}

	f.post(t, "/api/rows/"+rowA+"/assign/stop", "", http.StatusNoContent)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(2))
	if n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK); !n.Selected || n.Slot != 2 {
		t.Errorf("a press after assign mode: %+v, want selected and still in slot 2", n)
	}
}

// Assign mode ends by itself when nobody presses for a while.
func TestAssignModeEndsWhenIdle(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.post(t, "/api/rows/"+rowA+"/assign", "", http.StatusOK)
	f.clock.Advance(assignIdle)
	f.rack.tick()
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	if n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK); n.Slot != 0 || !n.Selected {
		t.Errorf("a press after assign mode timed out: %+v, want it to select, not place", n)
	}
}

// Placing and naming by hand, and every way it can be refused, each with a message that says
// what to do.
func TestPlaceAndNameByHand(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuditDir = t.TempDir() })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.publish(t, topics.StatusTopic(rowB, macB), online("pi-b", "s1"))

	body := f.post(t, "/api/rows/"+rowA+"/slots/3", `{"mac": "b8:27:eb:3f:1a:2c", "name": "web-1"}`, http.StatusOK)
	if !strings.Contains(body, `"slot":3`) || !strings.Contains(body, `"name":"web-1"`) {
		t.Errorf("answer %s", body)
	}
	if n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK); n.Slot != 3 || n.SlotName != "web-1" {
		t.Errorf("node %+v, want slot 3 named web-1", n)
	}
	f.post(t, "/api/rows/"+rowA+"/slots/1", `{"name": "spare"}`, http.StatusOK)
	if got := slotsOf(t, f, rowA); !slices.Equal(got, []string{"spare", "", "web-1:" + macA}) {
		t.Errorf("slots %q", got)
	}

	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"unknown Pi", "/api/rows/r1/slots/1", `{"mac":"b827eb999999"}`, http.StatusNotFound, "has reported"},
		{"Pi of another row", "/api/rows/r1/slots/1", `{"mac":"` + macB + `"}`, http.StatusConflict, "reports row r2"},
		{"slot 0", "/api/rows/r1/slots/0", `{"name":"x"}`, http.StatusBadRequest, "from 1 to 128"},
		{"bad row", "/api/rows/r%2F1/slots/1", `{"name":"x"}`, http.StatusBadRequest, "row"},
		{"nothing to do", "/api/rows/r1/slots/1", `{}`, http.StatusBadRequest, "nothing to do"},
		{"unknown field", "/api/rows/r1/slots/1", `{"nmae":"x"}`, http.StatusBadRequest, "unknown field"},
		{"bidi name", "/api/rows/r1/slots/1", `{"name":"pi\u202e07"}`, http.StatusBadRequest, "U+202E"},
		{"shrink over a used slot", "/api/rows/r1/shelf", `{"slots":2}`, http.StatusBadRequest, "slot 3 of row r1 is in use"},
		{"position out of range", "/api/rows/r1/shelf", `{"position":5}`, http.StatusBadRequest, "want 0 (top) to 1"},
		{"assign from 0", "/api/rows/r1/assign", `{"from":0}`, http.StatusBadRequest, "from 1 to 128"},
		{"nothing to decide", "/api/rows/r1/slots/3/previous", `{"inherit":true}`, http.StatusConflict, "no replaced board"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, http.MethodPost, tc.path, tc.body, admin())
			if w.Code != tc.status || !strings.Contains(jsonError(t, w), tc.want) {
				t.Fatalf("%d %s, want %d saying %q", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	if w := f.do(t, http.MethodPost, "/api/rows/r1/slots/1", `{"name":"x"}`, basic("viewer", "viewer-pw")); w.Code != http.StatusForbidden {
		t.Errorf("a viewer naming a slot: %d, want 403", w.Code)
	}
	entries := getAudit(t, f)
	var actions []string
	for _, e := range entries {
		if e.Action == AuditPlace || e.Action == AuditName {
			actions = append(actions, e.Action+" "+e.Outcome)
		}
	}
	if !slices.Contains(actions, "place allowed") || !slices.Contains(actions, "name allowed") || !slices.Contains(actions, "place denied") {
		t.Errorf("audit %q: want the placement, the naming and the viewer's refused attempt", actions)
	}

	// Rows can be moved up and down the rack.
	f.post(t, "/api/rows/"+rowB+"/shelf", `{"position": 0, "slots": 4}`, http.StatusOK)
	rows := getJSON[[]Row](t, f, "/api/rows", http.StatusOK)
	if len(rows) != 2 || rows[0].Name != rowB || rows[0].Position != 0 || len(rows[0].Slots) != 4 || rows[1].Name != rowA {
		t.Errorf("rows after moving %s to the top: %+v", rowB, rows)
	}
}

func getAudit(t *testing.T, f *fixture) []AuditEntry {
	t.Helper()
	w := f.do(t, http.MethodGet, "/api/audit?limit=100", "", admin())
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/audit: %d %s", w.Code, w.Body)
	}
	var out []AuditEntry
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The replacement story: a board dies in its named slot; a new board is put in its place and
// takes the slot's name; the operator lets it take over the old board's history, which then
// shows under the new MAC, and the old board leaves the rack.
func TestReplacementInheritsHistory(t *testing.T) {
	f, st := newHistoryFixture(t)
	old, repl := macA, macC
	f.publish(t, topics.StatusTopic(rowA, old), online("pi-old", "s1"))
	for i := range 3 {
		m := metrics(uint64(i+1), 0.5)
		m.TS = f.clock.Now()
		f.publish(t, topics.MetricsTopic(rowA, old), m)
		f.clock.Advance(time.Minute)
	}
	f.post(t, "/api/rows/"+rowA+"/slots/1", `{"mac":"`+old+`","name":"db"}`, http.StatusOK)
	f.publish(t, topics.StatusTopic(rowA, old), offline("s1"))
	flush(t, st)
	before, err := st.Series(t.Context(), old, history.MetricLoad1, t0.Add(-time.Hour), f.clock.Now().Add(time.Hour), 100)
	if err != nil || len(before) == 0 {
		t.Fatalf("the old board's load history: %d points, %v", len(before), err)
	}

	f.publish(t, topics.StatusTopic(rowA, repl), online("pi-new", "s1"))
	f.post(t, "/api/rows/"+rowA+"/assign", "", http.StatusOK)
	f.publish(t, topics.ButtonTopic(rowA, repl), press(1))
	n := getJSON[Node](t, f, "/api/nodes/"+repl, http.StatusOK)
	if n.Slot != 1 || n.SlotName != "db" || n.Previous != old {
		t.Fatalf("the replacement: %+v, want slot 1 named db, replacing %s", n, old)
	}
	page := f.do(t, http.MethodGet, "/", "", admin()).Body.String()
	if !strings.Contains(page, `data-action="inherit"`) || !strings.Contains(page, displayMAC(old)) {
		t.Error("the rack page does not offer the replacement its predecessor's history")
	}

	f.post(t, "/api/rows/"+rowA+"/slots/1/previous", `{"inherit": true}`, http.StatusOK)
	flush(t, st)
	pts, err := st.Series(t.Context(), repl, history.MetricLoad1, t0.Add(-time.Hour), f.clock.Now().Add(time.Hour), 100)
	if err != nil || len(pts) != len(before) || !pts[0].T.Equal(before[0].T) {
		t.Fatalf("the replacement's load history: %+v, %v; want the old board's %+v", pts, err, before)
	}
	if w := f.do(t, http.MethodGet, "/api/nodes/"+old, "", admin()); w.Code != http.StatusNotFound {
		t.Errorf("the old board after the handover: %d, want 404 (forgotten)", w.Code)
	}
	if n := getJSON[Node](t, f, "/api/nodes/"+repl, http.StatusOK); n.Previous != "" || n.SlotName != "db" {
		t.Errorf("after the handover: %+v, want no open question and the slot's name kept", n)
	}
	evs, err := st.Events(t.Context(), repl, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Contains(kinds, history.EventOnline) || !slices.Contains(kinds, EventPlaced) {
		t.Errorf("the replacement's events %q: want its own and the old board's", kinds)
	}
}

// Forget: an offline Pi leaves the page and its alerts; its retained topics are deleted so it
// does not come back at the next restart. An online Pi cannot be forgotten.
func TestForget(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.post(t, "/api/rows/"+rowA+"/slots/2", `{"mac":"`+macA+`"}`, http.StatusOK)
	w := f.do(t, http.MethodPost, "/api/nodes/"+macA+"/forget", "", admin())
	if w.Code != http.StatusConflict || !strings.Contains(jsonError(t, w), "is online") {
		t.Fatalf("forgetting an online Pi: %d %s, want 409", w.Code, w.Body)
	}
	f.publish(t, topics.StatusTopic(rowA, macA), offline("s1"))
	f.post(t, "/api/nodes/"+macA+"/forget", "", http.StatusNoContent)
	if w := f.do(t, http.MethodGet, "/api/nodes/"+macA, "", admin()); w.Code != http.StatusNotFound {
		t.Errorf("a forgotten Pi: %d, want 404", w.Code)
	}
	if got := slotsOf(t, f, rowA); len(got) != 2 || got[1] != "" {
		t.Errorf("slots %q, want slot 2 emptied", got)
	}
	deleted := map[string]bool{}
	for _, m := range f.bus.Published() {
		if m.Retained && len(m.Payload) == 0 {
			deleted[m.Topic] = true
		}
	}
	for _, topic := range []string{topics.StatusTopic(rowA, macA), topics.MetricsTopic(rowA, macA), topics.LEDStateTopic(rowA, macA)} {
		if !deleted[topic] {
			t.Errorf("retained %s not deleted (published %v)", topic, f.bus.Published())
		}
	}
	if st := f.rack.Stats(); st.Invalid != 0 {
		t.Errorf("the deletions counted as invalid payloads: %+v", st)
	}
}

// A layout change that cannot be saved is refused with a 503 that says so, and nothing changes.
func TestLayoutSaveFailure(t *testing.T) {
	dir := t.TempDir()
	lay, err := layout.Open(filepath.Join(dir, "sub", layout.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Layout = lay })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	w := f.do(t, http.MethodPost, "/api/rows/"+rowA+"/slots/1", `{"mac":"`+macA+`","name":"web"}`, admin())
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(jsonError(t, w), "the layout is unchanged") {
		t.Fatalf("%d %s, want 503 saying the layout is unchanged", w.Code, w.Body)
	}
	if n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK); n.Slot != 0 || n.SlotName != "" {
		t.Errorf("node after a failed save: %+v", n)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.post(t, "/api/rows/"+rowA+"/slots/1", `{"mac":"`+macA+`","name":"web"}`, http.StatusOK)
}

// The rack page draws each row's slots in order, empty ones included, then the Pis in no slot.
func TestRackPageShelves(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s1"))
	f.post(t, "/api/rows/"+rowA+"/slots/2", `{"mac":"`+macB+`","name":"edge"}`, http.StatusOK)
	page := f.do(t, http.MethodGet, "/", "", admin()).Body.String()
	empty := strings.Index(page, `<div class="slot-empty" data-slot="1">`)
	placed := strings.Index(page, `data-mac="`+macB+`"`)
	unplaced := strings.Index(page, `data-mac="`+macA+`"`)
	if empty < 0 || placed < 0 || unplaced < 0 || !(empty < placed && placed < unplaced) {
		t.Errorf("page order: empty slot 1 at %d, slot 2 (%s) at %d, unplaced %s at %d; want them in that order", empty, macB, placed, macA, unplaced)
	}
	if !strings.Contains(page, `<span data-field="slot_name">edge</span>`) {
		t.Error("the slot name is not on the page")
	}
}

// Forgetting a Pi with a raised alert publishes the alert cleared and then deletes its retained
// topic, in that order, so no "cleared" message of a Pi that is gone stays on the broker.
func TestForgetErasesAlerts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		engine, err := alerts.New(alerts.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, func(c *Config) { c.Now, c.Alerts = time.Now, engine })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()

		f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
		f.publish(t, topics.StatusTopic(rowA, macA), offline("s1"))
		time.Sleep(31 * time.Second) // the offline rule's 30 s
		synctest.Wait()
		if got := states(alertPublications(t, f)); !slices.Equal(got, []string{"offline raised"}) {
			t.Fatalf("published %q, want offline raised", got)
		}
		f.post(t, "/api/nodes/"+macA+"/forget", "", http.StatusNoContent)
		synctest.Wait()

		topic := topics.AlertTopic(rowA, macA, alerts.RuleOffline)
		var seq []string
		for _, m := range f.bus.Published() {
			if m.Topic != topic {
				continue
			}
			if len(m.Payload) == 0 {
				seq = append(seq, "erased")
				continue
			}
			a, err := topics.DecodeAlert(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
			seq = append(seq, a.State)
		}
		if want := []string{"raised", "cleared", "erased"}; !slices.Equal(seq, want) {
			t.Errorf("on %s: %q, want %q", topic, seq, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
