package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// withStore gives the fixture a real history store in t.TempDir(), on the fixture's clock, with
// its writer running for the test's lifetime.
func withStore(t *testing.T, f **history.Store, clk *clock) func(*Config) {
	t.Helper()
	st, err := history.Open(filepath.Join(t.TempDir(), "history.db"), history.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("history Run: %v", err)
		}
		st.Close()
	})
	*f = st
	return func(c *Config) { c.History = st }
}

// newHistoryFixture is a fixture with a real history store.
func newHistoryFixture(t *testing.T) (*fixture, *history.Store) {
	t.Helper()
	clk := &clock{t: t0}
	var st *history.Store
	f := newFixture(t, withStore(t, &st, clk), func(c *Config) { c.Now = clk.Now })
	f.clock = clk
	return f, st
}

func flush(t *testing.T, st *history.Store) {
	t.Helper()
	if err := st.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func getJSON[T any](t *testing.T, f *fixture, path string, wantStatus int) T {
	t.Helper()
	w := f.do(t, http.MethodGet, path, "", basic("viewer", "viewer-pw"))
	if w.Code != wantStatus {
		t.Fatalf("GET %s: %d %s, want %d", path, w.Code, w.Body, wantStatus)
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("GET %s: body %q: %v", path, w.Body, err)
	}
	return v
}

// TestHistoryRecordsEvents drives a Pi through its life and checks the event log: presence
// transitions, a press that selects, a repeated press that does not select again, a Locate and a
// clear with who did them, and nothing for a replayed status.
func TestHistoryRecordsEvents(t *testing.T) {
	f, st := newHistoryFixture(t)
	status, button := topics.StatusTopic(rowA, macA), topics.ButtonTopic(rowA, macA)
	f.publish(t, status, online("pi-a", "s1"))
	f.publish(t, status, online("pi-a", "s1")) // a replay: no second "online"
	f.publish(t, button, press(1))
	f.publish(t, button, press(1)) // a redelivery: nothing
	f.publish(t, button, press(2)) // pressed again while selected: a button event only
	if w := f.do(t, http.MethodPost, "/api/nodes/"+macA+"/blink", "", basic("admin", "admin-pw")); w.Code != http.StatusAccepted {
		t.Fatalf("blink: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, http.MethodPost, "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw")); w.Code != http.StatusOK {
		t.Fatalf("clear: %d %s", w.Code, w.Body)
	}
	f.publish(t, status, offline("s1"))
	flush(t, st)

	evs := getJSON[[]history.Event](t, f, "/api/nodes/"+macA+"/events", http.StatusOK)
	slices.Reverse(evs) // newest first from the API
	type ev struct{ kind, detail, by string }
	var got []ev
	for _, e := range evs {
		if e.MAC != macA || e.Row != rowA {
			t.Errorf("event %+v: want mac %s row %s", e, macA, rowA)
		}
		got = append(got, ev{e.Kind, e.Detail, e.By})
	}
	want := []ev{
		{history.EventOnline, "", "agent"},
		{history.EventButton, "short press", "agent"},
		{history.EventSelect, "selected by a short press", "agent"},
		{history.EventButton, "short press", "agent"},
		{history.EventLocate, "blink 5 times every 500 ms", "admin"},
		{history.EventSelect, "cleared", "admin"},
		{history.EventOffline, "", "agent"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	if evs := getJSON[[]history.Event](t, f, "/api/nodes/"+macB+"/events", http.StatusOK); len(evs) != 0 {
		t.Errorf("events of another Pi: %+v, want []", evs)
	}
	if got := getJSON[[]history.Event](t, f, "/api/nodes/"+macA+"/events?limit=2", http.StatusOK); len(got) != 2 || got[0].Kind != history.EventOffline {
		t.Errorf("limit=2: %+v, want the 2 newest", got)
	}
}

func TestSeriesAPI(t *testing.T) {
	f, st := newHistoryFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	// Two samples a minute apart: load 0.5 then 1.5; memory 3 of 4 GiB free (25 % used);
	// disk 24 of 32 GiB free (25 % used).
	for i, load := range []float64{0.5, 1.5} {
		m := metrics(uint64(i+1), load)
		m.TS = t0.Add(time.Duration(i) * time.Minute)
		f.clock.Advance(time.Minute)
		f.publish(t, topics.MetricsTopic(rowA, macA), m)
	}
	watts := 20.0
	f.publish(t, topics.PowerTopic(rowA), topics.Power{V: 1, TS: t0.Add(time.Minute), Watts: &watts})
	flush(t, st)

	get := func(q string) SeriesResponse {
		t.Helper()
		return getJSON[SeriesResponse](t, f, "/api/nodes/"+macA+"/series?"+q, http.StatusOK)
	}
	load := get("metric=load_1&range=1h")
	if load.Range != "1h" || !load.To.Equal(f.clock.Now()) || !load.From.Equal(f.clock.Now().Add(-time.Hour)) {
		t.Errorf("load series span: %+v", load)
	}
	var avgs []float64
	for _, p := range load.Points {
		avgs = append(avgs, p.Avg)
	}
	if !slices.Equal(avgs, []float64{0.5, 1.5}) {
		t.Errorf("load points %+v, want 0.5 then 1.5", load.Points)
	}
	for _, metric := range []string{ChartMemUsed, ChartDiskUsed} {
		s := get("metric=" + metric + "&range=24h")
		if len(s.Points) == 0 || s.Unit != "%" {
			t.Fatalf("%s: %+v, want points in %%", metric, s)
		}
		for _, p := range s.Points {
			if p.Avg != 25 || p.Min != 25 || p.Max != 25 {
				t.Errorf("%s point %+v, want 25 %%", metric, p)
			}
		}
	}
	if s := get("metric=row_watts&range=7d"); len(s.Points) != 1 || s.Points[0].Avg != 20 || s.Unit != "W" {
		t.Errorf("row watts: %+v, want one point of 20 W", s)
	}
	if s := get("metric=cpu_temp_c"); s.Range != "1h" || len(s.Points) == 0 || s.Points[0].Avg != 48.3 {
		t.Errorf("temperature, default range: %+v", s)
	}
	if s := getJSON[SeriesResponse](t, f, "/api/nodes/"+macB+"/series?metric=load_1", http.StatusOK); s.Points == nil || len(s.Points) != 0 {
		t.Errorf("a Pi with no history: %+v, want empty points", s)
	}

	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"unknown metric", "/api/nodes/" + macA + "/series?metric=shoe", http.StatusBadRequest},
		{"unknown range", "/api/nodes/" + macA + "/series?metric=load_1&range=1y", http.StatusBadRequest},
		{"bad MAC", "/api/nodes/nope/series?metric=load_1", http.StatusBadRequest},
		{"row of an unknown Pi", "/api/nodes/" + macB + "/series?metric=row_watts", http.StatusNotFound},
		{"events limit", "/api/nodes/" + macA + "/events?limit=0", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, tc.path, "", basic("viewer", "viewer-pw"))
			if w.Code != tc.status {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.status)
			}
			jsonError(t, w)
		})
	}
	if w := f.do(t, http.MethodGet, "/api/nodes/"+macA+"/series?metric=load_1", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("without login: %d, want 401", w.Code)
	}
}

