package broker

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestStoreWriter: lazy writes are saved at close; while commits fail, waiting writers are
// not held up, and the writes are saved, the newest of each key, once a retry succeeds.
func TestStoreWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), DBFile)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(hookBucket))
		if err != nil {
			return err
		}
		return b.Put([]byte("gone"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	w := newStoreWriter(db, hookBucket, path, time.Hour, discardLogger())
	fail := errors.New("disk full")
	w.failCommit.Store(&fail)
	w.put("a", []byte("1"), true) // its commit fails: it returns all the same
	w.put("a", []byte("2"), true) // commits are failing: it does not wait
	w.del("gone", false)
	w.put("lazy", []byte("3"), false)
	if s := w.stats(); s.failures == 0 || s.commits != 0 || s.pending != 3 {
		t.Errorf("stats %+v, want a failure and 3 keys pending", s)
	}
	w.failCommit.Store(nil)
	w.close()
	w.close()
	w.put("late", []byte("4"), true) // after close: not saved, and does not hang

	want := map[string]string{"a": "2", "lazy": "3"}
	got := map[string]string{}
	if err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(hookBucket)).ForEach(func(k, v []byte) error {
			got[string(k)] = string(v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got["a"] != want["a"] || got["lazy"] != want["lazy"] {
		t.Errorf("broker.db holds %v, want %v", got, want)
	}
}
