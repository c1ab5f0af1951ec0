package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Defaults applied by Open to zero Options fields.
const (
	DefaultRawRetention    = 24 * time.Hour
	DefaultMinuteRetention = 7 * 24 * time.Hour
	DefaultHourRetention   = 90 * 24 * time.Hour
	DefaultEventRetention  = 90 * 24 * time.Hour
	DefaultQueueSize       = 16384
	DefaultBatchSize       = 2000
	DefaultFlushInterval   = time.Second
	DefaultCompactInterval = 5 * time.Minute
	DefaultFutureSkew      = 5 * time.Minute
	DefaultLogEvery        = 30 * time.Second
)

// Options configures a Store. The zero value of every field means its default.
type Options struct {
	// RawRetention is how long raw points are kept. 0 means DefaultRawRetention (24 h).
	RawRetention time.Duration
	// MinuteRetention is how long 1-minute aggregates are kept. 0 means 7 days.
	MinuteRetention time.Duration
	// HourRetention is how long 1-hour aggregates are kept. 0 means 90 days.
	HourRetention time.Duration
	// EventRetention is how long events are kept. 0 means 90 days.
	EventRetention time.Duration

	// QueueSize bounds the samples and events waiting for the writer. Past it events are
	// dropped and counted, and samples downsampled: only the latest of each source waits
	// (Stats.Downsampled). 0 means DefaultQueueSize (about 16 s of 1,000 Pis at 1 s).
	QueueSize int
	// BatchSize is the most queued items committed in one transaction. 0 means 2000.
	BatchSize int
	// FlushInterval is the longest a queued item waits before its batch is committed.
	// 0 means 1 s.
	FlushInterval time.Duration
	// CompactInterval is how often Run deletes rows past their retention. 0 means 5 min.
	CompactInterval time.Duration
	// FutureSkew is how far ahead of Now a sample's timestamp may be; a later one (a Pi whose
	// clock runs ahead) is stored at Now instead. 0 means 5 min.
	FutureSkew time.Duration
	// LockTimeout is how long Open and each commit wait for a lock another process holds on the
	// file before failing. 0 means 5 s.
	LockTimeout time.Duration
	// LogEvery rate-limits the repeated warnings (queue full, write failed). 0 means 30 s.
	LogEvery time.Duration

	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger

	// maxConns overrides the connection pool's size; tests use 1 to set per-connection pragmas.
	maxConns int
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RawRetention, DefaultRawRetention)
	def(&o.MinuteRetention, DefaultMinuteRetention)
	def(&o.HourRetention, DefaultHourRetention)
	def(&o.EventRetention, DefaultEventRetention)
	def(&o.FlushInterval, DefaultFlushInterval)
	def(&o.CompactInterval, DefaultCompactInterval)
	def(&o.FutureSkew, DefaultFutureSkew)
	def(&o.LogEvery, DefaultLogEvery)
	def(&o.LockTimeout, 5*time.Second)
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Errors returned by the Store.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("history: store is closed")
	// ErrRunning is returned by Run when another Run is active on the same Store.
	ErrRunning = errors.New("history: Run is already active")
	// ErrUnknownMetric is returned by Series for a metric name it does not store.
	ErrUnknownMetric = errors.New("history: unknown metric")
)

// Stats counts what happened to samples since Open. A sample is one metric value.
type Stats struct {
	Queued uint64 `json:"queued"` // samples accepted by Add / AddPower
	// Downsampled counts samples not stored because the queue was full: while it is, only
	// the latest sample of each source (a Pi, a row supply) waits for the writer, and the
	// ones it replaces are counted here.
	Downsampled uint64 `json:"downsampled"`
	// Dropped counts events dropped because the queue was full, and samples of sources past
	// the QueueSize held aside while it was.
	Dropped uint64 `json:"dropped"`
	Stale   uint64 `json:"stale"`   // samples dropped because they were older than RawRetention
	Written uint64 `json:"written"` // samples committed (duplicates of a stored (series, second) excluded)
	Failed  uint64 `json:"failed"`  // samples and events lost to a failed commit (full disk, I/O error)
	Events  uint64 `json:"events"`  // events committed (by AddEvent and SaveEvent)
	// Saved counts the SaveEvent calls answered with success, SaveCommits the transactions
	// they took: Saved / SaveCommits events shared a commit. SaveFailed counts the calls
	// answered with a commit's error (their callers still hold the events).
	Saved       uint64 `json:"saved"`
	SaveCommits uint64 `json:"save_commits"`
	SaveFailed  uint64 `json:"save_failed"`
}

