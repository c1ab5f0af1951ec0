package history

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// MaxSparkBuckets caps Sparklines' buckets.
const MaxSparkBuckets = 1440

// Sparklines packs a bucket index into 12 bits.
var _ [1<<12 - MaxSparkBuckets]struct{}

// Sparklines returns, for every Pi with samples of metric in [from, to), the mean of each of
// buckets equal-width buckets of that range, oldest first; nil where a bucket has no sample. Pis
// without a sample in the range are left out, and so are row supplies. It is one query over the
// 1-minute tier, for a rack page's tiles: a minute counts in the bucket its start falls in, so
// from and to on whole minutes and buckets of whole minutes make every bucket exact, and a
// bucket must be at least a minute wide. The 1-minute tier is written in the same transaction
// as the raw points, so the current, unfinished minute is included as far as it is committed.
// An unknown metric gives ErrUnknownMetric.
func (s *Store) Sparklines(ctx context.Context, metric string, from, to time.Time, buckets int) (map[string][]*float64, error) {
	if s.isClose.Load() {
		return nil, ErrClosed
	}
	if !KnownMetric(metric) {
		return nil, fmt.Errorf("%w %q", ErrUnknownMetric, metric)
	}
	if buckets < 1 || buckets > MaxSparkBuckets {
		return nil, fmt.Errorf("history: sparklines: %d buckets, want 1 to %d", buckets, MaxSparkBuckets)
	}
	lo, hi := from.Unix(), to.Unix()
	if hi <= lo {
		return nil, fmt.Errorf("history: sparklines: to %v is not after from %v", to, from)
	}
	span := hi - lo
	if span < int64(buckets)*60 {
		return nil, fmt.Errorf("history: sparklines: %d buckets over %v are narrower than the 1-minute tier; ask for at most one bucket per minute",
			buckets, to.Sub(from))
	}
	// The sources first, so the big query returns numbers only.
	sources := make(map[int64]string)
	rows, err := s.db.QueryContext(ctx, "SELECT id, source FROM series WHERE metric = ?", metric)
	if err != nil {
		return nil, fmt.Errorf("history: query sparklines of %s: %w", metric, err)
	}
	for rows.Next() {
		var id int64
		var src string
		if err := rows.Scan(&id, &src); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: read sparklines of %s: %w", metric, err)
		}
		if !strings.HasPrefix(src, "row/") {
			sources[id] = src
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: read sparklines of %s: %w", metric, err)
	}

	// Summed here rather than with GROUP BY: the rows come series by series in time order
	// already, and SQLite would sort them through a temporary b-tree first, which took half the
	// time at 1,000 Pis. The series and the bucket index travel as one integer (series << 12 |
	// bucket; MaxSparkBuckets < 4096): each column read is a call into SQLite, and 60,000 rows
	// make that count. The index is integer arithmetic: the rows are minute-aligned, so
	// (t - lo) * buckets / span puts each in exactly one bucket without floating-point edges.
	rows, err = s.db.QueryContext(ctx, `SELECT a.series << 12 | (a.t - ?2) * ?4 / ?5, a.sum, a.n
		FROM series s JOIN agg_1m a ON a.series = s.id
		WHERE s.metric = ?1 AND a.t >= ?2 AND a.t < ?3`, metric, lo, hi, buckets, span)
	if err != nil {
		return nil, fmt.Errorf("history: query sparklines of %s: %w", metric, err)
	}
	defer rows.Close()
	type acc struct {
		sum []float64
		n   []int64
	}
	accs := make(map[int64]*acc, len(sources))
	var cur *acc
	curID := int64(-1)
	var key, n int64
	var sum float64
	for rows.Next() {
		if err := rows.Scan(&key, &sum, &n); err != nil {
			return nil, fmt.Errorf("history: read sparklines of %s: %w", metric, err)
		}
		id, b := key>>12, key&(1<<12-1)
		if id != curID {
			curID, cur = id, accs[id]
			if _, ok := sources[id]; cur == nil && ok {
				cur = &acc{make([]float64, buckets), make([]int64, buckets)}
				accs[id] = cur
			}
		}
		if cur == nil {
			continue // a row supply, or a series created after the first query
		}
		cur.sum[b] += sum
		cur.n[b] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: read sparklines of %s: %w", metric, err)
	}
	out := make(map[string][]*float64, len(accs))
	for id, a := range accs {
		line := make([]*float64, buckets)
		for b := range buckets {
			if a.n[b] > 0 {
				// The sums become the means in place: line points into them.
				a.sum[b] /= float64(a.n[b])
				line[b] = &a.sum[b]
			}
		}
		out[sources[id]] = line
	}
	return out, nil
}
