package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

func persistent(o *paho.ClientOptions) { o.SetCleanSession(false) }

// resumeV5 sends an MQTT 5 CONNECT for a persistent session (expiry 1 h) and returns the
// CONNACK's reason code.
func resumeV5(t *testing.T, addr, id, user, pass string) byte {
	t.Helper()
	props := []byte{0x11, 0, 0, 0x0e, 0x10} // session expiry interval: 3600 s
	header := [][]byte{str("MQTT"), {5, 0x80 | 0x40, 0, 60}, varint(len(props)), props}
	conn := rawConnectBytes(t, addr, packet(0x10, append(header, str(id), str(user), str(pass))...))
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	head := make([]byte, 2)
	if _, err := io.ReadFull(conn, head); err != nil || head[0] != 0x20 {
		t.Fatalf("no MQTT 5 CONNACK: % x %v", head, err)
	}
	body := make([]byte, head[1])
	if _, err := io.ReadFull(conn, body); err != nil || len(body) < 2 {
		t.Fatalf("short MQTT 5 CONNACK: % x %v", body, err)
	}
	return body[1]
}

// TestRestoredSessionsKeepTheirOwner restarts the broker on the same data directory with
// persistent sessions on disk and messages queued for them after the restart. Each session
// stays its owner's: another user presenting its client id is refused, on MQTT 3.1.1 and 5,
// and gets nothing queued for it; the owner resumes it and receives what was queued while it
// was away, a Pi's LED command included.
func TestRestoredSessionsKeepTheirOwner(t *testing.T) {
	dir, users := t.TempDir(), testUsers(t)
	b1 := newBroker(t, dir, users, true)
	flows := mustDial(t, b1, "flows", "auto", persistent)
	flows.subscribe(t, topics.ButtonTopic("r1", macA))
	flows.Disconnect(0)
	agent := mustDial(t, b1, macA, macA, persistent)
	agent.subscribe(t, topics.LEDTopic(macA))
	agent.Disconnect(0)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := newBroker(t, dir, users, true)
	press := `{"v":1,"press":"short","seq":1,"ts":"2026-12-03T07:00:00Z"}`
	led := `{"action":"blink","count":3,"period_ms":100}`
	for _, m := range []bus.Message{
		{Topic: topics.ButtonTopic("r1", macA), Payload: []byte(press), QoS: 1},
		{Topic: topics.LEDTopic(macA), Payload: []byte(led), QoS: 1},
	} {
		if err := b2.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	for _, user := range []string{"viewer", "plug", "admin"} {
		if _, err := dial(t, b2, "flows", user, password, persistent); !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
			t.Errorf("%s took the restored session of flows (MQTT 3.1.1): %v", user, err)
		}
		if code := resumeV5(t, b2.Addr(), "flows", user, password); code != 0x85 {
			t.Errorf("%s connecting as flows over MQTT 5: CONNACK reason %#x, want 0x85 (client identifier not valid)", user, code)
		}
	}

	flows = mustDial(t, b2, "flows", "auto", persistent)
	if m := flows.next(t); m.Topic() != topics.ButtonTopic("r1", macA) || string(m.Payload()) != press {
		t.Errorf("the owner resumed flows and got %s %q, want the press queued after the restart", m.Topic(), m.Payload())
	}
	agent = mustDial(t, b2, macA, macA, persistent)
	if m := agent.next(t); m.Topic() != topics.LEDTopic(macA) || string(m.Payload()) != led {
		t.Errorf("the Pi came back and got %s %q, want the LED command queued after the restart", m.Topic(), m.Payload())
	}
}

// rawConnectBytes dials addr and sends b.
func rawConnectBytes(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	return conn
}
