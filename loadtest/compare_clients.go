package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/topics"
)

// Simulated agents for `pirack bench compare`, on the raw MQTT client: thousands of them cost
// the benchmark's process little beside paho, and they send exactly what they are told.

const pktPublish = 3

// rawAgent is one simulated agent's connection.
type rawAgent struct {
	mac   string
	c     net.Conn
	wmu   sync.Mutex
	id    uint16        // last packet id, under wmu
	inFly chan struct{} // QoS 1 publishes awaiting their PUBACK (a semaphore)
	led   chan time.Time
	done  chan struct{} // closed when the reader stops
	seq   uint64        // presses made
}

// qos1Window is how many QoS 1 publishes one simulated agent keeps unacknowledged at once.
const qos1Window = 8

// agentSource is the loopback address agent i connects from: each Pi of a rack has its own
// address, and the broker gives one address at most 16 sockets waiting for CONNECT
// (--mqtt-max-pending-per-source), so 1,000 agents from 127.0.0.1 would be partly refused.
// Linux routes all of 127.0.0.0/8 to the loopback interface.
func agentSource(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250) }

// dialAgent connects as agent i of srv and, with led, subscribes to its LED topic at QoS 1 as
// agents do. It returns the CONNACK code when the broker refused it.
func dialAgent(ctx context.Context, addr string, i int, pass string, led bool) (*rawAgent, byte, error) {
	mac := benchMAC(i)
	c, err := dialFrom(ctx, agentSource(i), addr)
	if err != nil {
		return nil, 0, err
	}
	code, err := mqttConnect(c, connectOpts{id: mac, user: mac, pass: pass, keepalive: 60}, clientWait)
	if err != nil || code != 0 {
		c.Close()
		return nil, code, err
	}
	a := &rawAgent{mac: mac, c: c, inFly: make(chan struct{}, qos1Window), led: make(chan time.Time, 4), done: make(chan struct{})}
	if led {
		if _, err := c.Write(subscribePacket(1, 1, topics.LEDTopic(mac))); err != nil {
			c.Close()
			return nil, 0, err
		}
		body, err := awaitPacket(c, pktSuback, clientWait)
		if err != nil || len(body) != 3 || body[2] > 2 {
			c.Close()
			return nil, 0, fmt.Errorf("agent %s: LED SUBACK % x: %v", mac, body, err)
		}
	}
	go a.read()
	return a, 0, nil
}

// read takes what the broker sends: PUBACKs free the window, LED commands are timed and
// acknowledged.
func (a *rawAgent) read() {
	defer close(a.done)
	for {
		typ, body, err := readPacket(a.c)
		if err != nil {
			return
		}
		switch typ {
		case pktPuback:
			select {
			case <-a.inFly:
			default:
			}
		case pktPublish:
			at := time.Now()
			select {
			case a.led <- at:
			default:
			}
			// QoS 1 (the flags are gone with the fixed header: a packet id follows the
			// topic when the body is longer than topic and payload would make it).
			if len(body) >= 2 {
				tl := int(binary.BigEndian.Uint16(body))
				if len(body) >= 4+tl && a.qosOf(body) {
					ack := packet(0x40, body[2+tl:4+tl])
					a.write(ack)
				}
			}
		}
	}
}

// qosOf tells a QoS 1 LED command from a QoS 0 one: only QoS 1 is subscribed to, and an LED
// command payload is JSON starting with '{' or a plain word, never two id bytes then '{'.
func (a *rawAgent) qosOf(body []byte) bool {
	tl := int(binary.BigEndian.Uint16(body))
	rest := body[2+tl:]
	return len(rest) >= 3 && rest[2] == '{'
}

func (a *rawAgent) write(p []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	_ = a.c.SetWriteDeadline(time.Now().Add(clientWait))
	_, err := a.c.Write(p)
	return err
}

// publish sends payload to topic; at QoS 1 it waits for room in the window first.
func (a *rawAgent) publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if qos > 0 {
		select {
		case a.inFly <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-a.done:
			return fmt.Errorf("agent %s: connection closed", a.mac)
		}
	}
	a.wmu.Lock()
	a.id++
	if a.id == 0 {
		a.id = 1
	}
	p := publishPacket(topic, payload, qos, retain, a.id)
	_ = a.c.SetWriteDeadline(time.Now().Add(clientWait))
	_, err := a.c.Write(p)
	a.wmu.Unlock()
	return err
}

func (a *rawAgent) close() {
	_ = a.write(disconnectPacket)
	a.c.Close()
	<-a.done
}

// connectAttempts is how many times a simulated agent tries to connect before it counts as
// refused: a loaded machine can miss one CONNACK deadline.
const connectAttempts = 3

