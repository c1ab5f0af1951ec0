package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// failingSaves is an eventLog whose SaveEvent fails while err is set, recording what it was
// asked and the deadline it was given.
type failingSaves struct {
	eventLog
	mu        sync.Mutex
	err       error
	asked     []history.Event
	deadlines int
}

func (h *failingSaves) SaveEvent(ctx context.Context, e history.Event) error {
	h.mu.Lock()
	h.asked = append(h.asked, e)
	if _, ok := ctx.Deadline(); ok {
		h.deadlines++
	}
	err := h.err
	h.mu.Unlock()
	if err != nil {
		return err
	}
	return h.eventLog.SaveEvent(ctx, e)
}

// TestPressRefusedWhenNotSaved: a QoS 1 press waits for its event to be saved, with a deadline,
// and is refused (an error for the broker, which then does not acknowledge it) when the save
// fails; its redelivery is saved under the same key, once, without selecting the Pi again. A
// QoS 0 press has no acknowledgement to hold: its event is only queued.
func TestPressRefusedWhenNotSaved(t *testing.T) {
	h := &failingSaves{err: errors.New("database or disk is full")}
	f := newFixture(t, func(c *Config) { c.History = h })
	f.rack.savePresses = true // as on the embedded broker (dashboardtest.Bus cannot withhold a PUBACK)
	msg := func(seq uint64, qos byte) bus.Message {
		b, _ := json.Marshal(press(seq))
		return bus.Message{Topic: topics.ButtonTopic(rowA, macA), Payload: b, QoS: qos}
	}

	err := f.rack.ingest(msg(1, 1))
	if err == nil || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("ingest of a press not saved: %v, want the save's error", err)
	}
	if st := f.rack.Stats(); st.PressesRefused != 1 {
		t.Errorf("PressesRefused %d, want 1", st.PressesRefused)
	}
	if !strings.Contains(f.logs.String(), "button press not saved to the event log") {
		t.Errorf("refusal not logged:\n%s", f.logs)
	}
	// The rack shows the press at once; the agent sends it again.
	if n := f.rack.Nodes(); len(n) != 1 || !n[0].Selected {
		t.Errorf("nodes %+v, want the Pi selected", n)
	}
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
	if err := f.rack.ingest(msg(1, 1)); err != nil {
		t.Fatalf("redelivery once saves work: %v", err)
	}
	if err := f.rack.ingest(msg(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.rack.ingest(msg(2, 0)); err != nil {
		t.Fatalf("QoS 0 press: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.asked) != 3 || h.deadlines != 3 {
		t.Fatalf("SaveEvent called %d times (%d with a deadline), want 3, all bounded", len(h.asked), h.deadlines)
	}
	if got := h.eventLog.events[len(h.eventLog.events)-1]; got.Key == "" || got.Key == h.asked[0].Key {
		t.Errorf("queued QoS 0 press has key %q: want its own", got.Key)
	}
	if k := h.asked[0].Key; k == "" || k != h.asked[1].Key || h.asked[0].Kind != history.EventButton {
		t.Errorf("keys %q and %q: want the same, non-empty, for a press sent again", k, h.asked[1].Key)
	}
	if got := h.kinds(history.EventButton); len(got) != 2 {
		t.Errorf("button events %q, want press 1 once (saved) and press 2 (queued)", got)
	}
	if got := h.kinds(history.EventSelect); len(got) != 1 {
		t.Errorf("select events %q, want 1: a redelivery does not select again", got)
	}
}
