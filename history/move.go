package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pirack/pirack/topics"
)

// moveReq asks the writer to run a Move between two batches.
type moveReq struct {
	from, to string
	reply    chan error
}

// Move gives the history of the board fromMAC to the board toMAC, for a replacement board put
// into the same slot: every series (raw points and both aggregate tiers) and every event of
// fromMAC becomes toMAC's, in one transaction, and an EventReplaced event on toMAC records it
// (in the row of the latest event of either board, by "system"). Where toMAC already has a raw
// point of the same series at the same second, toMAC's is kept and fromMAC's dropped; aggregate
// buckets both boards have are merged (min, sum, max, count), so the hour of the swap covers
// both boards' samples. Nothing is copied for a series only fromMAC has: it is renamed.
//
// Move runs on the writer, between two batches: whatever was queued for fromMAC before Move was
// called is committed first and moves along; what is queued for fromMAC afterwards (the old
// board still reporting) stays fromMAC's. It needs an active Run; ctx bounds the wait, and an
// error from ctx once the writer has taken the request does not undo the move. MACs may be
// written in any form topics.NormalizeMAC accepts.
func (s *Store) Move(ctx context.Context, fromMAC, toMAC string) error {
	from, err := topics.NormalizeMAC(fromMAC)
	if err != nil {
		return fmt.Errorf("history: move from: %w", err)
	}
	to, err := topics.NormalizeMAC(toMAC)
	if err != nil {
		return fmt.Errorf("history: move to: %w", err)
	}
	if from == to {
		return fmt.Errorf("history: move %s to itself: the new board must have another MAC", topics.DisplayMAC(from))
	}
	if s.isClose.Load() {
		return ErrClosed
	}
	reply := make(chan error, 1)
	select {
	case s.moveRq <- moveReq{from: from, to: to, reply: reply}:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("history: move %s to %s: writer not running (is Run active?): %w", topics.DisplayMAC(from), topics.DisplayMAC(to), ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// move is Move's transaction; only the writer calls it, so the series cache it updates after
// the commit has no other writer.
func (s *Store) move(ctx context.Context, from, to string) error {
	moved, events, err := s.moveTx(context.WithoutCancel(ctx), from, to)
	if err != nil {
		s.log.Error("history move failed; nothing was moved", "from", from, "to", to, "err", err)
		return fmt.Errorf("history: move %s to %s: %w", topics.DisplayMAC(from), topics.DisplayMAC(to), err)
	}
	s.idsMu.Lock()
	for m, id := range moved {
		delete(s.ids, seriesKey{from, m})
		s.ids[seriesKey{to, m}] = id
	}
	s.idsMu.Unlock()
	s.events.Add(1)
	s.log.Info("history moved to a replacement board", "from", from, "to", to, "series", len(moved), "events", events)
	return nil
}

// moveTx moves from's rows to to and records the event. It returns the id that each moved
// metric has under to, and how many events moved.
func (s *Store) moveTx(ctx context.Context, from, to string) (moved map[string]int64, events int64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	type series struct {
		id     int64
		metric string
	}
	var old []series
	rows, err := tx.QueryContext(ctx, "SELECT id, metric FROM series WHERE source = ?", from)
	if err != nil {
		return nil, 0, err
	}
	for rows.Next() {
		var sr series
		if err := rows.Scan(&sr.id, &sr.metric); err != nil {
			rows.Close()
			return nil, 0, err
		}
		old = append(old, sr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}

	moved = make(map[string]int64, len(old))
	for _, sr := range old {
		var toID int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM series WHERE source = ? AND metric = ?", to, sr.metric).Scan(&toID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// The new board has no such series yet: renaming the series moves its rows
			// without copying one.
			if _, err := tx.ExecContext(ctx, "UPDATE series SET source = ? WHERE id = ?", to, sr.id); err != nil {
				return nil, 0, fmt.Errorf("rename series %s: %w", sr.metric, err)
			}
			toID = sr.id
		case err != nil:
			return nil, 0, err
		default:
			// Both have the series: copy the old rows over, then drop them. A raw point at a
			// second the new board also has is dropped (the new board's is kept); aggregate
			// buckets both have are merged, since they mostly sum different samples (the
			// hour of the swap holds the old board's last points and the new one's first).
			for _, t := range []struct{ table, copy string }{
				{"raw", "INSERT OR IGNORE INTO raw (series, t, v) SELECT ?, t, v FROM raw WHERE series = ?"},
				{"agg_1m", mergeAgg("agg_1m")},
				{"agg_1h", mergeAgg("agg_1h")},
			} {
				if _, err := tx.ExecContext(ctx, t.copy, toID, sr.id); err != nil {
					return nil, 0, fmt.Errorf("merge %s of %s: %w", t.table, sr.metric, err)
				}
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+t.table+" WHERE series = ?", sr.id); err != nil {
					return nil, 0, fmt.Errorf("delete old %s of %s: %w", t.table, sr.metric, err)
				}
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM series WHERE id = ?", sr.id); err != nil {
				return nil, 0, fmt.Errorf("delete old series %s: %w", sr.metric, err)
			}
		}
		if KnownMetric(sr.metric) {
			moved[sr.metric] = toID
		}
	}

	res, err := tx.ExecContext(ctx, "UPDATE events SET mac = ? WHERE mac = ?", to, from)
	if err != nil {
		return nil, 0, fmt.Errorf("move events: %w", err)
	}
	events, _ = res.RowsAffected()
	// The replacement sits in the old board's slot: its row is the latest either board had.
	var row string
	err = tx.QueryRowContext(ctx, "SELECT row FROM events WHERE mac = ? AND row != '' ORDER BY t DESC, id DESC LIMIT 1", to).Scan(&row)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO events (t, mac, row, kind, detail, by) VALUES (?, ?, ?, ?, ?, ?)",
		s.opts.Now().UnixMilli(), to, row, EventReplaced, "inherited the history of "+topics.DisplayMAC(from), "system"); err != nil {
		return nil, 0, fmt.Errorf("record the replacement: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, 0, err
	}
	return moved, events, nil
}

// mergeAgg copies an aggregate tier's rows of one series (the second argument) into another
// (the first), merging buckets both have the way the writer merges a late batch.
func mergeAgg(table string) string {
	return "INSERT INTO " + table + ` (series, t, lo, sum, hi, n) SELECT ?, t, lo, sum, hi, n FROM ` + table + ` WHERE series = ?
		ON CONFLICT (series, t) DO UPDATE SET lo = min(lo, excluded.lo), sum = sum + excluded.sum,
		hi = max(hi, excluded.hi), n = n + excluded.n`
}
