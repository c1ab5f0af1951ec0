package broker

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// TestRefusedDeliveryNotAcknowledged: a QoS 1 publish that an in-process subscriber refuses
// (SubscribeChecked returning an error, as the dashboard does for a press it could not save)
// gets no PUBACK; its connection is closed, without the Will, so the client sends it again
// after reconnecting, and then it is acknowledged. A refused QoS 0 publish changes nothing.
func TestRefusedDeliveryNotAcknowledged(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	var refuse atomic.Bool
	var mu sync.Mutex
	var presses, statuses []string
	if err := b.SubscribeChecked(topics.ButtonTopic("+", "+"), func(m bus.Message) error {
		mu.Lock()
		presses = append(presses, string(m.Payload))
		mu.Unlock()
		if refuse.Load() {
			return errors.New("disk full")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(topics.StatusTopic("+", "+"), func(m bus.Message) {
		mu.Lock()
		statuses = append(statuses, string(m.Payload))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	agent := connectPacket{id: macA, user: macA, pass: password, persistent: true,
		will: topics.StatusTopic("r1", macA), willPayload: "offline"}
	button := topics.ButtonTopic("r1", macA)
	press := publishPacket(button, 1, valid(button, "press-1"))
	puback := []byte{0x40, 2, 0, 1}

	refuse.Store(true)
	conn := rawConnect(t, b.Addr(), agent)
	expectConnack(t, conn, 0)
	// QoS 0: nothing to withhold; the connection stays (a PINGREQ is answered).
	if _, err := conn.Write(append(publishPacket(button, 0, valid(button, "press-0")), 0xc0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, conn, 2); !bytes.Equal(got, []byte{0xd0, 0}) {
		t.Fatalf("after a refused QoS 0 publish: % x, want PINGRESP", got)
	}
	if _, err := conn.Write(press); err != nil {
		t.Fatal(err)
	}
	if got := readUntilClosed(t, conn); len(got) != 0 {
		t.Fatalf("refused QoS 1 publish answered with % x, want nothing and a closed connection", got)
	}

	// Sent again on the next connection, it is acknowledged once the subscriber takes it.
	refuse.Store(false)
	conn = rawConnect(t, b.Addr(), agent)
	if got := readN(t, conn, 4); !bytes.Equal(got, []byte{0x20, 2, 1, 0}) {
		t.Fatalf("CONNACK % x, want the session present", got)
	}
	again := bytes.Clone(press)
	again[0] |= 0x08 // DUP
	if _, err := conn.Write(again); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, conn, 4); !bytes.Equal(got, puback) {
		t.Fatalf("publish sent again: % x, want PUBACK % x", got, puback)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{valid(button, "press-0"), valid(button, "press-1"), valid(button, "press-1")}; !equal(presses, want) {
		t.Errorf("subscriber saw %q, want %q", presses, want)
	}
	if len(statuses) != 0 {
		t.Errorf("statuses %q published: the Will must not be sent for a refused publish", statuses)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
