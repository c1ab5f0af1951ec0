package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/topics"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testMAC = "b827eb3f1a2c"

func ptr(v float64) *float64 { return &v }

// tempAlert is a temp_high alert of pi-07, raised at raisedAt; cleared 10 minutes later when
// clear is set.
func tempAlert(raisedAt time.Time, clear bool) topics.Alert {
	a := topics.Alert{
		V: topics.Version, Rule: "temp_high", Severity: topics.SeverityCritical, State: topics.AlertRaised,
		TS: raisedAt, Since: raisedAt.Add(-time.Minute), Row: "r1", MAC: testMAC, Hostname: "pi-07",
		Value: ptr(83.4), Threshold: ptr(80), Unit: topics.UnitCelsius, Message: "CPU at 83.4 °C, over 80 °C for 1 min",
	}
	if clear {
		a.State, a.TS, a.Value, a.Threshold, a.Message = topics.AlertCleared, raisedAt.Add(10*time.Minute), ptr(74.9), ptr(75), "CPU at 74.9 °C, back under 75 °C"
	}
	return a
}

var t0 = time.Date(2026, 3, 10, 14, 2, 3, 0, time.UTC)

func publish(t *testing.T, b *dashboardtest.Bus, a topics.Alert) {
	t.Helper()
	payload, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), bus.Message{Topic: topics.AlertTopic(a.Row, a.MAC, a.Rule), Payload: payload, QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
}

// start runs n until the test ends, then joins Run and closes n.
func start(t *testing.T, n *Notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func mustNew(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// receiver is a webhook or ntfy endpoint on 127.0.0.1 that hands each request to the test.
type request struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T, status func(n int) int) (*httptest.Server, <-chan request) {
	got := make(chan request, 16)
	var mu sync.Mutex
	count := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("receiver: %s, want POST", r.Method)
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		count++
		code := status(count)
		mu.Unlock()
		got <- request{r.Header.Clone(), body}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func always(code int) func(int) int { return func(int) int { return code } }

func next(t *testing.T, ch <-chan request) request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the receiver in 10 s")
	}
	return request{}
}

// golden compares a webhook body, its random id replaced, with testdata/name.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if id, _ := m["id"].(string); len(id) != 16 {
		t.Errorf("id %q: want 16 hex digits", m["id"])
	}
	m["id"] = "RANDOM"
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestWebhookRaisedAndResolved(t *testing.T) {
	srv, got := receiver(t, always(http.StatusNoContent))
	b := &dashboardtest.Bus{}
	n := mustNew(t, Config{Bus: b, DataDir: t.TempDir(), File: File{
		DashboardURL: "https://rack.example.org/",
		Targets:      map[string]Target{"hook": {Type: TypeWebhook, URL: srv.URL + "/hook"}},
	}})
	start(t, n)

	publish(t, b, tempAlert(t0, false))
	r := next(t, got)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	golden(t, "webhook_raised.json", r.body)

	publish(t, b, tempAlert(t0, true))
	golden(t, "webhook_resolved.json", next(t, got).body)

	publish(t, b, tempAlert(t0, true)) // the same clear again: nothing to tell
	publish(t, b, tempAlert(t0.Add(time.Hour), false))
	if r := next(t, got); !bytes.Contains(r.body, []byte(`"event":"raised"`)) {
		t.Errorf("after a duplicate clear, got %s, want the next raise", r.body)
	}
}

