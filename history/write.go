package history

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pirack/pirack/topics"
)

// Metric names, as in the topics payloads' JSON fields.
const (
	MetricLoad1        = "load_1"
	MetricCPUPercent   = "cpu_percent"
	MetricCPUTempC     = "cpu_temp_c"
	MetricMemAvailable = "mem_available_bytes"
	MetricMemTotal     = "mem_total_bytes"
	MetricDiskFree     = "disk_free_bytes"
	MetricDiskTotal    = "disk_total_bytes"
	MetricDiskUsed     = "disk_used_bytes"
	MetricVolts        = "volts"
	MetricAmps         = "amps"
	MetricWatts        = "watts"
)

// metricNames is indexed by a sample's metric number; the order is internal only (the database
// stores names).
var metricNames = [...]string{
	MetricLoad1, MetricCPUPercent, MetricCPUTempC, MetricMemAvailable, MetricMemTotal,
	MetricDiskFree, MetricDiskTotal, MetricVolts, MetricAmps, MetricWatts, MetricDiskUsed,
}

const numMetrics = len(metricNames)

// Metrics returns the names of the stored metrics, in a fixed order.
func Metrics() []string { return append([]string(nil), metricNames[:]...) }

var metricIndex = func() map[string]uint8 {
	m := make(map[string]uint8, numMetrics)
	for i, n := range metricNames {
		m[n] = uint8(i)
	}
	return m
}()

// Event kinds the Control Center records. Kind is free text; these keep the log consistent.
const (
	EventButton  = "button"  // a button press; Detail is the press kind
	EventSelect  = "select"  // a Pi was selected or cleared
	EventOnline  = "online"  // presence
	EventOffline = "offline" // presence
	EventLocate  = "locate"  // an operator asked the Pi's LED to blink
	EventFound   = "found"   // the located Pi was confirmed found
	EventCommand = "command" // any other command sent to the Pi; Detail says which
	// EventReplaced is recorded by Move on the new board: Detail names the board whose history
	// it inherited.
	EventReplaced = "replaced"
)

