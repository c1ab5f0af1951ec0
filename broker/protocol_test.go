package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// Raw MQTT 5 packets, and a reader that decodes what the broker answers, for the
// acknowledgements MQTT 5 clients (MQTT.js, Node-RED) check byte by byte.

// props encodes MQTT 5 properties: their length, then the properties.
func props(p ...[]byte) []byte {
	b := bytes.Join(p, nil)
	return append(varint(len(b)), b...)
}

// userProperty is an MQTT 5 user property, as Node-RED and MQTT.js send them.
func userProperty(k, v string) []byte { return append(append([]byte{0x26}, str(k)...), str(v)...) }

func id16(id uint16) []byte { return []byte{byte(id >> 8), byte(id)} }

// publishV5 is an MQTT 5 PUBLISH with the given properties.
func publishV5(topic string, qos byte, id uint16, payload string, p ...[]byte) []byte {
	body := [][]byte{str(topic)}
	if qos > 0 {
		body = append(body, id16(id))
	}
	body = append(body, props(p...), []byte(payload))
	return packet(0x30|qos<<1, body...)
}

// subscribeV5 subscribes to filters at QoS 1.
func subscribeV5(id uint16, filters ...string) []byte {
	body := [][]byte{id16(id), props()}
	for _, f := range filters {
		body = append(body, str(f), []byte{1})
	}
	return packet(0x82, body...)
}

// subscribeV3 subscribes to filters at QoS 1.
func subscribeV3(id uint16, filters ...string) []byte {
	body := [][]byte{id16(id)}
	for _, f := range filters {
		body = append(body, str(f), []byte{1})
	}
	return packet(0x82, body...)
}

// rawPacket is a packet the broker sent: its first byte and its body.
type rawPacket struct {
	first byte
	body  []byte
}

func (p rawPacket) kind() byte { return p.first >> 4 }
func (p rawPacket) id() uint16 { return uint16(p.body[0])<<8 | uint16(p.body[1]) }

func (p rawPacket) String() string { return fmt.Sprintf("%02x % x", p.first, p.body) }

// readPacket reads one packet, failing the test if none comes within wait.
func readPacket(t testing.TB, conn net.Conn) rawPacket {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	defer conn.SetReadDeadline(time.Time{})
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		t.Fatalf("no packet from the broker: %v", err)
	}
	n, mult := 0, 1
	for {
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			t.Fatalf("packet %02x cut short: %v", first[0], err)
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatalf("packet %02x cut short: %v", first[0], err)
	}
	return rawPacket{first[0], body}
}

// readUntil reads packets until one of type kind comes, and returns it with those before it.
func readUntil(t testing.TB, conn net.Conn, kind byte) (rawPacket, []rawPacket) {
	t.Helper()
	var before []rawPacket
	for {
		p := readPacket(t, conn)
		if p.kind() == kind {
			return p, before
		}
		before = append(before, p)
	}
}

// ackV5 is a decoded MQTT 5 PUBACK, PUBREC, PUBREL or PUBCOMP.
type ackV5 struct {
	kind, reason byte
	id           uint16
	user         [][2]string // user properties
	reasonString string
}

// decodeAckV5 decodes an MQTT 5 acknowledgement, failing the test on anything the spec does
// not allow in one (a PUBACK may carry only a reason string and user properties).
func decodeAckV5(t testing.TB, p rawPacket) ackV5 {
	t.Helper()
	a := ackV5{kind: p.kind(), id: p.id()}
	rest := p.body[2:]
	if len(rest) == 0 {
		return a // reason 0x00, no properties [MQTT-3.4.2-1]
	}
	a.reason, rest = rest[0], rest[1:]
	if len(rest) == 0 {
		return a
	}
	n, k := int(rest[0]), 1 // property lengths here fit in one byte
	if rest[0]&0x80 != 0 || len(rest) != k+n {
		t.Fatalf("ack %v: bad property length", p)
	}
	rest = rest[k:]
	readStr := func() string {
		if len(rest) < 2 || len(rest) < 2+int(rest[0])<<8|int(rest[1]) {
			t.Fatalf("ack %v: bad string", p)
		}
		l := int(rest[0])<<8 | int(rest[1])
		s := string(rest[2 : 2+l])
		rest = rest[2+l:]
		return s
	}
	for len(rest) > 0 {
		prop := rest[0]
		rest = rest[1:]
		switch prop {
		case 0x1f:
			a.reasonString = readStr()
		case 0x26:
			k := readStr()
			a.user = append(a.user, [2]string{k, readStr()})
		default:
			t.Fatalf("ack %v: property %#x is not allowed in an acknowledgement", p, prop)
		}
	}
	return a
}

