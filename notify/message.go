package notify

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/topics"
)

// Events carried by Notification.Event.
const (
	EventRaised   = "raised"   // the alert was raised (or found raised, never notified)
	EventReminder = "reminder" // the alert is still raised, File.Repeat after the last message
	EventResolved = "resolved" // the alert cleared
	EventTest     = "test"     // a test-send from the Control Center; no alert behind it
)

// States carried by Notification.State.
const (
	StateRaised   = "raised"
	StateResolved = "resolved"
)

// Notification is what every target is told, and the JSON body a webhook receives. Its fields
// are the alert's (topics.Alert) with the state named for people (resolved, not cleared), why
// it is sent (Event), an ID and a link.
type Notification struct {
	V int `json:"v"` // 1
	// ID is the same for every target and every attempt of one notification, so that a
	// receiver can drop a message delivered twice (after a crash between sending and
	// recording the delivery).
	ID       string `json:"id"`
	Event    string `json:"event"`    // EventRaised, EventReminder, EventResolved or EventTest
	Rule     string `json:"rule"`     // offline, temp_high, ...
	Severity string `json:"severity"` // warning or critical
	State    string `json:"state"`    // StateRaised or StateResolved
	Row      string `json:"row"`
	MAC      string `json:"mac,omitempty"` // empty for a row's alert (power_band)
	Hostname string `json:"hostname,omitempty"`
	// Value, Threshold and Unit are the measurement and the limit, as in the alert's payload;
	// rules without a measurement (offline, throttled) leave them out.
	Value     *float64 `json:"value,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	Unit      string   `json:"unit,omitempty"`
	// Since is when the condition began; TS when the alert was raised or resolved.
	Since   time.Time `json:"since"`
	TS      time.Time `json:"ts"`
	Message string    `json:"message"`
	// URL links to the Pi's page on the Control Center (the rack page for a row's alert);
	// empty when the Control Center's address is not known.
	URL string `json:"url,omitempty"`
}

// notificationVersion is Notification.V.
const notificationVersion = 1

// fromAlert builds the notification of alert a, sent for event, with id and a link under base.
func fromAlert(a topics.Alert, event, id, base string) Notification {
	n := Notification{
		V: notificationVersion, ID: id, Event: event, Rule: a.Rule, Severity: a.Severity, State: StateRaised,
		Row: a.Row, MAC: a.MAC, Hostname: a.Hostname, Value: a.Value, Threshold: a.Threshold, Unit: a.Unit,
		Since: a.Since.UTC(), TS: a.TS.UTC(), Message: a.Message, URL: link(base, a.MAC),
	}
	if a.State == topics.AlertCleared {
		n.State = StateResolved
	}
	return n
}

// link is the Pi's page under base, or the rack page for a row's alert.
func link(base, mac string) string {
	if base == "" {
		return ""
	}
	base = strings.TrimRight(base, "/")
	if mac == "" {
		return base + "/"
	}
	return base + "/nodes/" + url.PathEscape(mac)
}

// who names the Pi or row: "pi-07 (b827eb3f1a2c, row r1)", or "row r1".
func (n Notification) who() string {
	switch {
	case n.MAC == "":
		return "row " + n.Row
	case n.Hostname != "":
		return n.Hostname + " (" + n.MAC + ", row " + n.Row + ")"
	}
	return n.MAC + " (row " + n.Row + ")"
}

// Title is a one-line summary: "CRITICAL temp_high on pi-07 (b827eb3f1a2c, row r1)",
// "Resolved: temp_high on ...", "Still raised: ...".
func (n Notification) Title() string {
	var s string
	switch n.Event {
	case EventTest:
		return "pirack test notification"
	case EventResolved:
		s = "Resolved: " + n.Rule
	case EventReminder:
		s = "Still " + strings.ToUpper(n.Severity) + ": " + n.Rule
	default:
		s = strings.ToUpper(n.Severity) + " " + n.Rule
	}
	return oneLine(s + " on " + n.who())
}

// Text is the body for people: the message, the measurement, how long, and the link.
func (n Notification) Text() string {
	var b strings.Builder
	b.WriteString(n.Message)
	b.WriteString("\n")
	if n.Event == EventTest {
		if n.URL != "" {
			b.WriteString("\n" + n.URL + "\n")
		}
		return b.String()
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Rule:     %s (%s)\n", n.Rule, n.Severity)
	fmt.Fprintf(&b, "Where:    %s\n", n.who())
	if n.Value != nil {
		fmt.Fprintf(&b, "Value:    %s\n", withUnit(*n.Value, n.Unit))
	}
	if n.Threshold != nil {
		fmt.Fprintf(&b, "Limit:    %s\n", withUnit(*n.Threshold, n.Unit))
	}
	fmt.Fprintf(&b, "Since:    %s\n", n.Since.Format(time.RFC3339))
	if n.State == StateResolved {
		fmt.Fprintf(&b, "Resolved: %s (lasted %s)\n", n.TS.Format(time.RFC3339), n.TS.Sub(n.Since).Round(time.Second))
	} else {
		fmt.Fprintf(&b, "Raised:   %s\n", n.TS.Format(time.RFC3339))
	}
	if n.URL != "" {
		b.WriteString("\n" + n.URL + "\n")
	}
	return b.String()
}

// withUnit writes 83.4 °C, 92 %, 1.2 (a load), 14 W, 45 s.
func withUnit(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	switch unit {
	case topics.UnitCelsius:
		return s + " °C"
	case topics.UnitPercent:
		return s + " %"
	case topics.UnitWatts:
		return s + " W"
	case topics.UnitSeconds:
		return s + " s"
	}
	return s
}

// oneLine replaces control characters, so a value can go into a header or a subject.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
