package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// TestRestoreInAnyOrder: after a restart the Pi's retained offline status (the Will the
// restart itself caused), its retained metrics and its retained alerts come back in no set
// order. In every order a restored alert stays raised while the Pi is offline, stays raised
// (nothing published) when the Pi is back and its condition still holds, and clears with the
// first sample that finds it ended. Once the Pi has been back online, an offline clears it
// like any other.
func TestRestoreInAnyOrder(t *testing.T) {
	raisedBefore := topics.Alert{
		V: 1, Rule: RuleTempHigh, Severity: topics.SeverityCritical, State: topics.AlertRaised,
		TS: t0.Add(-time.Hour), Since: t0.Add(-2 * time.Hour), Row: row1, MAC: mac1,
		Value: ptr(85.0), Threshold: ptr(80.0), Unit: topics.UnitCelsius, Message: "CPU at 85.0 °C, over 80 °C for 1 h",
	}
	hot := func(m *topics.Metrics) { m.CPUTempC = ptr(85.0) }
	cool := func(m *topics.Metrics) { m.CPUTempC = ptr(60.0) }
	replay := map[string]func(h *harness) []topics.Alert{
		"alert": func(h *harness) []topics.Alert { return h.check(h.e.Restore(raisedBefore, h.now)) },
		// Raw: a replayed sample comes with no birth before it.
		"metrics": func(h *harness) []topics.Alert { return h.check(h.e.ObserveMetrics(mac1, row1, h.sample(hot), h.now)) },
		"offline": func(h *harness) []topics.Alert { return h.status(topics.StateOffline, "s1") },
	}
	for _, order := range [][]string{
		{"alert", "metrics", "offline"},
		{"alert", "offline", "metrics"},
		{"metrics", "alert", "offline"},
		{"metrics", "offline", "alert"},
		{"offline", "alert", "metrics"},
		{"offline", "metrics", "alert"},
	} {
		for _, after := range []string{"hot", "cool"} {
			t.Run(strings.Join(order, ",")+" then "+after, func(t *testing.T) {
				h := newHarness(t, DefaultConfig())
				for _, what := range order {
					if out := replay[what](h); len(out) != 0 {
						t.Fatalf("replaying the retained %s gave %+v, want nothing", what, out)
					}
				}
				if got := summary(h.e.Active()); got != "temp_high:raised" {
					t.Fatalf("Active() = %q after the replay, want the restored temp_high", got)
				}

				h.at(5 * time.Second)
				if out := h.status(topics.StateOnline, "s2"); len(out) != 0 {
					t.Fatalf("the Pi back online gave %+v", out)
				}
				if after == "cool" {
					out := h.metrics(cool)
					if summary(out) != "temp_high:cleared" || !out[0].Since.Equal(raisedBefore.Since) || *out[0].Value != 60 {
						t.Fatalf("a cool sample after the restart gave %+v, want the restored temp_high cleared", out)
					}
					return
				}
				if out := h.metrics(hot); len(out) != 0 {
					t.Fatalf("a hot sample after the restart gave %+v, want the restored alert kept as it was", out)
				}
				if a, ok := h.e.Raised(row1, mac1, RuleTempHigh); !ok || !a.TS.Equal(raisedBefore.TS) {
					t.Fatalf("Raised(temp_high) = %+v, %v; want the restored alert", a, ok)
				}
				h.at(10 * time.Second)
				out := h.status(topics.StateOffline, "s2")
				if summary(out) != "temp_high:cleared" || !out[0].Since.Equal(raisedBefore.Since) {
					t.Fatalf("going offline once back gave %+v, want temp_high cleared", out)
				}
			})
		}
	}

	t.Run("forget", func(t *testing.T) {
		h := newHarness(t, DefaultConfig())
		h.check(h.e.Restore(raisedBefore, h.now))
		h.status(topics.StateOffline, "s1")
		if out := h.check(h.e.Forget(mac1, h.now)); summary(out) != "temp_high:cleared" {
			t.Fatalf("Forget gave %+v, want the restored temp_high cleared", out)
		}
	})
}
