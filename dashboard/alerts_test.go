package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// eventLog is a History that keeps only events, for tests that check what was logged without a
// database.
type eventLog struct {
	mu     sync.Mutex
	events []history.Event
}

func (l *eventLog) Add(string, topics.Metrics)    {}
func (l *eventLog) AddPower(string, topics.Power) {}
func (l *eventLog) AddEvent(e history.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// SaveEvent records e unless an event with its Key is recorded, as history.Store does.
func (l *eventLog) SaveEvent(_ context.Context, e history.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.events {
		if e.Key != "" && x.Key == e.Key {
			return nil
		}
	}
	l.events = append(l.events, e)
	return nil
}
func (l *eventLog) Events(context.Context, string, time.Time, int) ([]history.Event, error) {
	return nil, nil
}
func (l *eventLog) Series(context.Context, string, string, time.Time, time.Time, int) ([]history.Point, error) {
	return nil, nil
}
func (l *eventLog) PowerSeries(context.Context, string, string, time.Time, time.Time, int) ([]history.Point, error) {
	return nil, nil
}

func (l *eventLog) kinds(kind string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e.Detail)
		}
	}
	return out
}

var _ History = (*eventLog)(nil)

// alertPublications returns the alert transitions published on the bus, checking that each is
// retained, QoS 1, on its rule's topic.
func alertPublications(t *testing.T, f *fixture) []topics.Alert {
	t.Helper()
	var out []topics.Alert
	for _, m := range f.bus.Published() {
		tp, err := topics.Parse(m.Topic)
		if err != nil || tp.Kind != topics.KindAlert {
			continue
		}
		a, err := topics.DecodeAlert(m.Payload)
		if err != nil {
			t.Fatalf("alert on %s: %v", m.Topic, err)
		}
		if !m.Retained || m.QoS != 1 || m.Topic != topics.AlertTopic(a.Row, a.MAC, a.Rule) {
			t.Errorf("alert published on %s retain=%v qos=%d, want retained QoS 1 on %s", m.Topic, m.Retained, m.QoS, topics.AlertTopic(a.Row, a.MAC, a.Rule))
		}
		out = append(out, a)
	}
	return out
}

func states(as []topics.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule+" "+a.State)
	}
	return out
}

// TestAlerts runs Run on the bubble's fake clock with the default rules: a hot Pi raises
// temp_high after its minute, shown on the API, the page and its tile and published retained;
// it clears when it cools; an offline Pi raises offline from Run's tick; every transition is in
// the event log.
func TestAlerts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		engine, err := alerts.New(alerts.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		log := &eventLog{}
		f := newFixture(t, func(c *Config) { c.Now, c.Alerts, c.History = time.Now, engine, log })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()

		status, metricsTopic := topics.StatusTopic(rowA, macA), topics.MetricsTopic(rowA, macA)
		f.publish(t, status, online("pi-a", "s1"))
		hot := func(seq uint64, c float64) topics.Metrics {
			m := metricsTS(seq, time.Now())
			m.CPUTempC = &c
			return m
		}
		// Every 10 s for a minute: often enough not to go stale.
		for seq := uint64(1); seq <= 7; seq++ {
			if seq > 1 {
				time.Sleep(10 * time.Second)
			}
			f.publish(t, metricsTopic, hot(seq, 83.4))
		}
		synctest.Wait()
		pub := alertPublications(t, f)
		if got := states(pub); !slices.Equal(got, []string{"temp_high raised"}) {
			t.Fatalf("published %q, want temp_high raised", got)
		}
		if pub[0].MAC != macA || pub[0].Row != rowA || pub[0].Hostname != "pi-a" {
			t.Errorf("alert %+v: want Pi %s in %s", pub[0], macA, rowA)
		}

		active := getJSON[[]topics.Alert](t, f, "/api/alerts", http.StatusOK)
		if got := states(active); !slices.Equal(got, []string{"temp_high raised"}) {
			t.Errorf("GET /api/alerts: %q", got)
		}
		n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK)
		if len(n.Alerts) != 1 || n.Alerts[0].Rule != "temp_high" {
			t.Errorf("node alerts %+v", n.Alerts)
		}
		page := f.do(t, http.MethodGet, "/", "", basic("viewer", "viewer-pw")).Body.String()
		msg := pub[0].Message
		if strings.Count(page, msg) != 2 || !strings.Contains(page, `data-alerts="1"`) || !strings.Contains(page, `data-rule="temp_high"`) {
			t.Errorf("rack page: want the message %q in the banner and on the tile, and the tile marked", msg)
		}

		// Cooling clears it, published again on the same topic.
		f.publish(t, metricsTopic, hot(8, 70))
		synctest.Wait()
		if got := states(alertPublications(t, f)); !slices.Equal(got, []string{"temp_high raised", "temp_high cleared"}) {
			t.Errorf("after cooling: published %q", got)
		}
		if got := getJSON[[]topics.Alert](t, f, "/api/alerts", http.StatusOK); len(got) != 0 {
			t.Errorf("after cooling: active %+v, want none", got)
		}

		// Offline raises after its 30 s, from Run's once-a-second tick.
		f.publish(t, status, offline("s1"))
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if got := states(alertPublications(t, f)); len(got) != 2 {
			t.Errorf("offline before its 30 s: published %q", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := states(alertPublications(t, f)); !slices.Equal(got[2:], []string{"offline raised"}) {
			t.Errorf("offline after 30 s: published %q", got)
		}

		if got := log.kinds(EventAlert); len(got) != 3 || !strings.HasPrefix(got[0], "temp_high raised: ") ||
			!strings.HasPrefix(got[1], "temp_high cleared: ") || !strings.HasPrefix(got[2], "offline raised: ") {
			t.Errorf("alert events %q", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestAlertsQueuedUntilRun shows that ingestion never publishes on the bus itself (the
// embedded broker delivers inline, so that would re-enter ingestion): transitions wait for
// Run's publisher.
func TestAlertsQueuedUntilRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lo, hi := 10.0, 30.0
		cfg := alerts.DefaultConfig()
		cfg.PowerBand.Rows = map[string]alerts.PowerBand{rowA: {MinW: &lo, MaxW: &hi}}
		engine, err := alerts.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, func(c *Config) { c.Now, c.Alerts = time.Now, engine })
		watts := func(w float64) topics.Power { return topics.Power{V: 1, TS: time.Now(), Watts: &w} }
		f.publish(t, topics.PowerTopic(rowA), watts(50))
		time.Sleep(3 * time.Minute)
		f.publish(t, topics.PowerTopic(rowA), watts(51))
		if got := alertPublications(t, f); len(got) != 0 {
			t.Fatalf("published from ingestion: %q", states(got))
		}
		rows := getJSON[[]Row](t, f, "/api/rows", http.StatusOK)
		if len(rows) != 1 || len(rows[0].Alerts) != 1 || rows[0].Alerts[0].Rule != "power_band" {
			t.Fatalf("rows %+v, want %s with a power_band alert", rows, rowA)
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()
		synctest.Wait()
		pub := alertPublications(t, f)
		if got := states(pub); !slices.Equal(got, []string{"power_band raised"}) || pub[0].MAC != "" ||
			f.bus.Published()[len(f.bus.Published())-1].Topic != topics.AlertTopic(rowA, "", "power_band") {
			t.Errorf("published %q, want the row's power_band", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
