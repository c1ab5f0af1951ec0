package dashboard

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// Holds: an acknowledgement lasts until its alert clears, a silence until its time, a Pi's or
// row's maintenance until ended, and all of them across a restart.
func TestHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), HoldsFile)
	log := slog.New(slog.DiscardHandler)
	h := openHolds(path, log)
	hot := topics.Alert{Row: "r1", MAC: macA, Rule: "temp_high", State: topics.AlertRaised}
	disk := topics.Alert{Row: "r1", MAC: macB, Rule: "disk_full", State: topics.AlertRaised}
	power := topics.Alert{Row: "r2", Rule: "power_band", State: topics.AlertRaised}

	h.ack(alertKey(hot.Row, hot.MAC, hot.Rule), Ack{By: "ann", Note: "on it", At: t0})
	h.ack(alertKey(disk.Row, disk.MAC, disk.Rule), Ack{By: "bob", At: t0, Until: t0.Add(time.Hour)})
	h.setMaintenance(rowKey("r2"), &Maintenance{By: "cy", At: t0})
	for _, c := range []struct {
		a    topics.Alert
		at   time.Time
		want bool
	}{{hot, t0.Add(24 * time.Hour), true}, {disk, t0.Add(59 * time.Minute), true}, {disk, t0.Add(time.Hour), false}, {power, t0, true}} {
		if got := h.held(c.a, c.at); got != c.want {
			t.Errorf("held(%s at +%v) = %v, want %v", c.a.Rule, c.at.Sub(t0), got, c.want)
		}
	}
	if acks := h.acksOf([]topics.Alert{hot}, t0); acks["temp_high"].Note != "on it" {
		t.Fatalf("acksOf: %+v", acks)
	}

	again := openHolds(path, log) // a restart
	if !again.held(hot, t0) || again.maintenance(rowKey("r2")) == nil {
		t.Fatal("holds lost across a restart")
	}
	cleared := hot
	cleared.State = topics.AlertCleared
	again.cleared(cleared, t0.Add(2*time.Hour))
	if again.held(hot, t0.Add(2*time.Hour)) {
		t.Fatal("an acknowledgement outlived its alert: the next raise would be hidden")
	}
	again.setMaintenance(rowKey("r2"), nil)
	if again.held(power, t0) {
		t.Fatal("maintenance ended, the row's alert still held")
	}
}
