package dashboard

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

// hostileStrings are what a hostile or broken publisher may put in any string of a status.
// reason "" means topics and the dashboard accept the value, so it must be shown inert.
var hostileStrings = []struct {
	name, value, reason string
}{
	{"img onerror", `<img src=x onerror=alert(1)>`, ""},
	{"attribute breakout", `"><script>alert(1)</script>`, ""},
	{"javascript URL", `javascript:alert(document.cookie)`, ""},
	{"quotes and entities", `'&amp;<b>x</b>`, ""},
	{"RTL override", "pi-\u202egnp.exe", reasonPayload},
	{"bidi isolate", "pi\u2067-07", reasonPayload},
	{"NUL (JSON escape)", "a\x00b", reasonPayload},
	{"ANSI escape", "a\x1b[31mred", reasonPayload},
	{"newline", "a\nfake log line", reasonPayload},
	{"over the field limit", strings.Repeat("a", 300), reasonPayload},
	{"64 KiB", strings.Repeat("<", 64<<10), reasonOversized},
}

// statusFields sets one string field of a status by its JSON name.
var statusFields = map[string]func(*topics.Status, string){
	"hostname":      func(s *topics.Status, v string) { s.Hostname = v },
	"ip":            func(s *topics.Status, v string) { s.IP = v },
	"model":         func(s *topics.Status, v string) { s.Model = v },
	"agent_version": func(s *topics.Status, v string) { s.AgentVersion = v },
	"session":       func(s *topics.Status, v string) { s.Session = v },
}

// nodeField reads the field of a Node that a status field lands in; session is not shown.
func nodeField(n Node, field string) (string, bool) {
	switch field {
	case "hostname":
		return n.Hostname, true
	case "ip":
		return n.IP, true
	case "model":
		return n.Model, true
	case "agent_version":
		return n.AgentVersion, true
	}
	return "", false
}

var (
	rawTag          = regexp.MustCompile(`(?i)<\s*(img|script|b)\b`)
	scriptURL       = regexp.MustCompile(`(?i)(href|src|action|formaction)\s*=\s*["']?\s*javascript:`)
	appScriptTags   = []string{`<script src="/static/fmt.js" defer>`, `<script src="/static/spark.js" defer>`, `<script src="/static/app.js" defer>`}
	statusTopicA    = topics.StatusTopic(rowA, macA)
	invalidCounters = func(s Stats) map[string]uint64 {
		return map[string]uint64{
			reasonJSON: s.InvalidBy.JSON, reasonPayload: s.InvalidBy.Payload,
			reasonOversized: s.InvalidBy.Oversized, reasonUnknownTopic: s.InvalidBy.UnknownTopic,
		}
	}
)

// checkInert fails if a page carries markup or script URLs that did not come from the
// templates.
func checkInert(t *testing.T, page string) {
	t.Helper()
	for _, tag := range rawTag.FindAllString(page, -1) {
		if tag != "<script" {
			t.Errorf("page carries a raw %s tag", tag)
		}
	}
	n := strings.Count(page, "<script")
	for _, tag := range appScriptTags {
		if !strings.Contains(page, tag) {
			n = -1
		}
	}
	if n != len(appScriptTags) {
		t.Errorf("page has %d <script tags, want only %q", n, appScriptTags)
	}
	if m := scriptURL.FindString(page); m != "" {
		t.Errorf("page carries a script URL: %s", m)
	}
}

func TestHostileStatusStrings(t *testing.T) {
	for field, set := range statusFields {
		for _, h := range hostileStrings {
			t.Run(field+"/"+h.name, func(t *testing.T) {
				f := newFixture(t)
				ts := httptest.NewServer(f.srv.Handler())
				t.Cleanup(ts.Close)
				f.publish(t, statusTopicA, online("pi-a", "s1"))
				before := f.rack.Nodes()
				live := openStream(t, t.Context(), ts.URL)
				live.snapshot(t)

				st := online("pi-a", "s1")
				set(&st, h.value)
				f.publish(t, statusTopicA, st)

				stats := f.rack.Stats()
				page := f.do(t, "GET", "/", "", basic("admin", "admin-pw")).Body.String()
				checkInert(t, page)
				api := f.do(t, "GET", "/api/nodes", "", basic("viewer", "viewer-pw")).Body.String()
				if rawTag.MatchString(api) {
					t.Errorf("/api/nodes carries a raw tag")
				}

				if h.reason != "" {
					if stats.Invalid != 1 || invalidCounters(stats)[h.reason] != 1 || stats.Applied != 1 {
						t.Errorf("Stats = %+v, want 1 invalid for %s", stats, h.reason)
					}
					if after := f.rack.Nodes(); !reflect.DeepEqual(after, before) {
						t.Errorf("state changed by an invalid status:\n%+v\nwas\n%+v", after, before)
					}
					logs := f.logs.String()
					for _, want := range []string{"dropping invalid payload", "topic=" + statusTopicA, "reason=" + h.reason, "err="} {
						if !strings.Contains(logs, want) {
							t.Errorf("log lacks %q:\n%s", want, logs)
						}
					}
					if strings.ContainsAny(strings.TrimSuffix(logs, "\n"), "\n\x00\x1b\u202e") {
						t.Errorf("hostile characters reached the log raw:\n%q", logs)
					}
					if len(logs) > 2048 {
						t.Errorf("log line is %d bytes: hostile input is not clipped", len(logs))
					}
					return
				}

				// Valid but markup: stored as is, shown escaped, served as plain strings.
				if stats.Invalid != 0 || stats.Applied != 2 {
					t.Errorf("Stats = %+v, want the status applied", stats)
				}
				n := only(t, f.rack.Nodes())
				got, shown := nodeField(n, field)
				if shown && got != h.value {
					t.Errorf("%s = %q, want %q", field, got, h.value)
				}
				if shown && !strings.Contains(page, template.HTMLEscapeString(h.value)) {
					t.Errorf("the page does not show %s as escaped text %q", field, template.HTMLEscapeString(h.value))
				}
				var nodes []Node
				if err := json.Unmarshal([]byte(api), &nodes); err != nil || len(nodes) != 1 {
					t.Fatalf("/api/nodes: %v: %s", err, api)
				}
				if got, _ := nodeField(nodes[0], field); shown && got != h.value {
					t.Errorf("/api/nodes %s = %q, want the plain string %q", field, got, h.value)
				}
				ev := live.next(t)
				if rawTag.MatchString(ev.data) {
					t.Errorf("SSE data carries a raw tag: %s", ev.data)
				}
				if got, _ := nodeField(decodeAs[Node](t, ev, "node"), field); shown && got != h.value {
					t.Errorf("SSE %s = %q, want the plain string %q", field, got, h.value)
				}
			})
		}
	}
}

