package dashboard

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// The History methods of the event log page, the sparklines and board replacement, for the
// events-only fake of alerts_test.go: it has none of that to give.
func (l *eventLog) RackEvents(context.Context, history.EventQuery) ([]history.Event, error) {
	return nil, nil
}
func (l *eventLog) Sparklines(context.Context, string, time.Time, time.Time, int) (map[string][]*float64, error) {
	return nil, nil
}
func (l *eventLog) Move(context.Context, string, string) error { return nil }

// logFixture is a history fixture with a known log, recorded in this order (IDs 1 to 6):
//
//	1  t0       macA r1 online   (ingested from its status: hostname pi-a)
//	2  t0+1s    macA r1 button
//	3  t0+2s    macB r2 offline
//	4  t0+3s    -    r2 alert   (a row's own entry)
//	5  t0+4s    macA r1 locate
//	6  t0+0.5s  macB r2 button  (recorded late: a press the Pi queued while offline)
//
// Newest first that is 5 4 3 2 6 1.
func logFixture(t *testing.T, hostname string) (*fixture, *history.Store) {
	t.Helper()
	f, st := newHistoryFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online(hostname, "s1"))
	flush(t, st)
	for _, e := range []history.Event{
		{Time: t0.Add(time.Second), MAC: macA, Row: rowA, Kind: history.EventButton, Detail: "short press", By: "agent"},
		{Time: t0.Add(2 * time.Second), MAC: macB, Row: rowB, Kind: history.EventOffline, By: "agent"},
		{Time: t0.Add(3 * time.Second), Row: rowB, Kind: EventAlert, Detail: "row_power raised", By: "system"},
		{Time: t0.Add(4 * time.Second), MAC: macA, Row: rowA, Kind: history.EventLocate, Detail: "blink 5 times", By: "admin"},
		{Time: t0.Add(500 * time.Millisecond), MAC: macB, Row: rowB, Kind: history.EventButton, Detail: "long press", By: "agent"},
	} {
		st.AddEvent(e)
	}
	flush(t, st)
	return f, st
}

