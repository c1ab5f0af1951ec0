package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/history"
)

// Limits of GET /api/sparklines.
const (
	defaultSparkMetric  = history.MetricLoad1
	defaultSparkMinutes = 60
	maxSparkMinutes     = 24 * 60
	defaultSparkBuckets = 60
	maxSparkBuckets     = 240 // a tile is a few hundred pixels wide
)

// SparklinesResponse is the body of GET /api/sparklines.
type SparklinesResponse struct {
	Metric string    `json:"metric"`
	From   time.Time `json:"from"` // the first bucket's start
	To     time.Time `json:"to"`   // the last bucket's end; the last bucket holds the current minute
	StepS  int64     `json:"step_s"`
	// Series holds, per Pi with data in the range, the mean of each bucket, oldest first;
	// null for a bucket without a sample.
	Series map[string][]*float64 `json:"series"`
}

// handleSparklines serves GET /api/sparklines?metric=load_1&minutes=60&buckets=60: for every
// Pi at once, the bucketed means of one stored metric, for a sparkline per tile. Buckets are
// whole minutes aligned on multiples of their width since the epoch, so a polling page's
// buckets do not shift; the last one is the current, unfinished one.
func (s *Server) handleSparklines(w http.ResponseWriter, r *http.Request) {
	if s.cfg.History == nil {
		writeError(w, http.StatusNotFound, historyOff)
		return
	}
	v := r.URL.Query()
	metric := v.Get("metric")
	if metric == "" {
		metric = defaultSparkMetric
	}
	if known := history.Metrics(); !slices.Contains(known, metric) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("metric %q: want one of %s", clipLog(metric), strings.Join(known, ", ")))
		return
	}
	minutes, ok := intParam(w, v.Get("minutes"), "minutes", defaultSparkMinutes, maxSparkMinutes)
	if !ok {
		return
	}
	// By default, the most buckets up to 60 that split the range into whole minutes.
	def := min(defaultSparkBuckets, minutes)
	for minutes%def != 0 {
		def--
	}
	buckets, ok := intParam(w, v.Get("buckets"), "buckets", def, min(maxSparkBuckets, minutes))
	if !ok {
		return
	}
	if minutes%buckets != 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("buckets %d does not divide minutes %d: each bucket must be a whole number of minutes", buckets, minutes))
		return
	}
	step := int64(minutes/buckets) * 60
	to := time.Unix((s.cfg.Now().Unix()/step+1)*step, 0).UTC()
	from := to.Add(-time.Duration(minutes) * time.Minute)
	series, err := s.cfg.History.Sparklines(r.Context(), metric, from, to, buckets)
	if errors.Is(err, history.ErrUnknownMetric) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("metric %q is not stored", metric))
		return
	}
	if err != nil {
		s.log.Error("read sparklines", "metric", metric, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the history; see the server log")
		return
	}
	if series == nil {
		series = map[string][]*float64{}
	}
	writeJSON(w, http.StatusOK, SparklinesResponse{Metric: metric, From: from, To: to, StepS: step, Series: series})
}

// intParam parses an optional whole-number query parameter from 1 to most, writing a 400 when it
// is not one.
func intParam(w http.ResponseWriter, s, name string, def, most int) (int, bool) {
	if s == "" {
		return min(def, most), true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: want a number from 1 to %d", name, clipLog(s), most))
		return 0, false
	}
	return n, true
}
