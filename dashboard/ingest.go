package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// Stats counts what ingestion did with the messages it received, and how the live stream and
// the audit log fare.
type Stats struct {
	Received uint64 `json:"received"` // every message delivered by the Bus
	Applied  uint64 `json:"applied"`  // changed the rack state
	Ignored  uint64 `json:"ignored"`  // valid but not for the dashboard: LED commands, alerts
	// Invalid counts messages dropped as invalid; InvalidBy splits it by reason.
	Invalid   uint64        `json:"invalid"`
	InvalidBy InvalidCounts `json:"invalid_by"`
	// Duplicates counts button presses already seen (same MAC, seq and ts): redeliveries.
	Duplicates uint64 `json:"duplicates"`
	// PressesRefused counts QoS 1 presses whose event could not be saved to the history
	// within Config.PressSaveTimeout (a full disk): they were not acknowledged, and come again.
	PressesRefused uint64 `json:"presses_refused"`
	// PressCounterResets counts presses that reused a remembered seq with another ts: the
	// agent's press counter restarted, and the press was taken as new.
	PressCounterResets uint64 `json:"press_counter_resets"`
	// Replays counts metrics identical to those held (a retained message delivered again).
	Replays uint64 `json:"replays"`
	// StatusOutOfOrder counts statuses older than the one shown, ignored: an offline of an
	// earlier session, or an earlier status of the current one.
	StatusOutOfOrder uint64 `json:"status_out_of_order"`
	// WentStale counts the times a Pi became stale (its telemetry stopped without an offline).
	WentStale    uint64 `json:"went_stale"`
	IngestPanics uint64 `json:"ingest_panics"` // bugs caught in ingestion; the message is dropped
	SSEClients   int    `json:"sse_clients"`
	SSEDropped   uint64 `json:"sse_dropped"`  // live clients dropped for falling behind
	AuditErrors  uint64 `json:"audit_errors"` // audit entries that could not be written
	// AuditRotateErrors counts failed rotations of the audit log (its entries were kept in
	// the current file; see docs/security.md).
	AuditRotateErrors uint64 `json:"audit_rotate_errors"`
	// LoginsRateLimited counts login attempts (form and HTTP Basic) refused with 429 by the
	// per-address limit, before their password was checked.
	LoginsRateLimited uint64 `json:"logins_rate_limited"`
	// AlertsDropped counts alert transitions not published because the queue was full;
	// AlertPublishErrors those the Bus refused.
	AlertsDropped      uint64 `json:"alerts_dropped"`
	AlertPublishErrors uint64 `json:"alert_publish_errors"`
	// History is the history store's counters (samples downsampled or dropped when its
	// writer falls behind among them), when Config.History keeps any (*history.Store does).
	History *history.Stats `json:"history,omitempty"`
}

// historyStats is implemented by a History that counts what it did (*history.Store).
type historyStats interface{ Stats() history.Stats }

// InvalidCounts splits Stats.Invalid by reason.
type InvalidCounts struct {
	JSON         uint64 `json:"invalid_json"`    // not JSON (nor an accepted plain word)
	Payload      uint64 `json:"invalid_payload"` // JSON that fails validation: version, range, strings
	Oversized    uint64 `json:"oversized"`       // over topics.MaxPayload
	UnknownTopic uint64 `json:"unknown_topic"`   // under the pirack root but outside the contract
}

// Reasons an inbound message is dropped, as logged (reason=...) and counted in InvalidCounts.
const (
	reasonJSON         = "invalid_json"
	reasonPayload      = "invalid_payload"
	reasonOversized    = "oversized"
	reasonUnknownTopic = "unknown_topic"
)

type counters struct {
	received, applied, ignored, invalid, duplicates, resets, replays, outOfOrder, wentStale, panics atomic.Uint64
	refused                                                                                         atomic.Uint64
	invalidJSON, invalidPayload, oversized, unknownTopic                                            atomic.Uint64
}

// invalidLogEvery bounds warnings about invalid messages: a broken or hostile publisher can send
// thousands a second, and the log must stay readable. Others go to debug level, and Stats
// counts all of them.
const invalidLogEvery = time.Second