// Event is one entry of the event log.
type Event struct {
	// ID numbers the entries in the order they were recorded; reads set it, AddEvent ignores
	// it. It orders entries of the same millisecond and is EventQuery's paging cursor.
	ID     int64     `json:"id,omitempty"`
	Time   time.Time `json:"time"` // zero means Now at AddEvent
	MAC    string    `json:"mac,omitempty"`
	Row    string    `json:"row,omitempty"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	By     string    `json:"by,omitempty"` // who caused it: a user, "agent", "system"
	// Key, when not "", names the event for deduplication: an event whose Key is already in
	// the log is not stored again (a button press sent again after its publisher missed the
	// acknowledgement). Reads leave it "".
	Key string `json:"-"`
}

// item is one queued Add (all metrics of one payload, copied out of the caller's pointers) or
// one event.
type item struct {
	source string
	t      int64 // unix seconds
	set    uint16
	v      [numMetrics]float64
	extra  []named // the host series (hostseries.go); nil for most payloads of older agents
	ev     *Event
}

// named is one sample of a series outside the fixed set.
type named struct {
	metric string
	v      float64
}

// samples is how many samples it holds.
func (it *item) samples() uint64 { return uint64(popcount(it.set) + len(it.extra)) }

func (it *item) put(metric string, v float64) {
	i := metricIndex[metric]
	it.set |= 1 << i
	it.v[i] = v
}

func fptr(it *item, metric string, p *float64) {
	if p != nil {
		it.put(metric, *p)
	}
}

func uptr(it *item, metric string, p *uint64) {
	if p != nil {
		it.put(metric, float64(*p))
	}
}

// Add queues the stored metrics of one payload from the Pi mac. It never blocks: when the queue
// is full only the latest payload of each Pi waits for the writer, and the others are counted
// (Stats.Downsampled). It does no I/O (Run writes the queue), so it takes no
// context; the same holds for AddPower, AddPiPower and AddEvent.
func (s *Store) Add(mac string, m topics.Metrics) {
	it := item{source: mac}
	fptr(&it, MetricLoad1, m.Load1)
	fptr(&it, MetricCPUPercent, m.CPUPercent)
	fptr(&it, MetricCPUTempC, m.CPUTempC)
	uptr(&it, MetricMemAvailable, m.MemAvailableBytes)
	uptr(&it, MetricMemTotal, m.MemTotalBytes)
	uptr(&it, MetricDiskFree, m.DiskFreeBytes)
	uptr(&it, MetricDiskTotal, m.DiskTotalBytes)
	uptr(&it, MetricDiskUsed, m.DiskUsedBytes)
	it.extra = hostSeries(m)
	s.enqueueSample(it, m.TS)
}

// AddPower queues a row supply's reading. It never blocks.
func (s *Store) AddPower(row string, p topics.Power) {
	s.addPower(RowSource(row), p)
}

// AddPiPower queues a per-Pi power reading, for racks that meter each board. It never blocks.
// Its series are read with Series(ctx, mac, MetricWatts, ...).
func (s *Store) AddPiPower(mac string, p topics.Power) {
	s.addPower(mac, p)
}

func (s *Store) addPower(source string, p topics.Power) {
	it := item{source: source}
	fptr(&it, MetricVolts, p.Volts)
	fptr(&it, MetricAmps, p.Amps)
	fptr(&it, MetricWatts, p.Watts)
	s.enqueueSample(it, p.TS)
}

// RowSource is the series source under which a row supply's power is stored.
func RowSource(row string) string { return "row/" + row }

func (s *Store) enqueueSample(it item, ts time.Time) {
	if (it.set == 0 && len(it.extra) == 0) || it.source == "" || s.isClose.Load() {
		return
	}
	n := it.samples()
	now := s.opts.Now()
	switch {
	case ts.IsZero() || ts.After(now.Add(s.opts.FutureSkew)):
		// A Pi without a real-time clock can run ahead until NTP syncs: keep the sample, at
		// the time it arrived.
		ts = now
	case ts.Before(now.Add(-s.opts.RawRetention)):
		// Too old for the raw tier (a Pi booted with a stale clock, or a retained payload
		// from long ago): storing it would only feed aggregates a misplaced point.
		s.stale.Add(n)
		return
	}
	it.t = ts.Unix()
	select {
	case s.queue <- it:
		s.queued.Add(n)
	default:
		s.overflow(it, n)
	}
}

// overflow takes a sample that found the queue full. Dropping it could lose a Pi's every
// sample while others fill the queue, so the latest sample of each source is held aside
// instead, and the writer takes them with its next batch: under saturation the history keeps
// one sample per source per commit, and counts the others as downsampled. Only past QueueSize
// sources held (more than a rack has) is a sample dropped.
func (s *Store) overflow(it item, n uint64) {
	var replaced uint64
	s.pendMu.Lock()
	held, ok := s.pending[it.source]
	switch {
	case ok && held.t > it.t:
		// A late sample (a retained one delivered again): the held one is newer.
		s.pendMu.Unlock()
		s.downsampled.Add(n)
		s.logOverflow()
		return
	case ok:
		replaced = held.samples()
	case len(s.pending) >= max(s.opts.QueueSize, DefaultQueueSize):
		s.pendMu.Unlock()
		s.drop(n)
		return
	case s.pending == nil:
		s.pending = make(map[string]item)
	}
	s.pending[it.source] = it
	s.pendMu.Unlock()
	s.queued.Add(n)
	s.downsampled.Add(replaced)
	s.logOverflow()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// takePending appends the samples overflow held aside to batch.
func (s *Store) takePending(batch []item) []item {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for src, it := range s.pending {
		batch = append(batch, it)
		delete(s.pending, src)
	}
	return batch
}

func (s *Store) logOverflow() {
	if ok, suppressed := s.dropLog.allow(s.opts.Now(), s.opts.LogEvery); ok {
		s.log.Warn("history queue full: keeping only the latest sample of each Pi until the writer catches up; the disk is too slow or the writer is stalled",
			"downsampled_total", s.downsampled.Load(), "suppressed_warnings", suppressed, "queue_size", s.opts.QueueSize)
	}
}

// AddEvent queues an event for the event log. It never blocks.
func (s *Store) AddEvent(e Event) {
	if s.isClose.Load() {
		return
	}
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	select {
	case s.queue <- item{ev: &e}:
	default:
		s.drop(1)
	}
}

func (s *Store) drop(n uint64) {
	total := s.dropped.Add(n)
	if ok, suppressed := s.dropLog.allow(s.opts.Now(), s.opts.LogEvery); ok {
		s.log.Warn("history queue full: dropping events (and samples past QueueSize sources); the disk is too slow or the writer is stalled",
			"dropped_total", total, "suppressed_warnings", suppressed, "queue_size", s.opts.QueueSize)
	}
}

func popcount(x uint16) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// Run is the writer: it commits queued samples in batches and deletes expired rows until ctx
// ends, then commits what is still queued and returns. Close also stops it. Only one Run may be
// active at a time.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.running {
		s.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.running, s.stopRun, s.runDone = true, cancel, done
	s.mu.Unlock()
	defer func() {
		cancel()
		s.mu.Lock()
		s.running, s.stopRun, s.runDone = false, nil, nil
		s.mu.Unlock()
		close(done)
	}()

	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	compact := time.NewTicker(s.opts.CompactInterval)
	defer compact.Stop()

	// Retention first: a store reopened after a week away should not serve stale rows.
	s.compact(ctx)

	batch := make([]item, 0, s.opts.BatchSize)
	commit := func() error {
		err := s.write(batch)
		clear(batch)
		batch = batch[:0]
		return err
	}
	for {
		select {
		case <-ctx.Done():
			batch, _ = s.drain(batch)
			commit()
			s.drainSaves()
			return nil
		case r := <-s.saveQ:
			// What was queued before goes first, so that the log keeps the order events were
			// recorded in (an online, then the press it came with, in the same millisecond).
			// It is a commit the next tick would make anyway, and it is not synced.
			batch, _ = s.drain(batch)
			commit()
			s.saveEvents(r)
		case it := <-s.queue:
			batch = append(batch, it)
			if len(batch) >= s.opts.BatchSize {
				commit()
			}
		case <-s.kick:
			// The queue overflowed: what it holds goes first, then the latest sample of
			// each source held aside meanwhile.
			batch, _ = s.drain(batch)
			batch = s.takePending(batch)
			commit()
		case <-flush.C:
			if len(batch) > 0 {
				commit()
			}
		case <-compact.C:
			commit()
			s.compact(ctx)
		case reply := <-s.flushReq:
			var err error
			batch, err = s.drain(batch)
			reply <- errors.Join(err, commit())
		case reply := <-s.compactRq:
			var err error
			batch, err = s.drain(batch)
			reply <- errors.Join(err, commit(), s.compact(ctx))
		case m := <-s.moveRq:
			// What was queued before Move belongs to the old board: commit it first, so the
			// move takes it along. A failed commit is logged and counted by write; the move
			// itself still runs.
			batch, _ = s.drain(batch)
			commit()
			m.reply <- s.move(ctx, m.from, m.to)
		}
	}
}

// drain moves everything queued right now into batch, committing full batches on the way, and
// returns the first of their errors.
func (s *Store) drain(batch []item) ([]item, error) {
	var first error
	for {
		select {
		case it := <-s.queue:
			batch = append(batch, it)
			if len(batch) >= s.opts.BatchSize {
				if err := s.write(batch); err != nil && first == nil {
					first = err
				}
				clear(batch)
				batch = batch[:0]
			}
		default:
			return s.takePending(batch), first
		}
	}
}

// Flush commits everything queued before it was called, and returns the commit's error. It needs
// an active Run; ctx bounds the wait.
func (s *Store) Flush(ctx context.Context) error {
	return s.request(ctx, s.flushReq)
}

// Compact commits what is queued, then deletes rows past their retention now instead of at
// Run's next tick. It needs an active Run; ctx bounds the wait.
func (s *Store) Compact(ctx context.Context) error {
	return s.request(ctx, s.compactRq)
}

func (s *Store) request(ctx context.Context, ch chan chan error) error {
	if s.isClose.Load() {
		return ErrClosed
	}
	reply := make(chan error, 1)
	select {
	case ch <- reply:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("history: writer not running (is Run active?): %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type bucketKey struct {
	series int64
	t      int64
}

type bucket struct {
	lo, sum, hi float64
	n           int64
}

func (b *bucket) add(v float64) {
	if b.n == 0 || v < b.lo {
		b.lo = v
	}
	if b.n == 0 || v > b.hi {
		b.hi = v
	}
	b.sum += v
	b.n++
}

// write commits one batch in one transaction: raw points, the aggregate buckets they touch, and
// events. On failure nothing of the batch is kept, and the failure is logged and counted.
func (s *Store) write(batch []item) error {
	if len(batch) == 0 {
		return nil
	}
	var samples, evs uint64
	for i := range batch {
		if batch[i].ev != nil {
			evs++
		} else {
			samples += uint64(popcount(batch[i].set))
		}
	}
	written, added, newIDs, err := s.writeTx(batch)
	if err != nil {
		s.failed.Add(samples + evs)
		total := s.failed.Load()
		if ok, suppressed := s.failLog.allow(s.opts.Now(), s.opts.LogEvery); ok {
			s.log.Error("history write failed: batch dropped; free space in the data directory or lower the retention. Charts keep showing what is stored",
				"err", err, "lost", samples+evs, "lost_total", total, "suppressed_warnings", suppressed)
		}
		return fmt.Errorf("history: write %d samples and %d events: %w", samples, evs, err)
	}
	// Series ids created in the transaction are only cached once it committed.
	if len(newIDs) > 0 {
		s.idsMu.Lock()
		for k, id := range newIDs {
			s.ids[k] = id
		}
		s.idsMu.Unlock()
	}
	s.written.Add(written)
	s.events.Add(added)
	return nil
}

// writeTx returns the samples written, the events added (those with a Key already stored
// are not) and the series it created.
func (s *Store) writeTx(batch []item) (written, added uint64, newIDs map[seriesKey]int64, err error) {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	insRaw, err := tx.PrepareContext(ctx, "INSERT OR IGNORE INTO raw (series, t, v) VALUES (?, ?, ?)")
	if err != nil {
		return 0, 0, nil, err
	}
	defer insRaw.Close()

	// Samples are inserted sorted by (series, t): the b-tree pages each series ends on are
	// then visited once per batch, in order, instead of at random, and each series' buckets
	// come out contiguous, ready to upsert without a map.
	rows := s.rows[:0]
	for i := range batch {
		it := &batch[i]
		if it.ev != nil {
			ok, err := insertEvent(ctx, tx, *it.ev)
			if err != nil {
				return 0, 0, nil, err
			}
			if ok {
				added++
			}
			continue
		}
		for m := range numMetrics {
			if it.set&(1<<m) == 0 {
				continue
			}
			id, err := s.seriesID(ctx, tx, seriesKey{it.source, metricNames[m]}, &newIDs)
			if err != nil {
				return 0, 0, nil, err
			}
			rows = append(rows, rawRow{id, it.t, it.v[m]})
		}
		for _, x := range it.extra {
			id, err := s.seriesID(ctx, tx, seriesKey{it.source, x.metric}, &newIDs)
			if err != nil {
				return 0, 0, nil, err
			}
			rows = append(rows, rawRow{id, it.t, x.v})
		}
	}
	s.rows = rows[:0]
	slices.SortFunc(rows, func(a, b rawRow) int { return cmp.Or(cmp.Compare(a.series, b.series), cmp.Compare(a.t, b.t)) })
	min1 := aggTier{step: 60}
	hour := aggTier{step: 3600}
	for _, r := range rows {
		res, err := insRaw.ExecContext(ctx, r.series, r.t, r.v)
		if err != nil {
			return 0, 0, nil, err
		}
		// A payload seen twice (a retained message redelivered after a restart) must
		// not count twice in the aggregates.
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		written++
		if err := min1.add(ctx, tx, r); err != nil {
			return 0, 0, nil, err
		}
		if err := hour.add(ctx, tx, r); err != nil {
			return 0, 0, nil, err
		}
	}
	if err := min1.flush(ctx, tx); err != nil {
		return 0, 0, nil, err
	}
	if err := hour.flush(ctx, tx); err != nil {
		return 0, 0, nil, err
	}
	min1.close()
	hour.close()
	if err := tx.Commit(); err != nil {
		return 0, 0, nil, err
	}
	return written, added, newIDs, nil
}

// insertEvent adds e to the events table, unless an event with the same Key is there; added
// says which.
func insertEvent(ctx context.Context, tx *sql.Tx, e Event) (added bool, err error) {
	var key sql.NullString
	if e.Key != "" {
		key = sql.NullString{String: e.Key, Valid: true}
	}
	res, err := tx.ExecContext(ctx,
		"INSERT OR IGNORE INTO events (t, mac, row, kind, detail, by, dedupe) VALUES (?, ?, ?, ?, ?, ?, ?)",
		e.Time.UnixMilli(), e.MAC, e.Row, e.Kind, e.Detail, e.By, key)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// rawRow is one sample as writeTx inserts it.
type rawRow struct {
	series, t int64
	v         float64
}

// aggTier accumulates one aggregate tier's bucket over rows sorted by (series, t), and upserts
// each bucket once it is complete.
type aggTier struct {
	step int64
	up   *sql.Stmt // prepared on first use
	key  bucketKey
	b    bucket
}

func (a *aggTier) add(ctx context.Context, tx *sql.Tx, r rawRow) error {
	k := bucketKey{r.series, floorDiv(r.t, a.step)}
	if a.b.n > 0 && k != a.key {
		if err := a.flush(ctx, tx); err != nil {
			return err
		}
	}
	a.key = k
	a.b.add(r.v)
	return nil
}

func (a *aggTier) flush(ctx context.Context, tx *sql.Tx) error {
	if a.b.n == 0 {
		return nil
	}
	if a.up == nil {
		table := "agg_1m"
		if a.step == 3600 {
			table = "agg_1h"
		}
		up, err := tx.PrepareContext(ctx, "INSERT INTO "+table+` (series, t, lo, sum, hi, n) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (series, t) DO UPDATE SET lo = min(lo, excluded.lo), sum = sum + excluded.sum,
			hi = max(hi, excluded.hi), n = n + excluded.n`)
		if err != nil {
			return err
		}
		a.up = up
	}
	_, err := a.up.ExecContext(ctx, a.key.series, a.key.t, a.b.lo, a.b.sum, a.b.hi, a.b.n)
	a.b = bucket{}
	return err
}

func (a *aggTier) close() {
	if a.up != nil {
		a.up.Close()
	}
}

// floorDiv returns the start of the step-long bucket holding t.
func floorDiv(t, step int64) int64 {
	q := t / step
	if t%step < 0 {
		q--
	}
	return q * step
}

// seriesID returns the id of key's series, creating the series inside tx when it is new.
func (s *Store) seriesID(ctx context.Context, tx *sql.Tx, key seriesKey, newIDs *map[seriesKey]int64) (int64, error) {
	s.idsMu.RLock()
	id, ok := s.ids[key]
	s.idsMu.RUnlock()
	if ok {
		return id, nil
	}
	if id, ok := (*newIDs)[key]; ok {
		return id, nil
	}
	name := key.metric
	if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO series (source, metric) VALUES (?, ?)", key.source, name); err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT id FROM series WHERE source = ? AND metric = ?", key.source, name).Scan(&id); err != nil {
		return 0, err
	}
	if *newIDs == nil {
		*newIDs = make(map[seriesKey]int64)
	}
	(*newIDs)[key] = id
	return id, nil
}

// compact deletes rows past each tier's retention. The deletes go through the (series, t)
// primary key one series at a time, so they touch only the expired rows, not the whole table.
func (s *Store) compact(ctx context.Context) error {
	now := s.opts.Now()
	err := s.deleteOld(ctx, now)
	if err != nil {
		if ok, suppressed := s.failLog.allow(now, s.opts.LogEvery); ok {
			s.log.Error("history retention failed; the file may grow until it succeeds",
				"err", err, "suppressed_warnings", suppressed)
		}
		return fmt.Errorf("history: compact: %w", err)
	}
	return nil
}

func (s *Store) deleteOld(ctx context.Context, now time.Time) (err error) {
	// A context that ended (shutdown) should not abort the deletes half-way through a tier;
	// they are short, and a rollback would only redo them next time.
	ctx = context.WithoutCancel(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for _, d := range []struct {
		table string
		keep  time.Duration
	}{
		{"raw", s.opts.RawRetention},
		{"agg_1m", s.opts.MinuteRetention},
		{"agg_1h", s.opts.HourRetention},
	} {
		// The IN over series makes SQLite seek each series' range in the primary key
		// instead of scanning every row of the table for t.
		q := "DELETE FROM " + d.table + " WHERE series IN (SELECT id FROM series) AND t < ?"
		if _, err := tx.ExecContext(ctx, q, now.Add(-d.keep).Unix()); err != nil {
			return fmt.Errorf("delete from %s: %w", d.table, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM events WHERE t < ?", now.Add(-s.opts.EventRetention).UnixMilli()); err != nil {
		return fmt.Errorf("delete events: %w", err)
	}
	return tx.Commit()
}