func logIDs(r LogResponse) []int64 {
	ids := []int64{}
	for _, e := range r.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestLogAPI(t *testing.T) {
	f, st := logFixture(t, "pi-a")
	var kinds []string
	for i := range 33 {
		kinds = append(kinds, "k"+strconv.Itoa(i))
	}
	manyKinds := strings.Join(kinds, ",")

	all := getJSON[LogResponse](t, f, "/api/log", http.StatusOK)
	if got := logIDs(all); !slices.Equal(got, []int64{5, 4, 3, 2, 6, 1}) {
		t.Fatalf("IDs %v, want 5 4 3 2 6 1", got)
	}
	if all.Older != 0 {
		t.Errorf("one page holds everything, but older = %d", all.Older)
	}
	// Entries carry the Pi's hostname when it is known, and nothing else made up.
	for _, e := range all.Events {
		want := ""
		if e.MAC == macA {
			want = "pi-a"
		}
		if e.Hostname != want {
			t.Errorf("entry %d (%s): hostname %q, want %q", e.ID, e.MAC, e.Hostname, want)
		}
	}
	if e := all.Events[0]; e.Kind != history.EventLocate || e.Detail != "blink 5 times" || e.By != "admin" || e.Row != rowA || !e.Time.Equal(t0.Add(4*time.Second)) {
		t.Errorf("newest entry %+v", e)
	}

	for _, c := range []struct {
		name, query string
		want        []int64
	}{
		{"row, with its own entry", "row=" + rowB, []int64{4, 3, 6}},
		{"Pi, any MAC form", "mac=B8:27:EB:3F:1A:2C", []int64{5, 2, 1}},
		{"kinds, comma-separated", "kind=button,locate", []int64{5, 2, 6}},
		{"kinds, repeated", "kind=button&kind=offline", []int64{3, 2, 6}},
		{"row and kind", "row=" + rowA + "&kind=button", []int64{2}},
		{"since", "since=" + url.QueryEscape(t0.Add(2*time.Second).Format(time.RFC3339)), []int64{5, 4, 3}},
		{"before", "before=2", []int64{6, 1}},
		{"after: recorded later, whatever its time", "after=4", []int64{5, 6}},
		{"limit", "limit=1", []int64{5}},
		{"nothing matches", "kind=found", []int64{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := getJSON[LogResponse](t, f, "/api/log?"+c.query, http.StatusOK)
			if ids := logIDs(got); !slices.Equal(ids, c.want) {
				t.Errorf("IDs %v, want %v", ids, c.want)
			}
		})
	}

	// Paging back by two follows older to the end, each entry once, and the last page says so.
	var pages [][]int64
	path := "/api/log?limit=2"
	for range 10 {
		page := getJSON[LogResponse](t, f, path, http.StatusOK)
		pages = append(pages, logIDs(page))
		if page.Older == 0 {
			break
		}
		if last := page.Events[len(page.Events)-1].ID; page.Older != last {
			t.Errorf("older = %d, want the last entry's ID %d", page.Older, last)
		}
		path = "/api/log?limit=2&before=" + strconv.FormatInt(page.Older, 10)
	}
	if want := [][]int64{{5, 4}, {3, 2}, {6, 1}}; !slices.EqualFunc(pages, want, slices.Equal) {
		t.Errorf("pages %v, want %v", pages, want)
	}

	// The JSON as documented.
	w := f.do(t, http.MethodGet, "/api/log?limit=1", "", basic("viewer", "viewer-pw"))
	wantJSON := `{"events":[{"id":5,"time":"2026-03-01T12:00:04Z","mac":"` + macA + `","row":"r1","kind":"locate","detail":"blink 5 times","by":"admin","hostname":"pi-a"}],"older":5}`
	if got := strings.TrimSpace(w.Body.String()); got != wantJSON {
		t.Errorf("body\n %s\nwant\n %s", got, wantJSON)
	}

	// A new entry shows up for a poller asking what came after the newest it has.
	st.AddEvent(history.Event{Time: t0.Add(5 * time.Second), MAC: macB, Row: rowB, Kind: history.EventOnline, By: "agent"})
	flush(t, st)
	if got := logIDs(getJSON[LogResponse](t, f, "/api/log?after=6", http.StatusOK)); !slices.Equal(got, []int64{7}) {
		t.Errorf("after the newest: %v, want [7]", got)
	}

	for _, c := range []struct{ name, query, want string }{
		{"bad row", "row=Row!", "row"},
		{"bad MAC", "mac=zz", "mac"},
		{"markup as a kind", "kind=" + url.QueryEscape("<script>"), "kind"},
		{"too many kinds", "kind=" + manyKinds, "kind"},
		{"limit 0", "limit=0", "limit"},
		{"limit over the cap", "limit=1001", "limit"},
		{"negative cursor", "before=-1", "before"},
		{"cursor not a number", "after=x", "after"},
		{"since not a time", "since=yesterday", "since"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, "/api/log?"+c.query, "", basic("viewer", "viewer-pw"))
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400", w.Code, w.Body)
			}
			if msg := jsonError(t, w); !strings.HasPrefix(msg, c.want) || rawTag.MatchString(w.Body.String()) {
				t.Errorf("error %s, want one about %s without raw markup", w.Body, c.want)
			}
		})
	}
}