func TestHistoryOff(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	for _, path := range []string{"/api/nodes/" + macA + "/series?metric=load_1", "/api/nodes/" + macA + "/events"} {
		w := f.do(t, http.MethodGet, path, "", basic("viewer", "viewer-pw"))
		if w.Code != http.StatusNotFound || !strings.Contains(jsonError(t, w), "no history") {
			t.Errorf("GET %s without history: %d %s, want 404 no history", path, w.Code, w.Body)
		}
	}
	// The detail page still shows the identity, and says why there are no charts.
	w := f.do(t, http.MethodGet, "/nodes/"+macA, "", basic("viewer", "viewer-pw"))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "without a history store") {
		t.Errorf("detail page without history: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, http.MethodGet, "/nodes/"+macB, "", basic("viewer", "viewer-pw")); w.Code != http.StatusNotFound {
		t.Errorf("detail page of an unknown Pi without history: %d, want 404", w.Code)
	}
}

func TestNodePage(t *testing.T) {
	f, _ := newHistoryFixture(t)
	st := online(`<img src=x onerror=alert(1)>`, "s1")
	st.BootTime = t0.Add(-time.Hour)
	f.publish(t, topics.StatusTopic(rowA, macA), st)

	w := f.do(t, http.MethodGet, "/nodes/B8:27:EB:3F:1A:2C", "", basic("viewer", "viewer-pw"))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /nodes/{mac}: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{
		`data-mac="` + macA + `"`, `data-history="true"`, "b8:27:eb:3f:1a:2c", "Raspberry Pi 4 Model B", "0.1.0",
		"10.0.0.7", "2026-03-01 11:00:00", `id="charts"`, `data-range="90d"`, `src="/static/vendor/uplot/uPlot.iife.min.js"`,
		`id="event-log"`, `src="/static/node.js"`, "&lt;img src=x onerror=alert(1)&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "<script>") {
		t.Error("detail page has markup from the Pi or an inline script")
	}
	// A Pi not seen since the restart still has its history.
	if w := f.do(t, http.MethodGet, "/nodes/"+macB, "", basic("viewer", "viewer-pw")); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "has not reported") {
		t.Errorf("detail page of a Pi known only to history: %d", w.Code)
	}
	if w := f.do(t, http.MethodGet, "/nodes/zz", "", basic("viewer", "viewer-pw")); w.Code != http.StatusBadRequest {
		t.Errorf("bad MAC: %d, want 400", w.Code)
	}
	if w := f.do(t, http.MethodGet, "/nodes/"+macA, ""); w.Code != http.StatusSeeOther {
		t.Errorf("without login: %d, want a redirect to /login", w.Code)
	}
	// The rack page's tiles link to it.
	rack := f.do(t, http.MethodGet, "/", "", basic("viewer", "viewer-pw")).Body.String()
	if !strings.Contains(rack, `href="/nodes/`+macA+`"`) {
		t.Error("the tile does not link to the detail page")
	}
	if w := f.do(t, http.MethodGet, "/static/node.js", ""); w.Code != http.StatusOK {
		t.Errorf("/static/node.js: %d", w.Code)
	}
}

// TestHistoryStatsInAPIStats: the history's counters, the samples it downsampled when its
// writer fell behind among them, are in /api/stats beside ingestion's.
func TestHistoryStatsInAPIStats(t *testing.T) {
	f, st := newHistoryFixture(t)
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(1, 0.5))
	flush(t, st)
	body := f.do(t, "GET", "/api/stats", "", basic("viewer", "viewer-pw")).Body.String()
	for _, want := range []string{`"history":{"queued":`, `"downsampled":0`, `"dropped":0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/stats lacks %s: %s", want, body)
		}
	}
}
