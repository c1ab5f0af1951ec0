// Package topics is pirack's MQTT contract (v1): topic names, payload types and their
// validation. It does no I/O. Every other package builds and parses topics here, so no topic
// string is spelled anywhere else; docs/topics.md is the same contract written for MQTT users.
package topics

import (
	"errors"
	"fmt"
	"strings"
)

// Root is the first level of every pirack topic.
const Root = "rack"

// Topic leaf names.
const (
	leafStatus       = "status"
	leafMetrics      = "metrics"
	leafButton       = "button"
	leafLED          = "led"
	leafPower        = "power"
	leafLEDState     = "led_state"
	leafSystemResult = "system_result"
	leafAlert        = "alert"
	leafLayout       = "layout"
	leafSystem       = "system"
)

// Sentinel errors returned (wrapped) by the parsers and validators in this package.
var (
	// ErrInvalidMAC is returned by NormalizeMAC for anything that is not 6 hex octets.
	ErrInvalidMAC = errors.New("invalid MAC address")
	// ErrInvalidRow is returned by ValidateRow for a row name outside [a-z0-9_-]{1,32}.
	ErrInvalidRow = errors.New("invalid row name")
	// ErrUnknownTopic is returned by Parse for a topic outside the contract.
	ErrUnknownTopic = errors.New("not a pirack topic")
	// ErrInvalidPayload is returned by the decoders and Validate methods.
	ErrInvalidPayload = errors.New("invalid payload")
)

// Kind says which topic of the contract a topic name is.
type Kind int

// The topics of the v1 contract.
const (
	KindUnknown      Kind = iota
	KindStatus            // rack/<row>/<mac>/status
	KindMetrics           // rack/<row>/<mac>/metrics
	KindButton            // rack/<row>/<mac>/button
	KindLED               // rack/<mac>/led
	KindPower             // rack/<row>/power
	KindLEDState          // rack/<row>/<mac>/led_state
	KindAlert             // rack/<row>/<mac>/alert/<rule>, or rack/<row>/alert/<rule> for a row
	KindLayout            // rack/<row>/layout
	KindSystem            // rack/<mac>/system
	KindSystemResult      // rack/<row>/<mac>/system_result
)

func (k Kind) String() string {
	switch k {
	case KindStatus:
		return leafStatus
	case KindMetrics:
		return leafMetrics
	case KindButton:
		return leafButton
	case KindLED:
		return leafLED
	case KindPower:
		return leafPower
	case KindLEDState:
		return leafLEDState
	case KindAlert:
		return leafAlert
	case KindLayout:
		return leafLayout
	case KindSystem:
		return leafSystem
	case KindSystemResult:
		return leafSystemResult
	}
	return "unknown"
}

// DisplayMAC writes a MAC in topic form with colons, the way it is printed on boards and
// routers: b8:27:eb:3f:1a:2c. Anything else is returned as it is.
func DisplayMAC(mac string) string {
	if !IsMAC(mac) {
		return mac
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(mac[i : i+2])
	}
	return b.String()
}

// NormalizeMAC accepts a MAC address written with colons, dashes, dots or no separators, in
// either case, and returns it as 12 lowercase hex digits, the form used in topics.
func NormalizeMAC(s string) (string, error) {
	var b strings.Builder
	b.Grow(12)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			b.WriteByte(c)
		case c >= 'A' && c <= 'F':
			b.WriteByte(c + 'a' - 'A')
		case c == ':' || c == '-' || c == '.':
			// separators are dropped; their positions are checked below by the length
		default:
			return "", fmt.Errorf("%w %q: unexpected character %q", ErrInvalidMAC, clip(s), c)
		}
		if b.Len() > 12 {
			break
		}
	}
	if b.Len() != 12 {
		return "", fmt.Errorf("%w %q: want 12 hex digits such as b8:27:eb:3f:1a:2c", ErrInvalidMAC, clip(s))
	}
	if !separatorsWellPlaced(s) {
		return "", fmt.Errorf("%w %q: separators must split it into octets (b8:27:eb:...) or quads (b827.eb3f.1a2c)", ErrInvalidMAC, clip(s))
	}
	return b.String(), nil
}

// separatorsWellPlaced accepts no separators, or one kind of separator between every 2 or every
// 4 hex digits, so that typos such as "b8:27e:b3..." are caught instead of silently accepted.
func separatorsWellPlaced(s string) bool {
	if len(s) == 12 {
		return true
	}
	var sep byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ':' || c == '-' || c == '.' {
			sep = c
			break
		}
	}
	parts := strings.Split(s, string(sep))
	width := len(parts[0])
	if (width != 2 || len(parts) != 6) && (width != 4 || len(parts) != 3) {
		return false
	}
	for _, p := range parts {
		if len(p) != width {
			return false
		}
	}
	return true
}

