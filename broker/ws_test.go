package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/pirack/pirack/topics"
)

// dialWS connects a paho client over WebSocket.
func dialWS(t *testing.T, b *Broker, id, user, pass string, opts ...clientOpt) (*client, error) {
	t.Helper()
	return dialURL(t, "ws://"+b.WSAddr()+"/mqtt", nil, id, user, pass, opts...)
}

// dialURL connects a paho client to url, with tlsConfig for a TLS scheme (wss://).
func dialURL(t *testing.T, url string, tlsConfig *tls.Config, id, user, pass string, opts ...clientOpt) (*client, error) {
	t.Helper()
	c := &client{msgs: make(chan paho.Message, 100), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker(url).
		SetTLSConfig(tlsConfig).
		SetClientID(id).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect %s to %s: no CONNACK within %v", id, url, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// checkAcrossTransports checks that an agent on TCP reaches browser (a viewer subscribed to
// everything, connected over the transport under test), that an automation connected with dial
// reaches the agent, and that the same ACL holds: the viewer's publish is dropped. over names
// the transport in failures.
func checkAcrossTransports(t *testing.T, b *Broker, browser *client, over string, dial func(id, user, pass string) (*client, error)) {
	t.Helper()
	agent := mustDial(t, b, macA, macA)
	agent.subscribe(t, topics.LEDTopic(macA))
	agent.publish(t, topics.MetricsTopic("r1", macA), 1, false, valid(topics.MetricsTopic("r1", macA), "m"))
	if m := browser.next(t); m.Topic() != topics.MetricsTopic("r1", macA) {
		t.Fatalf("browser got %s", m.Topic())
	}
	nodeRed, err := dial("node-red", "auto", password)
	if err != nil {
		t.Fatalf("automation over %s: %v", over, err)
	}
	nodeRed.publish(t, topics.LEDTopic(macA), 1, false, "blink")
	if m := agent.next(t); string(m.Payload()) != "blink" { // a plain word is a valid command
		t.Fatalf("agent got %q", m.Payload())
	}
	browser.publish(t, topics.LEDTopic(macA), 1, false, "blink 3") // a viewer's: dropped
	browser.barrier(t)
	nodeRed.publish(t, topics.LEDTopic(macA), 1, false, "blink 2")
	if m := agent.next(t); string(m.Payload()) != "blink 2" {
		t.Fatalf("agent got %q, want the automation's second command", m.Payload())
	}
}

func wsBroker(t *testing.T, mods ...func(*Config)) *Broker {
	return newBroker(t, t.TempDir(), testUsers(t), true, append([]func(*Config){func(c *Config) { c.WSAddr = "127.0.0.1:0" }}, mods...)...)
}

func TestWebSocket(t *testing.T) {
	b := wsBroker(t)
	if b.WSAddr() == "" || b.WSAddr() == b.Addr() {
		t.Fatalf("listeners: tcp %q, ws %q", b.Addr(), b.WSAddr())
	}
	// Keepalive 0: no deadline at all, which the WebSocket connection must pass on as such.
	browser, err := dialWS(t, b, "browser", "viewer", password, withKeepAlive(0))
	if err != nil {
		t.Fatalf("viewer over WebSocket: %v", err)
	}
	browser.subscribe(t, topics.AllFilter)

	// An agent on TCP reaches the browser on WebSocket, and back the other way.
	checkAcrossTransports(t, b, browser, "WebSocket", func(id, user, pass string) (*client, error) {
		return dialWS(t, b, id, user, pass)
	})

	// The same authentication.
	for _, tc := range []struct {
		name, id, user, pass string
		want                 error
	}{
		{"wrong password", "x", "admin", "wrong-password", pahopackets.ErrorRefusedBadUsernameOrPassword},
		{"no credentials", "x", "", "", pahopackets.ErrorRefusedNotAuthorised},
		{"agent with another client id", "pi", macA, password, pahopackets.ErrorRefusedIDRejected},
		{"client id with a slash", "a/b", "admin", password, pahopackets.ErrorRefusedIDRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dialWS(t, b, tc.id, tc.user, tc.pass); !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
}

// A WebSocket that upgrades and then sends no CONNECT is closed after ConnectTimeout, and so
// is an HTTP connection that never finishes its request; a text frame ends the connection.
func TestWebSocketDeadlines(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := wsBroker(t, func(c *Config) { c.ConnectTimeout = timeout })

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.WSAddr()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	start := time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	if _, _, err := ws.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent WebSocket: %v, want closed by the broker", err)
	}
	if d := time.Since(start); d < timeout*8/10 {
		t.Errorf("closed after %v, before the %v timeout", d, timeout)
	}

	conn, err := net.Dial("tcp", b.WSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil { // and no more
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadAll(conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a half-sent HTTP request kept its connection")
	}

	text, _, err := websocket.DefaultDialer.Dial("ws://"+b.WSAddr()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	if err := text.WriteMessage(websocket.TextMessage, connectPacket{id: "t", user: "admin", pass: password}.bytes()); err != nil {
		t.Fatal(err)
	}
	_ = text.SetReadDeadline(time.Now().Add(wait))
	if _, msg, err := text.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("CONNECT in a text frame: got % x, %v; want the connection closed", msg, err)
	}
}

// WebSocket connections still in their TLS or HTTP handshake count towards MaxPending.
func TestWebSocketPending(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*testing.T, *Config)
		addr   func(*Broker) string
	}{
		{"ws", func(_ *testing.T, c *Config) { c.WSAddr = "127.0.0.1:0" }, (*Broker).WSAddr},
		{"wss", func(t *testing.T, c *Config) {
			c.TLS = serverTLS(t, newTestCA(t, "pirack test CA"))
			c.WSSAddr = "127.0.0.1:0"
		}, (*Broker).WSSAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) {
				tc.config(t, c)
				c.MaxPending = 2
				c.ConnectTimeout = time.Minute
			})
			accepted := make(chan net.Conn, 10)
			b.afterAccept = func(c net.Conn) { accepted <- c }
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				conn, err := net.Dial("tcp", tc.addr(b))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				select {
				case <-accepted:
				case <-time.After(wait):
					t.Fatal("socket not accepted")
				}
			}
			extra, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer extra.Close()
			if got := readUntilClosed(t, extra); len(got) > 0 {
				t.Fatalf("socket over the cap received % x", got)
			}
		})
	}
}
