package dashboard

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// Audit actions of the layout.
const (
	AuditPlace   = "place"   // a Pi put into a slot, or taken out of one
	AuditName    = "name"    // a slot named
	AuditShelf   = "shelf"   // a row's slot count or the rows' order changed
	AuditAssign  = "assign"  // assign mode started or stopped
	AuditInherit = "inherit" // a replacement board took (or did not take) its predecessor's history
	AuditForget  = "forget"  // a removed Pi forgotten
)

// decodeBody decodes a small JSON body into v; an empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, example string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body must be JSON like %s: %v", example, err))
		return false
	}
	return true
}

// pathRowSlot reads the {row} and, when want, {slot} path values.
func pathRowSlot(w http.ResponseWriter, r *http.Request, want bool) (row string, slot int, ok bool) {
	row = r.PathValue("row")
	if err := topics.ValidateRow(row); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("row %q: %v", clipLog(row), err))
		return "", 0, false
	}
	if !want {
		return row, 0, true
	}
	slot, err := strconv.Atoi(r.PathValue("slot"))
	if err != nil || slot < 1 || slot > layout.MaxSlots {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("slot %q: want a number from 1 to %d", clipLog(r.PathValue("slot")), layout.MaxSlots))
		return "", 0, false
	}
	return row, slot, true
}

// layoutError answers a refused layout change: the operator's mistake (400) or a file that
// could not be written (503: nothing was changed).
func (s *Server) layoutError(w http.ResponseWriter, err error) {
	if errors.Is(err, layout.ErrInvalid) || errors.Is(err, layout.ErrNotPlaced) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Error("save the rack layout", "err", err)
	writeError(w, http.StatusServiceUnavailable, "not done: "+err.Error()+" (is the disk full?)")
}

// slotRequest is the body of POST /api/rows/{row}/slots/{slot}: a Pi to put in the slot, a
// name for the slot, or both. Name nil leaves the name; "" removes it.
type slotRequest struct {
	MAC  string  `json:"mac"`
	Name *string `json:"name"`
}

