package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// History is where the Control Center keeps metrics, row power and the event log for charts:
// what ingestion writes and what pages read, in one value. *history.Store implements it.
type History interface {
	HistoryWriter
	HistoryReader
}

// HistoryWriter is what ingestion writes into the history. Add, AddPower and AddEvent only
// queue: they must not block and do no I/O, because they are called inside the broker's
// publish path; so they take no context. A write that cannot be queued is the writer's to
// count and drop. SaveEvent is the exception, for button presses: it returns once the event is
// on disk, or with why not, sharing its commit with the presses saved at the same time; ctx
// bounds its wait (Config.PressSaveTimeout).
type HistoryWriter interface {
	Add(mac string, m topics.Metrics)
	AddPower(row string, p topics.Power)
	AddEvent(e history.Event)
	SaveEvent(ctx context.Context, e history.Event) error
}

// HistoryReader is what the pages and the API read from the history, and the one change an
// operator makes to it (Move). Every method does I/O and takes the request's context.
type HistoryReader interface {
	// Series answers the Pi detail page's charts: source is a MAC.
	Series(ctx context.Context, source, metric string, from, to time.Time, maxPoints int) ([]history.Point, error)
	// PowerSeries answers the row power chart.
	PowerSeries(ctx context.Context, row, metric string, from, to time.Time, maxPoints int) ([]history.Point, error)
	// Events answers a Pi's event log.
	Events(ctx context.Context, mac string, since time.Time, limit int) ([]history.Event, error)
	// RackEvents answers the rack-wide event log page and GET /api/log.
	RackEvents(ctx context.Context, q history.EventQuery) ([]history.Event, error)
	// Sparklines answers GET /api/sparklines: per Pi, bucketed means of one metric.
	Sparklines(ctx context.Context, metric string, from, to time.Time, buckets int) (map[string][]*float64, error)
	// Move gives a replaced board's history to its replacement.
	Move(ctx context.Context, fromMAC, toMAC string) error
}

var (
	_ History       = (*history.Store)(nil)
	_ HistoryWriter = (*history.Store)(nil)
	_ HistoryReader = (*history.Store)(nil)
)

// EventAlert is the event kind of an alert raised or cleared; Detail says which and why.
const EventAlert = "alert"

// alertQueueSize bounds the alert transitions waiting to be published. Transitions come in
// bursts only when many Pis change at once (a row losing power: one offline per Pi), so this
// is generous; past it a transition is dropped, counted and logged.
const alertQueueSize = 4096

// publishTimeout bounds one alert publish on a network bus whose broker is away; the alert is
// then counted as a publish error and logged.
const publishTimeout = 10 * time.Second

// alertState is the alerts side of the Rack: the engine, the raised alerts as shown, and the
// queue of transitions that Run's publisher sends to the Bus. Publishing from ingestion itself
// is not possible: the embedded broker delivers inline, so Publish would re-enter ingest on the
// same goroutine, inside the broker's locks.
type alertState struct {
	engine *alerts.Engine // nil: alerts are off

	// mu serialises the engine's calls with the queueing of their transitions, so the
	// transitions of one alert are published in the order the engine made them.
	mu     sync.Mutex
	byMAC  map[string][]topics.Alert // raised alerts of Pis, by MAC, sorted by rule
	byRow  map[string][]topics.Alert // raised alerts of rows (MAC ""), by row, sorted by rule
	queue  chan alertPub
	drops  uint64
	failed uint64
}

func newAlertState(e *alerts.Engine) *alertState {
	return &alertState{
		engine: e,
		byMAC:  make(map[string][]topics.Alert),
		byRow:  make(map[string][]topics.Alert),
		queue:  make(chan alertPub, alertQueueSize),
	}
}

// observe runs one engine call and applies its transitions: the shown alerts, the event log,
// live clients and the publish queue. It never blocks.
func (rk *Rack) observe(call func(e *alerts.Engine) []topics.Alert) {
	a := rk.alerts
	if a.engine == nil {
		return
	}
	a.mu.Lock()
	out := call(a.engine)
	for _, al := range out {
		a.apply(al)
		select {
		case a.queue <- alertPub{alert: al}:
		default:
			a.drops++
			rk.log.Error("alert queue full; transition not published", "rule", al.Rule, "row", al.Row, "mac", al.MAC, "state", al.State)
		}
	}
	a.mu.Unlock()
	for _, al := range out {
		if al.State == topics.AlertCleared {
			rk.holds.cleared(al, rk.cfg.Now())
		}
		rk.event(history.Event{MAC: al.MAC, Row: al.Row, Kind: EventAlert, By: "system",
			Detail: clipLog(fmt.Sprintf("%s %s: %s", al.Rule, al.State, al.Message))})
		if al.MAC != "" {
			rk.hub.notify(al.MAC)
		} else {
			rk.hub.notify(rowKey(al.Row))
		}
	}
}

