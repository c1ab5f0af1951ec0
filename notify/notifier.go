package notify

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/backoff"
	"github.com/pirack/pirack/topics"
)

// DBFile is the notifier's queue and alert memory in the data directory.
const DBFile = "notify.db"

// Retry timing of a failed delivery: RetryBase after the first failure, doubling up to
// RetryMax, until File.RetryFor has passed since the notification was queued.
const (
	RetryBase = 10 * time.Second
	RetryMax  = 10 * time.Minute
)

// DefaultTick is how often reminders and the end of quiet hours are checked.
const DefaultTick = 30 * time.Second

// maxInbox bounds the alert messages waiting for Run; past it they are dropped, logged.
const maxInbox = 10000

var (
	bucketAlerts = []byte("alerts") // topic -> record
	bucketQueue  = []byte("queue")  // target name -> (sequence -> job)
)

// Config configures New. Bus, DataDir and File are required; every other zero value is usable.
type Config struct {
	// Bus is where the alerts come from: New subscribes to every alert topic on it.
	Bus bus.Bus
	// DataDir holds DBFile, the queue of undelivered notifications and what was told of
	// each alert, so that a restart neither drops nor repeats one.
	DataDir string
	// File is the parsed notify.json (ParseFile, LoadFile).
	File File
	// DashboardURL gives the Control Center's address for links when File.DashboardURL is
	// ""; nil (or "") leaves links out.
	DashboardURL func() string
	// Logger receives the notifier's logs; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Location is the local time of quiet hours without a time zone; nil means time.Local.
	Location *time.Location
	// Tick is how often reminders and held-back messages are looked for; 0 means DefaultTick.
	Tick time.Duration
	// Held, when set, says an alert is held back by an operator (acknowledged, silenced, its
	// Pi or row in maintenance): nothing is sent for it while it is; if it is still raised once
	// released, the next tick sends it.
	Held func(topics.Alert) bool

	senders      map[string]sender              // tests: replaces the senders File.Targets would build
	afterAttempt func(target string, err error) // tests: called once an attempt is recorded
}

// Notifier sends alert notifications. Create it with New, run it with Run, close it with
// Close.
type Notifier struct {
	cfg     Config
	file    File
	pol     policy
	log     *slog.Logger
	db      *bolt.DB
	targets []*target // sorted by name

	inMu      sync.Mutex
	inbox     []bus.Message
	inDropped int
	inSignal  chan struct{}

	ran       atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// target is one destination with its sender, its wake-up and its status.
type target struct {
	name, typ string
	send      sender
	wake      chan struct{}

	mu sync.Mutex
	st TargetStatus
}

// TargetStatus is how one target is doing, as the Control Center shows it.
type TargetStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// OK is false from a failed attempt until the next delivery.
	OK bool `json:"ok"`
	// Pending counts the notifications queued for the target.
	Pending int `json:"pending"`
	// Failures counts the failed attempts since the last delivery.
	Failures int `json:"failures"`
	// LastError says what went wrong last; it never holds the target's URL or secrets.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// LastDeliveredAt is the last delivery since the control center started.
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	// NextAttemptAt is when a failed notification is tried again.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Dropped counts notifications given up on (File.RetryFor) since the control center
	// started.
	Dropped int `json:"dropped,omitempty"`
}

// job is one notification queued for one target.
type job struct {
	Note     Notification `json:"note"`
	Queued   time.Time    `json:"queued"`
	Attempts int          `json:"attempts"`
	NextAt   time.Time    `json:"next_at"`
}