// ingest is the Bus callback for topics.AllFilter. It runs on the publisher's goroutine inside the
// broker, so it must not block, and its input comes from any client that may publish: nothing
// here trusts the topic or the payload. The one wait is a QoS 1 button press's: it returns once
// the press is in the event log on disk, or with the error that kept it out (savePress), so
// that the broker acknowledges only a saved press.
func (rk *Rack) ingest(m bus.Message) (refused error) {
	topic, payload := m.Topic, m.Payload
	rk.stats.received.Add(1)
	defer func() {
		// A bug here must not take the broker's connection goroutine down with it.
		if v := recover(); v != nil {
			rk.stats.panics.Add(1)
			rk.log.Error("dashboard ingest panicked", "topic", clipLog(topic), "panic", v)
		}
	}()

	t, err := topics.Parse(topic)
	if err != nil {
		rk.invalid(topic, reasonUnknownTopic, err)
		return
	}
	if len(payload) == 0 {
		// A retained message being deleted (a forgotten Pi's, say): nothing to show.
		rk.stats.ignored.Add(1)
		return
	}
	changed := false
	switch t.Kind {
	case topics.KindStatus:
		st, err := decoded(m, topics.DecodeStatus)
		if err == nil {
			err = checkDisplayed(st)
		}
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		res, presence := rk.state.setStatus(t.Row, t.MAC, st)
		if changed = res == statusApplied; !changed {
			rk.stats.outOfOrder.Add(1)
			rk.log.Debug("ignoring status older than the one shown", "topic", topic, "state", st.State, "session", st.Session)
			break
		}
		rk.removalStatus(t.MAC, st)
		if presence {
			kind := history.EventOnline
			if st.State == topics.StateOffline {
				kind = history.EventOffline
			}
			rk.event(history.Event{MAC: t.MAC, Row: t.Row, Kind: kind, By: "agent"})
		}
		rk.observe(func(e *alerts.Engine) []topics.Alert { return e.ObserveStatus(t.MAC, t.Row, st, rk.cfg.Now()) })
	case topics.KindMetrics:
		m, err := decoded(m, topics.DecodeMetrics)
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		if changed = rk.state.setMetrics(t.Row, t.MAC, m); !changed {
			rk.stats.replays.Add(1)
			break
		}
		if rk.cfg.History != nil {
			rk.cfg.History.Add(t.MAC, m)
		}
		rk.observe(func(e *alerts.Engine) []topics.Alert { return e.ObserveMetrics(t.MAC, t.Row, m, rk.cfg.Now()) })
		rk.stats.applied.Add(1)
		rk.hub.notifyMetrics(t.MAC)
		return refused
	case topics.KindButton:
		ev, err := decoded(m, topics.DecodeButton)
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		// A press of a Pi waiting for approval approves it: someone at the rack chose this
		// board. It selects nothing.
		if rk.pending(t.MAC) {
			if _, err := rk.approve(t.Row, t.MAC, "its button was pressed at the rack", "agent"); err != nil {
				rk.log.Error("approve an enrolled Pi by its button", "mac", t.MAC, "err", err)
			}
			rk.stats.applied.Add(1)
			return refused
		}
		// In assign mode a press places the Pi instead of selecting it; during a safe
		// removal it confirms the board, or puts the replacement into the freed slot.
		assigning := rk.assign.get(t.Row, rk.cfg.Now()) != nil
		removing := rk.removalWants(t.Row, t.MAC)
		res, selected := rk.state.press(t.Row, t.MAC, ev, !assigning && !removing)
		switch res {
		case pressDuplicate:
			rk.stats.duplicates.Add(1)
		case pressReset:
			rk.stats.resets.Add(1)
			rk.log.Info("press counter of a Pi restarted; forgetting its old sequence numbers", "mac", t.MAC, "seq", ev.Seq)
			changed = true
		default:
			changed = true
		}
		press := history.Event{MAC: t.MAC, Row: t.Row, Kind: history.EventButton, Detail: ev.Press + " press", By: "agent",
			Key: PressKey(t.MAC, ev)}
		if m.QoS > 0 && rk.savePresses && rk.cfg.History != nil {
			// A redelivery too: the first delivery's save may have failed. The key stores
			// it once.
			refused = rk.savePress(press, ev.Seq)
		} else if changed {
			rk.event(press)
		}
		if changed {
			if selected {
				rk.event(history.Event{MAC: t.MAC, Row: t.Row, Kind: history.EventSelect, Detail: "selected by a " + ev.Press + " press", By: "agent"})
			}
			if ev.Found {
				rk.event(history.Event{MAC: t.MAC, Row: t.Row, Kind: history.EventFound, Detail: foundText(rk.state, t.MAC), By: "agent"})
			}
			switch {
			case removing:
				rk.removalPress(t.Row, t.MAC)
			case assigning:
				rk.assignPress(t.Row, t.MAC)
			}
		}
	case topics.KindLEDState:
		st, err := decoded(m, topics.DecodeLEDState)
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		if changed = rk.state.setLED(t.Row, t.MAC, st); !changed {
			rk.stats.replays.Add(1)
		}
	case topics.KindSystemResult:
		res, err := decoded(m, topics.DecodeSystemResult)
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		rk.systemResult(t.Row, t.MAC, res)
		rk.stats.applied.Add(1)
		return
	case topics.KindPower:
		p, err := decoded(m, topics.DecodePower)
		if err != nil {
			rk.invalid(topic, classify(payload), err)
			return
		}
		if !rk.state.setPower(t.Row, p) {
			rk.stats.replays.Add(1)
			return
		}
		rk.stats.applied.Add(1)
		if rk.cfg.History != nil {
			rk.cfg.History.AddPower(t.Row, p)
		}
		rk.observe(func(e *alerts.Engine) []topics.Alert { return e.ObservePower(t.Row, p, rk.cfg.Now()) })
		rk.removalPower(t.Row, p)
		rk.hub.notifyMetrics(rowKey(t.Row))
		return
	case topics.KindAlert:
		// Our own alerts come back here. Those stamped before this Rack started were
		// raised by an earlier run and found retained: hand them back to the engine, so that
		// one whose condition ended while we were down is cleared instead of staying raised
		// on MQTT for ever.
		a, err := decoded(m, topics.DecodeAlert)
		if err != nil || a.State != topics.AlertRaised || !a.TS.Before(rk.started) {
			rk.stats.ignored.Add(1)
			return
		}
		rk.restoreAlert(a)
		rk.stats.applied.Add(1)
		return
	default:
		// LED commands (our own among them) are not state to show.
		rk.stats.ignored.Add(1)
		return
	}
	if changed {
		rk.stats.applied.Add(1)
		rk.hub.notify(t.MAC)
	}
	return refused
}

