package broker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// BenchmarkQoS1Publish publishes QoS 1 messages over TCP into the real broker from K agents
// (raw MQTT 3.1.1, persistent sessions, one publish in flight each, as agents press), with a
// persistent QoS 1 subscriber to rack/# that acknowledges everything (a Node-RED flow, a
// mosquitto_sub -c watcher) and an in-process subscriber (the dashboard's ingestion):
//
//   - retained: metrics payloads, QoS 1, retained (the "QoS 1 retained at saturation");
//   - plain: button presses, QoS 1, not retained.
//
// An op is one message, timed from the first publish until the subscriber has received every
// one. commits/op counts the broker's bolt commits (broker.db and retained.db), each two
// fdatasyncs.
func BenchmarkQoS1Publish(b *testing.B) {
	const maxAgents = 32
	users, err := auth.Open(b.TempDir() + "/users.json")
	if err != nil {
		b.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	macs := make([]string, maxAgents)
	for i := range macs {
		macs[i] = fmt.Sprintf("b827eb1%05x", i)
		if err := users.Add(auth.User{Role: auth.RoleAgent, MAC: macs[i], Row: "r1"}, password); err != nil {
			b.Fatal(err)
		}
	}
	if err := users.Add(auth.User{Name: "auto", Role: auth.RoleAutomation}, password); err != nil {
		b.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	metrics, err := topics.Encode(topics.Metrics{V: topics.Version, TS: time.Now(), Load1: f(0.42), Load5: f(0.4), Load15: f(0.38),
		CPUPercent: f(13.7), CPUTempC: f(51.3), MemTotalBytes: u(4 << 30), MemAvailableBytes: u(3 << 30),
		DiskTotalBytes: u(32 << 30), DiskFreeBytes: u(21 << 30), UptimeS: u(86400), NetRxBytes: u(1 << 30), NetTxBytes: u(1 << 29)})
	if err != nil {
		b.Fatal(err)
	}

	for _, kind := range []string{"retained", "plain"} {
		for _, k := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/agents=%d", kind, k), func(b *testing.B) {
				brk := newBroker(b, b.TempDir(), users, true, func(c *Config) { c.Logger = discardLogger() })
				var ingested atomic.Int64
				if err := brk.Subscribe(topics.AllFilter, func(bus.Message) { ingested.Add(1) }); err != nil {
					b.Fatal(err)
				}
				received := make(chan struct{}, b.N)
				sub := benchSubscriber(b, brk.Addr(), received)

				pubs := make([]*bufio.ReadWriter, k)
				for i := range pubs {
					conn := rawConnect(b, brk.Addr(), connectPacket{id: macs[i], user: macs[i], pass: password, persistent: true})
					expectConnack(b, conn, 0)
					pubs[i] = bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
				}
				packetFor := func(i, seq int) []byte {
					if kind == "retained" {
						pk := qos1Packet(topics.MetricsTopic("r1", macs[i]), metrics, seq)
						pk[0] |= 1 // retain
						return pk
					}
					press := fmt.Sprintf(`{"v":1,"press":"short","seq":%d,"ts":"2026-12-03T07:00:00Z"}`, seq)
					return qos1Packet(topics.ButtonTopic("r1", macs[i]), []byte(press), seq)
				}
				commits0 := brk.Stats().RetainedCommits + brk.store.writer.stats().commits

				b.ResetTimer()
				var wg sync.WaitGroup
				for i, rw := range pubs {
					n := b.N / k
					if i < b.N%k {
						n++
					}
					wg.Go(func() {
						ack := make([]byte, 4)
						for seq := range n {
							rw.Write(packetFor(i, seq))
							if err := rw.Flush(); err != nil {
								b.Error(err)
								return
							}
							if _, err := io.ReadFull(rw, ack); err != nil || ack[0] != 0x40 {
								b.Errorf("agent %d: no PUBACK: % x %v", i, ack, err)
								return
							}
						}
					})
				}
				wg.Wait()
				timeout := time.After(time.Minute)
				for range b.N {
					select {
					case <-received:
					case <-timeout:
						s := brk.Stats()
						b.Fatalf("the subscriber did not get every message: %d dropped at its full queue, %d commits failed",
							s.MessagesDroppedQueueFull, s.RetainedCommitFailures+brk.store.writer.stats().failures)
					}
				}
				b.StopTimer()
				s := brk.Stats()
				b.ReportMetric(float64(s.RetainedCommits+brk.store.writer.stats().commits-commits0)/float64(b.N), "commits/op")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
				if got := ingested.Load(); got < int64(b.N) {
					b.Errorf("ingested %d of %d", got, b.N)
				}
				sub.Close()
			})
		}
	}
}

// qos1Packet is a QoS 1 PUBLISH with packet id 1 + seq%65535.
func qos1Packet(topic string, payload []byte, seq int) []byte {
	id := uint16(1 + seq%65535)
	return packet(0x32, str(topic), []byte{byte(id >> 8), byte(id)}, payload)
}

// benchSubscriber connects a persistent QoS 1 subscriber to rack/#, which acknowledges every
// message and signals it on received.
func benchSubscriber(b *testing.B, addr string, received chan<- struct{}) net.Conn {
	conn := rawConnect(b, addr, connectPacket{id: "watcher", user: "auto", pass: password, persistent: true})
	expectConnack(b, conn, 0)
	if _, err := conn.Write(packet(0x82, []byte{0, 1}, str(topics.AllFilter), []byte{1})); err != nil {
		b.Fatal(err)
	}
	if suback := readN(b, conn, 5); suback[0] != 0x90 || suback[4] != 1 {
		b.Fatalf("SUBACK % x, want QoS 1 granted", suback)
	}
	done := make(chan struct{})
	b.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		_ = ackPublishes(conn, func(string, []byte) { received <- struct{}{} })
	}()
	return conn
}

// ackPublishes reads packets from conn until it fails, acknowledges every QoS 1 PUBLISH and
// passes each PUBLISH's topic and payload to fn; other packets are skipped.
func ackPublishes(conn net.Conn, fn func(topic string, payload []byte)) error {
	r := bufio.NewReader(conn)
	for {
		first, err := r.ReadByte()
		if err != nil {
			return err
		}
		n, err := binary.ReadUvarint(r) // MQTT's remaining length is a little-endian base-128 varint
		if err != nil {
			return err
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		if first>>4 != 3 {
			continue
		}
		tl := int(body[0])<<8 | int(body[1])
		rest := body[2+tl:]
		if (first>>1)&3 > 0 {
			if _, err := conn.Write([]byte{0x40, 2, rest[0], rest[1]}); err != nil {
				return err
			}
			rest = rest[2:]
		}
		fn(string(body[2:2+tl]), rest)
	}
}
