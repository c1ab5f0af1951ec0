package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// retainedBucket is the bucket of retained.db: topic name -> Mochi's storage.Message record
// (the same JSON the bolt hook wrote, so records move between the files unchanged).
var retainedBucket = []byte("retained")

// retainedConfig configures a retainedStore.
type retainedConfig struct {
	// Path is the retained.db file.
	Path string
	// Interval is the longest a change waits in memory before a commit takes it, unless a
	// publisher waits for it (see mark).
	Interval time.Duration
	// Lookup returns the broker's retained message for a topic as it is now, or false if there
	// is none: what a commit writes. The broker's in-memory index is the truth; the file
	// catches up with it.
	Lookup func(topic string) (packets.Packet, bool)
	// Logger receives failures and migrations.
	Logger *slog.Logger
	// afterCommit, if set, is called by the writer after each commit attempt with the number of
	// topics it held. Tests wait on it.
	afterCommit func(topics int, err error)
}

// retainedStore keeps the broker's retained messages in their own bolt file and writes them by
// group commit (groupCommit): a change only marks its topic dirty, and the writer saves every
// dirty topic (the latest message of each, or its deletion) in one transaction, one fsync, at
// most Interval after the first change. Mochi's bolt hook instead commits each retained message
// on its own, with an fsync each: 1,000 agents publishing metrics every 5 s made 200 commits a
// second, more than an SD card can sync.
//
// A publisher that must not lose its message (QoS 1 or 2, or a deletion) waits, in mark, for
// the commit that takes it, as it waited for its own commit before; publishers that arrive
// while one commit runs share the next. So a QoS 1 retained message is on disk before its
// PUBACK, and only QoS 0 retained messages (metrics, power) can be lost by a crash: those of
// the last Interval.
type retainedStore struct {
	*groupCommit[struct{}]
	cfg retainedConfig
	db  *bbolt.DB
	log *slog.Logger

	dbClose  sync.Once
	closeErr error

	// failCommit, if set, fails commits with its error before they write anything (tests).
	failCommit atomic.Pointer[error]
}

// openRetainedStore opens (or creates) cfg.Path, moves into it the retained messages that an
// earlier pirack left in Mochi's bolt file legacyPath (bucket legacyBucket), and starts the
// writer. legacyPath must not be open yet: bolt locks its files.
func openRetainedStore(cfg retainedConfig, opts *bbolt.Options, legacyPath, legacyBucket string) (*retainedStore, error) {
	db, err := bbolt.Open(cfg.Path, 0o600, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(retainedBucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("prepare %s: %w", cfg.Path, err)
	}
	n, err := migrateRetained(db, legacyPath, legacyBucket, opts)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("move retained messages from %s to %s: %w", legacyPath, cfg.Path, err)
	}
	if n > 0 {
		cfg.Logger.Info("moved retained messages to their own file", "count", n, "from", legacyPath, "to", cfg.Path)
	}
	s := &retainedStore{cfg: cfg, db: db, log: cfg.Logger}
	s.groupCommit = newGroupCommit(groupCommitConfig[struct{}]{
		Interval: cfg.Interval, Commit: s.commit, Logger: cfg.Logger, File: cfg.Path, Counted: "topics",
		Lost: "retained messages could not be saved at shutdown and are lost; agents publish them again when they reconnect",
		Failing: "cannot save retained messages to disk; they are kept in memory and retried, but a crash or power cut " +
			"would lose them: free space on the data directory's file system or check the disk",
		Recovered:   "retained messages are saved to disk again",
		afterCommit: cfg.afterCommit,
	})
	return s, nil
}

