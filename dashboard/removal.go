package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// Safe removal: the job the rack's buttons and LEDs were built for. An admin starts it on a
// Pi; its LED flashes until someone at the rack presses its button (the board in hand is the
// one on the page); that press shuts it down (when this control center allows remote shutdown,
// or the operator does it by hand); the control center then waits for the proof that it is off:
// its agent's clean stop and, when the row has a power sensor, the row's watts dropping by about
// one Pi's share. Then it is safe to pull: the page says so and the agent left its LED lit
// steadily. The next press of another Pi of the row puts that board into the freed slot, where
// the page offers it the old one's history.

// The steps of a Removal, in order.
const (
	RemovalLocate   = "locate"   // the LED flashes until the Pi's button is pressed at the rack
	RemovalShutdown = "shutdown" // confirmed at the rack; waiting for the Pi to go offline
	RemovalVerify   = "verify"   // offline; waiting for the proof that it is off
	RemovalSafe     = "safe"     // safe to pull; waiting for the replacement's press
	RemovalReplaced = "replaced" // another board took the slot: done
	RemovalEnded    = "ended"    // cancelled, or the Pi came back: done
)

// Removal is the guided removal of one Pi, shown on its tile (Node.Removal).
type Removal struct {
	MAC  string    `json:"mac"`
	Row  string    `json:"row"`
	Slot int       `json:"slot,omitempty"` // the slot the replacement takes; 0 when the Pi had none
	By   string    `json:"by"`             // the admin who started it
	At   time.Time `json:"at"`
	Step string    `json:"step"`
	// Note says what the step waits for, or what went wrong and what to do.
	Note string `json:"note"`
	// NeedsCheck is set in RemovalVerify when nothing proves the Pi is off (it went offline
	// without a clean stop, or the row's power did not drop): an operator who checked its
	// activity LED confirms by hand (POST .../removal/off).
	NeedsCheck  bool      `json:"needs_check,omitempty"`
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"` // the press at the rack
	ShutdownAt  time.Time `json:"shutdown_at,omitzero"`  // the shutdown command was sent
	OfflineAt   time.Time `json:"offline_at,omitzero"`
	CleanStop   bool      `json:"clean_stop,omitempty"` // offline through the agent's own stop, not its Will
	// WattsBefore is the row's power when the Pi was confirmed, WattsAfter the reading that
	// showed it gone; ShareW is one Pi's share of WattsBefore. Nil without a power sensor.
	WattsBefore *float64  `json:"watts_before,omitempty"`
	WattsAfter  *float64  `json:"watts_after,omitempty"`
	ShareW      *float64  `json:"share_w,omitempty"`
	SafeAt      time.Time `json:"safe_at,omitzero"`
	Replacement string    `json:"replacement,omitempty"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
}

// done is whether the removal has finished (replaced or ended).
func (x *Removal) done() bool { return x.Step == RemovalReplaced || x.Step == RemovalEnded }

// Timing of a removal.
const (
	// removalLocateFor is how long the LED flashes for the press that confirms the board.
	removalLocateFor = 30 * time.Minute
	// haltGrace: an agent stops before the kernel halts; without a power sensor, the Pi is
	// taken to be off this long after its clean stop.
	haltGrace = 20 * time.Second
	// powerDropWait is how long after going offline the row's power has to drop.
	powerDropWait = 90 * time.Second
	// shutdownWait is how long a shut-down Pi may take to go offline before the note says so.
	shutdownWait = 2 * time.Minute
	// freshPower: an older row reading is no baseline.
	freshPower = 2 * time.Minute
	// removalKeep is how long a finished removal stays on its tile.
	removalKeep = 10 * time.Minute
)

// RemovalsFile keeps the removals in the data directory, so that a restart of the control
// center in the middle of one (the press at the rack still to come, the Pi on its way down,
// its slot waiting for the new board) carries on where it was.
const RemovalsFile = "removals.json"

// removals holds the running removals by MAC, saved to a file at each change (path "" keeps
// them in memory).
type removals struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	m  map[string]*Removal
}

// openRemovals reads the removals saved at path; a file that cannot be read is logged and
// the rack starts without them.
func openRemovals(path string, log *slog.Logger) *removals {
	rs := &removals{path: path, log: log, m: make(map[string]*Removal)}
	if path == "" {
		return rs
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot read the safe removals in progress; they are forgotten: start them again on the page", "file", path, "err", err)
		}
		return rs
	}
	var list []*Removal
	if err := json.Unmarshal(b, &list); err != nil {
		log.Warn("safe removals in progress unreadable; they are forgotten: start them again on the page", "file", path, "err", err)
		return rs
	}
	for _, x := range list {
		if x != nil && topics.IsMAC(x.MAC) {
			rs.m[x.MAC] = x
		}
	}
	return rs
}

func removalsPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, RemovalsFile)
}

// saveLocked writes the file; a failure is logged (the removals then last until a restart).
func (rs *removals) saveLocked() {
	if rs.path == "" {
		return
	}
	list := make([]*Removal, 0, len(rs.m))
	for _, mac := range slices.Sorted(maps.Keys(rs.m)) {
		list = append(list, rs.m[mac])
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err == nil {
		err = writeFileAtomic(rs.path, b, 0o600)
	}
	if err != nil {
		rs.log.Warn("cannot save the safe removals in progress; a restart would forget them", "file", rs.path, "err", err)
	}
}

// put starts (or replaces) a removal.
func (rs *removals) put(x *Removal) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.m[x.MAC] = x
	rs.saveLocked()
}

// drop forgets the removals of macs.
func (rs *removals) drop(macs []string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, mac := range macs {
		delete(rs.m, mac)
	}
	rs.saveLocked()
}

// get returns a copy of mac's removal, nil when there is none.
func (rs *removals) get(mac string) *Removal {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if x, ok := rs.m[mac]; ok {
		c := *x
		return &c
	}
	return nil
}

// update runs change on mac's removal, if any, and returns a copy of it after the change.
func (rs *removals) update(mac string, change func(x *Removal) bool) (*Removal, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	x, ok := rs.m[mac]
	if !ok || !change(x) {
		return nil, false
	}
	rs.saveLocked()
	c := *x
	return &c, true
}

// each runs change on every removal, returning copies of those it changed.
func (rs *removals) each(change func(x *Removal) bool) []Removal {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []Removal
	for _, x := range rs.m {
		if change(x) {
			out = append(out, *x)
		}
	}
	if len(out) > 0 {
		rs.saveLocked()
	}
	return out
}

// removalOf fills in n's removal.
func (rk *Rack) removalOf(n *Node) { n.Removal = rk.removals.get(n.MAC) }

// rowWatts returns the row's last power reading if it is fresh enough to compare against.
func (rk *Rack) rowWatts(row string, now time.Time) (float64, bool) {
	rk.state.mu.RLock()
	defer rk.state.mu.RUnlock()
	p, ok := rk.state.power[row]
	if !ok || p.p.Watts == nil || now.Sub(p.at) > freshPower {
		return 0, false
	}
	return *p.p.Watts, true
}

// startRemoval starts removing n for by; locate is called to flash its LED until found (nil
// for an offline Pi, which cannot flash). A running removal is replaced.
func (rk *Rack) startRemoval(n Node, by string, locate func() error) (*Removal, error) {
	now := rk.cfg.Now()
	x := &Removal{MAC: n.MAC, Row: n.Row, Slot: n.Slot, By: by, At: now}
	switch {
	case n.State == StateOffline:
		// A dead Pi cannot flash or shut down: what is left is to check that it is off.
		x.Step, x.OfflineAt, x.NeedsCheck = RemovalVerify, now, true
		x.Note = "already offline, so it cannot flash its LED or shut down: find it by its slot, check that its green activity LED is off, then confirm"
	default:
		if err := locate(); err != nil {
			return nil, err
		}
		x.Step = RemovalLocate
		x.Note = locateNote
	}
	rk.removals.put(x)
	rk.removalChanged(*x, "removal started")
	return x, nil
}

// removalChanged tells live clients and the event log.
func (rk *Rack) removalChanged(x Removal, detail string) {
	rk.hub.notify(x.MAC)
	if detail != "" {
		rk.event(history.Event{MAC: x.MAC, Row: x.Row, Kind: EventRemoval, By: x.By, Detail: detail})
		rk.log.Info("safe removal: "+detail, "mac", x.MAC, "row", x.Row, "step", x.Step)
	}
}

// removalWants reports whether a press of mac in row belongs to a removal (removalPress).
func (rk *Rack) removalWants(row, mac string) bool {
	rk.removals.mu.Lock()
	defer rk.removals.mu.Unlock()
	if x, ok := rk.removals.m[mac]; ok && x.Step == RemovalLocate {
		return true
	}
	for _, x := range rk.removals.m {
		if x.Step == RemovalSafe && x.Row == row && x.Slot > 0 && x.MAC != mac {
			return true
		}
	}
	return false
}

// removalPress handles a button press during removals: the press that confirms the board, or
// the replacement's. It reports whether the press was taken (and so selects nothing).
func (rk *Rack) removalPress(row, mac string) bool {
	now := rk.cfg.Now()
	if x, ok := rk.removals.update(mac, func(x *Removal) bool {
		if x.Step != RemovalLocate {
			return false
		}
		x.Step, x.ConfirmedAt = RemovalShutdown, now
		if w, ok := rk.rowWatts(row, now); ok {
			if pis := rk.rowPis(row); pis > 0 {
				share := w / float64(pis)
				x.WattsBefore, x.ShareW = &w, &share
			}
		}
		return true
	}); ok {
		rk.removalChanged(*x, "confirmed by a press at the rack")
		go rk.removalShutdown(*x)
		return true
	}
	// The first press of another board of the row, once a removed one is safe to pull,
	// puts it into the freed slot.
	var slot int
	var from string
	rk.removals.mu.Lock()
	for _, x := range rk.removals.m {
		if x.Step == RemovalSafe && x.Row == row && x.Slot > 0 && x.MAC != mac {
			slot, from = x.Slot, x.MAC
			break
		}
	}
	rk.removals.mu.Unlock()
	if slot == 0 {
		return false
	}
	rk.replaceInto(row, slot, from, mac, "its button was pressed", "agent")
	return true
}

// replaceInto puts mac into the slot a removed Pi (from) left, and ends that removal.
func (rk *Rack) replaceInto(row string, slot int, from, mac, how, by string) {
	ch, err := rk.layout.Put(row, slot, mac)
	if err != nil {
		rk.log.Error("safe removal: could not put the replacement into the slot; place it with Slot…", "row", row, "slot", slot, "mac", mac, "err", err)
		return
	}
	rk.placed(row, slot, mac, ch, "replacement after a safe removal, "+how, by)
	if x, ok := rk.removals.update(from, func(x *Removal) bool {
		x.Step, x.Replacement, x.EndedAt = RemovalReplaced, mac, rk.cfg.Now()
		x.Note = fmt.Sprintf("replaced by %s in slot %d: its tile offers this board's history", displayMAC(mac), slot)
		return true
	}); ok {
		rk.removalChanged(*x, "replaced by "+displayMAC(mac))
	}
}

// removalSlot returns the slot a new board of row should take: the slot of a removed Pi
// waiting for its replacement, 0 when there is none.
func (rk *Rack) removalSlot(row string) (slot int, from string) {
	rk.removals.mu.Lock()
	defer rk.removals.mu.Unlock()
	for _, x := range rk.removals.m {
		if x.Step == RemovalSafe && x.Row == row && x.Slot > 0 {
			return x.Slot, x.MAC
		}
	}
	return 0, ""
}

// rowPis counts the Pis of a row that are not offline: those drawing power.
func (rk *Rack) rowPis(row string) int {
	rk.state.mu.RLock()
	defer rk.state.mu.RUnlock()
	n, now := 0, rk.state.now()
	for _, e := range rk.state.nodes {
		if e.node.Row == row && rk.state.view(e, now).State != StateOffline {
			n++
		}
	}
	return n
}

// removalShutdown sends the shutdown of a confirmed removal, audited in the name of the admin
// who started it; without remote shutdown, the note asks for it by hand.
func (rk *Rack) removalShutdown(x Removal) {
	note := func(text string, sent bool) {
		if y, ok := rk.removals.update(x.MAC, func(y *Removal) bool {
			if y.Step != RemovalShutdown {
				return false
			}
			y.Note = text
			if sent {
				y.ShutdownAt = rk.cfg.Now()
			}
			return true
		}); ok {
			rk.removalChanged(*y, "")
		}
	}
	if !rk.cfg.RemoteSystem {
		note("confirmed. Remote shutdown is off on this control center: shut it down yourself (sudo poweroff on the Pi); waiting for it to go offline", false)
		return
	}
	entry := AuditEntry{Action: AuditSystem, Outcome: AuditAllowed, User: x.By, Via: "safe removal, confirmed by a press at the rack", MAC: x.MAC,
		Params: map[string]any{"action": topics.SystemShutdown}}
	if err := rk.audit(entry); err != nil {
		note("confirmed, but not shut down: "+auditUnavailable, false)
		return
	}
	// Said before the send: the agent's answer (a refusal, say) may come back at once.
	note("confirmed; shutting down: waiting for it to go offline", true)
	if _, err := rk.sendSystem(context.Background(), x.MAC, x.Row, topics.SystemShutdown, x.By); err != nil {
		entry.Outcome, entry.Reason = AuditFailed, clipLog("publish: "+err.Error())
		rk.audit(entry)
		note("confirmed, but the shutdown could not be sent: the broker refused it. Shut it down yourself (sudo poweroff), or cancel and start again", false)
	}
}

// sendSystem publishes a shutdown or reboot command for mac, by by, expiring after systemTTL,
// and records it in the event log.
func (rk *Rack) sendSystem(ctx context.Context, mac, row, action, by string) (topics.SystemCommand, error) {
	now := rk.cfg.Now().UTC()
	cmd := topics.SystemCommand{V: topics.Version, Action: action, IssuedAt: now, ExpiresAt: now.Add(systemTTL), By: by}
	payload, err := topics.Encode(cmd)
	if err != nil {
		return cmd, err
	}
	rk.sentSystem.add(mac, cmd.IssuedAt, now) // before the publish: the result may come back at once
	if err := rk.cfg.Bus.Publish(ctx, bus.Message{Topic: topics.SystemTopic(mac), Payload: payload, QoS: 1}); err != nil {
		return cmd, err
	}
	rk.event(history.Event{MAC: mac, Row: row, Kind: EventSystem, By: by, Detail: action + " requested"})
	return cmd, nil
}

// Notes of a removal waiting for the press at the rack.
const (
	locateNote = "its LED flashes: press its button at the rack to confirm this is the board to remove"
	lostNote   = "it lost its connection before the press at the rack (a network blip, or the control center restarting): " +
		"its LED keeps flashing while it runs, and a press reaches the control center once it is back; if it does not come back, check it at the rack"
)

// removalStatus follows a removed Pi's presence: offline moves it to verification; back
// online ends the removal. Before the press at the rack, only a clean stop (someone shut it
// down by hand) moves it on: a lost connection (a Will, which a restart of the control center
// also leaves retained) only changes the note until the Pi is back.
func (rk *Rack) removalStatus(mac string, st topics.Status) {
	now := rk.cfg.Now()
	detail := ""
	x, ok := rk.removals.update(mac, func(x *Removal) bool {
		switch {
		case x.Step == RemovalLocate && st.State == topics.StateOffline && st.TS.IsZero():
			x.Note = lostNote
			return true
		case x.Step == RemovalLocate && st.State == topics.StateOnline && x.Note == lostNote:
			x.Note = locateNote
			return true
		case st.State == topics.StateOffline && (x.Step == RemovalShutdown || x.Step == RemovalLocate):
			x.Step, x.OfflineAt, x.CleanStop = RemovalVerify, now, !st.TS.IsZero()
			detail = "offline"
			switch {
			case !x.CleanStop:
				x.NeedsCheck = true
				x.Note = "offline, but not through a clean stop (it lost its connection): check that its green activity LED is off, then confirm"
			case x.WattsBefore != nil:
				x.Note = fmt.Sprintf("offline through a clean stop; waiting for the row's power to drop by about %.1f W", *x.ShareW)
			default:
				x.Note = "offline through a clean stop; giving the system " + fmtDuration(haltGrace) + " to halt (the row has no power sensor)"
			}
			return true
		case st.State == topics.StateOnline && (x.Step == RemovalVerify || x.Step == RemovalSafe):
			x.Step, x.EndedAt = RemovalEnded, now
			x.Note = "it came back online, so the removal ended: start again to remove it"
			detail = "ended: the Pi came back online"
			return true
		}
		return false
	})
	if ok {
		rk.removalChanged(*x, detail)
	}
}

// removalPower checks a new row reading against the removals waiting for the row's power to
// drop.
func (rk *Rack) removalPower(row string, p topics.Power) {
	if p.Watts == nil {
		return
	}
	now, w := rk.cfg.Now(), *p.Watts
	for _, x := range rk.removals.each(func(x *Removal) bool {
		if x.Step != RemovalVerify || x.Row != row || x.WattsBefore == nil || x.NeedsCheck {
			return false
		}
		if w > *x.WattsBefore-*x.ShareW/2 {
			return false
		}
		x.WattsAfter = &w
		rk.safe(x, now, fmt.Sprintf("the row's power dropped from %.1f W to %.1f W", *x.WattsBefore, w))
		return true
	}) {
		rk.removalChanged(x, "safe to pull")
	}
}

// safe marks x safe to pull, why being the proof.
func (rk *Rack) safe(x *Removal, now time.Time, why string) {
	x.Step, x.SafeAt, x.NeedsCheck = RemovalSafe, now, false
	x.Note = "safe to pull (" + why + "); its LED stays lit"
	if x.Slot > 0 {
		x.Note += fmt.Sprintf(". Put the new board into slot %d and press its button: it takes the slot", x.Slot)
	}
}

// confirmOff is an operator's word that the Pi is off, in RemovalVerify.
func (rk *Rack) confirmOff(mac, by string) (*Removal, error) {
	x, ok := rk.removals.update(mac, func(x *Removal) bool {
		if x.Step != RemovalVerify {
			return false
		}
		rk.safe(x, rk.cfg.Now(), "checked at the rack by "+by)
		return true
	})
	if !ok {
		return nil, fmt.Errorf("%s is not waiting to be confirmed off", displayMAC(mac))
	}
	rk.removalChanged(*x, "confirmed off by "+by)
	return x, nil
}

// cancelRemoval ends mac's removal.
func (rk *Rack) cancelRemoval(mac, by string) (*Removal, error) {
	x, ok := rk.removals.update(mac, func(x *Removal) bool {
		if x.done() {
			return false
		}
		x.Step, x.EndedAt, x.Note = RemovalEnded, rk.cfg.Now(), "cancelled by "+by
		return true
	})
	if !ok {
		return nil, fmt.Errorf("%s has no removal running", displayMAC(mac))
	}
	rk.removalChanged(*x, "cancelled by "+by)
	return x, nil
}

// tickRemovals moves removals on with time: a halt grace run out, a power drop that did not
// come, a shutdown that takes too long; and forgets finished ones after removalKeep.
func (rk *Rack) tickRemovals(now time.Time) {
	var gone []string
	for _, x := range rk.removals.each(func(x *Removal) bool {
		switch {
		case x.done():
			if now.Sub(x.EndedAt) >= removalKeep {
				gone = append(gone, x.MAC)
			}
		case x.Step == RemovalVerify && !x.NeedsCheck && x.WattsBefore == nil && now.Sub(x.OfflineAt) >= haltGrace:
			rk.safe(x, now, "clean stop "+fmtDuration(now.Sub(x.OfflineAt))+" ago")
			return true
		case x.Step == RemovalVerify && !x.NeedsCheck && x.WattsBefore != nil && now.Sub(x.OfflineAt) >= powerDropWait:
			x.NeedsCheck = true
			x.Note = fmt.Sprintf("offline, but the row's power did not drop by about %.1f W in %s: it may still be running. Check its green activity LED is off, then confirm",
				*x.ShareW, fmtDuration(powerDropWait))
			return true
		case x.Step == RemovalShutdown && !x.ShutdownAt.IsZero() && now.Sub(x.ShutdownAt) >= shutdownWait && x.Note != shutdownSlow:
			x.Note = shutdownSlow
			return true
		}
		return false
	}) {
		detail := ""
		if x.Step == RemovalSafe {
			detail = "safe to pull"
		}
		rk.removalChanged(x, detail)
	}
	if len(gone) > 0 {
		rk.removals.drop(gone)
		for _, mac := range gone {
			rk.hub.notify(mac)
		}
	}
}

// shutdownSlow is the note of a shutdown that did not take the Pi offline in shutdownWait.
var shutdownSlow = "still online " + fmtDuration(shutdownWait) + " after the shutdown: its agent may not allow it (pirack-agent --allow-system-commands) or lack the polkit rule. Shut it down yourself (sudo poweroff)"

// handleRemoval serves POST /api/nodes/{mac}/removal: start the safe removal of a Pi. Its LED
// flashes until its button is pressed at the rack, which shuts it down (the shutdown is
// audited in the caller's name).
func (s *Server) handleRemoval(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	by := principalFrom(r.Context()).name
	if err := s.record(r, commandEntry(r, AuditRemoval, n.MAC, map[string]any{"step": "start"})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	x, err := s.rack.startRemoval(n, by, func() error {
		now := s.cfg.Now().UTC()
		cmd := topics.LEDCommand{Action: topics.LEDIdentify, TimeoutS: int(removalLocateFor / time.Second), By: by,
			IssuedAt: now, ExpiresAt: now.Add(s.cfg.CommandTTL)}.WithDefaults()
		if fail := s.sendLED(r, n, AuditLocate, cmd); fail != nil {
			return errors.New(fail.msg)
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, x)
}

// handleRemovalStep serves POST /api/nodes/{mac}/removal/off (an operator checked at the rack
// that the Pi is off) and /removal/cancel.
func (s *Server) handleRemovalStep(step string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, ok := s.lookup(w, r)
		if !ok {
			return
		}
		if err := s.record(r, commandEntry(r, AuditRemoval, n.MAC, map[string]any{"step": step})); err != nil {
			writeError(w, http.StatusServiceUnavailable, auditUnavailable)
			return
		}
		by := principalFrom(r.Context()).name
		var x *Removal
		var err error
		if step == "off" {
			x, err = s.rack.confirmOff(n.MAC, by)
		} else if x, err = s.rack.cancelRemoval(n.MAC, by); err == nil && n.Locate.running() {
			now := s.cfg.Now().UTC()
			off := topics.LEDCommand{Action: topics.LEDOff, By: by, IssuedAt: now, ExpiresAt: now.Add(s.cfg.CommandTTL)}.WithDefaults()
			if fail := s.sendLED(r, n, AuditLocate, off); fail != nil {
				s.log.Warn("safe removal cancelled, but its LED was not stopped", "mac", n.MAC, "err", fail.msg)
			}
		}
		if err != nil {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, x)
	}
}

// removalTitle is the headline of a removal's panel; its twin is removalTitle in app.js.
func removalTitle(x *Removal) string {
	if x == nil {
		return ""
	}
	switch x.Step {
	case RemovalSafe:
		return "SAFE TO PULL"
	case RemovalReplaced:
		return "Removed and replaced"
	case RemovalEnded:
		return "Removal ended"
	}
	return "Removing (started by " + x.By + ")"
}
