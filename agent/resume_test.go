package agent

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/topics"
)

// resumingBroker is a minimal MQTT 3.1.1 server for one scenario: it answers a CONNECT with
// "session present" and, in the same write, a QoS 1 LED command, as a broker re-sends a command
// queued for an offline Pi the moment it is back. It reports the PUBACKs it receives, answers
// SUBSCRIBE and PINGREQ, and ignores the rest.
func resumingBroker(t *testing.T, command []byte, acked chan<- uint16) (url string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveResuming(c, command, acked)
		}
	}()
	return "tcp://" + ln.Addr().String()
}

func serveResuming(c net.Conn, command []byte, acked chan<- uint16) {
	defer c.Close()
	if pk, err := packets.ReadPacket(c); err != nil {
		return
	} else if _, ok := pk.(*packets.ConnectPacket); !ok {
		return
	}
	var out bytes.Buffer
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.SessionPresent = true
	_ = ack.Write(&out)
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Qos, pub.MessageID, pub.Payload = topics.LEDTopic(mac), 1, 7, command
	_ = pub.Write(&out)
	if _, err := c.Write(out.Bytes()); err != nil {
		return
	}
	for {
		pk, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		var reply packets.ControlPacket
		switch p := pk.(type) {
		case *packets.PubackPacket:
			acked <- p.MessageID
		case *packets.SubscribePacket:
			a := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			a.MessageID, a.ReturnCodes = p.MessageID, p.Qoss
			reply = a
		case *packets.PingreqPacket:
			reply = packets.NewControlPacket(packets.Pingresp)
		}
		if reply != nil && reply.Write(c) != nil {
			return
		}
	}
}

// TestLEDCommandBeforeSubscribeIsExecuted: a Pi that was off when Locate was clicked gets the
// queued command right after its CONNACK, before its agent has subscribed. The agent's client
// must handle it all the same: here it connects and nothing else runs, so no Subscribe is ever
// made, and the command must still reach the LED and be acknowledged.
func TestLEDCommandBeforeSubscribeIsExecuted(t *testing.T) {
	acked := make(chan uint16, 1)
	url := resumingBroker(t, []byte(`{"action":"blink","count":1,"period_ms":50}`), acked)
	a, err := newAgent(Config{Broker: url, MAC: testMAC, Row: row, LED: new(sim.LED), Interval: time.Hour,
		Collector: fixedCollector{}})
	if err != nil {
		t.Fatal(err)
	}
	client := a.newClient()
	if tok := client.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer client.Disconnect(0)
	select {
	case cmd := <-a.leds.ch: // the LED driver is not running: the command waits here
		if cmd.Action != topics.LEDBlink || cmd.Count != 1 {
			t.Errorf("LED command = %+v, want blink 1", cmd)
		}
	case <-time.After(waitFor):
		t.Fatal("the LED command re-sent right after CONNACK never reached the LED driver")
	}
	select {
	case id := <-acked:
		if id != 7 {
			t.Errorf("PUBACK for packet %d, want 7", id)
		}
	case <-time.After(waitFor):
		t.Fatal("the LED command was never acknowledged: the broker keeps it until the next reconnect")
	}
}
