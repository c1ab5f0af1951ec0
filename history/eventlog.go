package history

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Limits of RackEvents.
const (
	DefaultLogLimit = 200  // entries when EventQuery.Limit is 0 or less
	MaxLogLimit     = 1000 // the most entries one call returns
	MaxLogKinds     = 32   // the most kinds one EventQuery may name
)

// EventQuery selects entries of the rack-wide event log. Its zero value asks for the newest
// DefaultLogLimit entries of every row and Pi.
type EventQuery struct {
	// Row keeps the entries of one row; "" means every row.
	Row string
	// MAC keeps the entries of one Pi; "" means every Pi and the row-wide entries.
	MAC string
	// Kinds keeps the entries of these kinds; none means every kind.
	Kinds []string
	// Since keeps the entries at or after this time; zero means no bound.
	Since time.Time
	// Before pages back: only the entries after the entry with this ID in newest-first order,
	// that is older ones and those of the same millisecond recorded earlier. Pass the ID of the
	// last entry of the previous page. 0 starts from the newest. An ID retention has deleted
	// gives nothing: everything older went with it.
	Before int64
	// After keeps the entries recorded after the entry with this ID, for a live view to ask what
	// is new since its newest. It goes by recording order, not time, so it also brings an entry
	// whose own time is older (a press a Pi queued while offline). 0 means no bound.
	After int64
	// Limit is the most entries returned: DefaultLogLimit when 0 or less, at most MaxLogLimit.
	Limit int
}

// RackEvents returns the entries of the rack-wide event log that q selects, newest first (by
// time, then by recording order). It reads the events_t index from the newest entry backwards,
// stopping at the limit, so a page costs about the same however long the log is; a MAC filter
// reads events_mac_t instead, and After seeks the new entries by ID.
func (s *Store) RackEvents(ctx context.Context, q EventQuery) ([]Event, error) {
	if s.isClose.Load() {
		return nil, ErrClosed
	}
	if len(q.Kinds) > MaxLogKinds {
		return nil, fmt.Errorf("history: event log: %d kinds asked for, at most %d", len(q.Kinds), MaxLogKinds)
	}
	sq, args := eventLogSQL(q)
	rows, err := s.db.QueryContext(ctx, sq, args...)
	if err != nil {
		return nil, fmt.Errorf("history: query event log: %w", err)
	}
	return scanEvents(rows)
}

// eventLogSQL builds RackEvents' query.
func eventLogSQL(q EventQuery) (string, []any) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	limit = min(limit, MaxLogLimit)

	var where []string
	var args []any
	if q.Row != "" {
		where, args = append(where, "row = ?"), append(args, q.Row)
	}
	if q.MAC != "" {
		where, args = append(where, "mac = ?"), append(args, q.MAC)
	}
	if len(q.Kinds) > 0 {
		where = append(where, "kind IN (?"+strings.Repeat(", ?", len(q.Kinds)-1)+")")
		for _, k := range q.Kinds {
			args = append(args, k)
		}
	}
	if !q.Since.IsZero() {
		where, args = append(where, "t >= ?"), append(args, q.Since.UnixMilli())
	}
	if q.Before > 0 {
		// Written as a range on t plus a tie-break, so the index on t bounds the scan. The
		// subquery is constant: SQLite runs it once.
		where = append(where, "t <= (SELECT t FROM events WHERE id = ?)",
			"(t < (SELECT t FROM events WHERE id = ?) OR id < ?)")
		args = append(args, q.Before, q.Before, q.Before)
	}
	if q.After > 0 {
		where, args = append(where, "id > ?"), append(args, q.After)
	}
	sq := "SELECT id, t, mac, row, kind, detail, by FROM events"
	if q.After > 0 {
		// A live view's poll finds a handful of new entries: seek them by id and sort those,
		// rather than walk the whole log backwards by time to learn there are no more.
		sq += " NOT INDEXED"
	}
	if len(where) > 0 {
		sq += " WHERE " + strings.Join(where, " AND ")
	}
	sq += " ORDER BY t DESC, id DESC LIMIT ?"
	return sq, append(args, limit)
}

// EventKeys returns the deduplication key (Event.Key) of every event of kind in the log, ""
// for one stored without a key, in recording order. It is for checks from outside the
// control center: `pirack bench hostile` compares the presses the broker acknowledged with
// the keys of the presses stored, after SIGKILLs of `pirack serve`.
func (s *Store) EventKeys(ctx context.Context, kind string) ([]string, error) {
	if s.isClose.Load() {
		return nil, ErrClosed
	}
	rows, err := s.db.QueryContext(ctx, "SELECT coalesce(dedupe, '') FROM events WHERE kind = ? ORDER BY id", kind)
	if err != nil {
		return nil, fmt.Errorf("history: query event keys: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("history: read event keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: read event keys: %w", err)
	}
	return keys, nil
}
