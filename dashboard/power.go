package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/powerctl"
)

// PowerSwitch switches power where the hardware allows (package powerctl): rows through their
// smart plugs, single Pis through their USB hub ports.
type PowerSwitch interface {
	Row(row string) (powerctl.State, bool)
	Pi(mac string) (powerctl.State, bool)
	SwitchRow(ctx context.Context, row, action string) (powerctl.State, error)
	SwitchPi(ctx context.Context, mac, action string) (powerctl.State, error)
}

// EventPower is a power switch in the event log.
const EventPower = "power"

// powerRequest is the body of the power endpoints.
type powerRequest struct {
	Action  string `json:"action"`  // on, off or cycle
	Confirm string `json:"confirm"` // the row's name, or the Pi's hostname (its MAC if it has none)
}

// handleRowPower serves POST /api/rows/{row}/power: switch the row's smart plug.
func (s *Server) handleRowPower(w http.ResponseWriter, r *http.Request) {
	row := r.PathValue("row")
	s.switchPower(w, r, "row "+row, row, "", row)
}

// handleNodePower serves POST /api/nodes/{mac}/power: switch the Pi's hub port. A hung or
// offline Pi is the reason it exists, so any state is allowed.
func (s *Server) handleNodePower(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := n.Hostname
	if name == "" {
		name = n.MAC
	}
	s.switchPower(w, r, displayMAC(n.MAC), n.Row, n.MAC, name)
}

// switchPower checks, audits and carries out a power switch of a row (mac "") or a Pi, which
// the operator must confirm by typing name. Refusals are audited too.
func (s *Server) switchPower(w http.ResponseWriter, r *http.Request, what, row, mac, name string) {
	var req powerRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"action": "on", "off" or "cycle", "confirm": "<the row's name, or the Pi's hostname>"}`)
		return
	}
	params := map[string]any{"action": clipAudit(req.Action)}
	if mac == "" {
		params["row"] = clipAudit(row)
	}
	entry := commandEntry(r, AuditPower, mac, params)
	deny := func(status int, why string) {
		entry.Outcome, entry.Reason = AuditDenied, why
		s.record(r, entry)
		writeError(w, status, why)
	}
	sw := s.cfg.Power
	switchable := false
	if sw != nil {
		if mac == "" {
			_, switchable = sw.Row(row)
		} else {
			_, switchable = sw.Pi(mac)
		}
	}
	switch {
	case !switchable:
		deny(http.StatusNotFound, what+" has no power switch: name its smart plug with \"switch\": true, or its hub port, in power-bridge.json (docs/hardware.md)")
		return
	case req.Action != powerctl.On && req.Action != powerctl.Off && req.Action != powerctl.Cycle:
		deny(http.StatusBadRequest, "action "+strconv.Quote(clipLog(req.Action))+": want on, off or cycle")
		return
	case req.Action != powerctl.On && req.Confirm != name:
		deny(http.StatusBadRequest, "confirm must repeat "+strconv.Quote(name)+" to switch "+what+" off")
		return
	}
	if err := s.record(r, entry); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	var st powerctl.State
	var err error
	if mac == "" {
		st, err = sw.SwitchRow(r.Context(), row, req.Action)
	} else {
		st, err = sw.SwitchPi(r.Context(), mac, req.Action)
	}
	by := principalFrom(r.Context()).name
	if err != nil {
		entry.Outcome, entry.Reason = AuditFailed, clipLog(err.Error())
		s.record(r, entry)
		s.rack.event(history.Event{MAC: mac, Row: row, Kind: EventPower, By: by, Detail: req.Action + " failed: " + err.Error()})
		status := http.StatusBadGateway
		if errors.Is(err, context.Canceled) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err.Error())
		return
	}
	s.rack.event(history.Event{MAC: mac, Row: row, Kind: EventPower, By: by, Detail: "power " + req.Action + " (" + st.Via + ")"})
	if mac == "" {
		s.rack.hub.notify(rowKey(row))
	} else {
		s.rack.hub.notify(mac)
	}
	writeJSON(w, http.StatusOK, st)
}

// switchText says what a power switch last reported, for the row's header: "plug on",
// "plug OFF", or "" when unknown. Its twin is switchText in app.js.
func switchText(st *powerctl.State) string {
	if st == nil || st.On == nil {
		return ""
	}
	if *st.On {
		return "· plug on"
	}
	return "· plug OFF"
}

// powerOf fills in a node's power switch.
func (rk *Rack) powerOf(n *Node) {
	if rk.cfg.Power == nil {
		return
	}
	if st, ok := rk.cfg.Power.Pi(n.MAC); ok {
		n.PowerSwitch = &st
	}
}