// IsMAC reports whether s is already a normalised MAC (12 lowercase hex digits).
func IsMAC(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MaxRowLen is the longest row name allowed.
const MaxRowLen = 32

// ValidateRow checks a row name: 1-32 characters of [a-z0-9_-].
func ValidateRow(row string) error {
	if row == "" || len(row) > MaxRowLen {
		return fmt.Errorf("%w %q: want 1-%d characters of a-z, 0-9, _ or -", ErrInvalidRow, clip(row), MaxRowLen)
	}
	for i := 0; i < len(row); i++ {
		c := row[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("%w %q: character %q not allowed; use a-z, 0-9, _ or -", ErrInvalidRow, clip(row), c)
		}
	}
	return nil
}

// MaxRuleLen is the longest alert rule name allowed.
const MaxRuleLen = 32

// validRule reports whether rule is an alert rule name: 1-32 characters of [a-z0-9_]. Rule
// names are not listed here, so a new rule needs no change to the contract.
func validRule(rule string) bool {
	if rule == "" || len(rule) > MaxRuleLen {
		return false
	}
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Topic is a parsed pirack topic. Row is empty for KindLED; MAC is empty for KindPower and for
// a row's alert. Rule is set for KindAlert only.
type Topic struct {
	Kind Kind
	Row  string
	MAC  string
	Rule string
}

// String builds the topic name. It is the inverse of Parse.
func (t Topic) String() string {
	switch t.Kind {
	case KindStatus, KindMetrics, KindButton, KindLEDState, KindSystemResult:
		return Root + "/" + t.Row + "/" + t.MAC + "/" + t.Kind.String()
	case KindLED:
		return Root + "/" + t.MAC + "/" + leafLED
	case KindSystem:
		return Root + "/" + t.MAC + "/" + leafSystem
	case KindPower:
		return Root + "/" + t.Row + "/" + leafPower
	case KindLayout:
		return Root + "/" + t.Row + "/" + leafLayout
	case KindAlert:
		if t.MAC == "" {
			return Root + "/" + t.Row + "/" + leafAlert + "/" + t.Rule
		}
		return Root + "/" + t.Row + "/" + t.MAC + "/" + leafAlert + "/" + t.Rule
	}
	return ""
}

// StatusTopic is the retained presence topic of one Pi: rack/<row>/<mac>/status.
func StatusTopic(row, mac string) string { return Topic{Kind: KindStatus, Row: row, MAC: mac}.String() }

// MetricsTopic is the retained telemetry topic of one Pi: rack/<row>/<mac>/metrics.
func MetricsTopic(row, mac string) string {
	return Topic{Kind: KindMetrics, Row: row, MAC: mac}.String()
}

// ButtonTopic is the button event topic of one Pi: rack/<row>/<mac>/button.
func ButtonTopic(row, mac string) string { return Topic{Kind: KindButton, Row: row, MAC: mac}.String() }

// LEDTopic is the command topic a Pi's agent subscribes to: rack/<mac>/led.
func LEDTopic(mac string) string { return Topic{Kind: KindLED, MAC: mac}.String() }

// LEDStateTopic is the retained report of what one Pi's LED is doing: rack/<row>/<mac>/led_state.
func LEDStateTopic(row, mac string) string {
	return Topic{Kind: KindLEDState, Row: row, MAC: mac}.String()
}

// SystemTopic is where a Pi's agent takes shutdown and reboot commands: rack/<mac>/system.
func SystemTopic(mac string) string { return Topic{Kind: KindSystem, MAC: mac}.String() }

// SystemResultTopic is where an agent says what it did with a system command:
// rack/<row>/<mac>/system_result.
func SystemResultTopic(row, mac string) string {
	return Topic{Kind: KindSystemResult, Row: row, MAC: mac}.String()
}

// LayoutTopic is the retained layout of a row, published by the control center:
// rack/<row>/layout.
func LayoutTopic(row string) string { return Topic{Kind: KindLayout, Row: row}.String() }

// PowerTopic is the retained power reading of a row: rack/<row>/power.
func PowerTopic(row string) string { return Topic{Kind: KindPower, Row: row}.String() }

// AlertTopic is the retained state of one alert, published by the control center when the
// alert is raised and again when it clears: rack/<row>/<mac>/alert/<rule> for a Pi's alert, or
// rack/<row>/alert/<rule> for a row's own alert (mac empty), such as its power draw.
func AlertTopic(row, mac, rule string) string {
	return Topic{Kind: KindAlert, Row: row, MAC: mac, Rule: rule}.String()
}

// AllFilter matches every pirack topic.
const AllFilter = Root + "/#"

// LEDFilter matches every Pi's LED command topic, rack/+/led: what automations may send to.
const LEDFilter = Root + "/+/" + leafLED

// Filters of one kind of every Pi's retained state: what a client reads to know the rack.
const (
	StatusFilter   = Root + "/+/+/" + leafStatus
	MetricsFilter  = Root + "/+/+/" + leafMetrics
	LEDStateFilter = Root + "/+/+/" + leafLEDState
	LayoutFilter   = Root + "/+/" + leafLayout
)

// AgentFilter matches every topic an agent publishes: rack/<row>/<mac>/#.
func AgentFilter(row, mac string) string { return Root + "/" + row + "/" + mac + "/#" }

// MaxTopicLen bounds what Parse will look at; real pirack topics are far shorter.
const MaxTopicLen = 128

// Parse recognises a topic of the v1 contract and returns its kind, row, MAC and (for alerts)
// rule. Row names and MACs must already be in normalised form; anything else returns an error
// wrapping ErrUnknownTopic, ErrInvalidRow or ErrInvalidMAC.
func Parse(topic string) (Topic, error) {
	if len(topic) > MaxTopicLen {
		return Topic{}, fmt.Errorf("%w: topic is %d bytes, longer than %d", ErrUnknownTopic, len(topic), MaxTopicLen)
	}
	parts := strings.Split(topic, "/")
	if len(parts) < 3 || parts[0] != Root {
		return Topic{}, fmt.Errorf("%w: %q", ErrUnknownTopic, clip(topic))
	}
	switch {
	case len(parts) == 3 && parts[2] == leafLED:
		if !IsMAC(parts[1]) {
			return Topic{}, fmt.Errorf("%w in %q: want 12 lowercase hex digits", ErrInvalidMAC, clip(topic))
		}
		return Topic{Kind: KindLED, MAC: parts[1]}, nil
	case len(parts) == 3 && parts[2] == leafPower:
		if err := ValidateRow(parts[1]); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		return Topic{Kind: KindPower, Row: parts[1]}, nil
	case len(parts) == 3 && parts[2] == leafSystem:
		if !IsMAC(parts[1]) {
			return Topic{}, fmt.Errorf("%w in %q: want 12 lowercase hex digits", ErrInvalidMAC, clip(topic))
		}
		return Topic{Kind: KindSystem, MAC: parts[1]}, nil
	case len(parts) == 3 && parts[2] == leafLayout:
		if err := ValidateRow(parts[1]); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		return Topic{Kind: KindLayout, Row: parts[1]}, nil
	case len(parts) == 4 && parts[2] == leafAlert:
		// "alert" is never a MAC, so this cannot be confused with rack/<row>/<mac>/<leaf>.
		if err := ValidateRow(parts[1]); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		if !validRule(parts[3]) {
			return Topic{}, fmt.Errorf("%w: %q: alert rule must be 1-%d characters of a-z, 0-9 or _", ErrUnknownTopic, clip(topic), MaxRuleLen)
		}
		return Topic{Kind: KindAlert, Row: parts[1], Rule: parts[3]}, nil
	case len(parts) == 5 && parts[3] == leafAlert:
		if err := ValidateRow(parts[1]); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		if !IsMAC(parts[2]) {
			return Topic{}, fmt.Errorf("%w in %q: want 12 lowercase hex digits", ErrInvalidMAC, clip(topic))
		}
		if !validRule(parts[4]) {
			return Topic{}, fmt.Errorf("%w: %q: alert rule must be 1-%d characters of a-z, 0-9 or _", ErrUnknownTopic, clip(topic), MaxRuleLen)
		}
		return Topic{Kind: KindAlert, Row: parts[1], MAC: parts[2], Rule: parts[4]}, nil
	case len(parts) == 4:
		var k Kind
		switch parts[3] {
		case leafStatus:
			k = KindStatus
		case leafMetrics:
			k = KindMetrics
		case leafButton:
			k = KindButton
		case leafLEDState:
			k = KindLEDState
		case leafSystemResult:
			k = KindSystemResult
		default:
			return Topic{}, fmt.Errorf("%w: %q", ErrUnknownTopic, clip(topic))
		}
		if err := ValidateRow(parts[1]); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		if !IsMAC(parts[2]) {
			return Topic{}, fmt.Errorf("%w in %q: want 12 lowercase hex digits", ErrInvalidMAC, clip(topic))
		}
		return Topic{Kind: k, Row: parts[1], MAC: parts[2]}, nil
	}
	return Topic{}, fmt.Errorf("%w: %q", ErrUnknownTopic, clip(topic))
}

// clip keeps hostile input out of error messages and logs at a bounded length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
