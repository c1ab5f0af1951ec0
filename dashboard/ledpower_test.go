package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func ledState(state string, ts time.Time) topics.LEDState {
	return topics.LEDState{V: 1, TS: ts, State: state, Action: topics.LEDBlink, By: "admin", Until: ts.Add(2500 * time.Millisecond)}
}

func TestLEDState(t *testing.T) {
	f := newFixture(t)
	topic := topics.LEDStateTopic(rowA, macA)
	f.publish(t, topic, ledState(topics.LEDStateBlinking, t0))
	f.publish(t, topic, ledState(topics.LEDStateOff, t0.Add(-time.Second))) // older: ignored
	f.publish(t, topic, `{"v":1,"ts":"2026-03-01T12:00:00Z","state":"disco"}`)

	n, _ := f.rack.node(macA)
	if n.LED == nil || n.LED.State != topics.LEDStateBlinking || n.LED.By != "admin" || n.LED.Action != topics.LEDBlink ||
		!n.LED.Until.Equal(t0.Add(2500*time.Millisecond)) {
		t.Fatalf("LED = %+v, want blinking by admin until ts+2.5s", n.LED)
	}
	if st := f.rack.Stats(); st.Applied != 1 || st.Replays != 1 || st.InvalidBy.Payload != 1 {
		t.Errorf("stats %+v: want 1 applied, 1 replay, 1 invalid payload", st)
	}
	page := f.do(t, http.MethodGet, "/", "", basic("viewer", "viewer-pw")).Body.String()
	for _, want := range []string{`data-led="blinking"`, "LED blinking (blink by admin)"} {
		if !strings.Contains(page, want) {
			t.Errorf("rack page lacks %q", want)
		}
	}

	f.publish(t, topic, ledState(topics.LEDStateOff, t0.Add(3*time.Second)))
	if n, _ := f.rack.node(macA); n.LED.State != topics.LEDStateOff {
		t.Errorf("LED after the blink = %+v, want off", n.LED)
	}
}

func TestRowPower(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("pi-b", "s2"))
	volts, watts := 5.08, 14.99
	reading := topics.Power{V: 1, TS: t0, Volts: &volts, Watts: &watts, Source: "ina219"}
	f.publish(t, topics.PowerTopic(rowA), reading)
	f.publish(t, topics.PowerTopic(rowA), reading) // retained replay

	rows := getJSON[[]Row](t, f, "/api/rows", http.StatusOK)
	if len(rows) != 1 || rows[0].Name != rowA || rows[0].Pis != 2 || rows[0].Power == nil || *rows[0].Power.Watts != watts ||
		rows[0].WattsPerPi == nil || *rows[0].WattsPerPi != watts/2 || !rows[0].PowerAt.Equal(t0) {
		t.Fatalf("rows = %+v, want %s with 2 Pis, %v W and %v W per Pi", rows, rowA, watts, watts/2)
	}
	if st := f.rack.Stats(); st.Replays != 1 {
		t.Errorf("Replays = %d, want 1", st.Replays)
	}
	// The header's words ("15.0 W · 5.08 V", "7.5 W per Pi") are static/fmt.js's, from these
	// numbers: e2e's Chromium tests read them.
	if page := f.do(t, http.MethodGet, "/", "", basic("viewer", "viewer-pw")).Body.String(); !strings.Contains(page, `data-field="power_text"`) {
		t.Error("the row header has no power field")
	}

	// A late joiner gets the rows after the snapshot, then a row event per new reading.
	st := openStream(t, t.Context(), ts.URL)
	if nodes, rows := st.snapshot(t); len(nodes) != 2 || len(rows) != 1 || rows[0].Power == nil {
		t.Fatalf("snapshot of %d nodes, rows %+v", len(nodes), rows)
	}
	watts = 20
	reading.TS = t0.Add(time.Second)
	f.publish(t, topics.PowerTopic(rowA), reading)
	if row := decodeAs[Row](t, st.next(t), "row"); *row.Power.Watts != 20 || *row.WattsPerPi != 10 {
		t.Errorf("row event %+v, want 20 W, 10 W per Pi", row)
	}
}
