package broker

import (
	"log/slog"
	"sync"
	"time"
)

// Bounds of the retry delay after a failed commit, and of how often a failure that persists is
// logged again.
const (
	maxCommitRetry     = 10 * time.Second
	commitFailLogEvery = time.Minute
)

// groupCommit is the group commit both of the broker's files use (broker.db's records,
// retained.db's messages): a change only records its key's pending value in memory, and a
// writer goroutine commits every pending key in one transaction, one fsync, at most interval
// after the first change. Changes to one key replace each other, so pending state is one map
// entry per key whatever the rate of changes, and a file always moves from one state of the
// sequence of changes to a later one: a crash loses a suffix of them, never one from the middle.
//
// A change made with wait set returns only once a commit that holds it has ended (as each write
// did with Mochi's bolt hook, which committed every one on its own); changes arriving while a
// commit runs share the next one. A failed commit keeps its keys pending (unless a newer change
// replaced one meanwhile) and is retried after a delay that doubles up to maxCommitRetry;
// while commits fail, waiting changes do not wait, so that clients are not held up.
type groupCommit[V any] struct {
	cfg groupCommitConfig[V]

	stop chan struct{} // closed by close: the writer commits what is left and returns
	wake chan struct{} // capacity 1: something the writer waits for has changed
	done chan struct{} // closed when the writer has returned

	closeOnce sync.Once

	mu       sync.Mutex
	pending  map[string]V  // keys changed since the last commit began
	since    time.Time     // when pending became non-empty
	urgent   bool          // a change waits for the next commit
	next     *commitRound  // the commit that will take pending
	closed   bool          // the final commit has begun: later changes are not saved
	failing  bool          // the last commit failed
	retryAt  time.Time     // when failing, the next attempt
	backoff  time.Duration // when failing, the wait after the next failure
	failedAt time.Time     // when the current run of failures began
	loggedAt time.Time     // when the current run of failures was last logged
	commits  int64         // commits that succeeded
	failures int64         // commits that failed
	changes  int64         // changes made (each was a commit with Mochi's hook)
}

// groupCommitConfig says what a groupCommit commits and how it reports.
type groupCommitConfig[V any] struct {
	// Interval is the longest a change waits in memory before a commit takes it, unless a
	// change waits for it.
	Interval time.Duration
	// Commit writes the pending keys in one transaction.
	Commit func(pending map[string]V) error
	Logger *slog.Logger
	// File is the file committed to, and Counted what its keys are ("records", "topics"), for
	// the logs; Lost (at shutdown), Failing and Recovered are their messages.
	File, Counted            string
	Lost, Failing, Recovered string
	// afterCommit, if set, is called by the writer after each commit attempt with the number of
	// keys it held. Tests wait on it.
	afterCommit func(keys int, err error)
}

// commitRound is one commit; done is closed once it has succeeded or failed.
type commitRound struct{ done chan struct{} }

func newRound() *commitRound { return &commitRound{done: make(chan struct{})} }

// newGroupCommit starts the writer.
func newGroupCommit[V any](cfg groupCommitConfig[V]) *groupCommit[V] {
	g := &groupCommit[V]{
		cfg:  cfg,
		stop: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{}),
		pending: map[string]V{}, next: newRound(),
	}
	go g.run()
	return g
}

// change records key's new pending value. With wait set it returns once a commit that holds
// the change has ended, unless commits are failing. It returns false, saving nothing, once the
// final commit has begun.
func (g *groupCommit[V]) change(key string, v V, wait bool) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.changes++
	wake := false
	if len(g.pending) == 0 {
		g.since, wake = time.Now(), true
	}
	g.pending[key] = v
	wait = wait && !g.failing
	if wait && !g.urgent {
		g.urgent, wake = true, true
	}
	r := g.next
	g.mu.Unlock()

	if wake {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	if wait {
		<-r.done
	}
	return true
}

// run is the writer: it commits the pending keys when they are due, until close.
func (g *groupCommit[V]) run() {
	defer close(g.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		due, pending := g.due()
		if wait := time.Until(due); !pending || wait > 0 {
			var fire <-chan time.Time
			if pending {
				timer.Reset(wait)
				fire = timer.C
			}
			select {
			case <-g.wake:
				continue // a first change or an urgent one: compute the time again
			case <-fire:
			case <-g.stop:
				timer.Stop()
				g.flush(true)
				return
			}
		}
		g.flush(false)
	}
}

// due says when the next commit should run, and whether there is anything to commit.
func (g *groupCommit[V]) due() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case len(g.pending) == 0:
		return time.Time{}, false
	case g.failing:
		return g.retryAt, true
	case g.urgent:
		return time.Time{}, true // now
	default:
		return g.since.Add(g.cfg.Interval), true
	}
}

// flush commits every pending key in one transaction. final marks the writer closed first, so
// no change can come after this commit unseen.
func (g *groupCommit[V]) flush(final bool) {
	g.mu.Lock()
	g.closed = g.closed || final
	keys, r := g.pending, g.next
	g.pending, g.next, g.urgent = map[string]V{}, newRound(), false
	g.mu.Unlock()

	var err error
	if len(keys) > 0 {
		err = g.cfg.Commit(keys)
	}

	g.mu.Lock()
	var recovered, logFailure bool
	var failedFor time.Duration
	now := time.Now()
	if err == nil {
		if len(keys) > 0 {
			g.commits++
		}
		if recovered = g.failing; recovered {
			failedFor = now.Sub(g.failedAt)
		}
		g.failing = false
	} else {
		g.failures++
		for k, v := range keys {
			if _, newer := g.pending[k]; !newer {
				g.pending[k] = v
			}
		}
		if !g.failing {
			g.failing, g.failedAt, g.backoff, g.loggedAt = true, now, g.cfg.Interval, time.Time{}
		}
		g.retryAt = now.Add(g.backoff)
		g.backoff = min(2*g.backoff, maxCommitRetry)
		if logFailure = now.Sub(g.loggedAt) >= commitFailLogEvery; logFailure {
			g.loggedAt = now
		}
	}
	failedAttempts, pending := g.failures, len(g.pending)
	g.mu.Unlock()
	close(r.done)

	c := g.cfg
	switch {
	case err != nil && final:
		c.Logger.Error(c.Lost, "file", c.File, c.Counted, pending, "error", err)
	case err != nil && logFailure:
		c.Logger.Error(c.Failing, "file", c.File, c.Counted, pending, "failed_commits", failedAttempts, "error", err)
	case recovered:
		c.Logger.Info(c.Recovered, "file", c.File, "failing_for", failedFor.Round(time.Millisecond))
	}
	if c.afterCommit != nil && len(keys) > 0 {
		c.afterCommit(len(keys), err)
	}
}

// commitStats are a groupCommit's counters.
type commitStats struct {
	changes, commits, failures int64
	pending                    int
}

func (g *groupCommit[V]) stats() commitStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return commitStats{changes: g.changes, commits: g.commits, failures: g.failures, pending: len(g.pending)}
}

// close commits what is pending and stops the writer. It is idempotent.
func (g *groupCommit[V]) close() {
	g.closeOnce.Do(func() {
		close(g.stop)
		<-g.done
	})
}