func TestLogAPIAuth(t *testing.T) {
	f, _ := logFixture(t, "pi-a")
	for _, c := range []struct {
		name   string
		opts   []reqOpt
		status int
	}{
		{"anonymous", nil, http.StatusUnauthorized},
		{"viewer", []reqOpt{basic("viewer", "viewer-pw")}, http.StatusOK},
		{"admin", []reqOpt{basic("admin", "admin-pw")}, http.StatusOK},
		{"viewer's session", []reqOpt{withCookie(f.login(t, "viewer", "viewer-pw"))}, http.StatusOK},
		{"automation account", []reqOpt{basic("robot", "robot-pw")}, http.StatusForbidden},
	} {
		for _, path := range []string{"/api/log", "/api/sparklines"} {
			w := f.do(t, http.MethodGet, path, "", c.opts...)
			if w.Code != c.status {
				t.Errorf("%s GET %s: %d, want %d", c.name, path, w.Code, c.status)
			}
			if c.status != http.StatusOK {
				jsonError(t, w)
			}
		}
	}
}

func TestLogAndSparklinesWithoutHistory(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/api/log", "/api/sparklines?metric=load_1"} {
		w := f.do(t, http.MethodGet, path, "", basic("viewer", "viewer-pw"))
		if w.Code != http.StatusNotFound || !strings.Contains(jsonError(t, w), "no history") {
			t.Errorf("GET %s without history: %d %s, want 404 no history", path, w.Code, w.Body)
		}
	}
	w := f.do(t, http.MethodGet, "/events", "", basic("viewer", "viewer-pw"))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "without a history store") || strings.Contains(w.Body.String(), `id="event-log"`) {
		t.Errorf("event log page without history: %d %s", w.Code, w.Body)
	}
}

var logRow = regexp.MustCompile(`<tr data-id="(\d+)"`)

// pageIDs lists the entries an event log page shows, top to bottom.
func pageIDs(page string) []int64 {
	ids := []int64{}
	for _, m := range logRow.FindAllStringSubmatch(page, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

func TestEventLogPage(t *testing.T) {
	hostile := `<img src=x onerror=alert(1)>`
	f, _ := logFixture(t, hostile)
	get := func(path string, status int) string {
		t.Helper()
		w := f.do(t, http.MethodGet, path, "", basic("viewer", "viewer-pw"))
		if w.Code != status {
			t.Fatalf("GET %s: %d, want %d:\n%s", path, w.Code, status, w.Body)
		}
		return w.Body.String()
	}

	page := get("/events", http.StatusOK)
	if ids := pageIDs(page); !slices.Equal(ids, []int64{5, 4, 3, 2, 6, 1}) {
		t.Errorf("page shows %v, want 5 4 3 2 6 1", ids)
	}
	for _, want := range []string{
		// The hostile hostname is text, linking to the Pi; an unknown Pi shows its MAC.
		`<a href="/nodes/` + macA + `" title="b8:27:eb:3f:1a:2c">` + template.HTMLEscapeString(hostile) + `</a>`,
		`<a href="/nodes/` + macB + `">dc:a6:32:0a:0b:0c</a>`,
		`<time datetime="2026-03-01T12:00:04Z">2026-03-01 12:00:04</time>`,
		"row_power raised", ">admin<",
		`<option value="` + rowA + `">`, `<option value="locate">`, `<option value="replaced">`,
		`data-live="true"`, `src="/static/events.js"`, `id="older" href="" hidden`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<img") {
		t.Error("the hostile hostname reached the page as markup")
	}
	if tags := regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1); !slices.Equal(tags, []string{`<script src="/static/events.js" defer>`}) {
		t.Errorf("script tags %q, want only events.js", tags)
	}
	for _, tag := range regexp.MustCompile(`<[a-z][^>]*>`).FindAllString(page, -1) {
		if regexp.MustCompile(`\s(on[a-z]+|style)=`).MatchString(tag) {
			t.Errorf("inline event handler or style in %s", tag)
		}
	}

	// Filters are applied and shown as chosen; paging back is a plain link.
	page = get("/events?row="+rowB+"&kind=button", http.StatusOK)
	if ids := pageIDs(page); !slices.Equal(ids, []int64{6}) {
		t.Errorf("row and kind filtered page shows %v, want [6]", ids)
	}
	if !strings.Contains(page, `<option value="`+rowB+`" selected>`) || !strings.Contains(page, `<option value="button" selected>`) {
		t.Error("the filters in force are not selected")
	}
	page = get("/events?limit=2&mac="+macA, http.StatusOK)
	if ids := pageIDs(page); !slices.Equal(ids, []int64{5, 2}) {
		t.Errorf("one Pi's first page shows %v, want 5 2", ids)
	}
	if !strings.Contains(page, `id="older" href="/events?before=2&amp;limit=2&amp;mac=`+macA+`"`) || !strings.Contains(page, `name="mac" value="`+macA+`" checked`) {
		t.Errorf("page lacks the older link or the Pi filter:\n%s", page)
	}
	page = get("/events?limit=2&mac="+macA+"&before=2", http.StatusOK)
	if ids := pageIDs(page); !slices.Equal(ids, []int64{1}) || !strings.Contains(page, `data-live="false"`) {
		t.Errorf("the page back shows %v, want [1], and is not live", ids)
	}

	page = get("/events?kind="+url.QueryEscape(`"><script>alert(1)</script>`), http.StatusBadRequest)
	if !strings.Contains(page, `class="notice bad"`) || strings.Contains(page, "<script>alert") {
		t.Errorf("a bad filter: want an escaped notice:\n%s", page)
	}

	if w := f.do(t, http.MethodGet, "/events", ""); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Errorf("anonymous: %d to %q, want a redirect to /login", w.Code, w.Header().Get("Location"))
	}
	// The rack page and a Pi's page link to it.
	for _, path := range []string{"/", "/nodes/" + macA} {
		if !strings.Contains(get(path, http.StatusOK), `<a href="/events">Event log</a>`) {
			t.Errorf("%s does not link to the event log", path)
		}
	}
}

