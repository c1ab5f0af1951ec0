package broker

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// memRetained stands in for the broker's retained-message index in the store's unit tests.
type memRetained struct {
	mu   sync.Mutex
	msgs map[string]string
	gate chan struct{} // if set, lookups wait until it is closed
}

func (m *memRetained) set(topic, payload string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if payload == "" {
		delete(m.msgs, topic)
		return
	}
	m.msgs[topic] = payload
}

func (m *memRetained) lookup(topic string) (packets.Packet, bool) {
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.msgs[topic]
	return packets.Packet{TopicName: topic, Payload: []byte(p), FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}}, ok
}

// openTestStore opens a retainedStore in dir over a memRetained. It must run inside the bubble
// of a synctest test when the test uses the writer's timers.
func openTestStore(t *testing.T, dir string, interval time.Duration, log *slog.Logger) (*retainedStore, *memRetained) {
	t.Helper()
	mem := &memRetained{msgs: map[string]string{}}
	s, err := openRetainedStore(retainedConfig{
		Path: filepath.Join(dir, RetainedDBFile), Interval: interval, Lookup: mem.lookup, Logger: log,
	}, &bbolt.Options{Timeout: time.Second}, filepath.Join(dir, DBFile), hookBucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.close() })
	return s, mem
}

// saved reads what the store has committed, as a SIGKILL would leave it.
func (s *retainedStore) saved(t testing.TB) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(retainedBucket).ForEach(func(k, v []byte) error {
			var m storage.Message
			if err := m.UnmarshalBinary(v); err != nil {
				return err
			}
			got[string(k)] = string(m.Payload)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// snapshot copies the committed state of retained.db into a new data directory: what a SIGKILL
// at this moment would leave of the retained messages.
func (s *retainedStore) snapshot(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	err := s.db.View(func(tx *bbolt.Tx) error { return tx.CopyFile(filepath.Join(dir, RetainedDBFile), 0o600) })
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRetainedStoreCoalesces: many changes of a topic within one interval are one pending
// entry, committed once, with the latest message; nothing is on disk before the interval.
func TestRetainedStoreCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 200 * time.Millisecond
		s, mem := openTestStore(t, t.TempDir(), interval, discardLogger())
		start := time.Now()
		for i := range 1000 {
			mem.set("rack/r1/a/metrics", fmt.Sprint("m", i))
			s.mark("rack/r1/a/metrics", false)
			mem.set("rack/r1/b/metrics", fmt.Sprint("n", i))
			s.mark("rack/r1/b/metrics", false)
		}
		if st := s.stats(); st.pending != 2 || st.commits != 0 {
			t.Fatalf("after 2000 changes of 2 topics: %+v, want 2 pending and no commit", st)
		}

		time.Sleep(interval - time.Nanosecond - time.Since(start))
		synctest.Wait()
		if got := s.saved(t); len(got) != 0 {
			t.Fatalf("saved before the interval ended: %v", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		want := map[string]string{"rack/r1/a/metrics": "m999", "rack/r1/b/metrics": "n999"}
		if got, st := s.saved(t), s.stats(); !equalMaps(got, want) || st.commits != 1 || st.pending != 0 {
			t.Fatalf("after the interval: saved %v in %d commits (%d pending), want %v in 1", got, st.commits, st.pending, want)
		}

		// An idle store does not wake up.
		time.Sleep(time.Hour)
		synctest.Wait()
		if st := s.stats(); st.commits != 1 {
			t.Fatalf("an idle store committed: %+v", st)
		}

		// A deletion removes the record.
		mem.set("rack/r1/a/metrics", "")
		s.mark("rack/r1/a/metrics", false)
		time.Sleep(interval)
		synctest.Wait()
		if got := s.saved(t); !equalMaps(got, map[string]string{"rack/r1/b/metrics": "n999"}) {
			t.Fatalf("after a deletion: saved %v", got)
		}
	})
}

// TestRetainedStoreWaitersShareCommits: a publisher that waits (QoS 1) returns once its change
// is on disk, without waiting for the interval, and publishers that arrive during a commit
// share the next one.
func TestRetainedStoreWaitersShareCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, mem := openTestStore(t, t.TempDir(), time.Hour, discardLogger())
		gate := make(chan struct{})
		mem.mu.Lock()
		mem.gate = gate
		mem.mu.Unlock()

		mem.set("first", "1")
		var first sync.WaitGroup
		first.Go(func() { s.mark("first", true) })
		synctest.Wait() // the first commit runs, held in its lookup

		const n = 49
		var others sync.WaitGroup
		for i := range n {
			topic := fmt.Sprint("t", i)
			mem.set(topic, "x")
			others.Go(func() { s.mark(topic, true) })
		}
		synctest.Wait()
		if st := s.stats(); st.commits != 0 || st.pending != n {
			t.Fatalf("while the first commit runs: %+v, want %d pending", st, n)
		}
		mem.mu.Lock()
		mem.gate = nil
		mem.mu.Unlock()
		close(gate)
		first.Wait()
		others.Wait()
		if got, st := s.saved(t), s.stats(); len(got) != n+1 || st.commits != 2 {
			t.Fatalf("%d waiting publishers: %d saved in %d commits, want %d in 2", n+1, len(got), st.commits, n+1)
		}
	})
}

