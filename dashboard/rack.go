package dashboard

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/powerctl"
	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// Presence states of a Node, as package presence decides them. StateUnknown is a Pi seen
// through telemetry before any status. StateStale is a Pi that is not known to be offline but
// whose telemetry stopped: see Config.StaleAfter.
const (
	StateOnline  = presence.Online
	StateOffline = presence.Offline
	StateUnknown = presence.Unknown
	StateStale   = presence.Stale
)

// Node is the Control Center's view of one Pi. Values returned by Rack.Nodes and the API are
// snapshots: changing them changes nothing. Metrics is shared between snapshots and must be
// treated as read-only.
type Node struct {
	MAC          string    `json:"mac"` // 12 lowercase hex digits, as in topics
	Row          string    `json:"row"`
	Hostname     string    `json:"hostname"`
	IP           string    `json:"ip"`
	Model        string    `json:"model"`
	Serial       string    `json:"serial,omitempty"` // the board's serial number, from its device tree
	AgentVersion string    `json:"agent_version"`
	BootTime     time.Time `json:"boot_time,omitzero"`
	// State is StateOnline, StateOffline, StateUnknown or StateStale; Since is when it last
	// changed (for StateStale, the moment the telemetry became overdue).
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Metrics is the last valid metrics payload, nil until one arrives; MetricsAt is when it
	// arrived, by the Control Center's clock.
	Metrics   *topics.Metrics `json:"metrics,omitempty"`
	MetricsAt time.Time       `json:"metrics_at,omitzero"`
	// IntervalS is the telemetry interval in seconds, learned from consecutive metrics; 0 until
	// two have arrived.
	IntervalS float64 `json:"interval_s,omitempty"`
	// StaleAfterS is how many seconds without telemetry make this Pi stale.
	StaleAfterS float64 `json:"stale_after_s"`
	// LastSeen is when the Control Center last heard from the Pi itself (its clock, not the Pi's).
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Selected is set by a button press on the Pi and cleared by an operator.
	Selected bool `json:"selected"`
	// Pending is an enrolled Pi waiting for approval (Config.Enrolment).
	Pending bool `json:"pending,omitempty"`
	// Acks are its alerts that someone acknowledged or silenced, by rule; Maintenance is set
	// while it is in maintenance (holds.go).
	Acks        map[string]Ack `json:"acks,omitempty"`
	Maintenance *Maintenance   `json:"maintenance,omitempty"`
	SelectedAt  time.Time      `json:"selected_at,omitzero"`
	SelectedBy  string         `json:"selected_by,omitempty"` // the press kind: short, long or double
	// SelectedUser is who selected it on the page (a click on its tile); "" for a press.
	SelectedUser string `json:"selected_user,omitempty"`
	// LED is what the Pi's LED is doing, as its agent last reported; nil until a report.
	LED *LED `json:"led,omitempty"`
	// Locate is the last Locate sent to the Pi and, once someone at the rack pressed its
	// button while it blinked, when it was found; nil until a Locate.
	Locate *Locate `json:"locate,omitempty"`
	// Alerts are the Pi's raised alerts, sorted by rule; empty when alerts are off.
	Alerts []topics.Alert `json:"alerts,omitempty"`
	// Slot is the Pi's slot in its row (1-based, see package layout), 0 when it is in none;
	// SlotName is the slot's name. Previous is the board this one replaced in the slot,
	// while the operator has not decided whether this one inherits its history.
	Slot     int    `json:"slot,omitempty"`
	SlotName string `json:"slot_name,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Removal is the Pi's safe removal while one runs, and for a while after (removal.go).
	Removal *Removal `json:"removal,omitempty"`
	// PowerSwitch is the Pi's own power switch (a USB hub port), nil when it has none.
	PowerSwitch *powerctl.State `json:"power_switch,omitempty"`
}

// Locate is an operator's search for a Pi: who asked, when, and when the board was found.
type Locate struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Action string    `json:"action,omitempty"` // topics.LEDBlink (a few flashes) or LEDIdentify (until found)
	// Until is when the LED stops by itself, if nobody finds the Pi first.
	Until   time.Time `json:"until,omitzero"`
	FoundAt time.Time `json:"found_at,omitzero"`
	// FoundAfterS is how long finding it took, in seconds, by the dashboard's clock.
	FoundAfterS float64 `json:"found_after_s,omitempty"`
	// EndedAt is when the LED stopped; zero while it runs. A found Pi's locate ends when found.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// EndedBy is who stopped it ("" when it ran out or was found).
	EndedBy string `json:"ended_by,omitempty"`
}

// running is whether the LED is still locating the Pi.
func (l *Locate) running() bool { return l != nil && l.EndedAt.IsZero() }

// locateKeep is how long a found or run-out locate stays on its tile once ended.
const locateKeep = 10 * time.Minute

// LED is a Pi's LED as reported on topics.LEDStateTopic.
type LED struct {
	State  string    `json:"state"`            // topics.LEDStateOff, LEDStateOn or LEDStateBlinking
	Action string    `json:"action,omitempty"` // the command that caused it: blink, identify, on, off
	By     string    `json:"by,omitempty"`     // who sent that command
	Until  time.Time `json:"until,omitzero"`   // when a running blink ends by itself
	TS     time.Time `json:"ts"`               // the agent's time of the report
}

// Row is one shelf of the rack: its name, its place in the rack, its slots, its supply's last
// power reading and its own alerts (power_band). Values returned by the API are snapshots.
type Row struct {
	Name string `json:"name"`
	// Position is the row's place in the rack, 0 for the top shelf; rows the layout does not
	// describe come after those it does, by name.
	Position int `json:"position"`
	// Slots are the row's slots as the layout describes them, left to right; Assign is its
	// assign mode, nil when none is running.
	Slots  []RowSlot `json:"slots"`
	Assign *Assign   `json:"assign,omitempty"`
	// Pis is how many Pis are known in the row; WattsPerPi divides the row's watts by it.
	Pis        int            `json:"pis"`
	Power      *topics.Power  `json:"power,omitempty"`
	PowerAt    time.Time      `json:"power_at,omitzero"` // when the reading arrived, by the Control Center's clock
	WattsPerPi *float64       `json:"watts_per_pi,omitempty"`
	Alerts     []topics.Alert `json:"alerts,omitempty"`
	// Acks and Maintenance: as Node's, for the row's own alerts and the whole row.
	Acks        map[string]Ack `json:"acks,omitempty"`
	Maintenance *Maintenance   `json:"maintenance,omitempty"`
	// PowerSwitch is the row's smart plug relay, nil when it cannot be switched.
	PowerSwitch *powerctl.State `json:"power_switch,omitempty"`
}

// Online reports whether the Pi's agent is connected and its telemetry is current.
func (n Node) Online() bool { return n.State == StateOnline }

// DefaultTelemetryInterval is assumed until a Pi's interval is learned (see package
// presence, which decides staleness); it is the agent's default.
const DefaultTelemetryInterval = presence.DefaultInterval

// pressMemory is how many recent presses are remembered per node to recognise redeliveries.
// QoS 1 redelivers what was in flight when a connection died, which may be a whole buffer
// flushed after an outage, so the memory is generous; it grows only as presses arrive.
const pressMemory = 256

// pressID identifies one press: the agent stamps seq and ts once and a redelivery carries the
// same bytes, while an agent whose counter restarted (a new store) reuses a seq with a new ts.
type pressID struct {
	seq uint64
	ts  int64 // UnixNano
}

// pressResult says what rack.press did with a press.
type pressResult int

const (
	pressNew       pressResult = iota
	pressDuplicate             // same seq and ts as a remembered press: a redelivery
	pressReset                 // a remembered seq with another ts: the agent's counter restarted
)

// statusResult says what rack.setStatus did with a status.
type statusResult int

const (
	statusApplied    statusResult = iota
	statusOutOfOrder              // older than what is shown: ignored
)

// entry is a node plus what the state model needs but does not show. Its presence (online,
// offline, unknown, stale) is p's: rack.view writes it into node.State and node.Since, which
// otherwise hold the state and time the entry was created with.
type entry struct {
	node Node
	p    presence.Tracker

	presses []pressID // ring of at most pressMemory
	next    int       // ring index of the next press to record once full

	shownStale bool // what live clients were last told, so the sweep sends only changes
}

func (e *entry) findPress(seq uint64) (pressID, bool) {
	for _, p := range e.presses {
		if p.seq == seq {
			return p, true
		}
	}
	return pressID{}, false
}

func (e *entry) recordPress(id pressID) {
	if len(e.presses) < pressMemory {
		e.presses = append(e.presses, id)
		return
	}
	e.presses[e.next] = id
	e.next = (e.next + 1) % pressMemory
}

// model is the state model held by a Rack (its state field): every known Pi by MAC. Its methods
// take already-validated values and report whether anything changed, so that callers know when
// to notify; it knows nothing of payload bytes or HTTP. It is safe for concurrent use.
type model struct {
	now  func() time.Time
	rule presence.Rule // the same rule the alert engine is given

	mu    sync.RWMutex
	nodes map[string]*entry
	power map[string]rowPower // by row name
}

// rowPower is a row supply's last reading.
type rowPower struct {
	p  topics.Power
	at time.Time
}

func newModel(now func() time.Time, rule presence.Rule) *model {
	return &model{now: now, rule: rule, nodes: make(map[string]*entry), power: make(map[string]rowPower)}
}

// upsert returns the entry for mac, creating it so that telemetry from an unseen Pi still shows
// up; the row is updated because a board may be moved. Call with mu held.
func (r *model) upsert(row, mac string, now time.Time) *entry {
	e, ok := r.nodes[mac]
	if !ok {
		e = &entry{node: Node{MAC: mac, State: StateUnknown, Since: now}}
		r.nodes[mac] = e
	}
	e.node.Row = row
	return e
}

// view is the node as shown at now. Call with mu held.
func (r *model) view(e *entry, now time.Time) Node {
	n := e.node
	n.StaleAfterS = r.rule.Threshold(e.p.Interval()).Seconds()
	if iv := e.p.Interval(); iv > 0 {
		n.IntervalS = iv.Seconds()
	}
	if state, since := e.p.State(r.rule, now); state != StateUnknown {
		n.State, n.Since = state, since
	}
	return n
}

// touched records that e was changed at now and live clients are about to be told.
func (r *model) touched(e *entry, now time.Time) {
	e.shownStale = e.p.IsStale(r.rule, now)
}

// setStatus applies a status payload, unless package presence finds it older than the one
// shown. changed reports whether the Pi's presence (online, offline, unknown) changed.
func (r *model) setStatus(row, mac string, st topics.Status) (res statusResult, changed bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	applied, changed := e.p.Status(st, now)
	if !applied {
		return statusOutOfOrder, false
	}
	n := &e.node
	if st.State == topics.StateOnline {
		n.Hostname, n.IP, n.Model, n.Serial, n.AgentVersion = st.Hostname, st.IP, st.Model, st.Serial, st.AgentVersion
		n.BootTime = st.BootTime
		n.LastSeen = now
	} else {
		// An offline status carries the identity of the Pi's last session (agents since issue
		// 14): after a restart of the control center, it is all there is to name the Pi.
		for _, f := range []struct {
			dst *string
			v   string
		}{{&n.Hostname, st.Hostname}, {&n.IP, st.IP},
			{&n.Model, st.Model}, {&n.Serial, st.Serial}, {&n.AgentVersion, st.AgentVersion}} {
			if f.v != "" {
				*f.dst = f.v
			}
		}
	}
	r.touched(e, now)
	return statusApplied, changed
}

// setMetrics stores a metrics payload and learns the Pi's telemetry interval from the last
// one. Presence is left alone: retained metrics of a Pi that is offline must not make it look
// online. It reports false for a copy of the metrics already held (a retained message
// replayed), which must not make a silent Pi look fresh.
func (r *model) setMetrics(row, mac string, m topics.Metrics) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	if !e.p.Metrics(m, now) {
		return false
	}
	e.node.Metrics = &m
	e.node.MetricsAt = now
	e.node.LastSeen = now
	r.touched(e, now)
	return true
}

// setLED stores an LED state report. It reports false for a report not newer than the one held
// (a retained message replayed, or one overtaken by a later report).
func (r *model) setLED(row, mac string, st topics.LEDState) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	if prev := e.node.LED; prev != nil && !st.TS.After(prev.TS) {
		return false
	}
	e.node.LED = &LED{State: st.State, Action: st.Action, By: st.By, Until: st.Until, TS: st.TS}
	// An identify this dashboard did not start (pirack locate in a terminal, an automation, or
	// one running across a restart of the control center) is a locate too: its tile says so,
	// and the press that finds the Pi is timed from when the LED started.
	if e.node.Locate == nil && st.State == topics.LEDStateBlinking && st.Action == topics.LEDIdentify && st.Until.After(now) {
		at := st.TS
		if at.After(now) { // the Pi's clock runs ahead: the LED started no later than now
			at = now
		}
		e.node.Locate = &Locate{By: st.By, At: at, Action: topics.LEDIdentify, Until: st.Until}
	}
	// The LED stopped: the locate it was doing ended (found, run out, or replaced by another
	// command). A blink's note goes; a locate's stays a while to say how it ended.
	if l := e.node.Locate; l.running() && st.State != topics.LEDStateBlinking && now.Sub(l.At) > time.Second {
		if l.Action == topics.LEDIdentify {
			ended := *l
			ended.EndedAt = now
			if st.Action == topics.LEDOff || st.Action == topics.LEDOn {
				ended.EndedBy = st.By
			}
			e.node.Locate = &ended
		} else {
			e.node.Locate = nil
		}
	}
	e.node.LastSeen = now
	r.touched(e, now)
	return true
}

// setPower stores a row supply's reading. It reports false for a copy of the reading held (a
// retained message replayed) and for one older than it.
func (r *model) setPower(row string, p topics.Power) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.power[row]; ok && !p.TS.After(prev.p.TS) {
		return false
	}
	r.power[row] = rowPower{p: p, at: now}
	return true
}

// rows returns every row that has Pis or a power reading, sorted by name.
func (r *model) rows() []Row {
	r.mu.RLock()
	byName := make(map[string]*Row)
	get := func(name string) *Row {
		if x, ok := byName[name]; ok {
			return x
		}
		x := &Row{Name: name}
		byName[name] = x
		return x
	}
	for _, e := range r.nodes {
		get(e.node.Row).Pis++
	}
	for name, p := range r.power {
		x := get(name)
		x.Power, x.PowerAt = &p.p, p.at
	}
	r.mu.RUnlock()
	out := make([]Row, 0, len(byName))
	for _, x := range byName {
		x.fill()
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b Row) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// fill derives WattsPerPi.
func (x *Row) fill() {
	if x.Power != nil && x.Power.Watts != nil && x.Pis > 0 {
		w := *x.Power.Watts / float64(x.Pis)
		x.WattsPerPi = &w
	}
}

// press records a button press and, when sel, selects the node, unless the press is a
// redelivery of one already seen. selected reports whether the press newly selected the node
// (it was not selected before).
func (r *model) press(row, mac string, ev topics.ButtonEvent, sel bool) (res pressResult, selected bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	id := pressID{seq: ev.Seq, ts: ev.TS.UnixNano()}
	res = pressNew
	if seen, ok := e.findPress(ev.Seq); ok {
		if seen == id {
			return pressDuplicate, false
		}
		// Same number, another press: the agent lost its counter. What we remember belongs
		// to the old numbering and would swallow the new presses, so forget it.
		e.presses, e.next = e.presses[:0], 0
		res = pressReset
	}
	e.recordPress(id)
	if l := e.node.Locate; ev.Found && l != nil && l.FoundAt.IsZero() {
		found := *l
		found.FoundAt, found.FoundAfterS, found.EndedAt = now, now.Sub(l.At).Seconds(), now
		e.node.Locate = &found
	}
	if sel {
		selected = !e.node.Selected
		e.node.Selected, e.node.SelectedAt, e.node.SelectedBy, e.node.SelectedUser = true, now, ev.Press, ""
	}
	e.node.LastSeen = now
	r.touched(e, now)
	return res, selected
}

// locate records that by asked the node's LED to blink or identify for d. It returns false for
// an unknown MAC.
func (r *model) locate(mac, by, action string, d time.Duration) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok {
		return false
	}
	e.node.Locate = &Locate{By: by, At: now, Action: action, Until: now.Add(d)}
	r.touched(e, now)
	return true
}

// stopLocate records that by stopped the node's locate: its note goes at once.
func (r *model) stopLocate(mac string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok || e.node.Locate == nil {
		return false
	}
	e.node.Locate = nil
	r.touched(e, r.now())
	return true
}

// expireLocates drops the notes of locates that ended locateKeep ago, and ends those whose LED
// should long have stopped (an agent that went away mid-locate). It returns the nodes changed.
func (r *model) expireLocates(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed []string
	for mac, e := range r.nodes {
		l := e.node.Locate
		switch {
		case l == nil:
		case !l.EndedAt.IsZero() && now.Sub(l.EndedAt) >= locateKeep:
			e.node.Locate = nil
			changed = append(changed, mac)
		case l.running() && !l.Until.IsZero() && now.Sub(l.Until) >= time.Minute:
			ended := *l
			ended.EndedAt = l.Until
			e.node.Locate = &ended
			changed = append(changed, mac)
		}
	}
	return changed
}

// remove forgets a node and returns the row it was in; false for an unknown MAC.
func (r *model) remove(mac string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok {
		return "", false
	}
	delete(r.nodes, mac)
	return e.node.Row, true
}

// selectByUser selects a node on a user's behalf (a click on its tile). It returns the node,
// whether it was newly selected, and false for an unknown MAC.
func (r *model) selectByUser(mac, user string) (n Node, selected, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok {
		return Node{}, false, false
	}
	if !e.node.Selected {
		selected = true
		e.node.Selected, e.node.SelectedAt, e.node.SelectedBy, e.node.SelectedUser = true, now, "", user
		r.touched(e, now)
	}
	return r.view(e, now), selected, true
}

// clearSelection unselects a node. It returns the node and false for an unknown MAC.
func (r *model) clearSelection(mac string) (Node, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok {
		return Node{}, false
	}
	e.node.Selected, e.node.SelectedAt, e.node.SelectedBy, e.node.SelectedUser = false, time.Time{}, "", ""
	r.touched(e, now)
	return r.view(e, now), true
}

// selectedBefore returns the selected nodes, and those selected before cutoff (all when cutoff
// is zero), in one look.
func (r *model) selectedBefore(cutoff time.Time) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var macs []string
	for mac, e := range r.nodes {
		if e.node.Selected && (cutoff.IsZero() || e.node.SelectedAt.Before(cutoff)) {
			macs = append(macs, mac)
		}
	}
	return macs
}

// sweep finds the nodes whose staleness changed since live clients were last told, records
// that they are being told now, and returns their MACs and how many went stale.
func (r *model) sweep() (changed []string, wentStale int) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for mac, e := range r.nodes {
		if stale := e.p.IsStale(r.rule, now); stale != e.shownStale {
			e.shownStale = stale
			changed = append(changed, mac)
			if stale {
				wentStale++
			}
		}
	}
	return changed, wentStale
}

// node returns one node by normalised MAC.
func (r *model) node(mac string) (Node, bool) {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.nodes[mac]
	if !ok {
		return Node{}, false
	}
	return r.view(e, now), true
}

// list returns all nodes sorted by row, then MAC.
func (r *model) list() []Node {
	now := r.now()
	r.mu.RLock()
	out := make([]Node, 0, len(r.nodes))
	for _, e := range r.nodes {
		out = append(out, r.view(e, now))
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Row, b.Row), cmp.Compare(a.MAC, b.MAC))
	})
	return out
}
