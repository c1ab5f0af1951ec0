package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// Chart metrics of GET /api/nodes/{mac}/series?metric=...: what the Pi detail page draws.
const (
	ChartLoad     = "load_1"            // 1-minute load average
	ChartCPU      = "cpu_percent"       // CPU busy, %
	ChartTemp     = "cpu_temp_c"        // CPU temperature, °C
	ChartMemUsed  = "mem_used_percent"  // memory in use: 100 - available / total
	ChartDiskUsed = "disk_used_percent" // root filesystem in use, as df's Use%: used / (used + free)
	ChartRowWatts = "row_watts"         // the watts of the Pi's row supply
	// ChartFSUsed is a filesystem's use as df's Use%: "fs_used_percent@<mount point>".
	ChartFSUsed     = "fs_used_percent"
	chartPoints     = 300  // default points per chart: 12 s buckets over 1 h, 5 min over 24 h, 34 min over 7 d
	maxChartPoints  = 2000 // a wide screen's pixels
	defaultEventMax = 100
	maxEventLimit   = 1000
)

// chartRanges are the ranges the detail page offers; a zoom asks for its own from and to.
var chartRanges = map[string]time.Duration{
	"1h":  time.Hour,
	"6h":  6 * time.Hour,
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
	"90d": 90 * 24 * time.Hour,
}

// chartUnits are the units of the derived chart metrics; stored series get theirs from their
// name (unitOf).
var chartUnits = map[string]string{
	ChartLoad: "", ChartCPU: "%", ChartTemp: "°C", ChartMemUsed: "%", ChartDiskUsed: "%", ChartRowWatts: "W",
}

// unitOf is the unit a series' values are in, from its name: the one formatter of the pages
// (static/fmt.js) writes values with it.
func unitOf(metric string) string {
	if u, ok := chartUnits[metric]; ok {
		return u
	}
	base, _, _ := strings.Cut(metric, "@")
	switch {
	case strings.HasSuffix(base, "_bytes_per_s"):
		return "B/s"
	case strings.HasSuffix(base, "_per_s"):
		return "/s"
	case strings.HasSuffix(base, "_bytes"):
		return "B"
	case strings.HasSuffix(base, "_percent"):
		return "%"
	case strings.HasSuffix(base, "_c"):
		return "°C"
	case strings.HasSuffix(base, "_mhz"):
		return "MHz"
	}
	return ""
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

// handleSeries serves GET /api/nodes/{mac}/series?metric=M&range=1h|6h|24h|7d|30d|90d (or
// &from=...&to=... for a zoom, &points=N for the chart's width): one chart's points, each the
// min, mean and max of its bucket.
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
	from, to, rng, ok := s.chartSpan(w, q.Get("from"), q.Get("to"), rng)
	if !ok {
		return
	}
	points := chartPoints
	if v := q.Get("points"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 || n > maxChartPoints {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("points %q: want 10 to %d", clipLog(v), maxChartPoints))
			return
		}
		points = n
	}
	base, device, perDevice := strings.Cut(metric, "@")
	_, derived := chartUnits[metric]
	if !derived && !(base == ChartFSUsed && perDevice && history.KnownMetric(history.PerDevice(history.MetricFSUsed, device))) && !history.KnownMetric(metric) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("metric %q: want one of %s, %s, %s, %s, %s, %s, %s@<mount point>, or a stored series such as %s or %s (docs/control-center.md)",
			clipLog(metric), ChartLoad, ChartCPU, ChartTemp, ChartMemUsed, ChartDiskUsed, ChartRowWatts, ChartFSUsed,
			history.MetricCPUFreq, history.PerDevice(history.MetricNetRx, "eth0")))
		return
	}
	unit := unitOf(metric)
	h := s.cfg.History
	var pts []history.Point
	var err error
	switch {
	case metric == ChartMemUsed:
		pts, err = usedPercent(r.Context(), h, mac, history.MetricMemAvailable, history.MetricMemTotal, from, to, points)
	case metric == ChartDiskUsed:
		pts, err = diskPercent(r.Context(), h, mac, from, to, points)
	case base == ChartFSUsed:
		pts, err = usedOfFree(r.Context(), h, mac, history.PerDevice(history.MetricFSUsed, device), history.PerDevice(history.MetricFSFree, device), from, to, points)
	case metric == ChartRowWatts:
		n, known := s.rack.state.node(mac)
		if !known {
			writeError(w, http.StatusNotFound, fmt.Sprintf("the row of %s is not known until it reports", mac))
			return
		}
		pts, err = h.PowerSeries(r.Context(), n.Row, history.MetricWatts, from, to, points)
	default:
		pts, err = h.Series(r.Context(), mac, metric, from, to, points)
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

// chartSpan reads a chart's time span: a zoom's from and to (RFC 3339, at most 90 days, at
// least a minute, not in the future), or one of chartRanges before now. rng is the range's
// name, "" for a zoom.
func (s *Server) chartSpan(w http.ResponseWriter, fromS, toS, rng string) (from, to time.Time, name string, ok bool) {
	now := s.cfg.Now().UTC()
	if fromS != "" || toS != "" {
		f, err1 := time.Parse(time.RFC3339Nano, fromS)
		t, err2 := time.Parse(time.RFC3339Nano, toS)
		switch {
		case err1 != nil || err2 != nil:
			writeError(w, http.StatusBadRequest, "from and to: want both, as RFC 3339 times such as 2026-12-03T10:00:00Z")
			return from, to, "", false
		case t.After(now):
			t = now
		}
		if t.Sub(f) < time.Minute || t.Sub(f) > chartRanges["90d"] {
			writeError(w, http.StatusBadRequest, "from and to: want a span of a minute to 90 days, to not before from")
			return from, to, "", false
		}
		return f.UTC(), t.UTC(), "", true
	}
	if rng == "" {
		rng = "1h"
	}
	span, ok := chartRanges[rng]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("range %q: want 1h, 6h, 24h, 7d, 30d or 90d", clipLog(rng)))
		return from, to, "", false
	}
	return now.Add(-span), now, rng, true
}