// TestRetainedStoreRetriesFailedCommits: a failed commit (a full disk) is logged with what to
// do, counted and retried with the changes kept; waiting publishers are not held up meanwhile.
func TestRetainedStoreRetriesFailedCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		var logs testlog.Buffer
		s, mem := openTestStore(t, t.TempDir(), interval, slog.New(slog.NewTextHandler(&logs, nil)))
		full := error(syscall.ENOSPC)
		s.failCommit.Store(&full)

		mem.set("a", "1")
		s.mark("a", false)
		time.Sleep(interval)
		synctest.Wait()
		if st := s.stats(); st.failures != 1 || st.pending != 1 || st.commits != 0 {
			t.Fatalf("after a failed commit: %+v, want 1 failure and 1 pending", st)
		}
		for _, want := range []string{"cannot save retained messages to disk", "free space", "no space left on device", "failed_commits=1"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}

		// A QoS 1 publisher is not held up by a failing disk.
		mem.set("b", "2")
		done := make(chan struct{})
		go func() { s.mark("b", true); close(done) }()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("a waiting publisher is held up while commits fail")
		}

		// Retries back off: the second after one interval, the third after two more.
		time.Sleep(interval)
		synctest.Wait()
		time.Sleep(interval)
		synctest.Wait()
		if st := s.stats(); st.failures != 2 {
			t.Fatalf("retries: %d failures, want 2 (one retry after the first failure, none yet after the second)", st.failures)
		}
		if n := strings.Count(logs.String(), "cannot save retained"); n != 1 {
			t.Errorf("a persisting failure was logged %d times within a minute, want 1", n)
		}

		s.failCommit.Store(nil)
		time.Sleep(interval)
		synctest.Wait()
		want := map[string]string{"a": "1", "b": "2"}
		if got, st := s.saved(t), s.stats(); !equalMaps(got, want) || st.pending != 0 || st.commits != 1 {
			t.Fatalf("once the disk has room: saved %v, %+v; want %v", got, st, want)
		}
		if !strings.Contains(logs.String(), "saved to disk again") {
			t.Errorf("the recovery is not logged:\n%s", logs.String())
		}
	})
}

// TestRetainedStoreCloseFlushes: close commits what is pending, and a change after it is not
// waited for.
func TestRetainedStoreCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	s, mem := openTestStore(t, dir, time.Hour, discardLogger())
	mem.set("a", "1")
	s.mark("a", false)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	s.mark("a", true) // returns at once, with a warning

	s2, _ := openTestStore(t, dir, time.Hour, discardLogger())
	msgs, err := s2.load()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].TopicName != "a" || string(msgs[0].Payload) != "1" {
		t.Fatalf("after close and reopen: %+v", msgs)
	}
}

// retainedIn opens a broker on dir, without starting it, and returns the retained messages it
// loaded, as the dashboard would receive them.
func retainedIn(t *testing.T, dir string) map[string]string {
	t.Helper()
	b := newBroker(t, dir, testUsers(t), false)
	got := map[string]string{}
	if err := b.Subscribe("#", func(m bus.Message) { got[m.Topic] = string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

// commitEvents sets a broker config to report its retained commits on the returned channel.
func commitEvents(c *Config) <-chan error {
	ch := make(chan error, 100)
	c.afterRetainedCommit = func(_ int, err error) {
		select {
		case ch <- err:
		default:
		}
	}
	return ch
}

// awaitCommit waits for a commit that succeeded (ok) or failed (!ok).
func awaitCommit(t *testing.T, commits <-chan error, ok bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case err := <-commits:
			if (err == nil) == ok {
				return
			}
		case <-deadline:
			t.Fatalf("no commit of retained messages with ok=%v within %v", ok, wait)
		}
	}
}

// TestRetainedQoS0SavedByTheWriter: an agent's QoS 0 retained metrics reach retained.db once
// the writer's interval has passed, with no restart or Close: what a SIGKILL then leaves has
// them.
func TestRetainedQoS0SavedByTheWriter(t *testing.T) {
	var commits <-chan error
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.RetainedFlushInterval = 50 * time.Millisecond
		commits = commitEvents(c)
	})
	agent := mustDial(t, b, macA, macA)
	metrics := topics.MetricsTopic("r1", macA)
	agent.publish(t, metrics, 0, true, valid(metrics, "m1"))
	awaitCommit(t, commits, true)

	if got := retainedIn(t, b.store.retained.snapshot(t)); got[metrics] != valid(metrics, "m1") {
		t.Fatalf("retained.db after the writer's commit holds %v, want %s = m1", got, metrics)
	}
	if st := b.Stats(); st.RetainedCommits != 1 || st.RetainedPending != 0 {
		t.Fatalf("Stats = %+v, want 1 commit and nothing pending", st)
	}
}

