package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// Raw MQTT 3.1.1 packets, built by hand so that tests can get them wrong on purpose.

// varint encodes an MQTT remaining length.
func varint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// str encodes an MQTT string (or binary field): two length bytes, then s.
func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// packet builds a packet from its first byte and its body.
func packet(first byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	return append(append([]byte{first}, varint(len(b))...), b...)
}

// connectPacket is a CONNECT packet's fields.
type connectPacket struct {
	id, user, pass      string
	will, willPayload   string
	persistent          bool   // CleanSession=0
	name                string // protocol name; "" means MQTT
	level               byte   // protocol level; 0 means 4
	reserved            bool   // set the reserved flag
	noUser, noPass      bool
	keepalive           uint16 // 0 means 60
	truncateAfterHeader bool
}

func (c connectPacket) bytes() []byte {
	name, level, keepalive := c.name, c.level, c.keepalive
	if name == "" {
		name = "MQTT"
	}
	if level == 0 {
		level = 4
	}
	if keepalive == 0 {
		keepalive = 60
	}
	var flags byte
	payload := [][]byte{str(c.id)}
	if !c.persistent {
		flags |= 0x02
	}
	if c.will != "" {
		flags |= 0x04 | 1<<3 | 0x20 // Will, QoS 1, retained
		payload = append(payload, str(c.will), str(c.willPayload))
	}
	if c.user != "" && !c.noUser {
		flags |= 0x80
		payload = append(payload, str(c.user))
	}
	if c.pass != "" && !c.noPass {
		flags |= 0x40
		payload = append(payload, str(c.pass))
	}
	if c.reserved {
		flags |= 0x01
	}
	header := [][]byte{str(name), {level, flags, byte(keepalive >> 8), byte(keepalive)}}
	return packet(0x10, append(header, payload...)...)
}

func publishPacket(topic string, qos byte, payload string) []byte {
	body := [][]byte{str(topic)}
	if qos > 0 {
		body = append(body, []byte{0, 1})
	}
	body = append(body, []byte(payload))
	return packet(0x30|qos<<1, body...)
}

func subscribePacket(filter string) []byte {
	return packet(0x82, []byte{0, 1}, str(filter), []byte{1})
}

// rawConnect dials addr and sends c's CONNECT packet.
func rawConnect(t testing.TB, addr string, c connectPacket) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(c.bytes()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// expectConnack reads a CONNACK and fails unless its return code is code.
func expectConnack(t testing.TB, conn net.Conn, code byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	got := make([]byte, 4)
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if want := []byte{0x20, 2, 0, code}; !bytes.Equal(got, want) {
		t.Fatalf("CONNACK % x, want % x", got, want)
	}
	_ = conn.SetReadDeadline(time.Time{})
}

// readUntilClosed returns what the broker sends until it closes the connection, failing the
// test if it is still open after wait.
func readUntilClosed(t testing.TB, conn net.Conn) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %v; received % x", wait, got)
	}
	return got
}

// safeID makes a client id of a test name.
func safeID(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
}

// checkHealthy proves the broker still serves: a fresh paho client connects, sees exactly the
// retained messages in want (nothing a malformed packet left behind), and gets its own
// publish back.
func checkHealthy(t *testing.T, b *Broker, id string, want map[string]string) {
	t.Helper()
	c := mustDial(t, b, id, "admin")
	defer c.Disconnect(0)
	c.subscribe(t, "#")
	c.publish(t, "health/"+id, 1, false, "marker")
	got := map[string]string{}
	for {
		m := c.next(t)
		if m.Topic() == "health/"+id {
			break
		}
		got[m.Topic()] = string(m.Payload())
	}
	if len(got) != len(want) {
		t.Fatalf("retained state changed: got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("retained state changed: got %v, want %v", got, want)
		}
	}
}

