package broker

import (
	"context"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// TestSessionExpiryByRole: a viewer's disconnected persistent session is kept a day, an
// automation's and an agent's SessionExpiry (7 days): past its role's expiry a session is gone
// with its subscriptions and queued messages, in memory and in broker.db, while the others
// still get what was queued for them.
func TestSessionExpiryByRole(t *testing.T) {
	dir, users := t.TempDir(), testUsers(t)
	b := newBroker(t, dir, users, true)
	button := topics.ButtonTopic("r1", macA)
	for _, s := range []struct{ id, user, filter string }{
		{"watch", "viewer", topics.AllFilter},
		{"flows", "auto", button},
		{macA, macA, topics.LEDTopic(macA)},
	} {
		c := mustDial(t, b, s.id, s.user, persistent)
		c.subscribe(t, s.filter)
		c.Disconnect(0)
		awaitOffline(t, b, s.id)
	}
	press := valid(button, "queued")
	for _, m := range []bus.Message{
		{Topic: button, Payload: []byte(press), QoS: 1},
		{Topic: topics.LEDTopic(macA), Payload: []byte("blink 2"), QoS: 1},
	} {
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	if n := b.expireSessions(time.Now().Add(23 * time.Hour)); n != 0 {
		t.Fatalf("%d sessions expired after 23 h, want none", n)
	}
	if n := b.expireSessions(time.Now().Add(25 * time.Hour)); n != 1 {
		t.Fatalf("%d sessions expired after 25 h, want the viewer's", n)
	}
	if _, ok := b.srv.Clients.Get("watch"); ok {
		t.Fatal("the viewer's session is still in the broker after its expiry")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart: the viewer's session is not restored; the others are, queues included.
	b = newBroker(t, dir, users, true)
	conn := rawConnect(t, b.Addr(), connectPacket{id: "watch", user: "viewer", pass: password, persistent: true})
	if got := readN(t, conn, 4); got[2] != 0 {
		t.Errorf("CONNACK % x: the expired viewer session came back (session present)", got)
	}
	flows := mustDial(t, b, "flows", "auto", persistent)
	if m := flows.next(t); string(m.Payload()) != press {
		t.Errorf("automation got %q, want the press queued before the viewer's session expired", m.Payload())
	}
	agent := mustDial(t, b, macA, macA, persistent)
	if m := agent.next(t); string(m.Payload()) != "blink 2" {
		t.Errorf("agent got %q, want its queued command", m.Payload())
	}
}
