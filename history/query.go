package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DefaultMaxPoints is what Series returns at most when maxPoints is 0 or less.
const DefaultMaxPoints = 1000

// MaxEvents caps Events' limit.
const MaxEvents = 10000

// Point is one bucket of a series: the minimum, mean and maximum of the samples whose time falls
// in [T, T+width). T is the bucket's start; buckets are aligned on multiples of their width
// since the Unix epoch, so a live chart's buckets do not shift as its window slides.
type Point struct {
	T   time.Time `json:"t"`
	Min float64   `json:"min"`
	Avg float64   `json:"avg"`
	Max float64   `json:"max"`
}

// Resolution names a storage tier.
type Resolution string

// The tiers Series reads from.
const (
	ResRaw    Resolution = "raw"
	ResMinute Resolution = "1m"
	ResHour   Resolution = "1h"
)

type tier struct {
	res   Resolution
	table string
	step  int64 // seconds; 0 for raw (the agent's interval, unknown here)
	keep  time.Duration
}

func (s *Store) tiers() [3]tier {
	return [3]tier{
		{ResRaw, "raw", 0, s.opts.RawRetention},
		{ResMinute, "agg_1m", 60, s.opts.MinuteRetention},
		{ResHour, "agg_1h", 3600, s.opts.HourRetention},
	}
}

// plan is how a query will be answered.
type plan struct {
	tier  tier
	width int64 // bucket width in seconds, a multiple of the tier's step
	lo    int64 // first second, inclusive
	hi    int64 // last second, inclusive
}

// choose picks the tier and bucket width for [from, to] in at most maxPoints buckets: the
// coarsest tier whose step fits in the bucket width (coarser tiers have fewer rows to read) among
// those that still hold data as old as from. When none reaches back that far, the coarsest
// tier answers with what it has.
func (s *Store) choose(from, to time.Time, maxPoints int) plan {
	lo, hi := from.Unix(), to.Unix()
	span := hi - lo + 1
	// Epoch-aligned buckets of width w cover [lo, hi] in at most ceil(span/w)+1 buckets, so
	// w >= span/(maxPoints-1) keeps the count within maxPoints.
	var width int64
	if maxPoints <= 1 {
		width = span
	} else {
		width = (span + int64(maxPoints) - 2) / int64(maxPoints-1)
	}
	width = max(width, 1)
	now := s.opts.Now()
	ts := s.tiers()
	chosen := ts[len(ts)-1]
	found := false
	for i := len(ts) - 1; i >= 0; i-- {
		t := ts[i]
		if t.step <= width && !from.Before(now.Add(-t.keep)) {
			chosen, found = t, true
			break
		}
	}
	if !found {
		// Older than every tier's retention but the coarsest's, or narrower than the
		// coarsest step: the finest tier that covers from, else the coarsest.
		for _, t := range ts {
			if !from.Before(now.Add(-t.keep)) {
				chosen = t
				break
			}
		}
	}
	if chosen.step > 0 {
		width = (width + chosen.step - 1) / chosen.step * chosen.step
	}
	p := plan{tier: chosen, width: width, lo: lo, hi: hi}
	if maxPoints <= 1 {
		// One bucket for the whole range, not aligned on the epoch.
		p.width = 0
	}
	return p
}

// Series returns the samples of one source's metric between from and to (inclusive), bucketed
// into at most maxPoints points (DefaultMaxPoints when maxPoints <= 0), oldest first. source is
// a Pi's MAC or RowSource(row). A source or metric with no samples gives an empty result, not
// an error; an unknown metric name gives ErrUnknownMetric. ctx bounds the query: an HTTP
// handler passes its request's.
func (s *Store) Series(ctx context.Context, source, metric string, from, to time.Time, maxPoints int) ([]Point, error) {
	if s.isClose.Load() {
		return nil, ErrClosed
	}
	if !KnownMetric(metric) {
		return nil, fmt.Errorf("%w %q", ErrUnknownMetric, metric)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("history: series %s %s: to %v is before from %v", source, metric, to, from)
	}
	if maxPoints <= 0 {
		maxPoints = DefaultMaxPoints
	}
	id, ok, err := s.lookupSeries(ctx, seriesKey{source, metric})
	if err != nil || !ok {
		return nil, err
	}
	p := s.choose(from, to, maxPoints)
	return s.query(ctx, id, p)
}

