package broker

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// storeWriter writes the records of broker.db (sessions, subscriptions, queued QoS 1 messages)
// by group commit: a write only records its key's new value (or its deletion) in memory, and a
// writer goroutine saves every pending key in one transaction, one fsync. Writes for the same
// key replace each other, so the file always moves from one state of the sequence of writes to
// a later one: a crash loses a suffix of the writes, never one from the middle.
//
// A write made with wait set returns only once a commit that holds it has ended, as each one
// did with Mochi's bolt hook, which committed every write on its own; writes arriving while a
// commit runs share the next one. The others (lazy) are saved with the next commit, at most
// interval after they were made, or at close.
type storeWriter struct {
	db       *bbolt.DB
	bucket   []byte
	path     string
	interval time.Duration
	log      *slog.Logger

	stop chan struct{} // closed by close: the writer commits what is left and returns
	wake chan struct{} // capacity 1: something the writer waits for has changed
	done chan struct{} // closed when the writer has returned

	closeOnce sync.Once

	// failCommit, if set, fails commits with its error before they write anything (tests).
	failCommit atomic.Pointer[error]

	mu       sync.Mutex
	pending  map[string]storeOp // keys written since the last commit began
	since    time.Time          // when pending became non-empty
	urgent   bool               // a writer waits for the next commit
	next     *commitRound       // the commit that will take pending
	closed   bool               // the final commit has begun: later writes are not saved
	failing  bool               // the last commit failed
	retryAt  time.Time          // when failing, the next attempt
	backoff  time.Duration      // when failing, the wait after the next failure
	loggedAt time.Time          // when the current run of failures was last logged
	commits  int64              // commits that succeeded
	failures int64              // commits that failed
	writes   int64              // writes made (each was a commit with Mochi's hook)
}

// storeOp is a key's pending value, or its deletion.
type storeOp struct {
	value []byte
	del   bool
}

// newStoreWriter starts the writer of bucket in db.
func newStoreWriter(db *bbolt.DB, bucket, path string, interval time.Duration, log *slog.Logger) *storeWriter {
	w := &storeWriter{
		db: db, bucket: []byte(bucket), path: path, interval: interval, log: log,
		stop: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{}),
		pending: map[string]storeOp{}, next: newRound(),
	}
	go w.run()
	return w
}

// put saves value under key. With wait set it returns once the write is on disk, or its commit
// failed: then it is retried, and the caller is not held up.
func (w *storeWriter) put(key string, value []byte, wait bool) {
	w.write(key, storeOp{value: value}, wait)
}

// del deletes key, like put.
func (w *storeWriter) del(key string, wait bool) {
	w.write(key, storeOp{del: true}, wait)
}

func (w *storeWriter) write(key string, op storeOp, wait bool) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.log.Warn("broker.db written after the broker's store was closed: not saved", "key", clip(key))
		return
	}
	w.writes++
	wake := false
	if len(w.pending) == 0 {
		w.since, wake = time.Now(), true
	}
	w.pending[key] = op
	wait = wait && !w.failing
	if wait && !w.urgent {
		w.urgent, wake = true, true
	}
	r := w.next
	w.mu.Unlock()

	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	if wait {
		<-r.done
	}
}

// run is the writer: it commits the pending keys when they are due, until close.
func (w *storeWriter) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		due, pending := w.due()
		if wait := time.Until(due); !pending || wait > 0 {
			var fire <-chan time.Time
			if pending {
				timer.Reset(wait)
				fire = timer.C
			}
			select {
			case <-w.wake:
				continue
			case <-fire:
			case <-w.stop:
				timer.Stop()
				w.flush(true)
				return
			}
		}
		w.flush(false)
	}
}

// due says when the next commit should run, and whether there is anything to commit.
func (w *storeWriter) due() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case len(w.pending) == 0:
		return time.Time{}, false
	case w.failing:
		return w.retryAt, true
	case w.urgent:
		return time.Time{}, true
	default:
		return w.since.Add(w.interval), true
	}
}

// flush commits every pending key in one transaction. A failed commit puts its keys back for a
// retry, unless a later write replaced them meanwhile, after a delay that doubles up to
// maxRetainedRetry. final marks the writer closed first.
func (w *storeWriter) flush(final bool) {
	w.mu.Lock()
	w.closed = w.closed || final
	ops, r := w.pending, w.next
	w.pending, w.next, w.urgent = map[string]storeOp{}, newRound(), false
	w.mu.Unlock()

	var err error
	if len(ops) > 0 {
		err = w.commit(ops)
	}

	w.mu.Lock()
	logFailure, recovered := false, false
	now := time.Now()
	if err == nil {
		if len(ops) > 0 {
			w.commits++
		}
		recovered, w.failing = w.failing, false
	} else {
		w.failures++
		for k, op := range ops {
			if _, newer := w.pending[k]; !newer {
				w.pending[k] = op
			}
		}
		if !w.failing {
			w.failing, w.backoff, w.loggedAt = true, w.interval, time.Time{}
		}
		w.retryAt = now.Add(w.backoff)
		w.backoff = min(2*w.backoff, maxRetainedRetry)
		if logFailure = now.Sub(w.loggedAt) >= retainedFailLogEvery; logFailure {
			w.loggedAt = now
		}
	}
	pending := len(w.pending)
	w.mu.Unlock()
	close(r.done)

	switch {
	case err != nil && final:
		w.log.Error("sessions and queued messages could not be saved at shutdown: the last changes are lost",
			"file", w.path, "records", pending, "error", err)
	case err != nil && logFailure:
		w.log.Error("cannot save sessions and queued messages to disk; they are kept in memory and retried, but a crash or "+
			"power cut would lose them: free space on the data directory's file system or check the disk",
			"file", w.path, "records", pending, "error", err)
	case recovered:
		w.log.Info("sessions and queued messages are saved to disk again", "file", w.path)
	}
}

// commit writes ops in one transaction, in key order.
func (w *storeWriter) commit(ops map[string]storeOp) error {
	return w.db.Update(func(tx *bbolt.Tx) error {
		if err := w.failCommit.Load(); err != nil {
			return *err
		}
		b := tx.Bucket(w.bucket)
		for _, k := range slices.Sorted(maps.Keys(ops)) {
			op := ops[k]
			var err error
			if op.del {
				err = b.Delete([]byte(k))
			} else if len(k) > bbolt.MaxKeySize {
				w.log.Warn("record not saved: its key is longer than bolt allows", "key", clip(k))
			} else {
				err = b.Put([]byte(k), op.value)
			}
			if err != nil {
				return fmt.Errorf("%q: %w", clip(k), err)
			}
		}
		return nil
	})
}

// storeStats are the writer's counters.
type storeStats struct {
	writes, commits, failures int64
	pending                   int
}

func (w *storeWriter) stats() storeStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return storeStats{writes: w.writes, commits: w.commits, failures: w.failures, pending: len(w.pending)}
}

// close commits what is pending and stops the writer; it does not close db. It is idempotent.
func (w *storeWriter) close() {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
	})
}
