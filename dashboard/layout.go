package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
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

// Event kinds of the layout, in the event log.
const (
	EventPlaced    = "placed"    // a Pi was put into a slot (Detail says which, and how)
	EventForgotten = "forgotten" // a removed Pi was forgotten
)

// assignIdle ends an assign mode nobody used for this long: an operator who walked away
// must not leave the next press somewhere moving a board.
const assignIdle = 10 * time.Minute

// Assign is a row's assign mode: each button press of a Pi of the row puts that Pi into Next,
// then Next moves on one slot.
type Assign struct {
	Next  int       `json:"next"` // the slot the next press fills, 1-based
	By    string    `json:"by"`
	Until time.Time `json:"until"` // when it ends by itself if nobody presses
	// Placed lists the Pis placed in this assign mode, in order; a second press of one of
	// them is ignored, so a double press does not move it on.
	Placed []string `json:"placed,omitempty"`
}

// assigner holds the rows' assign modes.
type assigner struct {
	mu   sync.Mutex
	rows map[string]*Assign
}

// get returns a copy of row's assign mode, nil when none is running at now.
func (a *assigner) get(row string, now time.Time) *Assign {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.rows[row]
	if !ok || !now.Before(x.Until) {
		return nil
	}
	c := *x
	c.Placed = append([]string(nil), x.Placed...)
	return &c
}

// RowSlot is one slot of a row, as the API shows it.
type RowSlot struct {
	Slot     int    `json:"slot"`
	Name     string `json:"name,omitempty"`
	MAC      string `json:"mac,omitempty"`
	Previous string `json:"previous,omitempty"`
}

// rowSlots converts a layout row.
func rowSlots(r layout.Row) []RowSlot {
	out := make([]RowSlot, len(r.Slots))
	for i, s := range r.Slots {
		out[i] = RowSlot{Slot: i + 1, Name: s.Name, MAC: s.MAC, Previous: s.Previous}
	}
	return out
}

// placeNode fills a node's slot fields from where the layout puts it. A Pi whose agent now
// reports another row than its slot's is shown unplaced in the row it reports.
func placeNode(n *Node, p layout.Place, ok bool) {
	if ok && p.Row == n.Row {
		n.Slot, n.SlotName, n.Previous = p.Slot, p.Name, p.Previous
	}
}

// nodeOrder sorts nodes as the rack stands: rows in the layout's order (rows it does not
// describe after, by name), then placed Pis by slot, then unplaced ones by MAC.
func nodeOrder(l layout.Layout) func(a, b Node) int {
	order := func(row string) int {
		if i := l.Order(row); i >= 0 {
			return i
		}
		return len(l.Rows)
	}
	slot := func(n Node) int {
		if n.Slot > 0 {
			return n.Slot
		}
		return layout.MaxSlots + 1
	}
	return func(a, b Node) int {
		return cmp.Or(cmp.Compare(order(a.Row), order(b.Row)), cmp.Compare(a.Row, b.Row),
			cmp.Compare(slot(a), slot(b)), cmp.Compare(a.MAC, b.MAC))
	}
}

// assignPress handles a button press while its row is in assign mode: it places the Pi in the
// next slot. It reports whether the press was taken by assign mode (and so selects nothing).
// It runs in ingestion and saves layout.json there: the one write ingestion does, a few
// milliseconds per press and only while an operator walks a row, kept in line so that the
// slots follow the presses' order.
func (rk *Rack) assignPress(row, mac string) bool {
	now := rk.cfg.Now()
	rk.assign.mu.Lock()
	x, ok := rk.assign.rows[row]
	if !ok || !now.Before(x.Until) {
		rk.assign.mu.Unlock()
		return false
	}
	for _, m := range x.Placed {
		if m == mac {
			rk.assign.mu.Unlock()
			return true // a second press of a board just placed
		}
	}
	slot := x.Next
	ch, err := rk.layout.Put(row, slot, mac)
	if err != nil {
		rk.assign.mu.Unlock()
		rk.log.Error("assign mode: could not place the Pi; press its button again once fixed", "row", row, "slot", slot, "mac", mac, "err", err)
		return true
	}
	x.Placed = append(x.Placed, mac)
	x.Next = min(slot+1, layout.MaxSlots)
	x.Until = now.Add(assignIdle)
	by := x.By
	rk.assign.mu.Unlock()

	rk.log.Info("assign mode placed a Pi", "row", row, "slot", slot, "mac", mac, "displaced", ch.Displaced)
	rk.placed(row, slot, mac, ch, "assign mode, started by "+by, "agent")
	return true
}

