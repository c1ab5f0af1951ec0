package broker

import (
	"reflect"
	"testing"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// TestInProcessGetsTheDecodedPayload: a client's publish on a topic of the contract reaches
// in-process subscribers with the payload as the contract check decoded it, so that they need
// not decode it again; a retained message delivered at subscription carries none.
func TestInProcessGetsTheDecodedPayload(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	got := make(chan bus.Message, 4)
	if err := b.Subscribe(topics.AllFilter, func(m bus.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	agent := mustDial(t, b, macA, macA)
	payload := `{"v":1,"seq":7,"ts":"2026-12-03T07:00:00Z","load_1":0.5}`
	agent.publish(t, topics.MetricsTopic("r1", macA), 1, true, payload)
	m := <-got
	want, err := topics.DecodeMetrics([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := m.Decoded.(topics.Metrics); !ok || !reflect.DeepEqual(d, want) {
		t.Errorf("Decoded = %#v, want %#v", m.Decoded, want)
	}
	if err := b.Subscribe(topics.AllFilter, func(m bus.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if m := <-got; !m.Retained || m.Decoded != nil {
		t.Errorf("retained delivery: Retained %v, Decoded %#v: want a retained message without a decoded value", m.Retained, m.Decoded)
	}
}