// decoded returns the message's payload as the bus already decoded it (the embedded broker
// does, checking the contract), or decodes it with dec: a foreign broker's message, or one the
// broker did not check.
func decoded[T any](m bus.Message, dec func([]byte) (T, error)) (T, error) {
	if v, ok := m.Decoded.(T); ok {
		return v, nil
	}
	return dec(m.Payload)
}

// savePress records a button press in the event log and waits, at most PressSaveTimeout,
// until it is on disk. Presses saved at the same time share a commit (history.SaveEvent). The
// press's key, its MAC, seq and ts, stores a press sent again once; a reused seq with another
// ts (a Pi that lost its counter) is another press. A press not saved is counted, logged at
// most once per invalidLogEvery, and refused: the broker does not acknowledge it and the agent
// sends it again, while the rack already shows it (its redelivery is then a duplicate here,
// saved but not applied again).
func (rk *Rack) savePress(e history.Event, seq uint64) error {
	e.Time = rk.cfg.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), rk.cfg.PressSaveTimeout)
	defer cancel()
	err := rk.cfg.History.SaveEvent(ctx, e)
	if err == nil {
		return nil
	}
	total := rk.stats.refused.Add(1)
	level := slog.LevelDebug
	if rk.logNow(&rk.lastRefuseLog) {
		level = slog.LevelWarn
	}
	rk.log.Log(context.Background(), level, "button press not saved to the event log: not acknowledged, the Pi sends it again",
		"mac", e.MAC, "seq", seq, "err", err, "refused_total", total)
	return fmt.Errorf("dashboard: press %d of %s not saved: %w", seq, e.MAC, err)
}

// logNow reports whether a rate-limited warning whose last time last holds may be logged now,
// and if so takes the slot: at most one per invalidLogEvery.
func (rk *Rack) logNow(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(invalidLogEvery) && last.CompareAndSwap(prev, now)
}

// restoreAlert hands an alert raised by an earlier run to the engine and shows it while the
// engine holds it raised; the engine clears it (and observe publishes that) when its condition
// is found ended.
func (rk *Rack) restoreAlert(a topics.Alert) {
	rk.observe(func(e *alerts.Engine) []topics.Alert {
		out := e.Restore(a, rk.cfg.Now())
		if held, ok := e.Raised(a.Row, a.MAC, a.Rule); ok {
			rk.alerts.apply(held) // observe holds rk.alerts.mu
		}
		return out
	})
	if a.MAC != "" {
		rk.hub.notify(a.MAC)
	} else {
		rk.hub.notify(rowKey(a.Row))
	}
}