// TestLogHostileEntries: what a Pi or an operator put into an entry comes back from the API as
// plain JSON strings, with no raw markup.
func TestLogHostileEntries(t *testing.T) {
	f, st := newHistoryFixture(t)
	hostile := `"><script>alert(1)</script>`
	f.publish(t, topics.StatusTopic(rowA, macA), online(`<img src=x onerror=alert(1)>`, "s1"))
	st.AddEvent(history.Event{Time: t0.Add(time.Second), MAC: macA, Row: rowA, Kind: history.EventCommand, Detail: hostile, By: hostile})
	flush(t, st)
	w := f.do(t, http.MethodGet, "/api/log", "", basic("viewer", "viewer-pw"))
	if rawTag.MatchString(w.Body.String()) {
		t.Errorf("/api/log carries a raw tag: %s", w.Body)
	}
	var got LogResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got.Events) != 2 {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if e := got.Events[0]; e.Detail != hostile || e.By != hostile || e.Hostname != `<img src=x onerror=alert(1)>` {
		t.Errorf("entry %+v, want the strings as they were", e)
	}
	page := f.do(t, http.MethodGet, "/events", "", basic("viewer", "viewer-pw")).Body.String()
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") || !strings.Contains(page, template.HTMLEscapeString(hostile)) {
		t.Errorf("page does not show the entry as escaped text:\n%s", page)
	}
}

func TestEventLogScripts(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/static/events.js", "/static/spark.js"} {
		w := f.do(t, http.MethodGet, path, "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") {
			t.Fatalf("%s: %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
		js := w.Body.String()
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", ".style", "eval("} {
			if strings.Contains(js, bad) {
				t.Errorf("%s uses %s: write data with textContent and style with classes", path, bad)
			}
		}
	}
	css := f.do(t, http.MethodGet, "/static/style.css", "").Body.String()
	for _, class := range []string{".spark-line", ".spark-area", ".spark-last", ".spark-empty", ".log-filters"} {
		if !strings.Contains(css, class+" ") {
			t.Errorf("style.css lacks %s", class)
		}
	}
}
