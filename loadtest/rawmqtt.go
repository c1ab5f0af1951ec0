package loadtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A hand-written MQTT 3.1.1 client over one socket, for the clients `pirack bench hostile`
// plays: paho always reads what the broker sends and always sends its CONNECT, and these must
// not. Only what the benchmark needs is here.

// MQTT 3.1.1 packet types, as the high nibble of the first byte.
const (
	pktConnack  = 2
	pktPuback   = 4
	pktSuback   = 9
	pktPingresp = 13
)

// maxRawPacket bounds what readPacket accepts: the broker never sends more than a message.
const maxRawPacket = 1 << 20

// dialFrom opens a TCP connection to addr from the local address from ("" lets the system
// choose): Linux routes all of 127/8 to the loopback interface, so 127.0.0.2 is a second host
// for a broker on 127.0.0.1.
func dialFrom(ctx context.Context, from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d.DialContext(ctx, "tcp", addr)
}

type connectOpts struct {
	id, user, pass string
	persistent     bool   // clean session off
	keepalive      uint16 // seconds
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// packet frames body with its fixed header (first byte and remaining length).
func packet(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func connectPacket(o connectOpts) []byte {
	flags := byte(0xc0) // username and password
	if !o.persistent {
		flags |= 0x02
	}
	b := mqttString(nil, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, o.keepalive)
	b = mqttString(b, o.id)
	b = mqttString(b, o.user)
	b = mqttString(b, o.pass)
	return packet(0x10, b)
}

func subscribePacket(id uint16, qos byte, filters ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	for _, f := range filters {
		b = append(mqttString(b, f), qos)
	}
	return packet(0x82, b)
}

func publishPacket(topic string, payload []byte, qos byte, retain bool, id uint16) []byte {
	first := byte(0x30) | qos<<1
	if retain {
		first |= 1
	}
	b := mqttString(nil, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return packet(first, append(b, payload...))
}

var (
	pingreqPacket    = []byte{0xc0, 0}
	disconnectPacket = []byte{0xe0, 0}
)

// readPacket reads one packet and returns its type and body.
func readPacket(r io.Reader) (typ byte, body []byte, err error) {
	var h [1]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		var d [1]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return 0, nil, err
		}
		n += int(d[0]&0x7f) * mult
		if d[0]&0x80 == 0 {
			break
		}
		if mult *= 128; i == 3 || n > maxRawPacket {
			return 0, nil, errors.New("mqtt: malformed remaining length")
		}
	}
	if n > maxRawPacket {
		return 0, nil, fmt.Errorf("mqtt: %d-byte packet, over %d", n, maxRawPacket)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h[0] >> 4, body, nil
}

// awaitPacket reads until a packet of type typ arrives, skipping others (messages the broker
// delivers meanwhile), for at most within.
func awaitPacket(c net.Conn, typ byte, within time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	for {
		t, body, err := readPacket(c)
		if err != nil {
			return nil, err
		}
		if t == typ {
			return body, nil
		}
	}
}

// mqttConnect sends CONNECT on c and returns the CONNACK's return code (0: accepted).
func mqttConnect(c net.Conn, o connectOpts, within time.Duration) (byte, error) {
	_ = c.SetWriteDeadline(time.Now().Add(within))
	if _, err := c.Write(connectPacket(o)); err != nil {
		return 0, fmt.Errorf("send CONNECT: %w", err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	body, err := awaitPacket(c, pktConnack, within)
	if err != nil {
		return 0, fmt.Errorf("await CONNACK: %w", err)
	}
	if len(body) != 2 {
		return 0, fmt.Errorf("CONNACK of %d bytes", len(body))
	}
	return body[1], nil
}

// mqttSubscribe subscribes c to filters in one packet and returns the SUBACK's codes (0x80:
// refused).
func mqttSubscribe(c net.Conn, id uint16, within time.Duration, filters ...string) ([]byte, error) {
	if _, err := c.Write(subscribePacket(id, 0, filters...)); err != nil {
		return nil, fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	body, err := awaitPacket(c, pktSuback, within)
	if err != nil {
		return nil, fmt.Errorf("await SUBACK: %w", err)
	}
	if len(body) < 2 || binary.BigEndian.Uint16(body) != id {
		return nil, fmt.Errorf("SUBACK % x for packet id %d", body, id)
	}
	return body[2:], nil
}
