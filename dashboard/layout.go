package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// Event kinds of the layout, in the event log.
const (
	EventPlaced    = "placed"    // a Pi was put into a slot (Detail says which, and how)
	EventForgotten = "forgotten" // a removed Pi was forgotten
	EventApproved  = "approved"  // an enrolled Pi was approved
	EventSystem    = "system"    // a shutdown or reboot was sent
	EventRemoval   = "removal"   // a step of a safe removal (removal.go)
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
