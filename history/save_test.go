package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/testlog"
)

func press(seq int) Event {
	return Event{Time: t0, MAC: mac, Row: "a", Kind: EventButton, Detail: "short press", By: "agent",
		Key: fmt.Sprintf("button/%s/%d", mac, seq)}
}

// awaitQueued waits until n SaveEvent calls wait for the writer. It yields rather than sleeps:
// the callers are goroutines of this test, a scheduling step away.
func awaitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.saveQ) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d SaveEvent calls queued, want %d", len(s.saveQ), n)
		}
		runtime.Gosched()
	}
}

func countEvents(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSaveEventGroupCommit: calls waiting at the same time share one commit, and each returns
// once its event is stored.
func TestSaveEventGroupCommit(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, false, nil)
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs <- s.SaveEvent(t.Context(), press(i)) })
	}
	awaitQueued(t, s, n) // Run is not started: they all wait
	startRun(t, s)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := countEvents(t, s); got != n {
		t.Errorf("%d events stored, want %d", got, n)
	}
	st := s.Stats()
	if st.Saved != n || st.SaveCommits != 1 || st.Events != n {
		t.Errorf("Saved %d in %d commits, Events %d; want %d in 1 commit", st.Saved, st.SaveCommits, st.Events, n)
	}

	// A lone call is committed without waiting for the batch interval of Add (1 s by
	// default; an hour here), and takes what was queued before it along, first.
	s2 := openStore(t, "", &fakeClock{now: t0}, true, func(o *Options) { o.FlushInterval = time.Hour })
	s2.AddEvent(Event{Time: t0, Kind: EventOnline, MAC: mac})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s2.SaveEvent(ctx, press(1)); err != nil {
		t.Fatal(err)
	}
	evs, _ := s2.RackEvents(t.Context(), EventQuery{})
	if len(evs) != 2 || evs[0].Kind != EventButton || evs[1].Kind != EventOnline {
		t.Errorf("stored %+v, want the queued online, then the press", evs)
	}
}

// TestSaveEventKey: an event sent again with the same Key is stored once, whichever way it
// came; without a Key, every event is stored.
func TestSaveEventKey(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, true, nil)
	for range 3 {
		if err := s.SaveEvent(t.Context(), press(1)); err != nil {
			t.Fatal(err)
		}
	}
	s.AddEvent(press(1))
	s.AddEvent(press(2))
	s.AddEvent(press(2))
	s.AddEvent(Event{Time: t0, Kind: EventOnline, MAC: mac})
	s.AddEvent(Event{Time: t0, Kind: EventOnline, MAC: mac})
	flush(t, s)
	if err := s.SaveEvent(t.Context(), press(2)); err != nil {
		t.Fatal(err)
	}
	if got := countEvents(t, s); got != 4 {
		t.Errorf("%d events stored, want 4: presses 1 and 2 once each, both keyless events", got)
	}
	if st := s.Stats(); st.Saved != 4 || st.Events != 4 {
		t.Errorf("Saved %d, Events %d; want 4 calls answered and 4 events stored", st.Saved, st.Events)
	}
	keys, err := s.EventKeys(t.Context(), EventButton)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{press(1).Key, press(2).Key}; !slices.Equal(keys, want) {
		t.Errorf("EventKeys(button) = %q, want %q", keys, want)
	}
	if keys, err := s.EventKeys(t.Context(), EventOnline); err != nil || !slices.Equal(keys, []string{"", ""}) {
		t.Errorf("EventKeys(online) = %q, %v; want two keyless events", keys, err)
	}
	// A board's replacement keeps its presses' keys unique.
	if err := s.Move(t.Context(), mac, "dca632000001"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveEvent(t.Context(), press(3)); err != nil {
		t.Fatal(err)
	}
}