// TestRetainedQoS1WrittenThrough: a QoS 0 retained message waits for the interval (a crash
// before it loses the message), but a QoS 1 one is on disk when its PUBACK arrives, and its
// commit takes what was pending with it.
func TestRetainedQoS1WrittenThrough(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.RetainedFlushInterval = time.Hour })
	agent := mustDial(t, b, macA, macA)
	metrics, status := topics.MetricsTopic("r1", macA), topics.StatusTopic("r1", macA)

	agent.publish(t, metrics, 0, true, valid(metrics, "m1"))
	agent.barrier(t)
	if got := retainedIn(t, b.store.retained.snapshot(t)); len(got) != 0 {
		t.Fatalf("a QoS 0 retained message was saved before the interval: %v", got)
	}
	if st := b.Stats(); st.RetainedPending != 1 || st.RetainedCommits != 0 {
		t.Fatalf("Stats = %+v, want 1 pending, no commit", st)
	}

	agent.publish(t, status, 1, true, "online") // returns at the PUBACK
	want := map[string]string{metrics: valid(metrics, "m1"), status: "online"}
	if got := retainedIn(t, b.store.retained.snapshot(t)); !equalMaps(got, want) {
		t.Fatalf("after the PUBACK of a QoS 1 retained message retained.db holds %v, want %v", got, want)
	}
	if st := b.Stats(); st.RetainedCommits != 1 {
		t.Fatalf("Stats = %+v, want 1 commit", st)
	}
}

// TestRetainedDeleteSurvivesRestart: an empty retained publish (an agent's, over TCP, or the
// dashboard forgetting a Pi, in-process) deletes the message for good: it is on disk at once,
// and the message stays gone after a restart.
func TestRetainedDeleteSurvivesRestart(t *testing.T) {
	dir, users := t.TempDir(), testUsers(t)
	metrics, status := topics.MetricsTopic("r1", macA), topics.StatusTopic("r1", macA)
	b1 := newBroker(t, dir, users, true)
	a1 := mustDial(t, b1, macA, macA)
	a1.publish(t, status, 1, true, "online")
	a1.publish(t, metrics, 0, true, valid(metrics, "m1"))
	a1.barrier(t)
	a1.Disconnect(0)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{metrics: valid(metrics, "m1"), status: "online"}
	if got := retainedIn(t, dir); !equalMaps(got, want) {
		t.Fatalf("after a clean restart: %v, want %v", got, want)
	}

	b2 := newBroker(t, dir, users, true, func(c *Config) { c.RetainedFlushInterval = time.Hour })
	a2 := mustDial(t, b2, macA, macA)
	a2.publish(t, status, 0, true, "")
	a2.barrier(t)
	if err := b2.Publish(context.Background(), bus.Message{Topic: metrics, Retained: true}); err != nil {
		t.Fatal(err)
	}
	if got := retainedIn(t, b2.store.retained.snapshot(t)); len(got) != 0 {
		t.Fatalf("deletions not on disk at once (a crash would bring the messages back): %v", got)
	}
	a2.Disconnect(0)
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := retainedIn(t, dir); len(got) != 0 {
		t.Fatalf("deleted retained messages came back after a restart: %v", got)
	}
}

// TestRetainedLatestWinsAndCloseFlushes: many updates of a topic are one pending entry, and
// Close saves the latest of each topic in one commit.
func TestRetainedLatestWinsAndCloseFlushes(t *testing.T) {
	dir, users := t.TempDir(), testUsers(t)
	var n []int
	var mu sync.Mutex
	b := newBroker(t, dir, users, true, func(c *Config) {
		c.RetainedFlushInterval = time.Hour
		c.afterRetainedCommit = func(topics int, _ error) { mu.Lock(); n = append(n, topics); mu.Unlock() }
	})
	agent := mustDial(t, b, macA, macA)
	metrics, power := topics.MetricsTopic("r1", macA), topics.PowerTopic("r1")
	for i := range 200 {
		agent.publish(t, metrics, 0, true, valid(metrics, fmt.Sprint("m", i)))
	}
	for i := range 50 {
		if err := b.Publish(context.Background(), bus.Message{Topic: power, Payload: []byte(fmt.Sprint("p", i)), Retained: true}); err != nil {
			t.Fatal(err)
		}
	}
	agent.barrier(t)
	if st := b.Stats(); st.RetainedPending != 2 || st.RetainedCommits != 0 {
		t.Fatalf("after 250 updates of 2 topics: %+v, want 2 pending and no commit yet", st)
	}
	agent.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(n) != 1 || n[0] != 2 {
		t.Errorf("commits at Close: %v topics each, want one commit of 2", n)
	}
	mu.Unlock()
	want := map[string]string{metrics: valid(metrics, "m199"), power: "p49"}
	if got := retainedIn(t, dir); !equalMaps(got, want) {
		t.Fatalf("after Close and restart: %v, want %v", got, want)
	}
}