// placed tells live clients and the event log about a Put.
func (rk *Rack) placed(row string, slot int, mac string, ch layout.Change, how, by string) {
	detail := fmt.Sprintf("put into row %s slot %d (%s)", row, slot, how)
	if ch.Displaced != "" {
		detail += "; replaces " + displayMAC(ch.Displaced)
		rk.hub.notify(ch.Displaced)
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventPlaced, Detail: detail, By: by})
	rk.hub.notify(mac)
	rk.hub.notify(rowKey(row))
}

// expireAssign ends assign modes nobody used for assignIdle, telling live clients.
func (rk *Rack) expireAssign(now time.Time) {
	rk.assign.mu.Lock()
	var ended []string
	for row, x := range rk.assign.rows {
		if !now.Before(x.Until) {
			delete(rk.assign.rows, row)
			ended = append(ended, row)
		}
	}
	rk.assign.mu.Unlock()
	for _, row := range ended {
		rk.log.Info("assign mode ended: nobody pressed a button for a while", "row", row)
		rk.hub.notify(rowKey(row))
	}
}

// slotMAC returns the Pi in a slot.
func (rk *Rack) slotMAC(row string, slot int) (string, bool) {
	rs := rk.rowSlot(row, slot)
	return rs.MAC, rs.MAC != ""
}

// rowSlot returns one slot as the API shows it.
func (rk *Rack) rowSlot(row string, slot int) RowSlot {
	lr, _ := rk.layout.Layout().Row(row)
	if slot >= 1 && slot <= len(lr.Slots) {
		return rowSlots(lr)[slot-1]
	}
	return RowSlot{Slot: slot}
}

// moveRow puts row at position (0 = top) among the rows shown, which the layout may not all
// describe yet.
func (rk *Rack) moveRow(row string, position int) error {
	var names []string
	for _, x := range rk.Rows() {
		if x.Name != row {
			names = append(names, x.Name)
		}
	}
	if position < 0 || position > len(names) {
		return fmt.Errorf("%w: position %d: want 0 (top) to %d (bottom)", layout.ErrInvalid, position, len(names))
	}
	names = append(names[:position], append([]string{row}, names[position:]...)...)
	return rk.layout.Reorder(names)
}

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

// name names a slot ("" removes the name), telling live clients about the row and its Pi.
func (rk *Rack) name(row string, slot int, name string) error {
	if err := rk.layout.Name(row, slot, name); err != nil {
		return err
	}
	rk.hub.notify(rowKey(row))
	if cur, ok := rk.slotMAC(row, slot); ok {
		rk.hub.notify(cur)
	}
	return nil
}

// put puts a Pi into a slot by hand, on behalf of by.
func (rk *Rack) put(row string, slot int, mac, by string) (layout.Change, error) {
	ch, err := rk.layout.Put(row, slot, mac)
	if err != nil {
		return ch, err
	}
	rk.placed(row, slot, mac, ch, "by hand", by)
	return ch, nil
}

// unplace takes a Pi of row out of its slot, which keeps its name and remembers the Pi, so
// the next board put there can inherit its history.
func (rk *Rack) unplace(mac, row, by string) error {
	p, err := rk.layout.Unplace(mac)
	if err != nil {
		return err
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventPlaced, By: by,
		Detail: fmt.Sprintf("taken out of row %s slot %d", p.Row, p.Slot)})
	rk.hub.notify(mac)
	rk.hub.notify(rowKey(p.Row))
	return nil
}