// New opens the queue in cfg.DataDir, builds the targets (reading their secret files) and
// subscribes to the alert topics; the messages received wait for Run. Retained alerts replayed
// at subscription are recognised against what was already told, so a restart repeats nothing.
func New(cfg Config) (n *Notifier, err error) {
	if cfg.Bus == nil {
		return nil, errors.New("notify: Config.Bus is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("notify: Config.DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	f := cfg.File
	if f.QuietHours != nil {
		q := *f.QuietHours
		f.QuietHours = &q
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	n = &Notifier{
		cfg: cfg, file: f, log: cfg.Logger, inSignal: make(chan struct{}, 1),
		pol: policy{quiet: f.QuietHours, loc: cfg.Location, repeat: time.Duration(f.Repeat), resolved: f.resolved()},
	}
	names := make([]string, 0, len(f.Targets))
	for name := range f.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s, ok := cfg.senders[name]
		if !ok {
			if s, err = newSender(name, f.Targets[name]); err != nil {
				return nil, fmt.Errorf("notify: %w", err)
			}
		}
		n.targets = append(n.targets, &target{name: name, typ: f.Targets[name].Type, send: s, wake: make(chan struct{}, 1),
			st: TargetStatus{Name: name, Type: f.Targets[name].Type, OK: true}})
	}
	path := filepath.Join(cfg.DataDir, DBFile)
	if n.db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second}); err != nil {
		return nil, fmt.Errorf("notify: open %s: %w (is another pirack running on this data directory?)", path, err)
	}
	defer func() {
		if err != nil {
			n.db.Close()
		}
	}()
	if err := n.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketAlerts); err != nil {
			return err
		}
		q, err := tx.CreateBucketIfNotExists(bucketQueue)
		if err != nil {
			return err
		}
		for _, t := range n.targets {
			if _, err := q.CreateBucketIfNotExists([]byte(t.name)); err != nil {
				return err
			}
		}
		// A target removed from the config keeps its queue, which is reported and left alone.
		return q.ForEach(func(k, v []byte) error {
			if v == nil && !slices.ContainsFunc(n.targets, func(t *target) bool { return t.name == string(k) }) {
				if c := q.Bucket(k).Stats().KeyN; c > 0 {
					n.log.Warn("notifications queued for a target no longer configured are not sent", "target", string(k), "queued", c)
				}
			}
			return nil
		})
	}); err != nil {
		return nil, fmt.Errorf("notify: prepare %s: %w", path, err)
	}
	for _, filter := range topics.AlertFilters() {
		if err := cfg.Bus.Subscribe(filter, n.receive); err != nil {
			return nil, fmt.Errorf("notify: subscribe to %s: %w", filter, err)
		}
	}
	return n, nil
}

// receive keeps an alert message for Run. It runs on the bus's goroutines, so it only copies.
func (n *Notifier) receive(m bus.Message) {
	n.inMu.Lock()
	if len(n.inbox) >= maxInbox {
		n.inDropped++
	} else {
		n.inbox = append(n.inbox, bus.Message{Topic: m.Topic, Payload: bytes.Clone(m.Payload), Retained: m.Retained})
	}
	n.inMu.Unlock()
	select {
	case n.inSignal <- struct{}{}:
	default:
	}
}

// Run processes alerts and delivers notifications until ctx is done; it returns nil then.
// What is waiting is handled first, then one goroutine per target delivers its queue in order,
// retrying with backoff. Run is called once.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.ran.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	n.drain()
	n.tick()
	var wg sync.WaitGroup
	for _, t := range n.targets {
		wg.Go(func() { n.deliver(ctx, t) })
	}
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-n.inSignal:
			n.drain()
		case <-ticker.C:
			n.tick()
		}
	}
}

// Close closes the queue. Call it after Run has returned; it is idempotent.
func (n *Notifier) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.db.Close() })
	return n.closeErr
}

// linkBase is the address links point under.
func (n *Notifier) linkBase() string {
	if n.file.DashboardURL != "" {
		return n.file.DashboardURL
	}
	if n.cfg.DashboardURL != nil {
		return n.cfg.DashboardURL()
	}
	return ""
}

// drain applies the messages received, in one transaction.
func (n *Notifier) drain() {
	n.inMu.Lock()
	msgs, dropped := n.inbox, n.inDropped
	n.inbox, n.inDropped = nil, 0
	n.inMu.Unlock()
	if dropped > 0 {
		n.log.Error("alert messages dropped: more arrived than the notifier could keep", "dropped", dropped)
	}
	if len(msgs) == 0 {
		return
	}
	now := n.cfg.Now()
	woken := map[*target]bool{}
	err := n.db.Update(func(tx *bolt.Tx) error {
		for _, m := range msgs {
			if err := n.apply(tx, m, now, woken); err != nil {
				return err
			}
		}
		return nil
	})
	n.afterCommit(err, woken)
}