// TestSaveEventFullDisk: a commit that fails (SQLite's SQLITE_FULL, as on a full disk) is
// returned to every caller waiting on it, logged once with what to do, and nothing of it is
// stored; once there is space the same events are saved.
func TestSaveEventFullDisk(t *testing.T) {
	var logs testlog.Buffer
	s := openStore(t, "", &fakeClock{now: t0}, true, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.maxConns = 1 // the page limit below is per connection
	})
	if err := s.SaveEvent(t.Context(), press(0)); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages)); err != nil {
		t.Fatal(err)
	}
	// Each event needs a new page (an overflow page for its detail).
	const n = 200
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		e := press(i + 1)
		e.Detail = strings.Repeat("x", 5000)
		wg.Go(func() { errs <- s.SaveEvent(t.Context(), e) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || !strings.Contains(err.Error(), "full") {
			t.Fatalf("SaveEvent on a full disk: %v, want an error that says full", err)
		}
	}
	if got := countEvents(t, s); got != 1 {
		t.Errorf("%d events stored, want 1", got)
	}
	if st := s.Stats(); st.SaveFailed != n || st.Saved != 1 {
		t.Errorf("SaveFailed %d, Saved %d; want %d and 1", st.SaveFailed, st.Saved, n)
	}
	if out := logs.String(); strings.Count(out, "cannot save events") != 1 || !strings.Contains(out, "free space in the data directory") {
		t.Errorf("want one error line that says what to do:\n%s", out)
	}

	if _, err := s.db.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.SaveEvent(t.Context(), press(i+1)); err != nil {
			t.Fatalf("after space is freed: %v", err)
		}
	}
	if got := countEvents(t, s); got != n+1 {
		t.Errorf("%d events stored after space is freed, want %d", got, n+1)
	}
}

// TestSaveEventBounded: without a Run the wait ends with ctx; after Close at once.
func TestSaveEventBounded(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, false, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.SaveEvent(ctx, press(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SaveEvent without Run: %v, want DeadlineExceeded", err)
	}
	s.Close()
	if err := s.SaveEvent(t.Context(), press(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("SaveEvent after Close: %v, want ErrClosed", err)
	}
}

// TestSaveEventsAnsweredAtStop: calls still waiting when Run stops are committed and answered.
func TestSaveEventsAnsweredAtStop(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, false, nil)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() { errs <- s.SaveEvent(t.Context(), press(i)) }()
	}
	awaitQueued(t, s, 3)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestMigrateEventKeys: a file written by a pirack before event keys gets the column, keeps its
// events, and an older pirack's insert (without the column) still works on it.
func TestMigrateEventKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	const v1 = `CREATE TABLE events (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, mac TEXT NOT NULL,
		row TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL, by TEXT NOT NULL);
	CREATE INDEX events_mac_t ON events (mac, t);
	CREATE INDEX events_t ON events (t);
	INSERT INTO events (t, mac, row, kind, detail, by) VALUES (?, 'b827eb3f1a2c', 'a', 'button', 'short press', 'agent');
	PRAGMA user_version = 1;`
	if _, err := db.Exec(v1, t0.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openStore(t, path, &fakeClock{now: t0}, true, nil)
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("user_version %d (%v), want %d", v, err, len(migrations))
	}
	for range 2 {
		if err := s.SaveEvent(t.Context(), press(1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("INSERT INTO events (t, mac, row, kind, detail, by) VALUES (?, 'x', 'a', 'online', '', 'agent')", t0.UnixMilli()); err != nil {
		t.Fatalf("an older pirack's insert: %v", err)
	}
	if got := countEvents(t, s); got != 3 {
		t.Errorf("%d events, want 3", got)
	}
}

// BenchmarkSaveEvent measures button presses saved per second with group commit, with 1
// waiter at a time (a commit per press) and with many waiting at once (as many agents pressing
// at the same time), each waiter saving its next press as soon as the last one is committed.
//
//	go test -run '^$' -bench SaveEvent -benchtime 5000x ./history
func BenchmarkSaveEvent(b *testing.B) {
	for _, waiters := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("waiters=%d", waiters), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				s.Close()
			}()
			var next sync.Mutex
			seq := 0
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range waiters {
				wg.Go(func() {
					for {
						next.Lock()
						if seq >= b.N {
							next.Unlock()
							return
						}
						seq++
						e := press(seq)
						next.Unlock()
						if err := s.SaveEvent(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "presses/s")
			b.ReportMetric(float64(st.Saved)/float64(max(st.SaveCommits, 1)), "presses/commit")
		})
	}
}