// Store is the history database. Its methods are safe for concurrent use.
type Store struct {
	path string
	opts Options
	db   *sql.DB
	log  *slog.Logger

	queue     chan item
	saveQ     chan *saveReq // SaveEvent's callers, waiting for a commit
	flushReq  chan chan error
	compactRq chan chan error
	moveRq    chan moveReq

	// ids caches committed series ids by (source, metric); only the writer adds to it.
	idsMu sync.RWMutex
	ids   map[seriesKey]int64
	rows  []rawRow // the writer's, reused from batch to batch

	queued, dropped, stale, written, failed, events atomic.Uint64
	downsampled                                     atomic.Uint64

	// pending holds, by source, the latest sample that found the queue full (overflow);
	// kick tells the writer there are some.
	pendMu                         sync.Mutex
	pending                        map[string]item
	kick                           chan struct{}
	saved, saveCommits, saveFailed atomic.Uint64
	dropLog, failLog, saveLog      rateLog

	done    chan struct{} // closed by Close
	mu      sync.Mutex
	closed  bool
	running bool
	stopRun context.CancelFunc
	runDone chan struct{}
	isClose atomic.Bool
}

type seriesKey struct {
	source string
	metric string
}

// schema is created on first Open. The sample tables are clustered by (series, t) WITHOUT
// ROWID, so one series' time range is one contiguous b-tree scan. Aggregates keep sum and n, not
// avg, so merging a late batch into a bucket is exact.
const schema = `
CREATE TABLE IF NOT EXISTS series (
	id     INTEGER PRIMARY KEY,
	source TEXT NOT NULL,    -- a MAC, or "row/<row>" for a row supply
	metric TEXT NOT NULL,
	UNIQUE (source, metric)
);
CREATE TABLE IF NOT EXISTS raw (
	series INTEGER NOT NULL,
	t      INTEGER NOT NULL, -- unix seconds
	v      REAL    NOT NULL,
	PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_1m (
	series INTEGER NOT NULL,
	t      INTEGER NOT NULL, -- start of the minute, unix seconds
	lo     REAL    NOT NULL,
	sum    REAL    NOT NULL,
	hi     REAL    NOT NULL,
	n      INTEGER NOT NULL,
	PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_1h (
	series INTEGER NOT NULL,
	t      INTEGER NOT NULL, -- start of the hour, unix seconds
	lo     REAL    NOT NULL,
	sum    REAL    NOT NULL,
	hi     REAL    NOT NULL,
	n      INTEGER NOT NULL,
	PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
	id     INTEGER PRIMARY KEY,
	t      INTEGER NOT NULL, -- unix milliseconds: a press and the selection it causes share a second
	mac    TEXT NOT NULL,
	row    TEXT NOT NULL,
	kind   TEXT NOT NULL,
	detail TEXT NOT NULL,
	by     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_mac_t ON events (mac, t);
CREATE INDEX IF NOT EXISTS events_t ON events (t);
`

// migrations bring a file of an earlier version up to date; migrations[i] takes it from
// user_version i to i+1. Version 0 is a file just created by schema.
var migrations = []string{
	`PRAGMA user_version = 1;`,
	// Event.Key: an event sent again (a press redelivered after a restart) is stored once.
	// Older versions of pirack insert without naming the column, so it must allow NULL.
	`ALTER TABLE events ADD COLUMN dedupe TEXT;
	CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (dedupe) WHERE dedupe IS NOT NULL;
	PRAGMA user_version = 2;`,
}