// apply records one alert message and queues what it calls for.
func (n *Notifier) apply(tx *bolt.Tx, m bus.Message, now time.Time, woken map[*target]bool) error {
	b := tx.Bucket(bucketAlerts)
	key := []byte(m.Topic)
	old, err := getRecord(b, key)
	if err != nil {
		return err
	}
	if len(m.Payload) == 0 { // the retained alert was deleted
		return b.Delete(key)
	}
	a, err := topics.DecodeAlert(m.Payload)
	if err != nil {
		n.log.Warn("alert message ignored", "topic", m.Topic, "err", err)
		return nil
	}
	if topics.AlertTopic(a.Row, a.MAC, a.Rule) != m.Topic {
		n.log.Warn("alert message ignored: its payload names another alert than its topic", "topic", m.Topic)
		return nil
	}
	if old != nil && old.Alert.State == a.State && old.Alert.TS.Equal(a.TS) {
		return nil // seen already: a retained replay after a restart, or a duplicate
	}
	var rec record
	switch {
	case a.State == topics.AlertRaised:
		rec = record{Alert: a} // a new raise, even over one held: its clear was missed
	case old == nil:
		return nil // a clear of something nobody was told of
	default:
		rec = *old
		rec.Alert = a
	}
	return n.evaluate(tx, key, rec, now, woken)
}

