package history

import (
	"context"
	"fmt"
)

// maxSaveBatch is the most SaveEvent calls one commit answers, and how many may wait for the
// writer at once beyond those.
const maxSaveBatch = 1024

// saveReq is one SaveEvent call waiting for its commit.
type saveReq struct {
	ev   Event
	done chan error // buffered: the writer never waits for a caller that gave up
}

// SaveEvent records e in the event log and returns once it is committed and synced to disk
// (SQLite's synchronous=FULL for that commit), or with the error that kept it out: after a nil
// error the event survives a crash of the process or the machine; after an error it may or may
// not be stored (a commit that outlasted ctx may still succeed), so a caller that sends it
// again should give it a Key. An event whose Key is already stored is not stored again, and
// SaveEvent returns nil for it.
//
// Calls made at the same time share one commit (group commit): the writer takes every call
// waiting when it is free, up to maxSaveBatch, and answers them all with that commit's result.
// A lone call is committed at once, not after a window. What Add, AddPower and AddEvent queued
// before it is committed first (unsynced, as their batches always are), so the log keeps the
// order of recording; a call may also wait for a retention pass under way.
//
// It needs an active Run; ctx bounds the wait, including for a Run that is not there. A
// failed commit (a full disk) is logged, at most once per LogEvery, and counted in Stats.
func (s *Store) SaveEvent(ctx context.Context, e Event) error {
	if s.isClose.Load() {
		return ErrClosed
	}
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	r := &saveReq{ev: e, done: make(chan error, 1)}
	select {
	case s.saveQ <- r:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("history: save event: writer busy or not running: %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-s.done: // closed: Run has answered what it took, and will take nothing more
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return fmt.Errorf("history: save event: not committed yet: %w", ctx.Err())
	}
}

// saveEvents commits first and every other SaveEvent call waiting now, in one transaction,
// and answers them.
func (s *Store) saveEvents(first *saveReq) {
	reqs := []*saveReq{first}
more:
	for len(reqs) < maxSaveBatch {
		select {
		case r := <-s.saveQ:
			reqs = append(reqs, r)
		default:
			break more
		}
	}
	added, err := s.saveTx(reqs)
	s.saveCommits.Add(1)
	if err != nil {
		s.saveFailed.Add(uint64(len(reqs)))
		if ok, suppressed := s.saveLog.allow(s.opts.Now(), s.opts.LogEvery); ok {
			s.log.Error("history: cannot save events to disk; their senders are refused and send them again: free space in the data directory or check the disk",
				"err", err, "refused", len(reqs), "refused_total", s.saveFailed.Load(), "suppressed_warnings", suppressed)
		}
		err = fmt.Errorf("history: save %d events: %w", len(reqs), err)
	} else {
		s.saved.Add(uint64(len(reqs)))
		s.events.Add(added)
	}
	for _, r := range reqs {
		r.done <- err
	}
}

// drainSaves answers the SaveEvent calls still waiting when Run stops.
func (s *Store) drainSaves() {
	for {
		select {
		case r := <-s.saveQ:
			s.saveEvents(r)
		default:
			return
		}
	}
}

// saveTx commits reqs' events in one transaction, synced to disk before it returns: the store
// runs with synchronous=NORMAL, under which a commit in WAL mode is not synced, so the
// connection is switched to FULL for this transaction.
func (s *Store) saveTx(reqs []*saveReq) (added uint64, err error) {
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = FULL"); err != nil {
		return 0, err
	}
	// Back to NORMAL for the batches of Add that use this connection next. It writes nothing,
	// and a failure would only cost those batches a sync: the commit's result stands.
	defer conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	for _, r := range reqs {
		ok, err := insertEvent(ctx, tx, r.ev)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		if ok {
			added++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return added, nil
}
