package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// staleCheckEvery is how often Run looks for Pis that went stale or recovered.
const staleCheckEvery = time.Second

// Rack is the Control Center's rack: the state ingestion keeps from the Bus (nodes, rows,
// presence, alerts, the layout and assign modes), the operations that change it, the events
// they record in the history, and Run, whose loops keep it live. It knows nothing of HTTP:
// Server is the layer on top, and integrations read a Rack directly. New builds it; get it
// from Server.Rack.
type Rack struct {
	cfg    Config
	log    *slog.Logger
	state  *model
	hub    *hub // live clients are told what changed; Server streams them
	alerts *alertState
	layout *layout.Store
	assign assigner
	holds  *holds // acknowledged, silenced, in maintenance
	// removals are the safe removals running; audit writes an audit entry for what the rack
	// does on an admin's behalf (a removal's shutdown).
	removals   *removals
	sentSystem sentSystem // system commands sent, for their results
	audit      func(AuditEntry) error

	// started is when New ran: alerts stamped earlier come from a previous run.
	started time.Time

	stats          counters
	lastInvalidLog atomic.Int64 // unix nanoseconds of the last invalid-payload warning
	lastRefuseLog  atomic.Int64 // unix nanoseconds of the last refused-press warning
	// savePresses: QoS 1 presses are saved before their publisher is acknowledged
	// (savePress); set before the first message, on a bus that can withhold it.
	savePresses bool
	wasDeaf     bool // the broker was lost at the last tick (tick's own)

	// httpStats fills in the HTTP layer's counters (audit, login limiter), which Stats
	// reports too; nil reports none.
	httpStats func(*Stats)
}

// Nodes returns a snapshot of the rack in the order it stands: rows in the layout's order, then
// placed Pis by slot, then unplaced ones by MAC.
func (rk *Rack) Nodes() []Node {
	nodes := rk.state.list()
	l := rk.layout.Layout()
	places := l.Places()
	for i := range nodes {
		nodes[i].Alerts = rk.alerts.forMAC(nodes[i].MAC)
		p, ok := places[nodes[i].MAC]
		placeNode(&nodes[i], p, ok)
		nodes[i].Pending = rk.pending(nodes[i].MAC)
		rk.holdsOf(&nodes[i])
		rk.removalOf(&nodes[i])
		rk.powerOf(&nodes[i])
	}
	slices.SortFunc(nodes, nodeOrder(l))
	return nodes
}

// node returns one node by normalised MAC, with its alerts and slot.
func (rk *Rack) node(mac string) (Node, bool) {
	n, ok := rk.state.node(mac)
	if ok {
		n.Alerts = rk.alerts.forMAC(mac)
		p, placed := rk.layout.Find(mac)
		placeNode(&n, p, placed)
		n.Pending = rk.pending(mac)
		rk.holdsOf(&n)
		rk.removalOf(&n)
		rk.powerOf(&n)
	}
	return n, ok
}

// holdsOf fills in a node's acknowledged alerts and maintenance.
func (rk *Rack) holdsOf(n *Node) {
	n.Acks = rk.holds.acksOf(n.Alerts, rk.cfg.Now())
	n.Maintenance = rk.holds.maintenance(n.MAC)
}

// holdChanged tells live clients about a hold on a Pi (mac) or on a row (mac ""): a row's
// maintenance holds every Pi of it.
func (rk *Rack) holdChanged(row, mac string) {
	if mac != "" {
		rk.hub.notify(mac)
		return
	}
	rk.hub.notify(rowKey(row))
	for _, n := range rk.state.list() {
		if n.Row == row {
			rk.hub.notify(n.MAC)
		}
	}
}

// Held is whether an alert is held back: acknowledged, silenced, or its Pi or row in
// maintenance. The notifier sends nothing for a held alert.
func (rk *Rack) Held(a topics.Alert) bool { return rk.holds.held(a, rk.cfg.Now()) }

// pending is whether mac enrolled itself and waits for approval.
func (rk *Rack) pending(mac string) bool {
	return rk.cfg.Enrolment != nil && rk.cfg.Enrolment.Pending(mac)
}

