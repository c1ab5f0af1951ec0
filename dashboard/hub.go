package dashboard

import (
	"errors"
	"sync"
	"time"
)

// errHubClosed is returned by subscribe once the server is shutting down.
var errHubClosed = errors.New("dashboard is shutting down")

// defaultMaxPending is how many distinct nodes may wait to be sent to one live client. Updates
// to the same node coalesce, so only a client that is far behind on a large rack reaches it; it
// is dropped, and its EventSource reconnects and starts again from a snapshot.
const defaultMaxPending = 1024

// metricsCoalesce is how long a live client lets metrics-only changes gather before it writes
// them: at 1,000 Pis every 5 s, one write of up to 20 nodes every 100 ms instead of 200 writes
// a second, and a tile's numbers are at most 0.1 s later on screen. Every other change (a
// press, a status, an LED, an alert, the layout) is written at once, with what is pending.
const metricsCoalesce = 100 * time.Millisecond

// hub fans state changes out to live (SSE) clients. It carries only MACs: the writer reads the
// node's current state when it sends, so updates coalesce and can never arrive out of order.
// notify runs inside ingestion and never blocks.
type hub struct {
	maxPending int

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	dropped uint64
}

// client is one live subscriber's queue: an ordered set of MACs that changed since it last sent.
type client struct {
	wake chan struct{} // capacity 1: "pending is not empty"
	done chan struct{} // closed when the client is dropped or the hub closes

	mu      sync.Mutex
	pending []string
	queued  map[string]bool
	urgent  bool      // something pending must be written at once
	since   time.Time // when pending became non-empty
}

func newHub(maxPending int) *hub {
	return &hub{maxPending: maxPending, clients: make(map[*client]struct{})}
}

// subscribe registers a client. Register before taking the snapshot, so no change between the
// two is lost (at worst a node is sent twice).
func (h *hub) subscribe() (*client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), queued: make(map[string]bool)}
	h.clients[c] = struct{}{}
	return c, nil
}

// unsubscribe removes a client; it is safe to call more than once.
func (h *hub) unsubscribe(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.done)
	}
}

// notify queues mac for every client, to be written at once, dropping the clients whose queue
// is full.
func (h *hub) notify(mac string) { h.notifyAt(mac, true) }

// notifyMetrics queues mac for a change of its numbers only, written within metricsCoalesce.
func (h *hub) notifyMetrics(mac string) { h.notifyAt(mac, false) }

func (h *hub) notifyAt(mac string, urgent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if !c.queue(mac, h.maxPending, urgent) {
			delete(h.clients, c)
			close(c.done)
			h.dropped++
		}
	}
}

// close drops every client and refuses new ones, so that SSE handlers return and a graceful
// shutdown does not wait for streams that never end.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		close(c.done)
	}
}

func (h *hub) stats() (clients int, dropped uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients), h.dropped
}

// queue adds mac unless it is already waiting. It reports false when the queue is full.
// The writer is woken by an urgent change, or by the first change of a batch (it then waits
// out metricsCoalesce, see due).
func (c *client) queue(mac string, max int, urgent bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := len(c.pending) == 0
	if !c.queued[mac] {
		if len(c.pending) >= max {
			return false
		}
		c.queued[mac] = true
		c.pending = append(c.pending, mac)
	}
	if first {
		c.since = time.Now()
	}
	if urgent {
		c.urgent = true
	} else if !first {
		return true // the writer knows, and waits for the batch
	}
	select {
	case c.wake <- struct{}{}:
	default: // already signalled
	}
	return true
}

// due is how long the writer should wait before taking the queue: zero when something urgent
// is pending or the batch is metricsCoalesce old.
func (c *client) due(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.urgent || len(c.pending) == 0 {
		return 0
	}
	return max(0, metricsCoalesce-now.Sub(c.since))
}

// take returns and empties the queue.
func (c *client) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	macs := c.pending
	c.pending, c.urgent = nil, false
	clear(c.queued)
	return macs
}