// evaluate queues what policy.decide says for rec and saves or drops it.
func (n *Notifier) evaluate(tx *bolt.Tx, key []byte, rec record, now time.Time, woken map[*target]bool) error {
	targets := n.routed(rec.Alert)
	event, done := n.pol.decide(rec, len(targets) > 0, now)
	if event != "" && event != EventResolved && n.cfg.Held != nil && n.cfg.Held(rec.Alert) {
		n.log.Debug("notification held back: the alert is acknowledged, silenced or in maintenance", "event", event,
			"rule", rec.Alert.Rule, "row", rec.Alert.Row, "mac", rec.Alert.MAC)
		event, done = "", false
	}
	if event != "" {
		note := fromAlert(rec.Alert, event, newID(), n.linkBase())
		for _, t := range targets {
			if err := enqueue(tx, t.name, job{Note: note, Queued: now}); err != nil {
				return err
			}
			woken[t] = true
		}
		if event != EventResolved {
			rec.Notified, rec.LastSent = true, now
		}
		n.log.Info("notification queued", "event", event, "rule", rec.Alert.Rule, "row", rec.Alert.Row, "mac", rec.Alert.MAC,
			"targets", len(targets))
	}
	b := tx.Bucket(bucketAlerts)
	if done {
		return b.Delete(key)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// routed returns the targets an alert goes to.
func (n *Notifier) routed(a topics.Alert) []*target {
	names := n.file.targetsFor(a.Rule, a.Severity)
	var out []*target
	for _, t := range n.targets {
		if slices.Contains(names, t.name) {
			out = append(out, t)
		}
	}
	return out
}

// tick sends reminders and what quiet hours held back. A read pass finds what is due, so an
// idle tick writes nothing.
func (n *Notifier) tick() {
	now := n.cfg.Now()
	var due [][]byte
	err := n.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlerts).ForEach(func(k, v []byte) error {
			var rec record
			if json.Unmarshal(v, &rec) != nil {
				due = append(due, slices.Clone(k)) // unreadable: evaluate drops it
				return nil
			}
			if ev, done := n.pol.decide(rec, len(n.routed(rec.Alert)) > 0, now); ev != "" || done {
				due = append(due, slices.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(due) == 0 {
		if err != nil {
			n.log.Error("read the notifier's alerts", "err", err)
		}
		return
	}
	woken := map[*target]bool{}
	err = n.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		for _, k := range due {
			rec, err := getRecord(b, k)
			if err != nil {
				if err := b.Delete(k); err != nil {
					return err
				}
				continue
			}
			if rec == nil {
				continue
			}
			if err := n.evaluate(tx, k, *rec, now, woken); err != nil {
				return err
			}
		}
		return nil
	})
	n.afterCommit(err, woken)
}

// afterCommit wakes the targets given work, or logs why it was lost.
func (n *Notifier) afterCommit(err error, woken map[*target]bool) {
	if err != nil {
		n.log.Error("notifications not queued: the queue could not be written", "err", err)
		return
	}
	for t := range woken {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

func getRecord(b *bolt.Bucket, key []byte) (*record, error) {
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	var rec record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("record %s: %w", key, err)
	}
	return &rec, nil
}

func enqueue(tx *bolt.Tx, name string, j job) error {
	q := tx.Bucket(bucketQueue).Bucket([]byte(name))
	seq, err := q.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return q.Put(k[:], v)
}

// head returns the oldest job queued for a target; key is nil when there is none.
func (n *Notifier) head(name string) (key []byte, j job, err error) {
	err = n.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketQueue).Bucket([]byte(name)).Cursor().First()
		if k == nil {
			return nil
		}
		key = slices.Clone(k)
		return json.Unmarshal(v, &j)
	})
	return key, j, err
}

// deliver sends a target's queue in order until ctx is done. The first attempt after a start
// is made at once, whatever backoff was due before the restart; a failure is retried after
// RetryBase, doubling up to RetryMax; a job older than File.RetryFor is dropped. A job is
// removed from the queue only after its target accepted it.
func (n *Notifier) deliver(ctx context.Context, t *target) {
	fresh := true
	for {
		key, j, err := n.head(t.name)
		if err != nil && key != nil {
			// An unreadable job would block the queue for good: drop it, loudly.
			n.log.Error("unreadable notification dropped from the queue", "target", t.name, "err", err)
			n.remove(t.name, key)
			continue
		}
		if err != nil {
			n.log.Error("read the notification queue", "target", t.name, "err", err)
			if !sleep(ctx, RetryBase) {
				return
			}
			continue
		}
		if key == nil {
			t.setPending(0)
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				continue
			}
		}
		now := n.cfg.Now()
		if now.Sub(j.Queued) > n.file.retryFor() {
			n.log.Error("notification dropped: not delivered in time", "target", t.name, "event", j.Note.Event, "rule", j.Note.Rule,
				"mac", j.Note.MAC, "queued", j.Queued, "attempts", j.Attempts)
			n.remove(t.name, key)
			t.update(func(st *TargetStatus) { st.Dropped++ })
			continue
		}
		if !fresh && j.NextAt.After(now) {
			timer := time.NewTimer(j.NextAt.Sub(now))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-t.wake:
				timer.Stop()
			case <-timer.C:
			}
			continue
		}
		fresh = false
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err = t.send.Send(sctx, j.Note)
		cancel()
		now = n.cfg.Now()
		if err == nil { // recorded even when stopping, or it would be sent again after a restart
			n.remove(t.name, key)
			t.delivered(now, true)
			n.log.Info("notification delivered", "target", t.name, "event", j.Note.Event, "rule", j.Note.Rule, "mac", j.Note.MAC)
			n.attempted(t.name, nil)
			continue
		}
		if ctx.Err() != nil {
			return // stopped mid-attempt: the job stays and is sent after the restart
		}
		j.Attempts++
		j.NextAt = now.Add(backoff.Delay(RetryBase, RetryMax, j.Attempts))
		n.log.Warn("notification not delivered; retrying", "target", t.name, "event", j.Note.Event, "rule", j.Note.Rule,
			"attempts", j.Attempts, "next", j.NextAt, "err", err)
		t.failed(now, err, j.NextAt)
		if err := n.db.Update(func(tx *bolt.Tx) error {
			q := tx.Bucket(bucketQueue).Bucket([]byte(t.name))
			if q.Get(key) == nil {
				return nil
			}
			v, err := json.Marshal(j)
			if err != nil {
				return err
			}
			return q.Put(key, v)
		}); err != nil {
			n.log.Error("record a failed notification attempt", "target", t.name, "err", err)
		}
		n.attempted(t.name, err)
	}
}