// TestHostileMessages covers what cannot be built from a valid Status: raw bytes, other
// topics' payloads and the topics themselves.
func TestHostileMessages(t *testing.T) {
	metricsA, buttonA := topics.MetricsTopic(rowA, macA), topics.ButtonTopic(rowA, macA)
	tests := []struct {
		name, topic, payload, reason string
	}{
		{"raw NUL byte in a string", statusTopicA, "{\"v\":1,\"state\":\"online\",\"hostname\":\"a\x00b\"}", reasonJSON},
		{"raw newline in a string", statusTopicA, "{\"v\":1,\"state\":\"online\",\"hostname\":\"a\nb\"}", reasonJSON},
		{"truncated JSON", statusTopicA, `{"v":1,"state":"onl`, reasonJSON},
		{"wrong type", statusTopicA, `{"v":1,"state":"online","hostname":["<img>"]}`, reasonPayload},
		{"markup as the state", statusTopicA, `{"v":1,"state":"<script>alert(1)</script>"}`, reasonPayload},
		{"markup as a throttling flag", metricsA, `{"v":1,"ts":"2026-03-01T12:00:00Z","throttled_now":["<img src=x onerror=alert(1)>"]}`, reasonPayload},
		{"markup as a press kind", buttonA, `{"v":1,"press":"<img src=x onerror=alert(1)>","seq":1,"ts":"2026-03-01T12:00:00Z"}`, reasonPayload},
		{"64 KiB metrics", metricsA, `{"v":1,"ts":"2026-03-01T12:00:00Z","x":"` + strings.Repeat("A", 64<<10) + `"}`, reasonOversized},
		{"markup in the MAC level", topics.Root + "/" + rowA + "/<img src=x>/status", `online`, reasonUnknownTopic},
		{"markup in the row level", topics.Root + "/<script>/" + macA + "/status", `online`, reasonUnknownTopic},
		{"NUL in the topic", topics.Root + "/" + rowA + "/" + macA + "/status\x00", `online`, reasonUnknownTopic},
		{"64 KiB topic", topics.Root + "/" + strings.Repeat("a", 64<<10) + "/" + macA + "/status", `online`, reasonUnknownTopic},
		{"extra level", statusTopicA + "/x", `online`, reasonUnknownTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.publish(t, statusTopicA, online("pi-a", "s1"))
			before := f.rack.Nodes()
			f.publish(t, tt.topic, []byte(tt.payload))

			stats := f.rack.Stats()
			counts := invalidCounters(stats)
			var n uint64
			for _, r := range strings.Split(tt.reason, "|") {
				n += counts[r]
			}
			if stats.Invalid != 1 || n != 1 {
				t.Errorf("Stats = %+v, want one invalid for %s", stats, tt.reason)
			}
			if after := f.rack.Nodes(); !reflect.DeepEqual(after, before) {
				t.Errorf("state changed:\n%+v\nwas\n%+v", after, before)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "dropping invalid payload") || !strings.Contains(logs, "reason=") || !strings.Contains(logs, "topic=") {
				t.Errorf("no clear log line:\n%s", logs)
			}
			if len(logs) > 2048 {
				t.Errorf("log line is %d bytes: hostile input is not clipped", len(logs))
			}
			checkInert(t, f.do(t, "GET", "/", "", basic("admin", "admin-pw")).Body.String())
		})
	}
}

// TestInvalidByReasonInAPIStats: the per-reason counters are served at /api/stats.
func TestInvalidByReasonInAPIStats(t *testing.T) {
	f := newFixture(t)
	f.publish(t, statusTopicA, "{")
	f.publish(t, statusTopicA, `{"v":9,"state":"online"}`)
	f.publish(t, statusTopicA, strings.Repeat(" ", topics.MaxPayload+1))
	f.publish(t, topics.Root+"/x", "x")
	f.publish(t, topics.Root+"/y", "y")
	w := f.do(t, "GET", "/api/stats", "", basic("viewer", "viewer-pw"))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/stats: %d", w.Code)
	}
	want := `"invalid":5,"invalid_by":{"invalid_json":1,"invalid_payload":1,"oversized":1,"unknown_topic":2}`
	if !strings.Contains(w.Body.String(), want) {
		t.Errorf("/api/stats = %s, want it to contain %s", w.Body, want)
	}
}
