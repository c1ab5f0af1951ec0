package dashboard

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/topics"
)

// Presence states of a Node. StateUnknown is a Pi seen through telemetry before any status.
const (
	StateOnline  = topics.StateOnline
	StateOffline = topics.StateOffline
	StateUnknown = "unknown"
)

// Node is the Control Center's view of one Pi. Values returned by Server.Nodes and the API are
// snapshots: changing them changes nothing. Metrics is shared between snapshots and must be
// treated as read-only.
type Node struct {
	MAC          string    `json:"mac"` // 12 lowercase hex digits, as in topics
	Row          string    `json:"row"`
	Hostname     string    `json:"hostname"`
	IP           string    `json:"ip"`
	Model        string    `json:"model"`
	AgentVersion string    `json:"agent_version"`
	BootTime     time.Time `json:"boot_time,omitzero"`
	// State is StateOnline, StateOffline or StateUnknown; Since is when it last changed.
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Metrics is the last valid metrics payload, nil until one arrives.
	Metrics *topics.Metrics `json:"metrics,omitempty"`
	// LastSeen is when the Control Center last heard from the Pi itself (its clock, not the Pi's).
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Selected is set by a button press on the Pi and cleared by an operator.
	Selected   bool      `json:"selected"`
	SelectedAt time.Time `json:"selected_at,omitzero"`
	SelectedBy string    `json:"selected_by,omitempty"` // the press kind: short, long or double
}

// Online reports whether the Pi's agent is connected.
func (n Node) Online() bool { return n.State == StateOnline }

// pressMemory is how many recent press sequence numbers are remembered per node. QoS 1
// redeliveries arrive soon after the original, so a short memory catches them, while an agent
// whose counter restarted is not locked out for ever.
const pressMemory = 32

// entry is a node plus what the state model needs but does not show.
type entry struct {
	node    Node
	session string // Session of the current online status, "" if unknown
	presses [pressMemory]uint64
	npress  int // how many of presses are filled
	next    int // ring index of the next press to record
}

func (e *entry) seenPress(seq uint64) bool {
	return slices.Contains(e.presses[:e.npress], seq)
}

func (e *entry) recordPress(seq uint64) {
	e.presses[e.next] = seq
	e.next = (e.next + 1) % pressMemory
	e.npress = min(e.npress+1, pressMemory)
}

// rack is the state model: every known Pi by MAC. Its methods take already-validated values and
// report whether anything changed, so that callers know when to notify; it knows nothing of
// payload bytes or HTTP. It is safe for concurrent use.
type rack struct {
	now func() time.Time

	mu    sync.RWMutex
	nodes map[string]*entry
}

func newRack(now func() time.Time) *rack {
	return &rack{now: now, nodes: make(map[string]*entry)}
}

// upsert returns the entry for mac, creating it so that telemetry from an unseen Pi still shows
// up; the row is updated because a board may be moved. Call with mu held.
func (r *rack) upsert(row, mac string, now time.Time) *entry {
	e, ok := r.nodes[mac]
	if !ok {
		e = &entry{node: Node{MAC: mac, State: StateUnknown, Since: now}}
		r.nodes[mac] = e
	}
	e.node.Row = row
	return e
}

// setStatus applies a status payload. It reports false when the payload was ignored: an offline
// Will from an older session must not overwrite the online birth of a newer one.
func (r *rack) setStatus(row, mac string, st topics.Status) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	n := &e.node
	switch st.State {
	case topics.StateOnline:
		e.session = st.Session
		n.Hostname, n.IP, n.Model, n.AgentVersion = st.Hostname, st.IP, st.Model, st.AgentVersion
		n.BootTime = st.BootTime
		n.LastSeen = now
	case topics.StateOffline:
		if st.Session != "" && e.session != "" && st.Session != e.session {
			return false
		}
	}
	if n.State != st.State {
		n.State, n.Since = st.State, now
	}
	return true
}

// setMetrics stores a metrics payload. Presence is left alone: retained metrics of a Pi that is
// offline must not make it look online.
func (r *rack) setMetrics(row, mac string, m topics.Metrics) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	e.node.Metrics = &m
	e.node.LastSeen = now
}

// press selects the node for a button press. It reports false for a press already seen (same
// MAC and Seq), such as a QoS 1 redelivery.
func (r *rack) press(row, mac string, ev topics.ButtonEvent) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.upsert(row, mac, now)
	if e.seenPress(ev.Seq) {
		return false
	}
	e.recordPress(ev.Seq)
	e.node.Selected, e.node.SelectedAt, e.node.SelectedBy = true, now, ev.Press
	e.node.LastSeen = now
	return true
}

// clearSelection unselects a node. It returns the node and false for an unknown MAC.
func (r *rack) clearSelection(mac string) (Node, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[mac]
	if !ok {
		return Node{}, false
	}
	e.node.Selected, e.node.SelectedAt, e.node.SelectedBy = false, time.Time{}, ""
	return e.node, true
}

// node returns one node by normalised MAC.
func (r *rack) node(mac string) (Node, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.nodes[mac]
	if !ok {
		return Node{}, false
	}
	return e.node, true
}

// list returns all nodes sorted by row, then MAC.
func (r *rack) list() []Node {
	r.mu.RLock()
	out := make([]Node, 0, len(r.nodes))
	for _, e := range r.nodes {
		out = append(out, e.node)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Row, b.Row), cmp.Compare(a.MAC, b.MAC))
	})
	return out
}
