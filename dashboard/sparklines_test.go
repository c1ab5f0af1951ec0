package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// sparkLine formats one Pi's values as "index=value" for the buckets that have one.
func sparkLine(vs []*float64) string {
	var parts []string
	for i, v := range vs {
		if v != nil {
			parts = append(parts, fmt.Sprintf("%d=%v", i, *v))
		}
	}
	return strings.Join(parts, " ")
}

func TestSparklinesAPI(t *testing.T) {
	f, st := newHistoryFixture(t)
	f.clock.Advance(30*time.Minute + 10*time.Second) // 12:30:10
	load := func(mac string, at time.Duration, v float64) {
		m := metrics(1, v)
		m.TS = t0.Add(at)
		st.Add(mac, m)
	}
	load(macA, 29*time.Minute, 1)
	load(macA, 30*time.Minute+5*time.Second, 3) // the current, unfinished minute
	load(macB, 5*time.Minute, 2)
	load(macB, -2*time.Hour, 9) // before every range asked below
	flush(t, st)

	for _, c := range []struct {
		name       string
		query      string
		from, to   time.Duration // from t0
		step       int64
		buckets    int
		macA, macB string
	}{
		// Minute buckets end with the current minute: 11:31 to 12:31.
		{"an hour by the minute", "metric=load_1&minutes=60&buckets=60", -29 * time.Minute, 31 * time.Minute, 60, 60, "58=1 59=3", "34=2"},
		{"the defaults", "", -29 * time.Minute, 31 * time.Minute, 60, 60, "58=1 59=3", "34=2"},
		// Ten-minute buckets on multiples of ten minutes: 11:40 to 12:40.
		{"an hour by ten minutes", "metric=load_1&minutes=60&buckets=6", -20 * time.Minute, 40 * time.Minute, 600, 6, "4=1 5=3", "2=2"},
		// 90 minutes split into the most buckets up to 60 that are whole minutes: 45 of 2.
		{"default buckets of an odd range", "minutes=90", -58 * time.Minute, 32 * time.Minute, 120, 45, "43=1 44=3", "31=2"},
		// One bucket is the epoch-aligned hour: 12:00 to 13:00.
		{"another metric", "metric=cpu_temp_c&minutes=60&buckets=1", 0, time.Hour, 3600, 1, "0=48.3", "0=48.3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := getJSON[SparklinesResponse](t, f, "/api/sparklines?"+c.query, http.StatusOK)
			if !got.From.Equal(t0.Add(c.from)) || !got.To.Equal(t0.Add(c.to)) || got.StepS != c.step {
				t.Errorf("from %v to %v step %d, want %v to %v step %d", got.From, got.To, got.StepS, t0.Add(c.from), t0.Add(c.to), c.step)
			}
			if len(got.Series) != 2 {
				t.Errorf("series of %d Pis, want 2", len(got.Series))
			}
			for mac, want := range map[string]string{macA: c.macA, macB: c.macB} {
				if len(got.Series[mac]) != c.buckets {
					t.Errorf("%s: %d buckets, want %d", mac, len(got.Series[mac]), c.buckets)
				}
				if g := sparkLine(got.Series[mac]); g != want {
					t.Errorf("%s: %s, want %s", mac, g, want)
				}
			}
		})
	}

	// The JSON as documented: nulls for empty buckets.
	w := f.do(t, http.MethodGet, "/api/sparklines?metric=load_1&minutes=3&buckets=3", "", basic("viewer", "viewer-pw"))
	want := `{"metric":"load_1","from":"2026-03-01T12:28:00Z","to":"2026-03-01T12:31:00Z","step_s":60,"series":{"` + macA + `":[null,1,3]}}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("body\n %s\nwant\n %s", got, want)
	}
	// No Pi with data: an empty object, not null.
	var empty map[string]json.RawMessage
	if err := json.Unmarshal(f.do(t, http.MethodGet, "/api/sparklines?metric=watts", "", basic("viewer", "viewer-pw")).Body.Bytes(), &empty); err != nil || string(empty["series"]) != "{}" {
		t.Errorf("no data: series %s (%v), want {}", empty["series"], err)
	}

	for _, c := range []struct{ name, query, want string }{
		{"unknown metric", "metric=shoe", "load_1, cpu_percent"},
		{"a derived chart metric", "metric=mem_used_percent", "metric"},
		{"no minutes", "minutes=0", "minutes"},
		{"more than a day", "minutes=1441", "minutes"},
		{"not a number", "buckets=many", "buckets"},
		{"buckets under a minute", "minutes=60&buckets=61", "buckets"},
		{"buckets that do not divide the range", "minutes=60&buckets=7", "whole number of minutes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, "/api/sparklines?"+c.query, "", basic("viewer", "viewer-pw"))
			if w.Code != http.StatusBadRequest || !strings.Contains(jsonError(t, w), c.want) {
				t.Errorf("%d %s, want 400 about %s", w.Code, w.Body, c.want)
			}
		})
	}
}

// TestSparklinesLive: a sample committed in the current minute is in the next answer.
func TestSparklinesLive(t *testing.T) {
	f, st := newHistoryFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.clock.Advance(20 * time.Second)
	m := metrics(1, 0.75)
	m.TS = f.clock.Now()
	f.publish(t, topics.MetricsTopic(rowA, macA), m) // through ingestion, as in production
	flush(t, st)
	got := getJSON[SparklinesResponse](t, f, "/api/sparklines?minutes=5&buckets=5", http.StatusOK)
	if g := sparkLine(got.Series[macA]); g != "4=0.75" {
		t.Errorf("current minute: %s, want 4=0.75", g)
	}
}
