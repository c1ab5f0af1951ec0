package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// TestAlertsRestoredAfterRestart: alerts found retained from an earlier run are shown at once,
// and one whose condition ended while the Control Center was down is cleared (published
// cleared on its topic) at the next observation, instead of staying raised on MQTT for ever.
// Our own alerts coming back on the bus are not restored.
func TestAlertsRestoredAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		engine, err := alerts.New(alerts.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, func(c *Config) { c.Now, c.Alerts = time.Now, engine })
		before := time.Now().Add(-time.Hour)
		hot, limit := 85.0, 80.0
		old := topics.Alert{V: 1, Rule: alerts.RuleTempHigh, Severity: topics.SeverityCritical, State: topics.AlertRaised,
			TS: before, Since: before.Add(-time.Minute), Row: rowA, MAC: macA, Hostname: "pi-a",
			Value: &hot, Threshold: &limit, Unit: topics.UnitCelsius, Message: "CPU at 85.0 °C, over 80 °C for 1 min"}
		retained := func(a topics.Alert) {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.bus.Publish(context.Background(), bus.Message{Topic: topics.AlertTopic(a.Row, a.MAC, a.Rule), Payload: b, QoS: 1, Retained: true}); err != nil {
				t.Fatal(err)
			}
		}
		retained(old)
		echo := old
		echo.MAC, echo.TS = macB, time.Now() // as if raised by this run: not taken back
		retained(echo)

		if got := getJSON[[]topics.Alert](t, f, "/api/alerts", http.StatusOK); len(got) != 1 || got[0].MAC != macA || !got[0].TS.Equal(before) {
			t.Fatalf("alerts after the restart: %+v, want the restored temp_high of %s", got, macA)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.rack.Run(ctx) }()
		f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
		if n := getJSON[Node](t, f, "/api/nodes/"+macA, http.StatusOK); len(n.Alerts) != 1 {
			t.Errorf("tile alerts %+v, want the restored one", n.Alerts)
		}
		cool := metricsTS(1, time.Now())
		f.publish(t, topics.MetricsTopic(rowA, macA), cool)
		synctest.Wait()
		pub := alertPublications(t, f)[2:] // after the two above
		if got := states(pub); !slices.Equal(got, []string{"temp_high cleared"}) || pub[0].MAC != macA || !pub[0].Since.Equal(old.Since) {
			t.Errorf("published %q (%+v), want temp_high of %s cleared, keeping its since", got, pub, macA)
		}
		if got := getJSON[[]topics.Alert](t, f, "/api/alerts", http.StatusOK); len(got) != 0 {
			t.Errorf("alerts after a cool sample: %+v, want none", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
