package notify

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestParseFileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"no targets", `{}`, "targets: name at least one"},
		{"unknown field", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "repeats": "1h"}`, "unknown field"},
		{"bad type", `{"targets": {"a": {"type": "slack", "url": "http://x/"}}}`, `type "slack"`},
		{"bad name", `{"targets": {"A B": {"type": "webhook", "url": "http://x/"}}}`, "a target's name"},
		{"url and url_file", `{"targets": {"a": {"type": "ntfy", "url": "http://x/", "url_file": "/f"}}}`, "not both"},
		{"ftp url", `{"targets": {"a": {"type": "webhook", "url": "ftp://x/"}}}`, "http:// or https://"},
		{"smtp login without tls", `{"targets": {"m": {"type": "smtp", "host": "h", "tls": "none", "username": "u", "password_file": "/p", "from": "a@b", "to": ["c@d"]}}}`, "only ever sent over TLS"},
		{"smtp no password file", `{"targets": {"m": {"type": "smtp", "host": "h", "username": "u", "from": "a@b", "to": ["c@d"]}}}`, "needs the file"},
		{"smtp header injection", `{"targets": {"m": {"type": "smtp", "host": "h", "from": "a@b\r\nBcc: x@y", "to": ["c@d"]}}}`, "from"},
		{"smtp no recipient", `{"targets": {"m": {"type": "smtp", "host": "h", "from": "a@b"}}}`, "at least one recipient"},
		{"route to unknown target", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "routes": [{"targets": ["b"]}]}`, `no target named "b"`},
		{"route bad severity", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "routes": [{"targets": ["a"], "severities": ["info"]}]}`, `"info"`},
		{"route bad rule", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "routes": [{"targets": ["a"], "rules": ["Temp High"]}]}`, "not a rule name"},
		{"repeat too short", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "repeat": "10s"}`, "at least 1m"},
		{"repeat a number", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "repeat": 3600}`, "want a string"},
		{"quiet bad clock", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "quiet_hours": {"from": "22", "to": "7:00"}}`, "quiet_hours.from"},
		{"quiet empty window", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "quiet_hours": {"from": "22:00", "to": "22:00"}}`, "equal to from"},
		{"quiet let through", `{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "quiet_hours": {"from": "22:00", "to": "07:00", "let_through": "warning"}}`, "let_through"},
		{"bad dashboard url", `{"dashboard_url": "rack.local", "targets": {"a": {"type": "webhook", "url": "http://x/"}}}`, "dashboard_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tc.json))
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseFile: %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestQuietHoursHolds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	at := func(hhmm string) time.Time {
		c, _ := parseClock(hhmm)
		return time.Date(2026, 3, 10, c/60, c%60, 0, 0, time.UTC)
	}
	night := &QuietHours{From: "22:00", To: "07:00"}
	none := &QuietHours{From: "22:00", To: "07:00", LetThrough: LetThroughNone}
	lunch := &QuietHours{From: "12:00", To: "13:30"}
	zoned := &QuietHours{From: "22:00", To: "07:00", TimeZone: "Europe/Berlin"}
	for _, q := range []*QuietHours{night, none, lunch, zoned} {
		if errs := q.validate(); errs != nil {
			t.Fatal(errs)
		}
	}
	for _, tc := range []struct {
		name     string
		q        *QuietHours
		severity string
		now      time.Time
		loc      *time.Location
		want     bool
	}{
		{"no quiet hours", nil, topics.SeverityWarning, at("23:00"), time.UTC, false},
		{"warning before the window", night, topics.SeverityWarning, at("21:59"), time.UTC, false},
		{"warning at its start", night, topics.SeverityWarning, at("22:00"), time.UTC, true},
		{"warning after midnight", night, topics.SeverityWarning, at("03:00"), time.UTC, true},
		{"warning at its end", night, topics.SeverityWarning, at("07:00"), time.UTC, false},
		{"critical let through", night, topics.SeverityCritical, at("03:00"), time.UTC, false},
		{"critical held with none", none, topics.SeverityCritical, at("03:00"), time.UTC, true},
		{"window within a day", lunch, topics.SeverityWarning, at("13:29"), time.UTC, true},
		{"after a window within a day", lunch, topics.SeverityWarning, at("13:30"), time.UTC, false},
		{"local time: 21:30 UTC is 22:30 in Berlin", night, topics.SeverityWarning, at("21:30"), berlin, true},
		{"the window's own zone wins", zoned, topics.SeverityWarning, at("21:30"), time.UTC, true},
		{"the window's own zone, outside", zoned, topics.SeverityWarning, at("06:30"), time.UTC, false},
	} {
		if got := tc.q.Holds(tc.severity, tc.now, tc.loc); got != tc.want {
			t.Errorf("%s: Holds = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTargetsFor(t *testing.T) {
	f, err := ParseFile([]byte(`{
		"targets": {
			"phone": {"type": "ntfy", "url": "https://ntfy.sh/t"},
			"mail": {"type": "smtp", "host": "smtp.example.org", "from": "pirack@example.org", "to": ["ops@example.org"]},
			"hook": {"type": "webhook", "url": "https://hooks.example.org/x"}
		},
		"routes": [
			{"targets": ["phone"], "severities": ["critical"]},
			{"targets": ["phone"], "rules": ["disk_full"]},
			{"targets": ["mail", "hook"]},
			{"targets": ["hook"], "rules": ["offline"], "severities": ["critical"]}
		]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	all, err := ParseFile([]byte(`{"targets": {"b": {"type": "webhook", "url": "http://x/"}, "a": {"type": "webhook", "url": "http://y/"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		f              File
		rule, severity string
		want           string
	}{
		{"critical goes to the phone too", f, "temp_high", topics.SeverityCritical, "hook,mail,phone"},
		{"a warning does not", f, "load_high", topics.SeverityWarning, "hook,mail"},
		{"but disk_full does, whatever its severity", f, "disk_full", topics.SeverityWarning, "hook,mail,phone"},
		{"a target named by two routes gets one message", f, "offline", topics.SeverityCritical, "hook,mail,phone"},
		{"no routes: every target", all, "stale", topics.SeverityWarning, "a,b"},
	} {
		if got := strings.Join(tc.f.targetsFor(tc.rule, tc.severity), ","); got != tc.want {
			t.Errorf("%s: targetsFor(%s, %s) = %s, want %s", tc.name, tc.rule, tc.severity, got, tc.want)
		}
	}
	none, err := ParseFile([]byte(`{"targets": {"a": {"type": "webhook", "url": "http://x/"}}, "routes": [{"targets": ["a"], "rules": ["offline"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := none.targetsFor("temp_high", topics.SeverityCritical); len(got) != 0 {
		t.Errorf("an alert no route matches goes to %v, want nowhere", got)
	}
}

func TestDecide(t *testing.T) {
	night := &QuietHours{From: "22:00", To: "07:00"}
	if errs := night.validate(); errs != nil {
		t.Fatal(errs)
	}
	day := time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)
	nightTime := time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)
	raised := func(sev string) topics.Alert {
		return topics.Alert{Rule: "temp_high", Severity: sev, State: topics.AlertRaised}
	}
	cleared := func(sev string) topics.Alert {
		return topics.Alert{Rule: "temp_high", Severity: sev, State: topics.AlertCleared}
	}
	base := policy{quiet: night, loc: time.UTC, repeat: time.Hour, resolved: true}
	noResolved := base
	noResolved.resolved = false
	noRepeat := base
	noRepeat.repeat = 0
	for _, tc := range []struct {
		name      string
		p         policy
		rec       record
		routed    bool
		now       time.Time
		wantEvent string
		wantDone  bool
	}{
		{"new raise", base, record{Alert: raised("warning")}, true, day, EventRaised, false},
		{"new raise nobody takes", base, record{Alert: raised("warning")}, false, day, "", false},
		{"warning held at night", base, record{Alert: raised("warning")}, true, nightTime, "", false},
		{"critical not held at night", base, record{Alert: raised("critical")}, true, nightTime, EventRaised, false},
		{"notified, not yet due", base, record{Alert: raised("warning"), Notified: true, LastSent: day.Add(-59 * time.Minute)}, true, day, "", false},
		{"notified, reminder due", base, record{Alert: raised("warning"), Notified: true, LastSent: day.Add(-time.Hour)}, true, day, EventReminder, false},
		{"reminder held at night", base, record{Alert: raised("warning"), Notified: true, LastSent: nightTime.Add(-2 * time.Hour)}, true, nightTime, "", false},
		{"no reminders", noRepeat, record{Alert: raised("warning"), Notified: true, LastSent: day.Add(-48 * time.Hour)}, true, day, "", false},
		{"resolved", base, record{Alert: cleared("warning"), Notified: true}, true, day, EventResolved, true},
		{"resolved held at night", base, record{Alert: cleared("warning"), Notified: true}, true, nightTime, "", false},
		{"critical resolved at night", base, record{Alert: cleared("critical"), Notified: true}, true, nightTime, EventResolved, true},
		{"cleared before anyone was told", base, record{Alert: cleared("warning")}, true, day, "", true},
		{"resolved messages off", noResolved, record{Alert: cleared("warning"), Notified: true}, true, day, "", true},
	} {
		ev, done := tc.p.decide(tc.rec, tc.routed, tc.now)
		if ev != tc.wantEvent || done != tc.wantDone {
			t.Errorf("%s: decide = (%q, %v), want (%q, %v)", tc.name, ev, done, tc.wantEvent, tc.wantDone)
		}
	}
}
