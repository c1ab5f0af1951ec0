package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// Limits of GET /api/log and GET /events.
const (
	defaultLogLimit = history.DefaultLogLimit // 200
	maxLogLimit     = history.MaxLogLimit     // 1000
	maxKindLen      = 32
)

// logKinds are the kinds the event log page offers as filters: every kind the Control Center
// records.
var logKinds = []string{
	history.EventButton, history.EventSelect, history.EventLocate, history.EventFound,
	history.EventOnline, history.EventOffline, EventAlert, history.EventCommand,
	EventPlaced, EventForgotten, history.EventReplaced,
}

// LogEntry is one entry of GET /api/log: the event and, when the Pi has reported since the
// Control Center started, its hostname.
type LogEntry struct {
	history.Event
	Hostname string `json:"hostname,omitempty"`
}

// LogResponse is the body of GET /api/log.
type LogResponse struct {
	Events []LogEntry `json:"events"` // newest first
	// Older is the before= of the next page back: the ID of the last entry, when there are
	// older entries than this page. 0 (left out) when this page reaches the oldest.
	Older int64 `json:"older,omitempty"`
}

// parseLogQuery reads the filters of GET /api/log and GET /events:
//
//	row=r1         one row (its Pis' entries and the row's own)
//	mac=b827eb...  one Pi, in any form topics.NormalizeMAC accepts
//	kind=a,b       these kinds; kind may also be repeated
//	since=RFC3339  entries at or after this time
//	before=ID      the page back from the entry with this ID (LogResponse.Older)
//	after=ID       only entries recorded after the entry with this ID, for live updates
//	limit=N        at most N entries, 1 to 1000; 200 when absent
func parseLogQuery(v url.Values) (history.EventQuery, error) {
	q := history.EventQuery{Limit: defaultLogLimit}
	if row := v.Get("row"); row != "" {
		if err := topics.ValidateRow(row); err != nil {
			return q, fmt.Errorf("row: %v", err)
		}
		q.Row = row
	}
	if mac := v.Get("mac"); mac != "" {
		m, err := topics.NormalizeMAC(mac)
		if err != nil {
			return q, fmt.Errorf("mac: %v; expected a MAC address such as b8:27:eb:3f:1a:2c", err)
		}
		q.MAC = m
	}
	for _, list := range v["kind"] {
		for k := range strings.SplitSeq(list, ",") {
			if k = strings.TrimSpace(k); k == "" || slices.Contains(q.Kinds, k) {
				continue
			}
			if !validKind(k) {
				return q, fmt.Errorf("kind %q: want 1-%d characters of a-z, 0-9, _ or -, such as %s", clipLog(k), maxKindLen, strings.Join(logKinds, ", "))
			}
			q.Kinds = append(q.Kinds, k)
		}
	}
	if len(q.Kinds) > history.MaxLogKinds {
		return q, fmt.Errorf("kind: %d kinds, at most %d", len(q.Kinds), history.MaxLogKinds)
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return q, fmt.Errorf("since %q: want a time such as 2026-03-01T12:00:00Z", clipLog(since))
		}
		q.Since = t
	}
	for _, c := range []struct {
		name string
		dst  *int64
	}{{"before", &q.Before}, {"after", &q.After}} {
		if s := v.Get(c.name); s != "" {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id < 1 {
				return q, fmt.Errorf("%s %q: want the id of an entry, a positive number", c.name, clipLog(s))
			}
			*c.dst = id
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLogLimit {
			return q, fmt.Errorf("limit %q: want a number from 1 to %d", clipLog(s), maxLogLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func validKind(k string) bool {
	if len(k) > maxKindLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// eventLog reads one page of the log and names its Pis.
func (s *Server) eventLog(ctx context.Context, q history.EventQuery) (LogResponse, error) {
	evs, err := s.cfg.History.RackEvents(ctx, q)
	if err != nil {
		return LogResponse{}, err
	}
	resp := LogResponse{Events: make([]LogEntry, 0, len(evs))}
	hosts := make(map[string]string)
	for _, e := range evs {
		h, ok := hosts[e.MAC]
		if !ok && e.MAC != "" {
			if n, known := s.rack.node(e.MAC); known {
				h = n.Hostname
			}
			hosts[e.MAC] = h
		}
		resp.Events = append(resp.Events, LogEntry{Event: e, Hostname: h})
	}
	// A full page may be the last one: look one entry further instead of offering an empty page.
	if q.After == 0 && len(evs) > 0 && len(evs) == min(q.Limit, maxLogLimit) {
		next := q
		next.Before, next.Limit = evs[len(evs)-1].ID, 1
		more, err := s.cfg.History.RackEvents(ctx, next)
		if err != nil {
			return LogResponse{}, err
		}
		if len(more) > 0 {
			resp.Older = evs[len(evs)-1].ID
		}
	}
	return resp, nil
}

// handleLog serves GET /api/log: the rack-wide event log, newest first, filtered and paged as
// parseLogQuery says. GET /api/events is the live SSE stream, not this.
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request) {
	if s.cfg.History == nil {
		writeError(w, http.StatusNotFound, historyOff)
		return
	}
	q, err := parseLogQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := s.eventLog(r.Context(), q)
	if err != nil {
		s.log.Error("read event log", "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the event log; see the server log")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// eventLogPage is the data of the event log page.
type eventLogPage struct {
	User    string
	Role    string
	History bool     // false: the page says there is no log
	Rows    []string // the rows offered as a filter
	Kinds   []string // the kinds offered as a filter
	Row     string   // the filters in force
	Kind    string
	MAC     string
	Live    bool // the newest page: the script adds new entries on top
	Error   string
	Log     LogResponse
	Older   string // the link to the next page back, "" when there is none
}

// handleFleetPage serves GET /fleet: every Pi in one table, filled and kept live by
// web/static/fleet.js from the live stream.
func (s *Server) handleFleetPage(w http.ResponseWriter, r *http.Request, p principal) {
	s.render(w, http.StatusOK, "fleet.html", struct{ User, Role string }{p.name, string(p.role)})
}

// handleComparePage serves GET /compare?macs=a,b or ?row=r1: one metric of several Pis on one
// chart, drawn by web/static/compare.js.
func (s *Server) handleComparePage(w http.ResponseWriter, r *http.Request, p principal) {
	s.render(w, http.StatusOK, "compare.html", struct{ User, Role string }{p.name, string(p.role)})
}

// handleEventLogPage serves GET /events: the first page of the log, rendered so it is complete
// without the script; web/static/events.js then adds new entries live and pages back in place.
func (s *Server) handleEventLogPage(w http.ResponseWriter, r *http.Request, p principal) {
	page := eventLogPage{User: p.name, Role: string(p.role), History: s.cfg.History != nil, Kinds: logKinds}
	for _, row := range s.rack.Rows() {
		page.Rows = append(page.Rows, row.Name)
	}
	v := r.URL.Query()
	page.Row, page.Kind, page.MAC = v.Get("row"), v.Get("kind"), v.Get("mac")
	status := http.StatusOK
	if page.History {
		q, err := parseLogQuery(v)
		switch {
		case err != nil:
			page.Error, status = err.Error(), http.StatusBadRequest
		default:
			page.Row, page.MAC = q.Row, q.MAC
			page.Live = q.Before == 0 && q.After == 0 && q.Since.IsZero()
			page.Log, err = s.eventLog(r.Context(), q)
			if err != nil {
				s.log.Error("read event log", "err", err)
				page.Error, status = "Could not read the event log; see the server log.", http.StatusServiceUnavailable
			}
		}
		if page.Log.Older != 0 {
			older := url.Values{"before": {strconv.FormatInt(page.Log.Older, 10)}}
			for _, k := range []string{"row", "kind", "mac", "limit"} {
				if x := v.Get(k); x != "" {
					older.Set(k, x)
				}
			}
			page.Older = "/events?" + older.Encode()
		}
	}
	if page.Row != "" && !slices.Contains(page.Rows, page.Row) {
		page.Rows = append(page.Rows, page.Row)
	}
	if page.Kind != "" && !slices.Contains(page.Kinds, page.Kind) {
		page.Kinds = append(slices.Clone(page.Kinds), page.Kind)
	}
	s.render(w, status, "events.html", page)
}
