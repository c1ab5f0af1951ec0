package topics

import "time"

// System command actions carried by SystemCommand.Action.
const (
	SystemShutdown = "shutdown" // power the Pi off cleanly (it can then be pulled)
	SystemReboot   = "reboot"
)

// MaxSystemCommandTTL bounds how long a system command may wait for its Pi: a shutdown queued
// for an offline Pi must not fire hours later, when it is back in service.
const MaxSystemCommandTTL = 10 * time.Minute

// SystemCommand is the payload of rack/<mac>/system: shut the Pi down or reboot it. Only the
// control center sends it (an admin on the page, when the control center allows it), and an
// agent acts on it only when started with --allow-system-commands, through a narrow privilege
// (docs/deploy.md), never as root.
type SystemCommand struct {
	V         int       `json:"v"`
	Action    string    `json:"action"` // SystemShutdown or SystemReboot
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"` // required, at most MaxSystemCommandTTL after IssuedAt
	By        string    `json:"by"`         // who sent it, for the agent's log
}

// Validate checks the action, the times and the strings.
func (c SystemCommand) Validate() error {
	if err := checkVersion(c.V); err != nil {
		return err
	}
	if c.Action != SystemShutdown && c.Action != SystemReboot {
		return invalid("action %q: want %s or %s", clip(c.Action), SystemShutdown, SystemReboot)
	}
	if c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() {
		return invalid("issued_at and expires_at are required")
	}
	if !c.ExpiresAt.After(c.IssuedAt) || c.ExpiresAt.Sub(c.IssuedAt) > MaxSystemCommandTTL {
		return invalid("expires_at must be after issued_at, by at most %v", MaxSystemCommandTTL)
	}
	if c.By == "" {
		return invalid("by is required")
	}
	return checkStrings(field{"by", c.By, 64})
}

// Expired reports whether the command must be ignored when received at now.
func (c SystemCommand) Expired(now time.Time) bool { return now.After(c.ExpiresAt) }

// DecodeSystemCommand parses and validates a system command.
func DecodeSystemCommand(b []byte) (SystemCommand, error) {
	var c SystemCommand
	err := decode("system", b, &c, func() error { return c.Validate() })
	return c, err
}
