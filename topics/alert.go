package topics

import (
	"math"
	"time"
)

// Alert severities carried by Alert.Severity.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert states carried by Alert.State.
const (
	AlertRaised  = "raised"
	AlertCleared = "cleared"
)

// Units carried by Alert.Unit, named like the suffixes of the metrics fields.
const (
	UnitCelsius = "c"
	UnitPercent = "percent"
	UnitSeconds = "s"
	UnitWatts   = "w"
	UnitLoad    = "load" // a load average, which has no unit
)

// Alert is the retained payload of rack/<row>/<mac>/alert/<rule> (one Pi's alert) and of
// rack/<row>/alert/<rule> (a row's alert; MAC is empty). The control center publishes it when
// the alert is raised and again when it clears, so the retained message is always the alert's
// current state.
type Alert struct {
	V        int    `json:"v"`
	Rule     string `json:"rule"`     // the rule's name, as in the topic: temp_high, offline, ...
	Severity string `json:"severity"` // SeverityWarning or SeverityCritical
	State    string `json:"state"`    // AlertRaised or AlertCleared
	// TS is when this transition happened: when the alert was raised, or when it cleared.
	TS time.Time `json:"ts"`
	// Since is when the condition began, which is before TS when the rule waits for its "for"
	// duration. A cleared alert keeps it, so TS minus Since is how long the problem lasted.
	Since    time.Time `json:"since"`
	Row      string    `json:"row"`
	MAC      string    `json:"mac,omitempty"`      // empty for a row's alert
	Hostname string    `json:"hostname,omitempty"` // the Pi's, when known
	// Value is the measurement that raised or cleared the alert, Threshold the limit it was
	// compared with, both in Unit. Rules without a measurement (offline, throttled) leave
	// them out.
	Value     *float64 `json:"value,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	Unit      string   `json:"unit,omitempty"`
	// Message says it in words, for people: "CPU at 83.4 °C, over 80 °C for 1 min".
	Message string `json:"message"`
}

// Validate checks the fields an automation relies on.
func (a Alert) Validate() error {
	if err := checkVersion(a.V); err != nil {
		return err
	}
	if !validRule(a.Rule) {
		return invalid("rule %q: want 1-%d characters of a-z, 0-9 or _", clip(a.Rule), MaxRuleLen)
	}
	if a.Severity != SeverityWarning && a.Severity != SeverityCritical {
		return invalid("severity %q: want %q or %q", clip(a.Severity), SeverityWarning, SeverityCritical)
	}
	if a.State != AlertRaised && a.State != AlertCleared {
		return invalid("state %q: want %q or %q", clip(a.State), AlertRaised, AlertCleared)
	}
	if a.TS.IsZero() {
		return invalid("ts is missing")
	}
	if a.Since.IsZero() {
		return invalid("since is missing")
	}
	if a.Since.After(a.TS) {
		return invalid("since %s is after ts %s", a.Since.Format(time.RFC3339Nano), a.TS.Format(time.RFC3339Nano))
	}
	if err := ValidateRow(a.Row); err != nil {
		return invalid("row: %v", err)
	}
	if a.MAC != "" && !IsMAC(a.MAC) {
		return invalid("mac %q: want 12 lowercase hex digits, or none for a row's alert", clip(a.MAC))
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"value", a.Value}, {"threshold", a.Threshold}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return invalid("%s %v: want a finite number", f.name, *f.v)
		}
	}
	if a.Message == "" {
		return invalid("message is missing")
	}
	return checkStrings(
		field{"hostname", a.Hostname, 253},
		field{"unit", a.Unit, 16},
		field{"message", a.Message, 256},
	)
}

// DecodeAlert parses and validates an alert payload. An empty payload is not an alert: it is
// how a retained alert is deleted, and callers should check for it first.
func DecodeAlert(b []byte) (Alert, error) {
	var a Alert
	err := decode("alert", b, &a, func() error { return a.Validate() })
	return a, err
}

// AlertFilters match every alert topic: a Pi's, rack/+/+/alert/+, and a row's, rack/+/alert/+.
// Subscribe to both to follow every alert.
func AlertFilters() []string {
	return []string{Root + "/+/+/" + leafAlert + "/+", Root + "/+/" + leafAlert + "/+"}
}