// PowerSeries is Series for a row supply's volts, amps or watts.
func (s *Store) PowerSeries(ctx context.Context, row, metric string, from, to time.Time, maxPoints int) ([]Point, error) {
	return s.Series(ctx, RowSource(row), metric, from, to, maxPoints)
}

func (s *Store) lookupSeries(ctx context.Context, key seriesKey) (int64, bool, error) {
	s.idsMu.RLock()
	id, ok := s.ids[key]
	s.idsMu.RUnlock()
	if ok {
		return id, true, nil
	}
	err := s.db.QueryRowContext(ctx, "SELECT id FROM series WHERE source = ? AND metric = ?",
		key.source, key.metric).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("history: look up series %s %s: %w", key.source, key.metric, err)
	}
	return id, true, nil
}

func (s *Store) query(ctx context.Context, id int64, p plan) ([]Point, error) {
	lo := p.lo
	if p.tier.step > 0 {
		// An aggregate row is stamped with its bucket's start: include the one holding lo.
		lo = floorDiv(lo, p.tier.step)
	}
	// bucket is the epoch-aligned start of each output point, or lo for a single bucket.
	bucket := "(t / ?1) * ?1"
	if p.width == 0 {
		bucket = "?4"
	}
	var q string
	if p.tier.step == 0 {
		q = "SELECT " + bucket + " AS b, min(v), avg(v), max(v) FROM raw"
	} else {
		q = "SELECT " + bucket + " AS b, min(lo), sum(sum) / sum(n), max(hi) FROM " + p.tier.table
	}
	q += " WHERE series = ?2 AND t >= ?3 AND t <= ?5 GROUP BY b ORDER BY b"
	rows, err := s.db.QueryContext(ctx, q, p.width, id, lo, p.lo, p.hi)
	if err != nil {
		return nil, fmt.Errorf("history: query series %d from %s: %w", id, p.tier.res, err)
	}
	defer rows.Close()
	var pts []Point
	for rows.Next() {
		var b int64
		var pt Point
		if err := rows.Scan(&b, &pt.Min, &pt.Avg, &pt.Max); err != nil {
			return nil, fmt.Errorf("history: read series %d: %w", id, err)
		}
		pt.T = time.Unix(b, 0).UTC()
		pts = append(pts, pt)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: read series %d: %w", id, err)
	}
	return pts, nil
}

// Events returns the event log of the Pi mac (every Pi when mac is ""), newest first, from since
// on (everything when since is zero), at most limit entries (100 when limit <= 0, MaxEvents at
// most). ctx bounds the query.
func (s *Store) Events(ctx context.Context, mac string, since time.Time, limit int) ([]Event, error) {
	if s.isClose.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxEvents)
	var sinceMS int64 = -1 << 62
	if !since.IsZero() {
		sinceMS = since.UnixMilli()
	}
	q := "SELECT id, t, mac, row, kind, detail, by FROM events WHERE t >= ?1"
	if mac != "" {
		q += " AND mac = ?2"
	}
	q += " ORDER BY t DESC, id DESC LIMIT ?3"
	rows, err := s.db.QueryContext(ctx, q, sinceMS, mac, limit)
	if err != nil {
		return nil, fmt.Errorf("history: query events: %w", err)
	}
	return scanEvents(rows)
}

// scanEvents reads rows of (id, t, mac, row, kind, detail, by) and closes them.
func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var t int64
		var e Event
		if err := rows.Scan(&e.ID, &t, &e.MAC, &e.Row, &e.Kind, &e.Detail, &e.By); err != nil {
			return nil, fmt.Errorf("history: read events: %w", err)
		}
		e.Time = time.UnixMilli(t).UTC()
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: read events: %w", err)
	}
	return evs, nil
}