// approve approves a pending Pi and puts it into the next free slot of its row. how says who
// approved it, for the event log.
func (rk *Rack) approve(row, mac, how, by string) (slot int, err error) {
	if !rk.pending(mac) {
		return 0, fmt.Errorf("%s is not waiting for approval", displayMAC(mac))
	}
	if err := rk.cfg.Enrolment.Approve(mac); err != nil {
		return 0, err
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventApproved, Detail: "enrolment approved (" + how + ")", By: by})
	rk.log.Info("enrolled Pi approved", "mac", mac, "row", row, "how", how, "by", by)
	if p, ok := rk.layout.Find(mac); ok {
		rk.hub.notify(mac)
		return p.Slot, nil // re-enrolled where it already was
	}
	if slot, from := rk.removalSlot(row); slot > 0 {
		rk.replaceInto(row, slot, from, mac, "approved enrolment", by)
		return slot, nil
	}
	slot = rk.nextFreeSlot(row)
	ch, err := rk.layout.Put(row, slot, mac)
	if err != nil {
		rk.hub.notify(mac)
		return 0, fmt.Errorf("approved, but not placed in row %s slot %d: %w; place it with Slot…", row, slot, err)
	}
	rk.placed(row, slot, mac, ch, "approved enrolment", by)
	return slot, nil
}

// Joining is the Pis that are not (yet) in the rack: enrolled ones waiting for approval,
// clients the broker refused, and agent accounts that never connected (GET /api/enrolment).
type Joining struct {
	Pending   []Node      `json:"pending"`
	Refused   []Refused   `json:"refused"`
	NeverSeen []NeverSeen `json:"never_seen"`
}

// NeverSeen is an agent account no Pi has used since the control center started.
type NeverSeen struct {
	MAC     string    `json:"mac"`
	Row     string    `json:"row"`
	Created time.Time `json:"created"`
	Pending bool      `json:"pending,omitempty"`
}

func (rk *Rack) enrolment() Joining {
	e := Joining{Pending: []Node{}, Refused: []Refused{}, NeverSeen: []NeverSeen{}}
	known := map[string]bool{}
	for _, n := range rk.Nodes() {
		known[n.MAC] = true
		if n.Pending {
			e.Pending = append(e.Pending, n)
		}
	}
	if rk.cfg.Refusals != nil {
		e.Refused = append(e.Refused, rk.cfg.Refusals()...)
	}
	if rk.cfg.Enrolment != nil {
		for _, u := range rk.cfg.Enrolment.Agents() {
			if !known[u.MAC] {
				e.NeverSeen = append(e.NeverSeen, NeverSeen{MAC: u.MAC, Row: u.Row, Created: u.Created, Pending: u.Pending})
			}
		}
	}
	return e
}

// nextFreeSlot is the first slot of row holding no Pi, or one past its last.
func (rk *Rack) nextFreeSlot(row string) int {
	r, ok := rk.layout.Layout().Row(row)
	if !ok {
		return 1
	}
	for i, s := range r.Slots {
		if s.MAC == "" {
			return i + 1
		}
	}
	return len(r.Slots) + 1
}

// Rows returns the rows that have Pis, a power reading or a layout, in the rack's order, with
// their slots, assign modes and alerts.
func (rk *Rack) Rows() []Row {
	rows := rk.state.rows()
	l := rk.layout.Layout()
	for _, lr := range l.Rows {
		if !slices.ContainsFunc(rows, func(r Row) bool { return r.Name == lr.Name }) {
			rows = append(rows, Row{Name: lr.Name})
		}
	}
	for i := range rows {
		rk.completeRow(&rows[i], l)
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), cmp.Compare(a.Name, b.Name))
	})
	for i := range rows {
		rows[i].Position = i
	}
	return rows
}

// row returns one row, with its slots, assign mode and alerts.
func (rk *Rack) row(name string) (Row, bool) {
	for _, r := range rk.Rows() {
		if r.Name == name {
			return r, true
		}
	}
	return Row{}, false
}

