package broker

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// storeWriter writes the records of broker.db (sessions, subscriptions, queued QoS 1 messages)
// by group commit (groupCommit): a write only records its key's new value (or its deletion),
// and the writer saves every pending key in one transaction, one fsync. A write made with wait
// set returns only once a commit that holds it has ended; the others (lazy) are saved with the
// next commit, at most interval after they were made, or at close.
type storeWriter struct {
	*groupCommit[storeOp]
	db     *bbolt.DB
	bucket []byte
	log    *slog.Logger

	// failCommit, if set, fails commits with its error before they write anything (tests).
	failCommit atomic.Pointer[error]
}

// storeOp is a key's pending value, or its deletion.
type storeOp struct {
	value []byte
	del   bool
}

// newStoreWriter starts the writer of bucket in db.
func newStoreWriter(db *bbolt.DB, bucket, path string, interval time.Duration, log *slog.Logger) *storeWriter {
	w := &storeWriter{db: db, bucket: []byte(bucket), log: log}
	w.groupCommit = newGroupCommit(groupCommitConfig[storeOp]{
		Interval: interval, Commit: w.commit, Logger: log, File: path, Counted: "records",
		Lost: "sessions and queued messages could not be saved at shutdown: the last changes are lost",
		Failing: "cannot save sessions and queued messages to disk; they are kept in memory and retried, but a crash or " +
			"power cut would lose them: free space on the data directory's file system or check the disk",
		Recovered: "sessions and queued messages are saved to disk again",
	})
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
	if !w.change(key, op, wait) {
		w.log.Warn("broker.db written after the broker's store was closed: not saved", "key", clip(key))
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
