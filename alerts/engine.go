package alerts

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// Rule names. They are stable: they end topics (rack/<row>/<mac>/alert/<rule>) that
// automations subscribe to.
const (
	RuleOffline   = "offline"
	RuleStale     = "stale"
	RuleLoadHigh  = "load_high"
	RuleMemLow    = "mem_low"
	RuleDiskFull  = "disk_full"
	RuleTempHigh  = "temp_high"
	RuleThrottled = "throttled"
	RuleSensorHot = "sensor_hot"
	RulePowerBand = "power_band" // a row's alert: its topic has no MAC
)

// ruleID indexes a rule's state; the order is the order in which transitions are returned.
type ruleID int

const (
	ruleOffline ruleID = iota
	ruleStale
	ruleLoadHigh
	ruleMemLow
	ruleDiskFull
	ruleTempHigh
	ruleThrottled
	ruleSensorHot
	rulePowerBand
	numRules
)

var ruleNames = [numRules]string{
	RuleOffline, RuleStale, RuleLoadHigh, RuleMemLow, RuleDiskFull, RuleTempHigh, RuleThrottled, RuleSensorHot, RulePowerBand,
}

// Rules returns the names of all rules, in the order the package evaluates them.
func Rules() []string { return slices.Clone(ruleNames[:]) }

func ruleByName(name string) (ruleID, bool) {
	i := slices.Index(ruleNames[:], name)
	return ruleID(i), i >= 0
}

// Engine evaluates the alert rules. It is fed observations and returns the alert transitions
// they cause, each a topics.Alert to publish retained on
// topics.AlertTopic(a.Row, a.MAC, a.Rule) and to show. It starts no goroutine and does no I/O;
// time is whatever the caller passes as now. It is safe for concurrent use, but transitions
// are only in order if the caller serialises its calls.
//
// MACs and rows are expected normalised, as topics.Parse returns them; observations with
// others are ignored, because no alert about them could be published.
type Engine struct {
	cfg Config

	mu    sync.Mutex
	nodes map[string]*node     // by MAC
	rows  map[string]*powerRow // by row name
}

// ruleState is one rule's state for one Pi or row.
type ruleState struct {
	pending  time.Time     // when the raise condition began; zero when not pending
	clearing time.Time     // when the clear condition began while raised; zero otherwise
	active   *topics.Alert // the alert as raised, nil when not raised
	// restored marks an alert handed back by Restore while the Pi has not been online since.
	// An offline status leaves it raised: after a restart the Pi's retained status (often the
	// Will the restart itself caused) and metrics come back before or after the alert, and
	// what is shown must not depend on that order.
	restored bool
}

// node is what the engine knows of one Pi.
type node struct {
	mac, row, hostname string

	// p decides presence (offline, stale) exactly as the dashboard's tiles do.
	p         presence.Tracker
	offlineAt time.Time // when the Pi last went offline, for the message of a clear
	backAt    time.Time // when it was last back online since the engine started; zero if never

	haveUptime bool
	lastUptime uint64
	uvAlerted  bool // under_voltage since boot has been reported for this boot

	rules [rulePowerBand]ruleState // every rule but power_band, which belongs to rows
}

// New returns an engine for cfg, or an error wrapping ErrInvalidConfig.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.PowerBand.Rows = cloneRows(cfg.PowerBand.Rows)
	return &Engine{cfg: cfg, nodes: make(map[string]*node), rows: make(map[string]*powerRow)}, nil
}

// Presence returns the presence rule the stale rule is evaluated with (Config.Presence), so
// that whoever shows presence beside the alerts can check it uses the same.
func (e *Engine) Presence() presence.Rule { return e.cfg.Presence }