// completeRow adds what the rack model does not hold: alerts, slots, position, assign mode.
func (rk *Rack) completeRow(r *Row, l layout.Layout) {
	r.Alerts = rk.alerts.forRow(r.Name)
	if rk.cfg.Power != nil {
		if st, ok := rk.cfg.Power.Row(r.Name); ok {
			r.PowerSwitch = &st
		}
	}
	r.Slots = []RowSlot{}
	if lr, ok := l.Row(r.Name); ok {
		r.Slots = rowSlots(lr)
	}
	r.Position = l.Order(r.Name)
	if r.Position < 0 {
		r.Position = len(l.Rows) // after the described rows, by name (see Rows)
	}
	r.Assign = rk.assign.get(r.Name, rk.cfg.Now())
	r.Acks = rk.holds.acksOf(r.Alerts, rk.cfg.Now())
	r.Maintenance = rk.holds.maintenance(rowKey(r.Name))
}

// Alerts returns the raised alerts, sorted by row, MAC and rule; none when alerts are off.
func (rk *Rack) Alerts() []topics.Alert { return rk.alerts.active() }

// Run keeps the rack live until ctx is done: every second it re-evaluates staleness and pushes
// the Pis that went stale or recovered to live clients, ticks the alert engine, expires assign
// modes, and it publishes alert transitions on the Bus. Ingestion itself needs no Run (it
// happens on the Bus's goroutines), but without Run nothing goes stale and no alert is
// published. It returns nil once ctx is done, after publishing the transitions still queued.
func (rk *Rack) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { rk.watchStale(ctx) })
	wg.Go(func() { rk.publishAlerts(ctx) })
	wg.Go(func() { rk.publishLayouts(ctx) })
	wg.Wait()
	return nil
}

// publishLayouts publishes each row's layout retained on rack/<row>/layout, at the start and
// whenever the row's slots change, so that MQTT clients (pirack watch, scripts) draw the rack
// as the page does. A row that leaves the layout has its topic deleted.
func (rk *Rack) publishLayouts(ctx context.Context) {
	published := map[string]topics.Layout{} // by row, without its ts
	publish := func() {
		l := rk.layout.Layout()
		seen := map[string]bool{}
		for pos, r := range l.Rows {
			seen[r.Name] = true
			lay := topics.Layout{V: topics.Version, Position: pos, Slots: make([]topics.LayoutSlot, len(r.Slots))}
			for i, sl := range r.Slots {
				lay.Slots[i] = topics.LayoutSlot{Slot: i + 1, Name: sl.Name, MAC: sl.MAC}
			}
			if old, ok := published[r.Name]; ok && old.Position == lay.Position && slices.Equal(old.Slots, lay.Slots) {
				continue
			}
			lay.TS = rk.cfg.Now().UTC()
			payload, err := topics.Encode(lay)
			if err == nil {
				err = rk.cfg.Bus.Publish(ctx, bus.Message{Topic: topics.LayoutTopic(r.Name), Payload: payload, QoS: 1, Retained: true})
			}
			if err != nil {
				rk.log.Error("publish a row's layout; MQTT clients show its slots as they were", "row", r.Name, "err", err)
				continue
			}
			lay.TS = time.Time{}
			published[r.Name] = lay
		}
		for row := range published {
			if !seen[row] {
				if err := rk.cfg.Bus.Publish(ctx, bus.Message{Topic: topics.LayoutTopic(row), QoS: 1, Retained: true}); err == nil {
					delete(published, row)
				}
			}
		}
	}
	publish()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rk.layout.Changed():
			publish()
		}
	}
}

// watchStale pushes the Pis whose staleness changed to live clients, and ticks the alert
// engine, until ctx is done. Staleness itself is computed on every read, so the API is right
// between two looks.
func (rk *Rack) watchStale(ctx context.Context) {
	tick := time.NewTicker(staleCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rk.tick()
	}
}