// attempted calls the tests' hook once an attempt is recorded.
func (n *Notifier) attempted(name string, err error) {
	if n.cfg.afterAttempt != nil {
		n.cfg.afterAttempt(name, err)
	}
}

// sleep waits for d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// remove deletes a delivered (or dropped) job from a target's queue.
func (n *Notifier) remove(name string, key []byte) {
	if err := n.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueue).Bucket([]byte(name)).Delete(key)
	}); err != nil {
		n.log.Error("remove a notification from the queue", "target", name, "err", err)
	}
}

func (t *target) update(f func(*TargetStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.st)
}

func (t *target) setPending(p int) { t.update(func(st *TargetStatus) { st.Pending = p }) }

// delivered records a delivery; queued says it emptied a queued job (a test-send leaves a
// retry that is due where it is).
func (t *target) delivered(now time.Time, queued bool) {
	t.update(func(st *TargetStatus) {
		st.OK, st.Failures, st.LastDeliveredAt = true, 0, &now
		if queued {
			st.NextAttemptAt = nil
		}
	})
}

func (t *target) failed(now time.Time, err error, next time.Time) {
	t.update(func(st *TargetStatus) {
		st.OK = false
		st.Failures++
		st.LastError, st.LastErrorAt = clip(err.Error()), &now
		if !next.IsZero() { // zero: a test-send, which leaves the queue's retry as it is
			st.NextAttemptAt = &next
		}
	})
}

// Status returns every target's status, by name, with its queue's length.
func (n *Notifier) Status() []TargetStatus {
	pending := map[string]int{}
	_ = n.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		for _, t := range n.targets {
			pending[t.name] = q.Bucket([]byte(t.name)).Stats().KeyN
		}
		return nil
	})
	out := make([]TargetStatus, 0, len(n.targets))
	for _, t := range n.targets {
		t.mu.Lock()
		st := t.st
		t.mu.Unlock()
		st.Pending = pending[t.name]
		out = append(out, st)
	}
	return out
}

// QuietNow reports whether quiet hours hold back warnings now.
func (n *Notifier) QuietNow() bool {
	return n.file.QuietHours.Holds(topics.SeverityWarning, n.cfg.Now(), n.cfg.Location)
}

// TestResult is one target's answer to a test-send.
type TestResult struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// ErrUnknownTarget is returned by SendTest for a target name not in the config.
var ErrUnknownTarget = errors.New("no such notification target")

// SendTest sends a test notification to one target (name) or to all (""), at once, past the
// queue, routes and quiet hours, and reports each target's answer. A failure shows in the
// target's status like any other.
func (n *Notifier) SendTest(ctx context.Context, name, who string) ([]TestResult, error) {
	var targets []*target
	for _, t := range n.targets {
		if name == "" || t.name == name {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTarget, name)
	}
	now := n.cfg.Now()
	msg := "A test notification from the pirack Control Center"
	if who != "" {
		msg += ", sent by " + who
	}
	note := Notification{V: notificationVersion, ID: newID(), Event: EventTest, State: StateResolved, Severity: topics.SeverityWarning,
		Since: now.UTC(), TS: now.UTC(), Message: clip(msg + "."), URL: link(n.linkBase(), "")}
	results := make([]TestResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, sendTimeout)
			defer cancel()
			err := t.send.Send(sctx, note)
			results[i] = TestResult{Target: t.name, OK: err == nil}
			if err != nil {
				results[i].Error = clip(err.Error())
				t.failed(n.cfg.Now(), err, time.Time{})
			} else {
				t.delivered(n.cfg.Now(), false)
			}
		})
	}
	wg.Wait()
	n.log.Info("test notification sent", "by", who, "target", name, "results", results)
	return results, nil
}

// clip keeps an error message short for the page, cutting on a rune boundary.
func clip(s string) string {
	const maxLen = 300
	if len(s) <= maxLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxLen-3], "") + "..."
}