func TestMalformedPackets(t *testing.T) {
	b := startBroker(t)
	retained := map[string]string{topics.StatusTopic("r1", macA): "online"}
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.StatusTopic("r1", macA), Payload: []byte("online"), QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
	// A client connected through the whole table must stay connected and keep receiving.
	watcher := mustDial(t, b, "watcher", "admin")
	watcher.subscribe(t, "watch")

	admin := connectPacket{user: "admin", pass: password}
	withID := func(c connectPacket, id string) connectPacket { c.id = id; return c }
	noConnack := -1
	for _, tc := range []struct {
		name string
		// connect, if set, is sent first and must be accepted.
		connect *connectPacket
		send    []byte
		// halfClose ends the stream after send, as a client that dies mid-packet.
		halfClose bool
		// connack is the CONNACK return code expected before the close, or noConnack.
		connack int
	}{
		{name: "truncated CONNECT body", send: packet(0x10, str("MQTT"), []byte{4, 0x02}), connack: noConnack},
		{name: "CONNECT cut short", send: withID(admin, "cut").bytes()[:12], halfClose: true, connack: noConnack},
		{name: "wrong protocol name", send: connectPacket{id: "p1", user: "admin", pass: password, name: "MQTX"}.bytes(), connack: noConnack},
		{name: "protocol level 9", send: connectPacket{id: "p2", user: "admin", pass: password, level: 9}.bytes(), connack: 0x01},
		{name: "reserved CONNECT flag", send: connectPacket{id: "p3", user: "admin", pass: password, reserved: true}.bytes(), connack: noConnack},
		{name: "reserved fixed-header flags", send: append([]byte{0x1f}, withID(admin, "p4").bytes()[1:]...), connack: noConnack},
		{name: "zero-length client id with CleanSession=0", send: connectPacket{user: "admin", pass: password, persistent: true}.bytes(), connack: 0x02},
		{name: "PUBLISH before CONNECT", send: publishPacket("watch", 0, "sneaky"), connack: noConnack},
		{name: "SUBSCRIBE before CONNECT", send: subscribePacket("#"), connack: noConnack},
		{name: "remaining length of 5 bytes", send: []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, connack: noConnack},
		{name: "remaining length of 5 bytes after CONNECT", connect: &admin, send: []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, connack: noConnack},
		{name: "SUBSCRIBE with an empty filter", connect: &admin, send: subscribePacket(""), connack: noConnack},
		{name: "UNSUBSCRIBE with an empty filter", connect: &admin, send: packet(0xa2, []byte{0, 1}, str("")), connack: noConnack},
		{name: "SUBSCRIBE with no filter", connect: &admin, send: packet(0x82, []byte{0, 1}), connack: noConnack},
		{name: "PUBLISH topic with +", connect: &admin, send: publishPacket("watch/+", 1, "x"), connack: noConnack},
		{name: "PUBLISH topic with #", connect: &admin, send: publishPacket("watch/#", 1, "x"), connack: noConnack},
		{name: "PUBLISH topic with NUL", connect: &admin, send: publishPacket("watch\x00", 1, "x"), connack: noConnack},
		{name: "PUBLISH empty topic", connect: &admin, send: publishPacket("", 1, "x"), connack: noConnack},
		{name: "PUBLISH 64 KiB topic", connect: &admin, send: publishPacket(strings.Repeat("w", 65535), 1, "x"), connack: noConnack},
		{name: "PUBLISH invalid UTF-8 topic", connect: &admin, send: publishPacket("watch\xff\xfe", 1, "x"), connack: noConnack},
		{name: "PUBLISH QoS 3", connect: &admin, send: append([]byte{0x36}, publishPacket("watch", 1, "x")[1:]...), connack: noConnack},
		{name: "PUBLISH QoS 1 without packet id", connect: &admin, send: packet(0x32, str("watch")), connack: noConnack},
		{name: "second CONNECT", connect: &admin, send: withID(admin, "again").bytes(), connack: noConnack},
		{name: "reserved packet type 0", connect: &admin, send: []byte{0x00, 0}, connack: noConnack},
		{name: "reserved packet type 15", connect: &admin, send: []byte{0xf0, 0}, connack: noConnack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.connect != nil {
				c := *tc.connect
				c.id = "raw-" + safeID(tc.name)
				if _, err := conn.Write(c.bytes()); err != nil {
					t.Fatal(err)
				}
				expectConnack(t, conn, 0)
			}
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				_ = conn.(*net.TCPConn).CloseWrite()
			}
			got := readUntilClosed(t, conn)
			var want []byte
			if tc.connack != noConnack {
				want = []byte{0x20, 2, 0, byte(tc.connack)}
			}
			if !bytes.Equal(got, want) {
				t.Errorf("received % x before the close, want % x", got, want)
			}
			watcher.expectConnected(t)
			checkHealthy(t, b, "health-"+safeID(tc.name), retained)
		})
	}
	// Nothing a malformed packet carried reached the watcher.
	watcher.publish(t, "watch", 1, false, "end")
	if m := watcher.next(t); string(m.Payload()) != "end" {
		t.Fatalf("watcher received %s %q from a malformed packet", m.Topic(), m.Payload())
	}
}

// Eight unauthenticated sockets each claim a 256 MB CONNECT and trickle bytes: the broker
// closes them on the length alone (MaxPacketSize), without allocating the buffer.
func TestHugePacketMemory(t *testing.T) {
	// A long CONNECT deadline, so that only the packet size limit can close the sockets in time.
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.ConnectTimeout = time.Minute })
	checkHealthy(t, b, "warm-up", nil) // first-use allocations out of the measurement

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const sockets = 8
	header := append([]byte{0x10}, varint(256<<20-1)...) // CONNECT, 256 MiB - 1 to follow: the largest length MQTT can express
	var wg sync.WaitGroup
	errs := make(chan error, sockets)
	for range sockets {
		conn, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := conn.Write(header); err != nil {
				errs <- err
				return
			}
			// Trickle: a few bytes at a time, until the broker hangs up.
			_ = conn.SetDeadline(time.Now().Add(wait))
			buf := make([]byte, 1)
			for range 1000 {
				if _, err := conn.Write([]byte("MQTT")); err != nil {
					return // closed by the broker
				}
				if _, err := conn.Read(buf); err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						errs <- errors.New("a socket claiming 256 MB was still open after " + wait.String())
					}
					return // EOF or reset: closed by the broker
				}
			}
			errs <- errors.New("the broker answered a 256 MB CONNECT")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	runtime.GC()
	runtime.ReadMemStats(&after)
	inuse := int64(after.HeapInuse) - int64(before.HeapInuse)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("HeapInuse %d -> %d KiB (%+d KiB); allocated during the test %d KiB",
		before.HeapInuse>>10, after.HeapInuse>>10, inuse>>10, allocated>>10)
	// TotalAlloc counts what was allocated and freed again too: a buffer allocated for the
	// claimed size would show here even if the GC took it back.
	if allocated > 16<<20 {
		t.Errorf("allocated %d MiB for %d sockets claiming 256 MB each", allocated>>20, sockets)
	}
	if inuse > 4<<20 {
		t.Errorf("heap in use grew by %d MiB", inuse>>20)
	}
	checkHealthy(t, b, "after", nil)
}

