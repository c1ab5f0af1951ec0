package topics

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LED actions carried by LEDCommand.Action.
const (
	LEDBlink    = "blink"    // flash Count times, one flash per PeriodMS
	LEDOn       = "on"       // steady on until the next command
	LEDOff      = "off"      // off, cancelling any blink or identify
	LEDIdentify = "identify" // flash until TimeoutS has passed, like IPMI chassis identify
)

// LED command defaults, applied by LEDCommand.WithDefaults.
const (
	DefaultBlinkCount       = 5
	DefaultBlinkPeriodMS    = 500
	DefaultIdentifyTimeoutS = 15
)

// LEDCommand is the payload of rack/<mac>/led. Publishers may send it as JSON or as plain words:
// "blink", "blink 3", "on", "off", "identify", "identify 30".
type LEDCommand struct {
	V        int    `json:"v"`
	Action   string `json:"action"`
	Count    int    `json:"count,omitempty"`     // blink: number of flashes, 1-100
	PeriodMS int    `json:"period_ms,omitempty"` // blink, identify: one on+off cycle, 50-10000 ms
	TimeoutS int    `json:"timeout_s,omitempty"` // identify: how long to flash, 1-3600 s
	// IssuedAt and ExpiresAt are optional; an agent ignores a command received after ExpiresAt,
	// so a command queued for an offline Pi does not fire hours later.
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	By        string    `json:"by,omitempty"` // who issued it, for the event log
}

// WithDefaults fills in the version and the action's default count, period and timeout.
func (c LEDCommand) WithDefaults() LEDCommand {
	if c.V == 0 {
		c.V = Version
	}
	switch c.Action {
	case LEDBlink:
		if c.Count == 0 {
			c.Count = DefaultBlinkCount
		}
		if c.PeriodMS == 0 {
			c.PeriodMS = DefaultBlinkPeriodMS
		}
	case LEDIdentify:
		if c.PeriodMS == 0 {
			c.PeriodMS = DefaultBlinkPeriodMS
		}
		if c.TimeoutS == 0 {
			c.TimeoutS = DefaultIdentifyTimeoutS
		}
	}
	return c
}

// Validate checks the action and its bounds.
func (c LEDCommand) Validate() error {
	if err := checkVersion(c.V); err != nil {
		return err
	}
	switch c.Action {
	case LEDBlink, LEDIdentify, LEDOn, LEDOff:
	default:
		return invalid("action %q: want %s, %s, %s or %s", clip(c.Action), LEDBlink, LEDOn, LEDOff, LEDIdentify)
	}
	if c.Count < 0 || c.Count > 100 {
		return invalid("count %d: want 1 to 100", c.Count)
	}
	if c.PeriodMS != 0 && (c.PeriodMS < 50 || c.PeriodMS > 10000) {
		return invalid("period_ms %d: want 50 to 10000", c.PeriodMS)
	}
	if c.TimeoutS < 0 || c.TimeoutS > 3600 {
		return invalid("timeout_s %d: want 1 to 3600", c.TimeoutS)
	}
	if !c.IssuedAt.IsZero() && !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(c.IssuedAt) {
		return invalid("expires_at is before issued_at")
	}
	return checkStrings(field{"by", c.By, 64})
}

// Expired reports whether the command must be ignored when received at now.
func (c LEDCommand) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt)
}

// Duration is how long the command keeps the LED busy; 0 for on and off.
func (c LEDCommand) Duration() time.Duration {
	switch c.Action {
	case LEDBlink:
		return time.Duration(c.Count*c.PeriodMS) * time.Millisecond
	case LEDIdentify:
		return time.Duration(c.TimeoutS) * time.Second
	}
	return 0
}

// ParseLEDCommand accepts a command as JSON or as plain words and returns it validated, with
// defaults filled in. A JSON command may leave out "v" (automations rarely know it); a present
// "v" must be 1.
func ParseLEDCommand(b []byte) (LEDCommand, error) {
	if w := plainWord(b); w != "" {
		return parseLEDWords(w)
	}
	var c LEDCommand
	if len(b) > MaxPayload {
		return c, fmt.Errorf("%w: led payload is %d bytes, over the %d byte limit", ErrInvalidPayload, len(b), MaxPayload)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: led payload is neither a word like \"blink\" nor valid JSON: %v", ErrInvalidPayload, err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("led payload: %w", err)
	}
	return c, nil
}

func parseLEDWords(w string) (LEDCommand, error) {
	fields := strings.Fields(w)
	c := LEDCommand{Action: fields[0]}
	switch {
	case c.Action != LEDBlink && c.Action != LEDOn && c.Action != LEDOff && c.Action != LEDIdentify:
		return c, invalid("led command %q: want blink [count], on, off or identify [seconds]", clip(w))
	case len(fields) == 1:
	case len(fields) == 2 && (c.Action == LEDBlink || c.Action == LEDIdentify):
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			return c, invalid("led command %q: %q is not a number", clip(w), clip(fields[1]))
		}
		if c.Action == LEDBlink {
			c.Count = n
		} else {
			c.TimeoutS = n
		}
	default:
		return c, invalid("led command %q: want blink [count], on, off or identify [seconds]", clip(w))
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("led payload: %w", err)
	}
	return c, nil
}

// LED states carried by LEDState.State.
const (
	LEDStateOff      = "off"
	LEDStateOn       = "on"
	LEDStateBlinking = "blinking" // a blink or identify is running
)

// LEDState is the retained payload of rack/<row>/<mac>/led_state: what the LED really does, as
// reported by the agent after each change, so a dashboard shows the LED rather than the last
// command sent to it.
type LEDState struct {
	V     int       `json:"v"`
	TS    time.Time `json:"ts"`
	State string    `json:"state"` // LEDStateOff, LEDStateOn or LEDStateBlinking
	// Action is the command that caused the state (blink, identify, on, off); By is who sent it.
	Action string `json:"action,omitempty"`
	By     string `json:"by,omitempty"`
	// Until is when a running blink or identify ends by itself.
	Until time.Time `json:"until,omitzero"`
}

// Validate checks the state and the strings.
func (s LEDState) Validate() error {
	if err := checkVersion(s.V); err != nil {
		return err
	}
	if s.TS.IsZero() {
		return invalid("ts is missing")
	}
	switch s.State {
	case LEDStateOff, LEDStateOn, LEDStateBlinking:
	default:
		return invalid("state %q: want %s, %s or %s", clip(s.State), LEDStateOff, LEDStateOn, LEDStateBlinking)
	}
	switch s.Action {
	case "", LEDBlink, LEDIdentify, LEDOn, LEDOff:
	default:
		return invalid("action %q: want %s, %s, %s or %s", clip(s.Action), LEDBlink, LEDOn, LEDOff, LEDIdentify)
	}
	return checkStrings(field{"by", s.By, 64})
}

// DecodeLEDState parses and validates an LED state report.
func DecodeLEDState(b []byte) (LEDState, error) {
	var s LEDState
	err := decode("led_state", b, &s, func() error { return s.Validate() })
	return s, err
}
