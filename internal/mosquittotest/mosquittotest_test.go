package mosquittotest

import (
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const wait = 10 * time.Second

func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func subscribe(t *testing.T, c paho.Client, filter string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 16)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return ch
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func receive(t *testing.T, ch <-chan paho.Message, topic, payload string) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic() != topic || string(m.Payload()) != payload {
			t.Fatalf("got %s %q, want %s %q", m.Topic(), m.Payload(), topic, payload)
		}
	case <-time.After(wait):
		t.Fatalf("no message on %s within %v", topic, wait)
	}
}

func TestStartRestartStop(t *testing.T) {
	b := Start(t, Options{AllowAnonymous: true})
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") {
		t.Fatalf("URL %s", b.URL())
	}
	c := connect(t, b.URL(), "one")
	ch := subscribe(t, c, "t/#")
	publish(t, c, "t/a", "1")
	receive(t, ch, "t/a", "1")

	addr := b.Addr()
	b.Restart()
	if b.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", b.Addr(), addr)
	}
	c2 := connect(t, b.URL(), "two") // the same port serves again
	publish(t, c2, "t/b", "2")

	b.Stop()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	b.Stop() // idempotent
	if !strings.Contains(b.Log(), "running") {
		t.Errorf("log lacks mosquitto's start line:\n%s", b.Log())
	}
}

func TestStartRefusesAnonymousByDefault(t *testing.T) {
	b := Start(t, Options{})
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("anon").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait))
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("connect did not finish")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("anonymous client admitted")
	}
}

// Two brokers bridged: a message published on one reaches a subscriber of the other.
func TestBridge(t *testing.T) {
	remote := Start(t, Options{AllowAnonymous: true})
	local := Start(t, Options{AllowAnonymous: true, Bridges: []Bridge{{Name: "to-remote", Addr: remote.Addr(), Topics: []string{"t/# both 1"}}}})
	sub := connect(t, remote.URL(), "sub")
	ch := subscribe(t, sub, "t/#")
	pub := connect(t, local.URL(), "pub")
	// The bridge connects asynchronously: publish until the first message crosses it.
	deadline := time.After(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		publish(t, pub, "t/x", "hello")
		select {
		case m := <-ch:
			if m.Topic() != "t/x" || string(m.Payload()) != "hello" {
				t.Fatalf("got %s %q", m.Topic(), m.Payload())
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatalf("nothing crossed the bridge within %v; local log:\n%s", wait, local.Log())
		}
	}
}