// Open opens or creates the history database at path and returns a Store. Nothing is written
// until Run is started. A file that is not a usable database, or that another process keeps
// locked, gives an error that says so and what to do.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("history: create directory for %s: %w", path, err)
		}
	}
	// Create the file owner-only: it holds the rack's whole telemetry and who did what. SQLite
	// gives its -wal and -shm files the same mode as the database.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history: create %s: %w", path, err)
	}
	f.Close()
	// WAL: a crash loses at most the last uncommitted batch, and readers never wait for the
	// writer. synchronous=NORMAL is safe in WAL mode (no corruption; the last commits may be
	// lost on power loss), and it spares the SD card an fsync per batch.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.LockTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("history: open %s: %w", path, err)
	}
	// A few readers for concurrent chart queries; the writer is one goroutine anyway.
	conns := 4
	if opts.maxConns > 0 {
		conns = opts.maxConns
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("history: %s: the filesystem does not support SQLite's WAL mode (journal_mode is %q); put the data directory on a local filesystem", path, mode)
	}

	s := &Store{
		path:      path,
		opts:      opts,
		db:        db,
		log:       opts.Logger.With("history", path),
		queue:     make(chan item, opts.QueueSize),
		saveQ:     make(chan *saveReq, maxSaveBatch),
		flushReq:  make(chan chan error),
		compactRq: make(chan chan error),
		moveRq:    make(chan moveReq),
		kick:      make(chan struct{}, 1),
		ids:       make(map[seriesKey]int64),
		done:      make(chan struct{}),
	}
	if err := s.loadSeries(ctx); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	return s, nil
}

// migrate applies the migrations the file has not had yet, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v >= len(migrations) {
		// Written even when there is nothing to do: a write is how Open finds out that another
		// process (a second pirack serve) holds the file's write lock.
		_, err := db.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v))
		return err
	}
	for ; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("upgrade to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("upgrade to version %d: %w", v+1, err)
		}
	}
	return nil
}

// openError turns SQLite's terse codes into advice for the operator.
func openError(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("history: %s is not a usable SQLite database (%w); history is disposable: stop pirack, move the file aside (with its -wal and -shm files) and start again for a fresh history", path, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("history: %s is locked by another process (%w); is another pirack serve using the same data directory? Stop it or use another --data-dir", path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("history: cannot open %s for writing (%w); check the data directory's permissions", path, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("history: %s: disk full (%w); free space in the data directory or lower the retention", path, err)
		}
	}
	return fmt.Errorf("history: open %s: %w", path, err)
}

func (s *Store) loadSeries(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "SELECT id, source, metric FROM series")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var source, metric string
		if err := rows.Scan(&id, &source, &metric); err != nil {
			return err
		}
		if KnownMetric(metric) {
			s.ids[seriesKey{source, metric}] = id
		}
	}
	return rows.Err()
}

// Close stops a running Run (which flushes the queue first), then closes the database. It is
// idempotent; samples added after Close are ignored.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isClose.Store(true)
	close(s.done)
	stop, done := s.stopRun, s.runDone
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("history: close %s: %w", s.path, err)
	}
	return nil
}

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{
		Queued:      s.queued.Load(),
		Downsampled: s.downsampled.Load(),
		Dropped:     s.dropped.Load(),
		Stale:       s.stale.Load(),
		Written:     s.written.Load(),
		Failed:      s.failed.Load(),
		Events:      s.events.Load(),

		Saved:       s.saved.Load(),
		SaveCommits: s.saveCommits.Load(),
		SaveFailed:  s.saveFailed.Load(),
	}
}

// rateLog lets a warning through at most once per interval and counts what it held back, so a
// full queue at 1,000 Pis does not become a log flood.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many occurrences were suppressed before this one.
func (r *rateLog) allow(now time.Time, every time.Duration) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}