// tick is one look of watchStale.
func (rk *Rack) tick() {
	if deaf, _ := rk.cfg.Hearing.Deaf(); deaf != rk.wasDeaf {
		rk.wasDeaf = deaf
		rk.hub.notify(brokerKey)
	}
	changed, wentStale := rk.state.sweep()
	rk.stats.wentStale.Add(uint64(wentStale))
	for _, mac := range changed {
		rk.hub.notify(mac)
	}
	rk.observe(func(e *alerts.Engine) []topics.Alert { return e.Tick(rk.cfg.Now()) })
	rk.expireAssign(rk.cfg.Now())
	rk.tickRemovals(rk.cfg.Now())
	for _, mac := range rk.state.expireLocates(rk.cfg.Now()) {
		rk.hub.notify(mac)
	}
	if d := rk.cfg.SelectionExpiry; d > 0 {
		for _, mac := range rk.state.selectedBefore(rk.cfg.Now().Add(-d)) {
			rk.clearSelection(mac, "expiry after "+fmtDuration(d))
		}
	}
}

// brokerKey is the live stream's key for the broker's state (node keys are MACs, row keys
// "row/<name>").
const brokerKey = "broker"

// Broker is whether the control center can hear its broker, for the page's live indicator.
type Broker struct {
	Lost  bool      `json:"lost"`           // the connection to a foreign broker is lost
	Since time.Time `json:"since,omitzero"` // since when, while Lost
}

// brokerState is the broker as the live stream reports it.
func (rk *Rack) brokerState() Broker {
	deaf, since := rk.cfg.Hearing.Deaf()
	return Broker{Lost: deaf, Since: since}
}

// locate publishes an LED command (payload, cmd encoded) on n's LED topic and, once the Bus
// took it, records the Locate: on the node, for live clients and in the event log. An error
// is the Bus's: nothing was recorded.
func (rk *Rack) locate(ctx context.Context, n Node, cmd topics.LEDCommand, payload []byte) error {
	if err := rk.cfg.Bus.Publish(ctx, bus.Message{Topic: topics.LEDTopic(n.MAC), Payload: payload, QoS: 1}); err != nil {
		rk.log.Error("publish LED command", "mac", n.MAC, "err", err)
		return err
	}
	rk.log.Info("LED command sent", "mac", n.MAC, "action", cmd.Action, "count", cmd.Count, "timeout_s", cmd.TimeoutS, "by", cmd.By)
	detail := fmt.Sprintf("%s %d times every %d ms", cmd.Action, cmd.Count, cmd.PeriodMS)
	switch cmd.Action {
	case topics.LEDIdentify:
		detail = "identify until found, at most " + fmtDuration(cmd.Duration())
		if rk.state.locate(n.MAC, cmd.By, cmd.Action, cmd.Duration()) {
			rk.hub.notify(n.MAC)
		}
	case topics.LEDBlink:
		if rk.state.locate(n.MAC, cmd.By, cmd.Action, cmd.Duration()) {
			rk.hub.notify(n.MAC)
		}
	case topics.LEDOff:
		detail = "stop"
		if rk.state.stopLocate(n.MAC) {
			rk.hub.notify(n.MAC)
		}
	}
	rk.event(history.Event{MAC: n.MAC, Row: n.Row, Kind: history.EventLocate, By: cmd.By, Detail: detail})
	return nil
}

// NotifyRow tells live clients that a row changed outside ingestion (its plug's relay).
func (rk *Rack) NotifyRow(row string) { rk.hub.notify(rowKey(row)) }

// selectNode selects a Pi on behalf of user, and returns the node as it is now.
func (rk *Rack) selectNode(mac, user string) Node {
	n, selected, _ := rk.state.selectByUser(mac, user)
	if selected {
		rk.hub.notify(n.MAC)
		rk.event(history.Event{MAC: n.MAC, Row: n.Row, Kind: history.EventSelect, Detail: "selected on the page", By: user})
		rk.log.Info("selected on the page", "mac", n.MAC, "by", user)
	}
	n, _ = rk.node(mac)
	return n
}

// clearSelection clears a Pi's selection on behalf of by, and returns the node as it is now.
func (rk *Rack) clearSelection(mac, by string) Node {
	n, _ := rk.state.clearSelection(mac)
	n.Alerts = rk.alerts.forMAC(n.MAC)
	rk.hub.notify(n.MAC)
	rk.event(history.Event{MAC: n.MAC, Row: n.Row, Kind: history.EventSelect, Detail: "cleared", By: by})
	rk.log.Info("selection cleared", "mac", n.MAC, "by", by)
	return n
}
