package dashboard

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// sentSystem remembers the system commands sent to each Pi, by IssuedAt, so that only a Pi's
// result for a command it was really sent is audited: an agent cannot fill the audit log
// with made-up results.
type sentSystem struct {
	mu sync.Mutex
	m  map[string][]time.Time // by MAC, the IssuedAt of commands sent within the last sentKeep
}

// sentKeep covers a command's whole life: it cannot be carried out after it expires.
const sentKeep = topics.MaxSystemCommandTTL + time.Minute

func (s *sentSystem) add(mac string, issued, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[mac] = append(s.prune(mac, now), issued)
}

// took reports whether a command to mac issued at issued was sent, and forgets it once a final
// result (not "running") arrives.
func (s *sentSystem) took(mac string, issued time.Time, final bool, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.prune(mac, now)
	for i, t := range list {
		if t.Equal(issued) {
			if final {
				list = append(list[:i:i], list[i+1:]...)
			}
			s.m[mac] = list
			return true
		}
	}
	s.m[mac] = list
	return false
}

func (s *sentSystem) prune(mac string, now time.Time) []time.Time {
	var keep []time.Time
	for _, t := range s.m[mac] {
		if now.Sub(t) < sentKeep {
			keep = append(keep, t)
		}
	}
	return keep
}

// systemResult takes an agent's report of what it did with a system command: audited in the
// name of whoever sent the command, in the Pi's event log, and on its removal if one waits
// for the shutdown.
func (rk *Rack) systemResult(row, mac string, r topics.SystemResult) {
	now := rk.cfg.Now()
	if !rk.sentSystem.took(mac, r.IssuedAt, r.Outcome != topics.SystemRunning, now) {
		rk.stats.ignored.Add(1)
		rk.log.Warn("system result for a command this control center did not send: ignored", "mac", mac, "issued_at", r.IssuedAt, "outcome", r.Outcome)
		return
	}
	outcome, detail := AuditAllowed, r.Action+" carried out by the agent"
	switch r.Outcome {
	case topics.SystemRefused:
		outcome, detail = AuditDenied, r.Action+" refused by the agent: "+r.Reason
	case topics.SystemFailed:
		outcome, detail = AuditFailed, r.Action+" failed on the Pi: "+r.Reason
	}
	if rk.audit != nil {
		err := rk.audit(AuditEntry{Action: AuditSystem, Outcome: outcome, User: r.By, Via: "agent " + displayMAC(mac), MAC: mac, Reason: clipLog(r.Reason),
			Params: map[string]any{"action": r.Action, "issued_at": r.IssuedAt, "reported": r.Outcome}})
		if err != nil {
			rk.log.Error("system result not audited", "mac", mac, "err", err)
		}
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventSystem, By: "agent", Detail: detail})
	rk.log.Info("system result", "mac", mac, "action", r.Action, "outcome", r.Outcome, "reason", r.Reason)
	if r.Outcome == topics.SystemRunning {
		return
	}
	if x, ok := rk.removals.update(mac, func(x *Removal) bool {
		if x.Step != RemovalShutdown {
			return false
		}
		x.Note = fmt.Sprintf("the Pi did not shut down: %s. Shut it down yourself (sudo poweroff), or cancel", strings.TrimSuffix(r.Reason, "."))
		return true
	}); ok {
		rk.removalChanged(*x, "")
	}
}

// RefusedCommand is an LED or system command the broker refused from a client without the
// right (an automation user's shutdown, say), for the audit log.
type RefusedCommand struct {
	Username, Role, ClientID, Topic, Address string
	Suppressed                               int // the same refused since the last one audited
}

// AuditRefusedCommand writes a command the broker refused into the audit log, so that a client
// trying what it may not is on record with who, from where and what.
func (s *Server) AuditRefusedCommand(c RefusedCommand) {
	action := AuditBlink
	mac := ""
	if t, err := topics.Parse(c.Topic); err == nil {
		mac = t.MAC
		if t.Kind == topics.KindSystem {
			action = AuditSystem
		}
	}
	reason := "role " + c.Role + " may not send this command over MQTT: the broker dropped it"
	if c.Suppressed > 0 {
		reason += fmt.Sprintf(" (and %d more like it since the last entry)", c.Suppressed)
	}
	e := AuditEntry{Action: action, Outcome: AuditDenied, User: c.Username, Role: c.Role, Via: "mqtt client " + c.ClientID, MAC: mac,
		Remote: c.Address, Reason: reason, Params: map[string]any{"topic": c.Topic}}
	if err := s.rack.audit(e); err != nil {
		s.log.Error("refused command not audited", "user", c.Username, "topic", c.Topic, "err", err)
	}
}
