package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// sseEvent is one parsed Server-Sent Event; a comment line is an event named ":".
type sseEvent struct {
	name string
	data string
}

// stream reads SSE events from an open response in a goroutine of its own.
type stream struct {
	events chan sseEvent
}

func openStream(t *testing.T, ctx context.Context, url string) *stream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("viewer", "viewer-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /api/events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{events: make(chan sseEvent, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, ":"):
				s.events <- sseEvent{name: ":"}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				s.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	return s
}

// next returns the next event other than heartbeats, failing after a timeout.
func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev.name != ":" {
				return ev
			}
		case <-timeout:
			t.Fatal("no event within 5s")
		}
	}
}

// snapshot reads what a new stream starts with: every node, the broker's state, then every
// row.
func (s *stream) snapshot(t *testing.T) ([]Node, []Row) {
	t.Helper()
	nodes := decodeAs[[]Node](t, s.next(t), "snapshot")
	if b := decodeAs[Broker](t, s.next(t), brokerKey); b.Lost {
		t.Fatalf("the stream starts with the broker lost (%+v), and no Hearing said so", b)
	}
	return nodes, decodeAs[[]Row](t, s.next(t), "rows")
}

func decodeAs[T any](t *testing.T, ev sseEvent, name string) T {
	t.Helper()
	if ev.name != name {
		t.Fatalf("event %q (%s), want %q", ev.name, ev.data, name)
	}
	var v T
	if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
		t.Fatalf("event %s data %q: %v", name, ev.data, err)
	}
	return v
}

func TestEventsLateJoiner(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)

	early := openStream(t, t.Context(), ts.URL)
	if nodes, rows := early.snapshot(t); len(nodes) != 0 || len(rows) != 0 {
		t.Fatalf("first snapshot = %+v, want empty", nodes)
	}
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	if n := decodeAs[Node](t, early.next(t), "node"); n.MAC != macA || n.State != StateOnline {
		t.Fatalf("early client got %+v", n)
	}

	// A client that joins now first gets the whole rack, then live changes.
	late := openStream(t, t.Context(), ts.URL)
	nodes, _ := late.snapshot(t)
	if len(nodes) != 1 || nodes[0].Hostname != "pi-a" {
		t.Fatalf("late snapshot = %+v", nodes)
	}
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(9, 1.5))
	n := decodeAs[Node](t, late.next(t), "node")
	if n.MAC != macA || n.Metrics == nil || n.Metrics.Seq != 9 {
		t.Fatalf("late client got %+v", n)
	}
	if n := decodeAs[Node](t, early.next(t), "node"); n.Metrics == nil || n.Metrics.Seq != 9 {
		t.Fatalf("early client got %+v", n)
	}

	// An operator's clear reaches live clients too.
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	if n := decodeAs[Node](t, late.next(t), "node"); !n.Selected {
		t.Fatalf("press: %+v", n)
	}
	f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw"))
	if n := decodeAs[Node](t, late.next(t), "node"); n.Selected {
		t.Fatalf("clear: %+v", n)
	}
}

func TestEventsHeartbeat(t *testing.T) {
	f := newFixture(t)
	f.srv.heartbeat = 10 * time.Millisecond
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)
	s := openStream(t, t.Context(), ts.URL)
	s.snapshot(t)
	select {
	case ev := <-s.events:
		if ev.name != ":" {
			t.Errorf("got %+v, want a heartbeat comment", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
}

func TestEventsHandlerReturnsWhenClientLeaves(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(t.Context())
	s := openStream(t, ctx, ts.URL)
	s.snapshot(t)
	if got := f.rack.Stats().SSEClients; got != 1 {
		t.Fatalf("SSEClients = %d, want 1", got)
	}
	cancel()
	// ts.Close waits for handlers; it returning at all proves the handler ended.
	ts.Close()
	if got := f.rack.Stats().SSEClients; got != 0 {
		t.Errorf("SSEClients = %d after the client left, want 0", got)
	}
}

func TestHubCoalescesAndDropsSlowClients(t *testing.T) {
	h := newHub(3)
	c, err := h.subscribe()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		h.notify(macA)
	}
	h.notify(macB)
	if got := c.take(); len(got) != 2 || got[0] != macA || got[1] != macB {
		t.Errorf("take = %q, want [%s %s] coalesced in order", got, macA, macB)
	}
	select {
	case <-c.wake:
	default:
		t.Error("no wake-up signalled")
	}

	for _, mac := range []string{"000000000001", "000000000002", "000000000003"} {
		h.notify(mac)
	}
	select {
	case <-c.done:
		t.Fatal("dropped at the limit, before overflowing")
	default:
	}
	h.notify("000000000004")
	select {
	case <-c.done:
	default:
		t.Fatal("a client with a full queue was not dropped")
	}
	if clients, dropped := h.stats(); clients != 0 || dropped != 1 {
		t.Errorf("stats = %d clients, %d dropped; want 0, 1", clients, dropped)
	}
	h.unsubscribe(c) // after a drop: must not panic on a closed channel
}

func TestHubClose(t *testing.T) {
	h := newHub(10)
	c, _ := h.subscribe()
	h.close()
	select {
	case <-c.done:
	default:
		t.Error("close did not end the client")
	}
	if _, err := h.subscribe(); err == nil {
		t.Error("subscribe after close succeeded")
	}
}

func TestServeShutsDownWithOpenStreams(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()

	s := openStream(t, t.Context(), "http://"+ln.Addr().String())
	s.snapshot(t)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(shutdownTimeout - time.Second):
		t.Fatal("Serve did not return: an open event stream held up the shutdown")
	}
	for range s.events { // the stream ends
	}
}

func TestNewRequiresBusAndAuth(t *testing.T) {
	if _, err := New(Config{Auth: testUsers}); err == nil {
		t.Error("New without Bus succeeded")
	}
	f := newFixture(t)
	if _, err := New(Config{Bus: f.bus}); err == nil {
		t.Error("New without Auth succeeded")
	}
}

// A control center that loses its broker says so on the live stream, from the snapshot on and
// when it changes; the tiles are not made stale by the silence.
func TestStreamSaysWhenTheBrokerIsLost(t *testing.T) {
	hearing := new(presence.Hearing)
	f := newFixture(t, func(c *Config) { c.Hearing = hearing })
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s1"))
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(1, 0.5))

	lost := f.clock.Now()
	hearing.Lost(lost)
	st := openStream(t, t.Context(), ts.URL)
	decodeAs[[]Node](t, st.next(t), "snapshot")
	if b := decodeAs[Broker](t, st.next(t), brokerKey); !b.Lost || !b.Since.Equal(lost) {
		t.Fatalf("snapshot's broker state %+v, want lost since %v", b, lost)
	}
	decodeAs[[]Row](t, st.next(t), "rows")

	f.clock.Advance(time.Hour)
	f.rack.tick()
	if n, _ := f.rack.node(macA); n.State != StateOnline {
		t.Errorf("an hour without hearing the broker: the Pi shows %s, want online as last heard", n.State)
	}
	hearing.Back(f.clock.Now())
	f.rack.tick()
	// The first tick's event may show it still lost, if the stream sent it before the return.
	for b := decodeAs[Broker](t, st.next(t), brokerKey); b.Lost; b = decodeAs[Broker](t, st.next(t), brokerKey) {
	}
}