// connectAgents connects n agents, 32 at a time, and counts the ones refused; firstErr says
// why the first of them was.
func connectAgents(ctx context.Context, addr, pass string, n int, led bool) (agents []*rawAgent, refused int, firstErr error) {
	out := make([]*rawAgent, n)
	var bad atomic.Int64
	var errOnce sync.Once
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(32, n) {
		wg.Go(func() {
			for i := range idx {
				var a *rawAgent
				var code byte
				var err error
				for try := 0; try < connectAttempts && a == nil && ctx.Err() == nil; try++ {
					if try > 0 {
						sleepCtx(ctx, 200*time.Millisecond)
					}
					a, code, err = dialAgent(ctx, addr, i, pass, led)
				}
				if a == nil {
					if err == nil {
						err = fmt.Errorf("CONNACK code %d", code)
					}
					errOnce.Do(func() { firstErr = fmt.Errorf("agent %s: %w", benchMAC(i), err) })
					bad.Add(1)
					continue
				}
				out[i] = a
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	for _, a := range out {
		if a != nil {
			agents = append(agents, a)
		}
	}
	return agents, int(bad.Load()), firstErr
}

func closeAgents(agents []*rawAgent) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(a.close)
	}
	wg.Wait()
}

// seqPayload is a real agent's metrics payload of a fixed size whose seq is rewritten, in
// place, with the publish time in Unix nanoseconds: a reader gets the latency from the
// payload alone.
type seqPayload struct {
	b   []byte
	off int // where the 19 digits of seq start
}

// metricsTemplate is a metrics payload as a Pi's agent sends it, every field set, padded to
// size bytes (600 is what a Pi 4 sends).
func metricsTemplate(size int) (seqPayload, error) {
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	cpus := 4
	m := topics.Metrics{
		V: topics.Version, Seq: seqBase, TS: time.Now().UTC().Truncate(time.Millisecond),
		Load1: f(0.42), Load5: f(0.37), Load15: f(0.31), CPUCount: &cpus, CPUPercent: f(7.5), CPUTempC: f(48.2),
		MemTotalBytes: u(3_978_178_560), MemAvailableBytes: u(3_215_106_048),
		DiskTotalBytes: u(31_154_233_344), DiskFreeBytes: u(24_101_670_912),
		UptimeS: u(864_213), NetRxBytes: u(1_234_567_890), NetTxBytes: u(987_654_321),
		ThrottledNow: []string{}, ThrottledSinceBoot: []string{"under_voltage"},
	}
	b, err := topics.Encode(m)
	if err != nil {
		return seqPayload{}, err
	}
	if n := size - len(b); n > 0 {
		const field = `,"bench_padding":""`
		pad := append([]byte(field[:len(field)-1]), bytes.Repeat([]byte("x"), max(0, n-len(field)))...)
		pad = append(pad, '"')
		b = append(append(b[:len(b)-1:len(b)-1], pad...), '}')
	}
	if _, err := topics.DecodeMetrics(b); err != nil {
		return seqPayload{}, fmt.Errorf("benchmark metrics payload: %w", err)
	}
	off := bytes.Index(b, []byte(`"seq":`+strconv.FormatUint(seqBase, 10)))
	if off < 0 {
		return seqPayload{}, fmt.Errorf("no seq in %s", b)
	}
	return seqPayload{b: b, off: off + len(`"seq":`)}, nil
}

// at returns a copy of the payload stamped with t.
func (p seqPayload) at(t time.Time) []byte {
	b := append([]byte(nil), p.b...)
	strconv.AppendUint(b[p.off:p.off], uint64(t.UnixNano()), 10)
	return b
}

// publishFor makes each agent publish metrics for d: every period (with a random phase, as
// Pis are not in step), or as fast as it can when period is 0.
func publishFor(ctx context.Context, agents []*rawAgent, tmpl seqPayload, qos byte, period, d time.Duration) int64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var published atomic.Int64
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			topic := topics.MetricsTopic(benchRow, a.mac)
			if period > 0 && !sleepCtx(ctx, rand.N(period)) {
				return
			}
			var tick <-chan time.Time
			if period > 0 {
				t := time.NewTicker(period)
				defer t.Stop()
				tick = t.C
			}
			for ctx.Err() == nil {
				if a.publish(ctx, topic, tmpl.at(time.Now()), qos, true) != nil {
					return
				}
				published.Add(1)
				if tick != nil {
					select {
					case <-ctx.Done():
					case <-tick:
					}
				}
			}
		})
	}
	wg.Wait()
	return published.Load()
}