// migrateRetained moves the retained-message records of Mochi's bolt hook ("RET_<topic>") from
// legacyPath into dst, and returns how many it moved. A record found in both files is taken
// from legacyPath: only an older pirack writes retained messages there, so it is the newer
// one. The records are deleted from legacyPath only once dst has committed them; a crash in
// between moves the same records again at the next start.
func migrateRetained(dst *bbolt.DB, legacyPath, legacyBucket string, opts *bbolt.Options) (int, error) {
	if _, err := os.Stat(legacyPath); errors.Is(err, fs.ErrNotExist) {
		return 0, nil // a new data directory
	} else if err != nil {
		return 0, err
	}
	src, err := bbolt.Open(legacyPath, 0o600, opts)
	if err != nil {
		return 0, err
	}
	defer src.Close()

	prefix := []byte(storage.RetainedKey + "_")
	var moved [][]byte
	err = src.View(func(stx *bbolt.Tx) error {
		b := stx.Bucket([]byte(legacyBucket))
		if b == nil {
			return nil
		}
		return dst.Update(func(dtx *bbolt.Tx) error {
			out := dtx.Bucket(retainedBucket)
			c := b.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				moved = append(moved, bytes.Clone(k))
				if topic := k[len(prefix):]; len(topic) > 0 && len(topic) <= bbolt.MaxKeySize {
					if err := out.Put(bytes.Clone(topic), bytes.Clone(v)); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	if err != nil || len(moved) == 0 {
		return 0, err
	}
	err = src.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(legacyBucket))
		for _, k := range moved {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return len(moved), err
}

// mark records that topic's retained message changed (or was deleted). With wait set, it
// returns only once a commit that includes the change has ended, unless commits are failing:
// then publishers are not held up, and the change is saved when a retry succeeds.
func (s *retainedStore) mark(topic string, wait bool) {
	if !s.change(topic, struct{}{}, wait) {
		s.log.Warn("retained message changed after the broker's store was closed: not saved", "topic", clip(topic))
	}
}

// commit writes, in one transaction, the current retained message of each topic, or deletes
// the topic's record when the broker no longer retains one.
func (s *retainedStore) commit(topics map[string]struct{}) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		if err := s.failCommit.Load(); err != nil {
			return *err
		}
		b := tx.Bucket(retainedBucket)
		for _, topic := range slices.Sorted(maps.Keys(topics)) {
			key := []byte(topic)
			pk, ok := s.cfg.Lookup(topic)
			if !ok || len(pk.Payload) == 0 {
				if err := b.Delete(key); err != nil {
					return fmt.Errorf("delete %q: %w", clip(topic), err)
				}
				continue
			}
			if len(key) > bbolt.MaxKeySize {
				s.log.Warn("retained message not saved: its topic is longer than bolt allows", "topic", clip(topic), "bytes", len(key))
				continue
			}
			v, err := retainedRecord(pk).MarshalBinary()
			if err != nil {
				s.log.Warn("retained message not saved: cannot encode it", "topic", clip(topic), "error", err)
				continue
			}
			if err := b.Put(key, v); err != nil {
				return fmt.Errorf("save %q: %w", clip(topic), err)
			}
		}
		return nil
	})
}

// retainedRecord is the record Mochi's bolt hook writes for a retained message.
func retainedRecord(pk packets.Packet) storage.Message {
	return storage.Message{
		ID:          storage.RetainedKey + "_" + pk.TopicName,
		T:           storage.RetainedKey,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Client:      pk.Origin,
		Origin:      pk.Origin,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			PayloadFormatFlag:      pk.Properties.PayloadFormatFlag,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			TopicAlias:             pk.Properties.TopicAlias,
			User:                   pk.Properties.User,
		},
	}
}

// load returns every saved retained message. A record that cannot be decoded is logged and
// skipped rather than keeping the broker from starting.
func (s *retainedStore) load() ([]storage.Message, error) {
	var msgs []storage.Message
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(retainedBucket).ForEach(func(k, v []byte) error {
			var m storage.Message
			if err := m.UnmarshalBinary(v); err != nil {
				s.log.Warn("skipping a damaged retained message", "file", s.cfg.Path, "topic", clip(string(k)), "error", err)
				return nil
			}
			if len(m.Payload) == 0 {
				return nil // a deletion an older pirack recorded as an empty message
			}
			if m.TopicName == "" {
				m.TopicName = string(k)
			}
			msgs = append(msgs, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.cfg.Path, err)
	}
	return msgs, nil
}

// close commits what is pending, stops the writer and closes the file. It is idempotent.
func (s *retainedStore) close() error {
	s.groupCommit.close()
	s.dbClose.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}