func cloneRows(m map[string]PowerBand) map[string]PowerBand {
	out := make(map[string]PowerBand, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func validIDs(mac, row string) bool { return topics.IsMAC(mac) && topics.ValidateRow(row) == nil }

// node returns the Pi's state, creating it. A Pi seen in another row than before has moved:
// its raised alerts are cleared under the old row, whose retained topics would otherwise keep
// them forever, and it starts over in the new one.
func (e *Engine) node(mac, row string, now time.Time, out *[]topics.Alert) *node {
	n, ok := e.nodes[mac]
	if !ok {
		n = &node{mac: mac, row: row}
		e.nodes[mac] = n
		return n
	}
	if n.row != row {
		n.clearAll(now, "moved to row "+row, out, -1, false)
		n.row = row
	}
	return n
}

// clearAll clears every raised alert of n but keep (-1: none) and forgets pending ones.
// keepRestored also keeps the alerts restored while the Pi has not been online since.
func (n *node) clearAll(now time.Time, why string, out *[]topics.Alert, keep ruleID, keepRestored bool) {
	for id := range n.rules {
		st := &n.rules[id]
		if ruleID(id) == keep || keepRestored && st.restored {
			continue
		}
		if st.active != nil {
			*out = append(*out, cleared(*st.active, now, why, nil, nil))
		}
		*st = ruleState{}
	}
}

// ObserveStatus applies a Pi's status, as package presence orders it: a status older than
// the one held (an offline of another session than the current one, a late Will; or an
// earlier status of the current session) is ignored. Offline clears the Pi's other alerts at
// once and suspends its other rules until it is back online; the offline alert itself is
// raised once the Pi has been offline for the rule's "for" (by ObserveStatus or a later Tick).
func (e *Engine) ObserveStatus(mac, row string, s topics.Status, now time.Time) []topics.Alert {
	if !validIDs(mac, row) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []topics.Alert
	n := e.node(mac, row, now, &out)
	applied, changed := n.p.Status(s, now)
	if !applied {
		return out
	}
	switch s.State {
	case topics.StateOffline:
		if changed {
			n.offlineAt = now
			n.clearAll(now, "not checked while the Pi is offline", &out, ruleOffline, true)
		}
	case topics.StateOnline:
		for id := range n.rules {
			n.rules[id].restored = false // back: from now on like any other alert
		}
		if s.Hostname != "" {
			n.hostname = s.Hostname
		}
		n.backAt = now
	}
	e.evalOffline(n, now, &out)
	e.evalStale(n, now, &out)
	return out
}

// ObserveMetrics applies a Pi's metrics sample. A copy of the last sample (same seq and ts)
// changes nothing. Metrics of a Pi that is offline, or whose presence is not known yet, only
// teach presence the Pi's interval, as they do the dashboard; no rule is evaluated on them.
// After a restart the retained metrics of a Pi that died hot may be replayed before its
// retained offline status: judged, they raised an alert the status cleared a moment later,
// and a notification went out for each. An agent always sends its birth before its metrics.
func (e *Engine) ObserveMetrics(mac, row string, m topics.Metrics, now time.Time) []topics.Alert {
	if !validIDs(mac, row) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []topics.Alert
	n := e.node(mac, row, now, &out)
	if !n.p.Metrics(m, now) || n.p.Offline() || !n.p.Known() {
		return out
	}

	e.evalStale(n, now, &out)
	for _, r := range []struct {
		id ruleID
		rd reading
	}{
		{ruleLoadHigh, loadReading(e.cfg.LoadHigh, m)},
		{ruleMemLow, memReading(e.cfg.MemLow, m)},
		{ruleDiskFull, diskReading(e.cfg.DiskFull, m)},
		{ruleTempHigh, tempReading(e.cfg.TempHigh, m)},
		{ruleThrottled, e.throttledReading(n, m)},
		{ruleSensorHot, sensorReading(e.cfg.SensorHot, m)},
	} {
		e.step(n, r.id, r.rd, now, &out)
	}
	return out
}

// Tick evaluates the rules that fire on time passing rather than on data: offline (its "for")
// and stale. Call it every few seconds; the resolution of those rules is the tick's period.
func (e *Engine) Tick(now time.Time) []topics.Alert {
	if deaf, _ := e.cfg.Presence.Hearing.Deaf(); deaf {
		return nil // nothing can be heard: nothing to judge (see presence.Hearing)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []topics.Alert
	macs := make([]string, 0, len(e.nodes))
	for mac := range e.nodes {
		macs = append(macs, mac)
	}
	slices.Sort(macs)
	for _, mac := range macs {
		n := e.nodes[mac]
		e.evalOffline(n, now, &out)
		e.evalStale(n, now, &out)
	}
	return out
}

// Forget drops a Pi (removed from the rack) and clears its raised alerts.
func (e *Engine) Forget(mac string, now time.Time) []topics.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.nodes[mac]
	if !ok {
		return nil
	}
	var out []topics.Alert
	n.clearAll(now, "the Pi was removed", &out, -1, false)
	delete(e.nodes, mac)
	return out
}

// Restore takes back an alert that was raised before a restart, as found retained on its
// topic, so that it clears when its condition has ended instead of staying raised forever.
// It returns the alert cleared at once when its rule is unknown or disabled, or when the Pi
// has since been seen in another row; other alerts wait for the next observation of their
// rule (an offline status before the Pi is back online leaves them raised). Cleared and
// invalid alerts, and alerts already known, are ignored.
func (e *Engine) Restore(a topics.Alert, now time.Time) []topics.Alert {
	if a.State != topics.AlertRaised || a.Validate() != nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	id, known := ruleByName(a.Rule)
	if !known || e.cfg.base(id).Disabled || (id == rulePowerBand) != (a.MAC == "") {
		return []topics.Alert{cleared(a, now, "the rule is no longer in use", nil, nil)}
	}
	var st *ruleState
	restored := false
	if id == rulePowerBand {
		st = &e.row(a.Row, now).state
	} else {
		n, ok := e.nodes[a.MAC]
		switch {
		case !ok:
			n = &node{mac: a.MAC, row: a.Row, hostname: a.Hostname}
			e.nodes[a.MAC] = n
		case n.row != a.Row:
			return []topics.Alert{cleared(a, now, "moved to row "+n.row, nil, nil)}
		}
		st = &n.rules[id]
		restored = n.backAt.IsZero() // not yet back online since the restart
	}
	if st.active == nil {
		st.active = &a
		st.pending = time.Time{}
		st.restored = restored
	}
	return nil
}

// Raised returns the raised alert of one rule for a Pi (mac set) or a row (mac "").
func (e *Engine) Raised(row, mac, rule string) (topics.Alert, bool) {
	id, ok := ruleByName(rule)
	if !ok {
		return topics.Alert{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var st *ruleState
	switch {
	case mac == "" && id == rulePowerBand:
		if r, ok := e.rows[row]; ok {
			st = &r.state
		}
	case mac != "" && id != rulePowerBand:
		if n, ok := e.nodes[mac]; ok && n.row == row {
			st = &n.rules[id]
		}
	}
	if st == nil || st.active == nil {
		return topics.Alert{}, false
	}
	return *st.active, true
}

// Active returns the raised alerts, sorted by row, MAC and rule.
func (e *Engine) Active() []topics.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []topics.Alert
	for _, n := range e.nodes {
		for i := range n.rules {
			if a := n.rules[i].active; a != nil {
				out = append(out, *a)
			}
		}
	}
	for _, r := range e.rows {
		if a := r.state.active; a != nil {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b topics.Alert) int {
		return cmp.Or(cmp.Compare(a.Row, b.Row), cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.Rule, b.Rule))
	})
	return out
}

func (e *Engine) evalOffline(n *node, now time.Time, out *[]topics.Alert) {
	if !n.p.Offline() {
		down := n.offlineAt
		e.step(n, ruleOffline, reading{level: levelClear, clear: func(time.Duration) string {
			if down.IsZero() {
				return "online"
			}
			return "back online after " + human(now.Sub(down))
		}}, now, out)
		return
	}
	e.step(n, ruleOffline, reading{level: levelFiring, onset: n.offlineAt, raise: func(d time.Duration) string {
		return "offline" + forDuration(d)
	}}, now, out)
}

// evalStale steps the stale rule on presence's condition, the one the dashboard's tiles show:
// Tracker.IsStale under Config.Presence.
func (e *Engine) evalStale(n *node, now time.Time, out *[]topics.Alert) {
	at, ok := n.p.StaleAt(e.cfg.Presence)
	if !ok {
		return // offline says more (the rule's state was reset then), or never heard from
	}
	iv := n.p.Interval()
	window := e.cfg.Presence.Threshold(iv)
	silent := now.Sub(n.p.Heard())
	rd := reading{
		value: ptr(round(silent.Seconds(), 1)), raiseAt: ptr(window.Seconds()), clearAt: ptr(window.Seconds()),
		unit: topics.UnitSeconds,
		raise: func(time.Duration) string {
			if e.cfg.Presence.StaleAfter > 0 {
				return "no metrics for " + human(silent) + ", over the limit of " + human(window)
			}
			return "no metrics for " + human(silent) + ", over " + num(presence.StaleIntervals) + " intervals of " + human(cmp.Or(iv, presence.DefaultInterval))
		},
		clear: func(time.Duration) string { return "metrics arriving again" },
	}
	if n.p.IsStale(e.cfg.Presence, now) {
		rd.level, rd.onset = levelFiring, at
	} else {
		rd.level = levelClear
	}
	e.step(n, ruleStale, rd, now, out)
}

// level is what one observation says about a rule's condition.
type level int

const (
	levelUnknown level = iota // nothing known (a value not read): change nothing
	levelClear                // the clear condition holds
	levelBand                 // between the clear and the raise thresholds
	levelFiring               // the raise condition holds
)

// reading is one rule evaluated on one observation.
type reading struct {
	level level
	// onset is when the condition began, when it is known to be before now (an offline status
	// seen earlier, a stale deadline passed between ticks); zero means now.
	onset time.Time
	// immediate raises without waiting for the rule's "for": for an event that has already
	// happened, such as under-voltage since boot.
	immediate bool

	value            *float64
	raiseAt, clearAt *float64 // thresholds reported with a raised and a cleared alert
	unit             string
	// raise and clear write the alert's message; d is how long the condition has held.
	raise, clear func(d time.Duration) string
}

// step advances one rule of n with a reading, appending a transition to out if there is one.
func (e *Engine) step(n *node, id ruleID, rd reading, now time.Time, out *[]topics.Alert) {
	if e.cfg.base(id).Disabled {
		return
	}
	e.advance(&n.rules[id], id, n.row, n.mac, n.hostname, rd, now, out)
}

// advance is the state machine every rule shares: pending for "for", raised, clearing for
// "clear_for", cleared.
func (e *Engine) advance(st *ruleState, id ruleID, row, mac, host string, rd reading, now time.Time, out *[]topics.Alert) {
	b := e.cfg.base(id)
	onset := rd.onset
	if onset.IsZero() || onset.After(now) {
		onset = now
	}
	if st.active == nil {
		switch rd.level {
		case levelFiring:
			if st.pending.IsZero() || st.pending.After(now) {
				st.pending = onset
			}
			held := now.Sub(st.pending)
			if back := e.cfg.Presence.Hearing.HeardSince(); st.pending.Before(back) {
				held = now.Sub(back) // time the broker was lost does not count
			}
			if held < time.Duration(b.For) && !rd.immediate {
				return
			}
			a := topics.Alert{
				V: topics.Version, Rule: ruleNames[id], Severity: b.Severity, State: topics.AlertRaised,
				TS: now, Since: st.pending, Row: row, MAC: mac, Hostname: host,
				Value: rd.value, Threshold: rd.raiseAt, Unit: rd.unit, Message: clip(rd.raise(held)),
			}
			*st = ruleState{active: &a}
			*out = append(*out, a)
		case levelClear, levelBand:
			st.pending = time.Time{}
		}
		return
	}
	switch rd.level {
	case levelClear:
		if st.clearing.IsZero() || st.clearing.After(now) {
			st.clearing = onset
		}
		held := now.Sub(st.clearing)
		if held < time.Duration(b.ClearFor) {
			return
		}
		*out = append(*out, cleared(*st.active, now, rd.clear(held), rd.value, rd.clearAt))
		*st = ruleState{}
	case levelFiring, levelBand:
		st.clearing = time.Time{}
	}
}

// cleared returns a raised alert as cleared at now. The unit stays with the alert; value and
// threshold are replaced (nil leaves them out: a clear without a measurement).
func cleared(a topics.Alert, now time.Time, msg string, value, threshold *float64) topics.Alert {
	a.State, a.TS, a.Message = topics.AlertCleared, now, clip(msg)
	a.Value, a.Threshold = value, threshold
	if value == nil && threshold == nil {
		a.Unit = ""
	}
	if a.Since.After(now) { // a clock that went backwards must not make the payload invalid
		a.Since = now
	}
	return a
}