// writeOldRetained retains msgs with Mochi's stock bolt hook on dir/broker.db, as pirack did
// before retained.db.
func writeOldRetained(t *testing.T, dir string, msgs map[string]string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: discardLogger()})
	if err := srv.AddHook(new(bolt.Hook), &bolt.Options{Path: filepath.Join(dir, DBFile), Bucket: hookBucket}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	for topic, payload := range msgs {
		if err := srv.Publish(topic, []byte(payload), true, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

// oldRetainedLeft counts the retained records in dir/broker.db.
func oldRetainedLeft(t *testing.T, dir string) int {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, DBFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(hookBucket)).ForEach(func(k, _ []byte) error {
			if strings.HasPrefix(string(k), storage.RetainedKey+"_") {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetainedMovedFromBrokerDB: the retained messages an older pirack kept in broker.db are
// moved to retained.db at the first start, merged with what retained.db holds (broker.db's
// being the newer), and broker.db keeps none.
func TestRetainedMovedFromBrokerDB(t *testing.T) {
	t.Run("upgrade", func(t *testing.T) {
		dir := t.TempDir()
		old := map[string]string{topics.StatusTopic("r1", macA): "online", topics.MetricsTopic("r1", macA): "m"}
		writeOldRetained(t, dir, old)
		if n := oldRetainedLeft(t, dir); n != 2 {
			t.Fatalf("the stock hook wrote %d retained records, want 2", n)
		}
		if got := retainedIn(t, dir); !equalMaps(got, old) {
			t.Fatalf("after the upgrade: %v, want %v", got, old)
		}
		if n := oldRetainedLeft(t, dir); n != 0 {
			t.Errorf("broker.db still holds %d retained records", n)
		}
		if got := retainedIn(t, dir); !equalMaps(got, old) {
			t.Fatalf("after a second start: %v, want %v", got, old)
		}
	})
	t.Run("merge", func(t *testing.T) {
		dir := t.TempDir()
		b := newBroker(t, dir, testUsers(t), false)
		for topic, p := range map[string]string{"a": "stale", "c": "c"} {
			if err := b.Publish(context.Background(), bus.Message{Topic: topic, Payload: []byte(p), Retained: true}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		writeOldRetained(t, dir, map[string]string{"a": "new", "b": "b"}) // an older pirack ran since
		want := map[string]string{"a": "new", "b": "b", "c": "c"}
		if got := retainedIn(t, dir); !equalMaps(got, want) {
			t.Fatalf("merged: %v, want %v", got, want)
		}
		if n := oldRetainedLeft(t, dir); n != 0 {
			t.Errorf("broker.db still holds %d retained records", n)
		}
	})
}

// TestRetainedCommitFailureOverTCP: while retained.db cannot be written (a full disk), agents'
// QoS 1 retained messages are still acknowledged, the failures are logged and counted, and
// everything is saved once the disk has room again.
func TestRetainedCommitFailureOverTCP(t *testing.T) {
	var logs testlog.Buffer
	var commits <-chan error
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.RetainedFlushInterval = 20 * time.Millisecond
		c.Logger = newBufferLogger(t, &logs)
		commits = commitEvents(c)
	})
	full := error(syscall.ENOSPC)
	b.store.retained.failCommit.Store(&full)

	agent := mustDial(t, b, macA, macA)
	metrics, status := topics.MetricsTopic("r1", macA), topics.StatusTopic("r1", macA)
	agent.publish(t, metrics, 0, true, valid(metrics, "m1"))
	awaitCommit(t, commits, false)
	agent.publish(t, status, 1, true, "online")
	if st := b.Stats(); st.RetainedCommitFailures < 1 || st.RetainedPending != 2 {
		t.Fatalf("Stats = %+v, want failures counted and 2 topics pending", st)
	}
	if !strings.Contains(logs.String(), "cannot save retained messages to disk") {
		t.Fatalf("the failure is not logged:\n%s", logs.String())
	}

	b.store.retained.failCommit.Store(nil)
	awaitCommit(t, commits, true)
	want := map[string]string{metrics: valid(metrics, "m1"), status: "online"}
	if got := retainedIn(t, b.store.retained.snapshot(t)); !equalMaps(got, want) {
		t.Fatalf("after the disk recovered retained.db holds %v, want %v", got, want)
	}
}