// usedOfFree derives df's Use% from a used and a free series: used / (used + free).
func usedOfFree(ctx context.Context, h HistoryReader, mac, used, free string, from, to time.Time, points int) ([]history.Point, error) {
	us, err := h.Series(ctx, mac, used, from, to, points)
	if err != nil {
		return nil, err
	}
	fs, err := h.Series(ctx, mac, free, from, to, points)
	if err != nil {
		return nil, err
	}
	frees := make(map[int64]history.Point, len(fs))
	for _, p := range fs {
		frees[p.T.Unix()] = p
	}
	pct := func(used, free float64) float64 {
		if used+free <= 0 {
			return 0
		}
		return min(max(100*used/(used+free), 0), 100)
	}
	out := make([]history.Point, 0, len(us))
	for _, u := range us {
		f, ok := frees[u.T.Unix()]
		if !ok {
			continue
		}
		out = append(out, history.Point{T: u.T, Min: pct(u.Min, f.Max), Avg: pct(u.Avg, f.Avg), Max: pct(u.Max, f.Min)})
	}
	return out, nil
}

// usedPercent derives "percent in use" from a free series and a total series: both are read
// over the same range and width, so their buckets line up. The min of the result comes from
// the max free and the max from the min free; the total barely moves within a bucket.
func usedPercent(ctx context.Context, h HistoryReader, mac, free, total string, from, to time.Time, points int) ([]history.Point, error) {
	fs, err := h.Series(ctx, mac, free, from, to, points)
	if err != nil {
		return nil, err
	}
	ts, err := h.Series(ctx, mac, total, from, to, points)
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
func diskPercent(ctx context.Context, h HistoryReader, mac string, from, to time.Time, points int) ([]history.Point, error) {
	us, err := h.Series(ctx, mac, history.MetricDiskUsed, from, to, points)
	if err != nil || len(us) == 0 {
		if err != nil {
			return nil, err
		}
		return usedPercent(ctx, h, mac, history.MetricDiskFree, history.MetricDiskTotal, from, to, points)
	}
	return usedOfFree(ctx, h, mac, history.MetricDiskUsed, history.MetricDiskFree, from, to, points)
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