// Sockets waiting for their CONNECT are capped: beyond MaxPending a new one is closed at once,
// with a log line, and the broker admits again once they are gone.
func TestMaxPending(t *testing.T) {
	const max = 4
	logs := new(testlog.Buffer)
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) {
		c.MaxPending = max
		c.ConnectTimeout = time.Minute // only the cap may close them
		c.Logger = newBufferLogger(t, logs)
	})
	accepted, released := make(chan net.Conn, 10), make(chan net.Conn, 10)
	b.afterAccept = func(c net.Conn) { accepted <- c }
	b.afterRelease = func(c net.Conn) { released <- c }
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	recv := func(ch chan net.Conn, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(wait):
			t.Fatalf("no socket %s", what)
		}
	}

	var held []net.Conn
	for range max {
		conn, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
		recv(accepted, "accepted")
	}
	extra, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	start := time.Now()
	if got := readUntilClosed(t, extra); len(got) > 0 {
		t.Fatalf("refused socket received % x", got)
	}
	t.Logf("socket over the cap closed after %v", time.Since(start))
	if !strings.Contains(logs.String(), "too many sockets waiting for CONNECT") {
		t.Errorf("no log line for the refused socket:\n%s", logs)
	}
	// A real client is refused too while the cap is reached...
	if _, err := dial(t, b, "root", "admin", password); err == nil {
		t.Fatal("a client connected past MaxPending")
	}
	// ...and admitted once the silent sockets are gone.
	for _, c := range held {
		c.Close()
		recv(released, "released")
	}
	checkHealthy(t, b, "after", nil)
}

// FuzzBrokerPacket writes arbitrary bytes after a valid CONNECT, then checks that the broker
// still serves a fresh client end to end (subscribe, publish, receive).
func FuzzBrokerPacket(f *testing.F) {
	for _, seed := range [][]byte{
		publishPacket("rack/r1/b827eb000001/button", 1, `{"v":1}`),
		subscribePacket("#"),
		subscribePacket(""),
		publishPacket("a/+", 0, "x"),
		publishPacket("a\x00", 0, "x"),
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f},
		{0xc0, 0},                  // PINGREQ
		{0xe0, 0},                  // DISCONNECT
		packet(0x62, []byte{0, 1}), // PUBREL for an unknown id
		connectPacket{id: "again", user: "admin", pass: password}.bytes(), // second CONNECT
	} {
		f.Add(seed)
	}
	b := newBroker(f, f.TempDir(), testUsers(f), true, func(c *Config) { c.Logger = discardLogger() })
	var n int
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		conn := rawConnect(t, b.Addr(), connectPacket{id: "fuzz", user: "admin", pass: password})
		expectConnack(t, conn, 0)
		_, _ = conn.Write(data)
		conn.Close()

		// A fresh raw client: CONNECT, SUBSCRIBE, PUBLISH QoS 0, and its message back.
		topic := "probe/" + strconv.Itoa(n)
		probe := rawConnect(t, b.Addr(), connectPacket{id: "probe", user: "admin", pass: password})
		defer probe.Close()
		expectConnack(t, probe, 0)
		msg := publishPacket(topic, 0, "ok")
		if _, err := probe.Write(append(subscribePacket(topic), msg...)); err != nil {
			t.Fatal(err)
		}
		want := append([]byte{0x90, 3, 0, 1, 0}, msg...) // SUBACK granted QoS 0... or 1
		_ = probe.SetReadDeadline(time.Now().Add(wait))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(probe, got); err != nil {
			t.Fatalf("broker no longer serves a fresh client: %v (read % x)", err, got)
		}
		if !bytes.Equal(got[:4], want[:4]) || !bytes.Equal(got[5:], want[5:]) {
			t.Fatalf("fresh client received % x, want % x", got, want)
		}
	})
}

// readN reads n bytes, failing the test if they do not come within wait.
func readN(t testing.TB, conn net.Conn, n int) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	got := make([]byte, n)
	if k, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("read %d of %d bytes: %v (got % x)", k, n, err, got[:k])
	}
	_ = conn.SetReadDeadline(time.Time{})
	return got
}