// shelf gives a row its number of slots and its position in the rack (0 = top); nil leaves
// either as it is.
func (rk *Rack) shelf(row string, slots, position *int) error {
	if slots != nil {
		if err := rk.layout.Resize(row, *slots); err != nil {
			return err
		}
	}
	if position != nil {
		if err := rk.moveRow(row, *position); err != nil {
			return err
		}
		for _, x := range rk.Rows() { // every row's position may have changed
			rk.hub.notify(rowKey(x.Name))
		}
	}
	rk.hub.notify(rowKey(row))
	return nil
}

// startAssign puts a row into assign mode from slot from, replacing one already running, and
// returns it.
func (rk *Rack) startAssign(row string, from int, by string) *Assign {
	now := rk.cfg.Now()
	x := &Assign{Next: from, By: by, Until: now.Add(assignIdle)}
	rk.assign.mu.Lock()
	rk.assign.rows[row] = x
	rk.assign.mu.Unlock()
	rk.log.Info("assign mode started", "row", row, "from", from, "by", by)
	rk.hub.notify(rowKey(row))
	return rk.assign.get(row, now)
}

// stopAssign ends a row's assign mode.
func (rk *Rack) stopAssign(row string) {
	rk.assign.mu.Lock()
	delete(rk.assign.rows, row)
	rk.assign.mu.Unlock()
	rk.hub.notify(rowKey(row))
}

// inherit gives the Pi in slot rs of row the history of the board it replaced there
// (rs.Previous), and forgets that board. An error is Config.History's: nothing was changed.
// History must be set.
func (rk *Rack) inherit(ctx context.Context, row string, rs RowSlot, by string) error {
	if err := rk.cfg.History.Move(ctx, rs.Previous, rs.MAC); err != nil {
		rk.log.Error("move history to a replacement board", "from", rs.Previous, "to", rs.MAC, "err", err)
		return err
	}
	rk.forget(ctx, rs.Previous, by, "replaced by "+displayMAC(rs.MAC)+" in row "+row+" slot "+strconv.Itoa(rs.Slot))
	return nil
}

// acknowledge closes the question whether the Pi in slot rs of row inherits its
// predecessor's history.
func (rk *Rack) acknowledge(row string, rs RowSlot) error {
	if err := rk.layout.Acknowledge(row, rs.Slot); err != nil {
		return err
	}
	rk.hub.notify(rs.MAC)
	rk.hub.notify(rowKey(row))
	return nil
}

// forgetRemoved forgets a Pi taken out of the rack: its slot, then what forget drops.
func (rk *Rack) forgetRemoved(ctx context.Context, mac, by string) error {
	if err := rk.layout.Forget(mac); err != nil {
		return err
	}
	rk.forget(ctx, mac, by, "removed from the rack")
	return nil
}

// forget drops a Pi from the rack, its alerts and its retained topics.
func (rk *Rack) forget(ctx context.Context, mac, by, why string) {
	row, ok := rk.state.remove(mac)
	if !ok {
		return
	}
	rk.observe(func(e *alerts.Engine) []topics.Alert { return e.Forget(mac, rk.cfg.Now()) })
	rk.eraseAlerts(row, mac)
	// An empty retained message deletes what the broker keeps for new subscribers.
	for _, t := range []string{topics.StatusTopic(row, mac), topics.MetricsTopic(row, mac), topics.LEDStateTopic(row, mac)} {
		if err := rk.cfg.Bus.Publish(ctx, bus.Message{Topic: t, Retained: true}); err != nil {
			rk.log.Warn("could not delete a forgotten Pi's retained message; it reappears after a restart until deleted", "topic", t, "err", err)
		}
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventForgotten, Detail: why, By: by})
	rk.log.Info("Pi forgotten", "mac", mac, "row", row, "why", why, "by", by)
	rk.hub.notify(mac)
	rk.hub.notify(rowKey(row))
}