// validPubackV5 are the reason codes MQTT 5 allows in a PUBACK or PUBREC (3.4.2.1, 3.5.2.1).
var validPubackV5 = map[byte]bool{0x00: true, 0x10: true, 0x80: true, 0x83: true, 0x87: true, 0x90: true, 0x91: true, 0x97: true, 0x99: true}

// An MQTT 5 QoS 1 or 2 publish with user properties (Node-RED, MQTT.js) gets a valid
// acknowledgement: success, "not authorized" when refused, or "payload format invalid" when
// it breaks the topic contract, never the publisher's own
// properties or Mochi's QoS code 0x01. A refused one is not delivered, and the flow ends there
// (no PUBREL is expected after a refusing PUBREC).
func TestV5AcksWithUserProperties(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false)
	seen := make(chan bus.Message, 10)
	if err := b.Subscribe("#", func(m bus.Message) { seen <- m }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	prop := userProperty("node-red", "flow-1")
	for _, tc := range []struct {
		name, user, topic string
		qos               byte
		reason            byte
	}{
		{"allowed QoS 1", "admin", "home/kitchen", 1, 0x00},
		{"allowed QoS 2", "admin", "home/kitchen", 2, 0x00},
		{"refused QoS 1", "viewer", topics.LEDTopic(macA), 1, 0x87},
		{"refused QoS 2", "viewer", topics.LEDTopic(macA), 2, 0x87},
		// Allowed, but not an LED command the contract knows: "payload format invalid".
		{"invalid QoS 1", "auto", topics.LEDTopic(macA), 1, 0x99},
		{"invalid QoS 2", "auto", topics.LEDTopic(macA), 2, 0x99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(connectV5("v5-"+safeID(tc.name), tc.user, password, false)); err != nil {
				t.Fatal(err)
			}
			if ca := readPacket(t, conn); ca.kind() != 2 || ca.body[1] != 0 {
				t.Fatalf("CONNACK %v, want success", ca)
			}
			payload := "from " + tc.name
			if _, err := conn.Write(publishV5(tc.topic, tc.qos, 7, payload, prop)); err != nil {
				t.Fatal(err)
			}
			p := readPacket(t, conn)
			a := decodeAckV5(t, p)
			wantKind := byte(4) // PUBACK
			if tc.qos == 2 {
				wantKind = 5 // PUBREC
			}
			if a.kind != wantKind || a.id != 7 {
				t.Fatalf("got %v, want packet type %d for id 7", p, wantKind)
			}
			if !validPubackV5[a.reason] || a.reason != tc.reason {
				t.Errorf("reason %#x, want %#x (%v)", a.reason, tc.reason, p)
			}
			if len(a.user) > 0 {
				t.Errorf("the acknowledgement carries the publisher's user properties %q", a.user)
			}
			if tc.qos == 2 && a.reason < 0x80 {
				if _, err := conn.Write(packet(0x62, id16(7))); err != nil { // PUBREL
					t.Fatal(err)
				}
				comp := decodeAckV5(t, readPacket(t, conn))
				if comp.kind != 7 || comp.id != 7 || comp.reason != 0 || len(comp.user) > 0 {
					t.Fatalf("PUBCOMP %+v, want success for id 7", comp)
				}
			}
			// The next thing delivered is the publish if it was allowed, then the marker.
			if err := b.Publish(context.Background(), bus.Message{Topic: "home/marker", Payload: []byte(payload)}); err != nil {
				t.Fatal(err)
			}
			want := []string{"home/marker"}
			if tc.reason == 0 {
				want = []string{tc.topic, "home/marker"}
			}
			for _, topic := range want {
				select {
				case m := <-seen:
					if m.Topic != topic || string(m.Payload) != payload {
						t.Fatalf("delivered %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
					}
				case <-time.After(wait):
					t.Fatalf("nothing delivered, want %s", topic)
				}
			}
		})
	}
}