func TestNtfyHeaders(t *testing.T) {
	srv, got := receiver(t, always(http.StatusOK))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tk_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &dashboardtest.Bus{}
	n := mustNew(t, Config{Bus: b, DataDir: dir, File: File{
		DashboardURL: "https://rack.example.org",
		Targets:      map[string]Target{"phone": {Type: TypeNtfy, URL: srv.URL + "/pirack-alerts", TokenFile: tokenFile}},
	}})
	start(t, n)

	publish(t, b, tempAlert(t0, false))
	r := next(t, got)
	for k, want := range map[string]string{
		"Title":         "CRITICAL temp_high on pi-07 (b827eb3f1a2c, row r1)",
		"Priority":      "urgent",
		"Tags":          "rotating_light,pirack,temp_high",
		"Click":         "https://rack.example.org/nodes/" + testMAC,
		"Authorization": "Bearer tk_secret",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !bytes.HasPrefix(r.body, []byte("CPU at 83.4 °C, over 80 °C for 1 min\n")) {
		t.Errorf("body starts %q, want the alert's message", r.body)
	}
	publish(t, b, tempAlert(t0, true))
	r = next(t, got)
	if p, tags := r.header.Get("Priority"), r.header.Get("Tags"); p != "low" || tags != "white_check_mark,pirack,temp_high" {
		t.Errorf("resolved: Priority %q, Tags %q; want low and white_check_mark,pirack,temp_high", p, tags)
	}
}

// A notification queued when the control center stops is delivered after it starts again, once,
// though the alert's retained message is replayed at the new subscription.
func TestRestartDeliversQueuedOnce(t *testing.T) {
	srv, got := receiver(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	dir := t.TempDir()
	file := File{Targets: map[string]Target{"hook": {Type: TypeWebhook, URL: srv.URL}}}
	attempts := make(chan error, 16)
	hook := func(_ string, err error) { attempts <- err }

	b := &dashboardtest.Bus{}
	n := mustNew(t, Config{Bus: b, DataDir: dir, File: file, afterAttempt: hook})
	stop := start(t, n)
	alert := tempAlert(t0, false)
	publish(t, b, alert)
	next(t, got)
	if err := <-attempts; err == nil || !bytes.Contains([]byte(err.Error()), []byte("503")) {
		t.Fatalf("first attempt: %v, want the receiver's 503", err)
	}
	if st := n.Status()[0]; st.OK || st.Pending != 1 || st.Failures != 1 || st.NextAttemptAt == nil {
		t.Errorf("after a failure: %+v, want not ok, 1 pending, 1 failure, a next attempt", st)
	}
	stop()

	b2 := &dashboardtest.Bus{}
	n2 := mustNew(t, Config{Bus: b2, DataDir: dir, File: file, afterAttempt: hook})
	publish(t, b2, alert) // the retained alert, replayed at subscription
	stop2 := start(t, n2)
	r := next(t, got)
	if err := <-attempts; err != nil {
		t.Fatalf("attempt after the restart: %v", err)
	}
	if !bytes.Contains(r.body, []byte(`"event":"raised"`)) {
		t.Errorf("delivered %s, want the raise", r.body)
	}
	stop2()

	n3 := mustNew(t, Config{Bus: &dashboardtest.Bus{}, DataDir: dir, File: file})
	defer n3.Close()
	if st := n3.Status()[0]; st.Pending != 0 {
		t.Errorf("after delivery and another restart: %d pending, want 0", st.Pending)
	}
	select {
	case r := <-got:
		t.Errorf("a second delivery: %s", r.body)
	default:
	}
}

// fakeSender fails its first fails attempts and records when each was made.
type fakeSender struct {
	mu       sync.Mutex
	fails    int
	attempts []time.Time
	notes    []Notification
}

func (f *fakeSender) Send(_ context.Context, n Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, time.Now())
	if len(f.attempts) <= f.fails {
		return errors.New("answered 503 Service Unavailable")
	}
	f.notes = append(f.notes, n)
	return nil
}

func (f *fakeSender) delivered() []Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Notification(nil), f.notes...)
}

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

func TestRetryWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{fails: 3}
		b := &dashboardtest.Bus{}
		n := mustNew(t, Config{Bus: b, DataDir: t.TempDir(), senders: map[string]sender{"hook": fs},
			File: File{Targets: map[string]Target{"hook": {Type: TypeWebhook, URL: "http://127.0.0.1:1/"}}}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- n.Run(ctx) }()
		begin := time.Now()
		publish(t, b, tempAlert(begin, false))
		synctest.Wait()
		st := n.Status()[0]
		if fs.count() != 1 || st.OK || st.Failures != 1 || st.LastError != "answered 503 Service Unavailable" ||
			st.NextAttemptAt == nil || !st.NextAttemptAt.Equal(begin.Add(RetryBase)) {
			t.Fatalf("after the first attempt: %d attempts, status %+v; want 1, failing, next in %v", fs.count(), st, RetryBase)
		}
		for _, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
			time.Sleep(wait - time.Millisecond)
			synctest.Wait()
			before := fs.count()
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if fs.count() != before+1 {
				t.Fatalf("%v after the last attempt: %d attempts, want %d", wait, fs.count(), before+1)
			}
		}
		want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second}
		fs.mu.Lock()
		attempts := fs.attempts
		fs.mu.Unlock()
		for i, at := range attempts {
			if at.Sub(begin) != want[i] {
				t.Errorf("attempt %d at +%v, want +%v", i+1, at.Sub(begin), want[i])
			}
		}
		if st := n.Status()[0]; !st.OK || st.Pending != 0 || st.Failures != 0 || st.LastDeliveredAt == nil {
			t.Errorf("after delivery: %+v, want ok, nothing pending", st)
		}
		if notes := fs.delivered(); len(notes) != 1 || notes[0].Event != EventRaised {
			t.Errorf("delivered %+v, want one raise", notes)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		n.Close()
	})
}

func TestRepeatAndQuietHours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		b := &dashboardtest.Bus{}
		// The bubble's clock starts at midnight UTC: quiet until 01:00.
		n := mustNew(t, Config{Bus: b, DataDir: t.TempDir(), senders: map[string]sender{"hook": fs}, Location: time.UTC,
			File: File{
				Targets:    map[string]Target{"hook": {Type: TypeWebhook, URL: "http://127.0.0.1:1/"}},
				Repeat:     Duration(2 * time.Hour),
				QuietHours: &QuietHours{From: "23:00", To: "01:00"},
			}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- n.Run(ctx) }()
		warn := tempAlert(time.Now(), false)
		warn.Severity = topics.SeverityWarning
		publish(t, b, warn)
		synctest.Wait()
		if fs.count() != 0 || !n.QuietNow() {
			t.Fatalf("a warning in quiet hours: %d sent, quiet %v; want it held", fs.count(), n.QuietNow())
		}
		time.Sleep(time.Hour + DefaultTick)
		synctest.Wait()
		if fs.count() != 1 || fs.delivered()[0].Event != EventRaised {
			t.Fatalf("after quiet hours: %d sent, want the held raise", fs.count())
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if fs.count() != 2 || fs.delivered()[1].Event != EventReminder {
			t.Fatalf("2 h later: %d sent, want a reminder", fs.count())
		}
		cancel()
		<-done
		n.Close()
	})
}

// An alert an operator holds back (acknowledged, silenced, in maintenance) is not notified
// while it is held; released while still raised, the next tick sends it.
func TestHeldAlertsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		b := &dashboardtest.Bus{}
		var held atomic.Bool
		held.Store(true)
		n := mustNew(t, Config{Bus: b, DataDir: t.TempDir(), senders: map[string]sender{"hook": fs}, Location: time.UTC,
			Held: func(a topics.Alert) bool { return held.Load() && a.Rule == "temp_high" },
			File: File{Targets: map[string]Target{"hook": {Type: TypeWebhook, URL: "http://127.0.0.1:1/"}}}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- n.Run(ctx) }()
		publish(t, b, tempAlert(time.Now(), false))
		synctest.Wait()
		time.Sleep(3 * DefaultTick)
		synctest.Wait()
		if fs.count() != 0 {
			t.Fatalf("a held alert was notified %d times", fs.count())
		}
		held.Store(false)
		time.Sleep(DefaultTick)
		synctest.Wait()
		if fs.count() != 1 || fs.delivered()[0].Event != EventRaised {
			t.Fatalf("released: %d sent, want the raise", fs.count())
		}
		cancel()
		<-done
		n.Close()
	})
}