// handleSlot serves POST /api/rows/{row}/slots/{slot}.
func (s *Server) handleSlot(w http.ResponseWriter, r *http.Request) {
	row, slot, ok := pathRowSlot(w, r, true)
	if !ok {
		return
	}
	var req slotRequest
	if !decodeBody(w, r, &req, `{"mac": "b827eb3f1a2c", "name": "web-1"}`) {
		return
	}
	if req.MAC == "" && req.Name == nil {
		writeError(w, http.StatusBadRequest, `nothing to do: send {"mac": ...} to put a Pi in the slot, {"name": ...} to name it, or both`)
		return
	}
	var mac string
	if req.MAC != "" {
		n, known := s.rack.node(normalizedOr(req.MAC))
		switch {
		case !known:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no Pi with MAC %s has reported to this Control Center; start its agent first, or use assign mode", clipLog(req.MAC)))
			return
		case n.Row != row:
			writeError(w, http.StatusConflict, fmt.Sprintf("%s reports row %s, not %s: a Pi goes into a slot of the row its agent is configured for (--row)", displayMAC(n.MAC), n.Row, row))
			return
		}
		mac = n.MAC
	}
	params := map[string]any{"row": row, "slot": slot}
	action := AuditPlace
	if req.Name != nil {
		params["name"] = *req.Name
		if mac == "" {
			action = AuditName
		}
	}
	if err := s.record(r, commandEntry(r, action, mac, params)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	by := principalFrom(r.Context()).name
	if req.Name != nil {
		if err := s.rack.name(row, slot, *req.Name); err != nil {
			s.layoutError(w, err)
			return
		}
	}
	var ch layout.Change
	if mac != "" {
		var err error
		if ch, err = s.rack.put(row, slot, mac, by); err != nil {
			s.layoutError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, struct {
		RowSlot
		Displaced string `json:"displaced,omitempty"`
	}{s.rack.rowSlot(row, slot), ch.Displaced})
}

// normalizedOr returns the MAC in topic form, or s itself when it is not a MAC (which then
// matches no node).
func normalizedOr(s string) string {
	if m, err := topics.NormalizeMAC(s); err == nil {
		return m
	}
	return s
}

// handleUnplace serves POST /api/nodes/{mac}/unplace: the Pi leaves its slot, which keeps its
// name and remembers the Pi, so the next board put there can inherit its history.
func (s *Server) handleUnplace(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if err := s.record(r, commandEntry(r, AuditPlace, n.MAC, map[string]any{"unplace": true})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if err := s.rack.unplace(n.MAC, n.Row, principalFrom(r.Context()).name); err != nil {
		s.layoutError(w, err)
		return
	}
	n, _ = s.rack.node(n.MAC)
	writeJSON(w, http.StatusOK, n)
}

// shelfRequest is the body of POST /api/rows/{row}/shelf: how many slots the row has, and
// where it stands in the rack (0 = top shelf). Nil fields are left as they are.
type shelfRequest struct {
	Slots    *int `json:"slots"`
	Position *int `json:"position"`
}

// handleShelf serves POST /api/rows/{row}/shelf.
func (s *Server) handleShelf(w http.ResponseWriter, r *http.Request) {
	row, _, ok := pathRowSlot(w, r, false)
	if !ok {
		return
	}
	var req shelfRequest
	if !decodeBody(w, r, &req, `{"slots": 16, "position": 0}`) {
		return
	}
	if req.Slots == nil && req.Position == nil {
		writeError(w, http.StatusBadRequest, `nothing to do: send {"slots": n} and/or {"position": p}`)
		return
	}
	params := map[string]any{"row": row}
	if req.Slots != nil {
		params["slots"] = *req.Slots
	}
	if req.Position != nil {
		params["position"] = *req.Position
	}
	if err := s.record(r, commandEntry(r, AuditShelf, "", params)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if err := s.rack.shelf(row, req.Slots, req.Position); err != nil {
		s.layoutError(w, err)
		return
	}
	out, _ := s.rack.row(row)
	writeJSON(w, http.StatusOK, out)
}

// assignRequest is the body of POST /api/rows/{row}/assign: the slot the first press fills.
type assignRequest struct {
	From int `json:"from"`
}

// handleAssignStart serves POST /api/rows/{row}/assign: the row enters assign mode, replacing
// one already running.
func (s *Server) handleAssignStart(w http.ResponseWriter, r *http.Request) {
	row, _, ok := pathRowSlot(w, r, false)
	if !ok {
		return
	}
	req := assignRequest{From: 1}
	if !decodeBody(w, r, &req, `{"from": 1}`) {
		return
	}
	if req.From < 1 || req.From > layout.MaxSlots {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from %d: want a slot from 1 to %d", req.From, layout.MaxSlots))
		return
	}
	if err := s.record(r, commandEntry(r, AuditAssign, "", map[string]any{"row": row, "from": req.From})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, s.rack.startAssign(row, req.From, principalFrom(r.Context()).name))
}

// handleAssignStop serves POST /api/rows/{row}/assign/stop.
func (s *Server) handleAssignStop(w http.ResponseWriter, r *http.Request) {
	row, _, ok := pathRowSlot(w, r, false)
	if !ok {
		return
	}
	if err := s.record(r, commandEntry(r, AuditAssign, "", map[string]any{"row": row, "stop": true})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	s.rack.stopAssign(row)
	w.WriteHeader(http.StatusNoContent)
}

// previousRequest is the body of POST /api/rows/{row}/slots/{slot}/previous.
type previousRequest struct {
	Inherit bool `json:"inherit"`
}

// handlePrevious serves POST /api/rows/{row}/slots/{slot}/previous: the operator decides
// whether the board in the slot inherits the history of the one it replaced. Inheriting moves
// that board's history and events to the new MAC and forgets the old board; either way the
// question is closed.
func (s *Server) handlePrevious(w http.ResponseWriter, r *http.Request) {
	row, slot, ok := pathRowSlot(w, r, true)
	if !ok {
		return
	}
	var req previousRequest
	if !decodeBody(w, r, &req, `{"inherit": true}`) {
		return
	}
	rs := s.rack.rowSlot(row, slot)
	if rs.MAC == "" || rs.Previous == "" {
		writeError(w, http.StatusConflict, fmt.Sprintf("row %s slot %d has no replaced board to decide about", row, slot))
		return
	}
	if req.Inherit && s.cfg.History == nil {
		writeError(w, http.StatusConflict, "history is off on this Control Center: there is no history to inherit")
		return
	}
	if n, ok := s.rack.node(rs.Previous); ok && n.Online() {
		writeError(w, http.StatusConflict, fmt.Sprintf("the replaced board %s is online: it is still in use, so its history stays its own", displayMAC(rs.Previous)))
		return
	}
	if err := s.record(r, commandEntry(r, AuditInherit, rs.MAC, map[string]any{"row": row, "slot": slot, "previous": rs.Previous, "inherit": req.Inherit})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if req.Inherit {
		if err := s.rack.inherit(r.Context(), row, rs, principalFrom(r.Context()).name); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not done: could not move the history ("+err.Error()+"); nothing was changed, try again")
			return
		}
	}
	if err := s.rack.acknowledge(row, rs); err != nil {
		s.layoutError(w, err)
		return
	}
	n, _ := s.rack.node(rs.MAC)
	writeJSON(w, http.StatusOK, n)
}

// handleForget serves POST /api/nodes/{mac}/forget: a Pi taken out of the rack disappears from
// the page, its alerts clear, and its retained status, metrics and LED state are removed from
// the broker. Its history stays (under its MAC) until retention drops it. A Pi that is online
// would come straight back, so it is refused.
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if n.Online() {
		writeError(w, http.StatusConflict, fmt.Sprintf("%s is online: stop its agent (or unplug it) first, or it comes straight back", cmp.Or(n.Hostname, displayMAC(n.MAC))))
		return
	}
	if err := s.record(r, commandEntry(r, AuditForget, n.MAC, nil)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if err := s.rack.forgetRemoved(r.Context(), n.MAC, principalFrom(r.Context()).name); err != nil {
		s.layoutError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
