package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// Chart metrics of GET /api/nodes/{mac}/series?metric=...: what the Pi detail page draws.
const (
	ChartLoad       = "load_1"            // 1-minute load average
	ChartCPU        = "cpu_percent"       // CPU busy, %
	ChartTemp       = "cpu_temp_c"        // CPU temperature, °C
	ChartMemUsed    = "mem_used_percent"  // memory in use: 100 - available / total
	ChartDiskUsed   = "disk_used_percent" // root filesystem in use, as df's Use%: used / (used + free)
	ChartRowWatts   = "row_watts"         // the watts of the Pi's row supply
	chartPoints     = 300                 // points per chart: 12 s buckets over 1 h, 5 min over 24 h, 34 min over 7 d
	defaultEventMax = 100
	maxEventLimit   = 1000
)

// chartRanges are the ranges the detail page offers.
var chartRanges = map[string]time.Duration{
	"1h":  time.Hour,
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
}

// chartUnits are the units of the chart metrics, as the page labels them.
var chartUnits = map[string]string{
	ChartLoad: "", ChartCPU: "%", ChartTemp: "°C", ChartMemUsed: "%", ChartDiskUsed: "%", ChartRowWatts: "W",
}

// SeriesResponse is the body of GET /api/nodes/{mac}/series.
type SeriesResponse struct {
	MAC    string          `json:"mac"`
	Metric string          `json:"metric"`
	Range  string          `json:"range"`
	Unit   string          `json:"unit"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Points []history.Point `json:"points"` // oldest first; buckets with no sample are left out
}

// historyOff is the answer of the history endpoints when Config.History is nil.
const historyOff = "no history: this Control Center runs without a history store, so there are no charts or event log"

// handleSeries serves GET /api/nodes/{mac}/series?metric=M&range=1h|24h|7d: one chart's
// points, each the min, mean and max of its bucket.
func (s *Server) handleSeries(w http.ResponseWriter, r *http.Request) {
	mac, ok := pathMAC(w, r)
	if !ok {
		return
	}
	if s.cfg.History == nil {
		writeError(w, http.StatusNotFound, historyOff)
		return
	}
	q := r.URL.Query()
	metric, rng := q.Get("metric"), q.Get("range")
	if rng == "" {
		rng = "1h"
	}
	span, ok := chartRanges[rng]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("range %q: want 1h, 24h or 7d", clipLog(rng)))
		return
	}
	unit, ok := chartUnits[metric]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("metric %q: want one of %s, %s, %s, %s, %s or %s",
			clipLog(metric), ChartLoad, ChartCPU, ChartTemp, ChartMemUsed, ChartDiskUsed, ChartRowWatts))
		return
	}
	to := s.cfg.Now().UTC()
	from := to.Add(-span)
	h := s.cfg.History
	var pts []history.Point
	var err error
	switch metric {
	case ChartMemUsed:
		pts, err = usedPercent(r.Context(), h, mac, history.MetricMemAvailable, history.MetricMemTotal, from, to)
	case ChartDiskUsed:
		pts, err = diskPercent(r.Context(), h, mac, from, to)
	case ChartRowWatts:
		n, known := s.rack.state.node(mac)
		if !known {
			writeError(w, http.StatusNotFound, fmt.Sprintf("the row of %s is not known until it reports", mac))
			return
		}
		pts, err = h.PowerSeries(r.Context(), n.Row, history.MetricWatts, from, to, chartPoints)
	default:
		pts, err = h.Series(r.Context(), mac, metric, from, to, chartPoints)
	}
	if err != nil {
		s.log.Error("read history", "mac", mac, "metric", metric, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the history; see the server log")
		return
	}
	if pts == nil {
		pts = []history.Point{}
	}
	writeJSON(w, http.StatusOK, SeriesResponse{MAC: mac, Metric: metric, Range: rng, Unit: unit, From: from, To: to, Points: pts})
}

// usedPercent derives "percent in use" from a free series and a total series: both are read
// over the same range and width, so their buckets line up. The min of the result comes from
// the max free and the max from the min free; the total barely moves within a bucket.
func usedPercent(ctx context.Context, h HistoryReader, mac, free, total string, from, to time.Time) ([]history.Point, error) {
	fs, err := h.Series(ctx, mac, free, from, to, chartPoints)
	if err != nil {
		return nil, err
	}
	ts, err := h.Series(ctx, mac, total, from, to, chartPoints)
	if err != nil {
		return nil, err
	}
	totals := make(map[int64]float64, len(ts))
	for _, p := range ts {
		totals[p.T.Unix()] = p.Avg
	}
	out := make([]history.Point, 0, len(fs))
	for _, p := range fs {
		tot := totals[p.T.Unix()]
		if tot <= 0 {
			continue
		}
		pct := func(v float64) float64 { return min(max(100*(1-v/tot), 0), 100) }
		out = append(out, history.Point{T: p.T, Min: pct(p.Max), Avg: pct(p.Avg), Max: pct(p.Min)})
	}
	return out, nil
}

// diskPercent is the root filesystem's use as df says it (topics.Metrics.DiskUsedPercent):
// used / (used + free); for a Pi whose agent stores no used bytes, 1 - free / total.
func diskPercent(ctx context.Context, h HistoryReader, mac string, from, to time.Time) ([]history.Point, error) {
	us, err := h.Series(ctx, mac, history.MetricDiskUsed, from, to, chartPoints)
	if err != nil || len(us) == 0 {
		if err != nil {
			return nil, err
		}
		return usedPercent(ctx, h, mac, history.MetricDiskFree, history.MetricDiskTotal, from, to)
	}
	fs, err := h.Series(ctx, mac, history.MetricDiskFree, from, to, chartPoints)
	if err != nil {
		return nil, err
	}
	free := make(map[int64]history.Point, len(fs))
	for _, p := range fs {
		free[p.T.Unix()] = p
	}
	pct := func(used, free float64) float64 {
		if used+free <= 0 {
			return 0
		}
		return min(max(100*used/(used+free), 0), 100)
	}
	out := make([]history.Point, 0, len(us))
	for _, u := range us {
		f, ok := free[u.T.Unix()]
		if !ok {
			continue
		}
		out = append(out, history.Point{T: u.T, Min: pct(u.Min, f.Max), Avg: pct(u.Avg, f.Avg), Max: pct(u.Max, f.Min)})
	}
	return out, nil
}

// handleNodeEvents serves GET /api/nodes/{mac}/events?limit=N: the Pi's event log, newest
// first.
func (s *Server) handleNodeEvents(w http.ResponseWriter, r *http.Request) {
	mac, ok := pathMAC(w, r)
	if !ok {
		return
	}
	if s.cfg.History == nil {
		writeError(w, http.StatusNotFound, historyOff)
		return
	}
	limit := defaultEventMax
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", clipLog(v), maxEventLimit))
			return
		}
		limit = n
	}
	evs, err := s.cfg.History.Events(r.Context(), mac, time.Time{}, limit)
	if err != nil {
		s.log.Error("read event log", "mac", mac, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the event log; see the server log")
		return
	}
	if evs == nil {
		evs = []history.Event{}
	}
	writeJSON(w, http.StatusOK, evs)
}

// pathMAC normalises the {mac} path value, writing a 400 when it is not a MAC. The Pi need not
// be known: its history outlives a restart of the Control Center.
func pathMAC(w http.ResponseWriter, r *http.Request) (string, bool) {
	mac, err := topics.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v; expected a MAC address such as b827eb3f1a2c or b8:27:eb:3f:1a:2c", err))
		return "", false
	}
	return mac, true
}

// nodePage is the data of the Pi detail page.
type nodePage struct {
	User    string
	Role    string
	Node    Node
	Known   bool // the Pi has reported since the Control Center started
	History bool // charts and the event log are available
}

// handleNodePage serves GET /nodes/{mac}: the Pi's identity and alerts; its script draws the
// charts and the event log from the API.
func (s *Server) handleNodePage(w http.ResponseWriter, r *http.Request, p principal) {
	mac, err := topics.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "not a MAC address: "+err.Error(), http.StatusBadRequest)
		return
	}
	n, known := s.rack.node(mac)
	if !known && s.cfg.History == nil {
		http.Error(w, "no Pi with MAC "+displayMAC(mac)+" has reported to this Control Center", http.StatusNotFound)
		return
	}
	if !known {
		n = Node{MAC: mac, State: StateUnknown}
	}
	s.render(w, http.StatusOK, "node.html", nodePage{User: p.name, Role: string(p.role), Node: n, Known: known, History: s.cfg.History != nil})
}