// apply records one transition in the shown alerts. Call with mu held.
func (a *alertState) apply(al topics.Alert) {
	m, key := a.byMAC, al.MAC
	if al.MAC == "" {
		m, key = a.byRow, al.Row
	}
	list := slices.DeleteFunc(m[key], func(x topics.Alert) bool { return x.Rule == al.Rule && x.Row == al.Row })
	if al.State == topics.AlertRaised {
		list = append(list, al)
		slices.SortFunc(list, func(x, y topics.Alert) int { return cmp.Compare(x.Rule, y.Rule) })
	}
	if len(list) == 0 {
		delete(m, key)
	} else {
		m[key] = list
	}
}

// forMAC and forRow return copies of the shown alerts of one Pi or row.
func (a *alertState) forMAC(mac string) []topics.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.byMAC[mac])
}

func (a *alertState) forRow(row string) []topics.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.byRow[row])
}

func (a *alertState) counts() (drops, failed uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.drops, a.failed
}

// active returns every shown alert, sorted by row, MAC and rule.
func (a *alertState) active() []topics.Alert {
	a.mu.Lock()
	out := []topics.Alert{}
	for _, l := range a.byMAC {
		out = append(out, l...)
	}
	for _, l := range a.byRow {
		out = append(out, l...)
	}
	a.mu.Unlock()
	slices.SortFunc(out, alertOrder)
	return out
}

// alertOrder sorts alerts as an operator reads them: critical first, then the oldest, then by
// place. Twin of alertOrder in app.js.
func alertOrder(x, y topics.Alert) int {
	sev := func(a topics.Alert) int {
		if a.Severity == topics.SeverityCritical {
			return 0
		}
		return 1
	}
	return cmp.Or(cmp.Compare(sev(x), sev(y)), x.Since.Compare(y.Since),
		cmp.Compare(x.Row, y.Row), cmp.Compare(x.MAC, y.MAC), cmp.Compare(x.Rule, y.Rule))
}

// publishAlerts publishes queued transitions, retained at QoS 1, until ctx is done; then it
// publishes what is still queued, so a shutdown does not lose a clear.
func (rk *Rack) publishAlerts(ctx context.Context) {
	for {
		select {
		case al := <-rk.alerts.queue:
			rk.publishAlert(ctx, al)
		case <-ctx.Done():
			ctx := context.WithoutCancel(ctx)
			for {
				select {
				case al := <-rk.alerts.queue:
					rk.publishAlert(ctx, al)
				default:
					return
				}
			}
		}
	}
}

// alertPub is one entry of the publish queue: an alert transition to publish, or, with erase,
// the deletion of that alert's retained topic.
type alertPub struct {
	alert topics.Alert
	erase bool
}

// eraseAlerts queues the deletion of every retained alert topic of a Pi (a forgotten one),
// behind the transitions already queued, so a "cleared" published for it does not outlive it.
func (rk *Rack) eraseAlerts(row, mac string) {
	a := rk.alerts
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rule := range alerts.Rules() {
		if rule == alerts.RulePowerBand {
			continue // a row's, not a Pi's
		}
		select {
		case a.queue <- alertPub{alert: topics.Alert{Row: row, MAC: mac, Rule: rule}, erase: true}:
		default:
			a.drops++
			rk.log.Error("alert queue full; a forgotten Pi's retained alert is not deleted", "rule", rule, "row", row, "mac", mac)
		}
	}
}

func (rk *Rack) publishAlert(ctx context.Context, p alertPub) {
	al := p.alert
	var b []byte // an empty retained message deletes the topic's retained alert
	var err error
	if !p.erase {
		b, err = topics.Encode(al)
	}
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		err = rk.cfg.Bus.Publish(pctx, bus.Message{Topic: topics.AlertTopic(al.Row, al.MAC, al.Rule), Payload: b, QoS: 1, Retained: true})
		cancel()
	}
	if err != nil {
		rk.alerts.mu.Lock()
		rk.alerts.failed++
		rk.alerts.mu.Unlock()
		rk.log.Error("publish alert", "rule", al.Rule, "row", al.Row, "mac", al.MAC, "state", al.State, "err", err)
	}
}

// event records an event in the history, when there is one. It never blocks.
func (rk *Rack) event(e history.Event) {
	if rk.cfg.History == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = rk.cfg.Now().UTC()
	}
	rk.cfg.History.AddEvent(e)
}

// rowKey is the hub key of a row; a MAC never contains a slash.
func rowKey(row string) string { return "row/" + row }