// A message queued for an offline persistent session takes a packet id of the broker's; the
// client, back, subscribes with the same id (its own counter restarted at 1, as mosquitto_sub
// -c does). Both directions have their own ids: the SUBSCRIBE and a later UNSUBSCRIBE are
// applied and answered with the client's id, not with 0x91 "packet identifier in use".
func TestSubscribeIDOfAQueuedMessage(t *testing.T) {
	b := startBroker(t)
	const queued, live = "watch/queued", "watch/live"
	session := connectPacket{id: "buttons-watch", user: "admin", pass: password, persistent: true}
	conn := rawConnect(t, b.Addr(), session)
	expectConnack(t, conn, 0)
	if _, err := conn.Write(subscribeV3(1, queued)); err != nil {
		t.Fatal(err)
	}
	if ack := readPacket(t, conn); !bytes.Equal(ack.body, []byte{0, 1, 1}) {
		t.Fatalf("SUBACK %v, want QoS 1 granted", ack)
	}
	if _, err := conn.Write([]byte{0xe0, 0}); err != nil { // DISCONNECT
		t.Fatal(err)
	}
	readUntilClosed(t, conn)
	publish := func(topic, payload string) {
		t.Helper()
		if err := b.Publish(context.Background(), bus.Message{Topic: topic, Payload: []byte(payload), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	publish(queued, "while away") // queued for the session, with the broker's next packet id

	conn = rawConnect(t, b.Addr(), session)
	if ack := readPacket(t, conn); !bytes.Equal(ack.body, []byte{1, 0}) {
		t.Fatalf("CONNACK %v, want the session present", ack)
	}
	// The queued message is resent at once; subscribe with its id before acknowledging it.
	pub := readPacket(t, conn)
	if pub.kind() != 3 || !bytes.Contains(pub.body, []byte("while away")) {
		t.Fatalf("got %v, want the queued message", pub)
	}
	inUse := uint16(pub.body[2+len(queued)])<<8 | uint16(pub.body[3+len(queued)])
	if _, err := conn.Write(subscribeV3(inUse, live)); err != nil {
		t.Fatal(err)
	}
	ack, _ := readUntil(t, conn, 9)
	if want := append(id16(inUse), 1); !bytes.Equal(ack.body, want) {
		t.Fatalf("SUBACK % x, want % x: QoS 1 granted for id %d", ack.body, want, inUse)
	}
	publish(live, "hello")
	msg := readPacket(t, conn)
	if msg.kind() != 3 || !bytes.HasSuffix(msg.body, []byte("hello")) {
		t.Fatalf("got %v, want the message on %s: the subscription was not applied", msg, live)
	}
	if _, err := conn.Write(packet(0x40, msg.body[2+len(live):4+len(live)])); err != nil { // PUBACK
		t.Fatal(err)
	}

	// UNSUBSCRIBE with the id still in use by the queued message: applied too.
	if _, err := conn.Write(packet(0xa2, id16(inUse), str(live))); err != nil {
		t.Fatal(err)
	}
	unsuback, _ := readUntil(t, conn, 11)
	if !bytes.Equal(unsuback.body, id16(inUse)) {
		t.Fatalf("UNSUBACK % x, want id %d", unsuback.body, inUse)
	}
	publish(live, "after unsubscribe")
	publish(queued, "marker")
	if msg := readPacket(t, conn); !bytes.HasSuffix(msg.body, []byte("marker")) {
		t.Fatalf("got %v, want the marker: the unsubscribe was not applied", msg)
	}
}

// A SUBSCRIBE whose id is still in use by the client's own QoS 2 publish is a real clash; the
// refusal is answered with a code MQTT 3.1.1 has (0x80), not with MQTT 5's 0x91.
func TestSubscribeIDClashV3Code(t *testing.T) {
	b := startBroker(t)
	conn := rawConnect(t, b.Addr(), connectPacket{id: "clash", user: "admin", pass: password})
	expectConnack(t, conn, 0)
	if _, err := conn.Write(publishPacket("home/x", 2, "x")); err != nil { // id 1, PUBREL not sent
		t.Fatal(err)
	}
	if rec := readPacket(t, conn); rec.kind() != 5 || rec.id() != 1 {
		t.Fatalf("got %v, want PUBREC for id 1", rec)
	}
	if _, err := conn.Write(subscribeV3(1, "home/y")); err != nil {
		t.Fatal(err)
	}
	if ack := readPacket(t, conn); !bytes.Equal(ack.body, []byte{0, 1, 0x80}) {
		t.Fatalf("SUBACK %v, want failure 0x80", ack)
	}
}

// QoS 1 and 2 publishes to $SYS topics are acknowledged and dropped, like every refused
// publish: Mochi dropped them unanswered, and the client's inflight window filled.
func TestSysPublishAcknowledged(t *testing.T) {
	b := startBroker(t)
	watcher := mustDial(t, b, "sys-watcher", "admin")
	watcher.subscribe(t, "$SYS/forged/#")

	conn := rawConnect(t, b.Addr(), connectPacket{id: "sys-v3", user: "admin", pass: password})
	expectConnack(t, conn, 0)
	if _, err := conn.Write(packet(0x32, str("$SYS/forged/a"), id16(7), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, conn); p.first != 0x40 || !bytes.Equal(p.body, id16(7)) {
		t.Fatalf("got %v, want PUBACK for id 7", p)
	}
	if _, err := conn.Write(packet(0x34, str("$sys/forged/b"), id16(8), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, conn); p.first != 0x50 || !bytes.Equal(p.body, id16(8)) {
		t.Fatalf("got %v, want PUBREC for id 8", p)
	}
	if _, err := conn.Write(packet(0x62, id16(8))); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, conn); p.first != 0x70 || !bytes.Equal(p.body, id16(8)) {
		t.Fatalf("got %v, want PUBCOMP for id 8", p)
	}

	v5, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer v5.Close()
	if _, err := v5.Write(connectV5("sys-v5", "admin", password, false)); err != nil {
		t.Fatal(err)
	}
	readPacket(t, v5) // CONNACK
	for _, qos := range []byte{1, 2} {
		if _, err := v5.Write(publishV5("$SYS/forged/c", qos, 9, "x")); err != nil {
			t.Fatal(err)
		}
		if a := decodeAckV5(t, readPacket(t, v5)); a.kind != 3+qos || a.id != 9 || a.reason != 0x87 {
			t.Fatalf("QoS %d: got %+v, want type %d for id 9 with reason 0x87 (not authorized)", qos, a, 3+qos)
		}
	}

	watcher.publish(t, "$SYS/forged/end", 1, false, "end") // dropped as well: only the barrier ends
	watcher.barrier(t)
	select {
	case m := <-watcher.msgs:
		t.Fatalf("a forged $SYS message was delivered: %s %q", m.Topic(), m.Payload())
	default:
	}
}

// Filters with a wildcard that is not a whole level ("rack/a#", "rack/+x") are refused with
// a failure code, 0x80 on MQTT 3.1.1 and 0x8F "topic filter invalid" on MQTT 5 (where a filter
// the role may not read gets 0x87); the valid filters of the same SUBSCRIBE are granted.
func TestMalformedFilterRefused(t *testing.T) {
	b := startBroker(t)
	filters := []string{"rack/a#", "rack/+x/status", "$share/g/rack/a#", topics.AllFilter, "$SYS/#"}

	v3 := rawConnect(t, b.Addr(), connectPacket{id: "filters-v3", user: "viewer", pass: password})
	expectConnack(t, v3, 0)
	if _, err := v3.Write(subscribeV3(3, filters...)); err != nil {
		t.Fatal(err)
	}
	if ack := readPacket(t, v3); !bytes.Equal(ack.body, []byte{0, 3, 0x80, 0x80, 0x80, 1, 0x80}) {
		t.Errorf("MQTT 3.1.1 SUBACK % x, want 0x80 for each malformed filter", ack.body)
	}

	v5, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer v5.Close()
	if _, err := v5.Write(connectV5("filters-v5", "viewer", password, false)); err != nil {
		t.Fatal(err)
	}
	readPacket(t, v5) // CONNACK
	if _, err := v5.Write(subscribeV5(4, filters...)); err != nil {
		t.Fatal(err)
	}
	ack := readPacket(t, v5)
	codes := ack.body[len(ack.body)-len(filters):]
	if ack.id() != 4 || !bytes.Equal(codes, []byte{0x8f, 0x8f, 0x8f, 1, 0x87}) {
		t.Errorf("MQTT 5 SUBACK %v, want 0x8F for each malformed filter", ack)
	}

}

// An MQTT 5 client is told the broker's Maximum Packet Size in its CONNACK (Mochi enforces it
// without saying so, and the spec reads no property as no limit); a packet over it ends the
// connection. MQTT 3.1.1 has no such property.
func TestV5ConnackMaximumPacketSize(t *testing.T) {
	const max = 1024
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.MaxPacketSize = max })
	e := &interopEnv{t: t, v5: true, addr: b.Addr(), user: "admin", pass: password}
	c, ack := e.connect(connOpts{id: "mps-v5"})
	if got, ok := ack.props.int(propMaxPacketSize); !ok || got != max {
		t.Fatalf("CONNACK Maximum Packet Size %d (present %v), want %d", got, ok, max)
	}
	c.publish("home/fits", 1, false, strings.Repeat(".", max-64))
	c.write(c.publishPacket("home/too-big", 1, false, strings.Repeat(".", max), c.packetID(), nil))
	if r := disconnectReason(c.expectClosed()); r != 0x95 && r != -1 {
		t.Errorf("packet over the maximum: DISCONNECT reason %#x, want 0x95 (packet too large) or none", r)
	}
}

// TestPublishIDOfAnUnacknowledgedCommand: a Pi's own QoS 1 publish may take the id of an LED
// command the broker sent it and it has not acknowledged yet (each side counts its own ids).
// Mochi kept both in one map, so the Pi's publish replaced and deleted the command: after the
// connection dropped, the command was never sent again. Now the publish is acknowledged under
// the Pi's id and the command waits for its own PUBACK, resent on the next connection.
func TestPublishIDOfAnUnacknowledgedCommand(t *testing.T) {
	b := startBroker(t)
	agent := connectPacket{id: macA, user: macA, pass: password, persistent: true}
	conn := rawConnect(t, b.Addr(), agent)
	expectConnack(t, conn, 0)
	if _, err := conn.Write(subscribePacket(topics.LEDTopic(macA))); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, conn); p.kind() != 9 {
		t.Fatalf("got %v, want SUBACK", p)
	}
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macA), Payload: []byte("blink 2"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	cmd := readPacket(t, conn)
	if cmd.kind() != 3 {
		t.Fatalf("got %v, want the LED command", cmd)
	}
	cmdID := uint16(cmd.body[2+len(topics.LEDTopic(macA))])<<8 | uint16(cmd.body[3+len(topics.LEDTopic(macA))])

	// Not acknowledged; the Pi publishes its metrics, QoS 1, under the same id.
	metrics := topics.MetricsTopic("r1", macA)
	if _, err := conn.Write(packet(0x32, str(metrics), id16(cmdID), []byte(valid(metrics, "m")))); err != nil {
		t.Fatal(err)
	}
	if ack := readPacket(t, conn); ack.kind() != 4 || ack.id() != cmdID {
		t.Fatalf("got %v, want PUBACK for the Pi's id %d", ack, cmdID)
	}
	conn.Close()
	awaitOffline(t, b, macA)

	conn = rawConnect(t, b.Addr(), agent)
	expectConnackPresent(t, conn)
	again := readPacket(t, conn)
	if again.kind() != 3 || !strings.Contains(string(again.body), "blink 2") {
		t.Fatalf("after reconnecting got %v, want the unacknowledged LED command again", again)
	}
}

// expectConnackPresent reads a CONNACK accepting a resumed session.
func expectConnackPresent(t *testing.T, conn net.Conn) {
	t.Helper()
	if got := readN(t, conn, 4); !bytes.Equal(got, []byte{0x20, 2, 1, 0}) {
		t.Fatalf("CONNACK % x, want the session present", got)
	}
}
