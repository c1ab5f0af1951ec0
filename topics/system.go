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

// Outcomes carried by SystemResult.Outcome.
const (
	SystemRunning = "running" // the agent handed it to the system: the Pi goes down now
	SystemRefused = "refused" // not carried out: expired, or the agent does not take them
	SystemFailed  = "failed"  // the agent tried and the system refused (a missing privilege)
)

// SystemResult is the payload of rack/<row>/<mac>/system_result: what an agent did with a
// system command, so that the control center can tell the operator (and its audit log) at
// once instead of waiting for a Pi that will not go down. QoS 1, not retained.
type SystemResult struct {
	V        int       `json:"v"`
	TS       time.Time `json:"ts"`
	Action   string    `json:"action"`    // the command's
	IssuedAt time.Time `json:"issued_at"` // the command's, which identifies it
	By       string    `json:"by"`        // the command's
	Outcome  string    `json:"outcome"`   // SystemRunning, SystemRefused or SystemFailed
	Reason   string    `json:"reason,omitempty"`
}

// Validate checks the outcome, the action and the strings.
func (r SystemResult) Validate() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.Outcome != SystemRunning && r.Outcome != SystemRefused && r.Outcome != SystemFailed {
		return invalid("outcome %q: want %s, %s or %s", clip(r.Outcome), SystemRunning, SystemRefused, SystemFailed)
	}
	if r.Action != SystemShutdown && r.Action != SystemReboot {
		return invalid("action %q: want %s or %s", clip(r.Action), SystemShutdown, SystemReboot)
	}
	if r.TS.IsZero() {
		return invalid("ts is required")
	}
	return checkStrings(field{"by", r.By, 64}, field{"reason", r.Reason, 256})
}

// DecodeSystemResult parses and validates a system result.
func DecodeSystemResult(b []byte) (SystemResult, error) {
	var r SystemResult
	err := decode("system_result", b, &r, func() error { return r.Validate() })
	return r, err
}