// classify says why a payload failed to decode. It runs only on the error path, so the second
// look at the bytes costs nothing on valid traffic.
func classify(payload []byte) string {
	switch {
	case len(payload) > topics.MaxPayload:
		return reasonOversized
	case !json.Valid(payload):
		return reasonJSON
	}
	return reasonPayload
}

// checkDisplayed rejects what topics accepts but the Control Center must not show: Unicode
// bidirectional controls, with which a hostname can be made to read as another ("pi-07" shown
// for "70-ip"). Markup needs no check here: every page escapes it, and it is harmless as JSON.
func checkDisplayed(st topics.Status) error {
	for _, f := range []struct{ name, v string }{
		{"hostname", st.Hostname}, {"ip", st.IP}, {"model", st.Model}, {"serial", st.Serial},
		{"agent_version", st.AgentVersion}, {"session", st.Session},
	} {
		if i := strings.IndexFunc(f.v, isBidiControl); i >= 0 {
			r := []rune(f.v[i:])[0]
			return fmt.Errorf("%w: status payload: %s contains the bidirectional control character U+%04X",
				topics.ErrInvalidPayload, f.name, r)
		}
	}
	return nil
}

// isBidiControl reports the characters with Unicode's Bidi_Control property.
func isBidiControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F:
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// invalid counts a dropped message by reason and logs it with its topic and reason, at
// warning level at most once per invalidLogEvery.
func (rk *Rack) invalid(topic, reason string, err error) {
	rk.stats.invalid.Add(1)
	switch reason {
	case reasonJSON:
		rk.stats.invalidJSON.Add(1)
	case reasonOversized:
		rk.stats.oversized.Add(1)
	case reasonUnknownTopic:
		rk.stats.unknownTopic.Add(1)
	default:
		rk.stats.invalidPayload.Add(1)
	}
	level := slog.LevelDebug
	if rk.logNow(&rk.lastInvalidLog) {
		level = slog.LevelWarn
	}
	rk.log.Log(context.Background(), level, "dropping invalid payload",
		"topic", clipLog(topic), "reason", reason, "err", clipLog(err.Error()), "invalid_total", rk.stats.invalid.Load())
}

// Stats returns the ingestion, live-stream and alert counters, and the Server's audit and
// login-limit counters.
func (rk *Rack) Stats() Stats {
	clients, dropped := rk.hub.stats()
	out := Stats{
		Received: rk.stats.received.Load(),
		Applied:  rk.stats.applied.Load(),
		Ignored:  rk.stats.ignored.Load(),
		Invalid:  rk.stats.invalid.Load(),
		InvalidBy: InvalidCounts{
			JSON:         rk.stats.invalidJSON.Load(),
			Payload:      rk.stats.invalidPayload.Load(),
			Oversized:    rk.stats.oversized.Load(),
			UnknownTopic: rk.stats.unknownTopic.Load(),
		},
		Duplicates:         rk.stats.duplicates.Load(),
		PressesRefused:     rk.stats.refused.Load(),
		PressCounterResets: rk.stats.resets.Load(),
		Replays:            rk.stats.replays.Load(),
		StatusOutOfOrder:   rk.stats.outOfOrder.Load(),
		WentStale:          rk.stats.wentStale.Load(),
		IngestPanics:       rk.stats.panics.Load(),
		SSEClients:         clients,
		SSEDropped:         dropped,
	}
	if rk.httpStats != nil {
		rk.httpStats(&out)
	}
	out.AlertsDropped, out.AlertPublishErrors = rk.alerts.counts()
	if h, ok := rk.cfg.History.(historyStats); ok {
		st := h.Stats()
		out.History = &st
	}
	return out
}

// clipLog bounds a foreign string before it goes into a log line.
func clipLog(s string) string {
	const max = 160
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// PressKey is the event log's key of a button press (history.Event.Key): a press sent again
// has the same one, so it is stored once. Checks from outside (`pirack bench hostile`) build
// it to find a press in the log.
func PressKey(mac string, ev topics.ButtonEvent) string {
	return fmt.Sprintf("button/%s/%d/%d", mac, ev.Seq, ev.TS.UnixNano())
}
