package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/topics"
)

// memEvery is how often a scenario samples memory.
const memEvery = 50 * time.Millisecond

// clientWait bounds one CONNECT, SUBSCRIBE or publish round trip of a benchmark client.
const clientWait = 10 * time.Second

// benchMAC is the MAC of the i-th simulated agent of a hostile scenario.
func benchMAC(i int) string { return fmt.Sprintf("b827eb%06x", 0xd00000+i) }

// slowConsumers: viewers that never read, publishers of large telemetry, one viewer that
// reads.
func slowConsumers(ctx context.Context, cfg HostileConfig, stdout io.Writer) (hostileRow, error) {
	if cfg.PayloadBytes > topics.MaxPayload {
		return hostileRow{}, fmt.Errorf("--payload %d is over the contract's %d bytes: the broker would drop it", cfg.PayloadBytes, topics.MaxPayload)
	}
	mallory := hostileUser{"mallory", auth.RoleViewer, auth.GeneratePassword()}
	watcher := hostileUser{"watcher", auth.RoleViewer, auth.GeneratePassword()}
	users := []hostileUser{mallory, watcher}
	for i := range cfg.Publishers {
		users = append(users, hostileUser{benchMAC(i), auth.RoleAgent, auth.GeneratePassword()})
	}
	h, err := startHostileCC(cfg, broker.Limits{WriteTimeout: cfg.WriteTimeout}, users...)
	if err != nil {
		return hostileRow{}, err
	}
	defer h.close()
	addr := h.cc.MQTTAddr()
	writeTimeout := cfg.WriteTimeout
	if writeTimeout == 0 {
		writeTimeout = broker.DefaultWriteTimeout
	}

	// The reading viewer, a real client.
	var received atomic.Int64
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("watcher").SetUsername(watcher.name).
		SetPassword(watcher.pass).SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(false).SetConnectTimeout(clientWait)
	healthy := paho.NewClient(opts)
	if tok := healthy.Connect(); !tok.WaitTimeout(clientWait) || tok.Error() != nil {
		return hostileRow{}, fmt.Errorf("connect the reading viewer: %v", tok.Error())
	}
	defer healthy.Disconnect(0)
	sub := healthy.Subscribe(topics.AllFilter, 0, func(_ paho.Client, m paho.Message) {
		if t, err := topics.Parse(m.Topic()); err == nil && t.Kind == topics.KindMetrics {
			received.Add(1)
		}
	})
	if !sub.WaitTimeout(clientWait) || sub.Error() != nil {
		return hostileRow{}, fmt.Errorf("subscribe the reading viewer: %v", sub.Error())
	}

	pad, err := metricsPadding(cfg.PayloadBytes)
	if err != nil {
		return hostileRow{}, err
	}
	fmt.Fprintf(stdout, "slow consumers: %d sessions of one viewer subscribe to %s and never read; %d agents publish %d metrics/s each of %d bytes for %v; write timeout %v\n",
		cfg.SlowViewers, topics.AllFilter, cfg.Publishers, cfg.PublishRate, cfg.PayloadBytes, cfg.SlowFor, writeTimeout)

	runCtx, stop := context.WithTimeout(ctx, cfg.SlowFor)
	defer stop()
	mem, waitMem := startMemPeak(runCtx, "self", memEvery)
	var st slowStats
	var wg sync.WaitGroup
	for i := range cfg.SlowViewers {
		wg.Go(func() { st.viewer(runCtx, addr, fmt.Sprintf("mallory-%d", i), mallory) })
	}
	var published atomic.Int64
	pubErrs := make(chan error, cfg.Publishers)
	for i := range cfg.Publishers {
		wg.Go(func() {
			if err := publishMetrics(runCtx, addr, users[2+i], cfg.PublishRate, !cfg.Unretained, pad, &published); err != nil {
				pubErrs <- err
			}
		})
	}
	wg.Wait()
	waitMem()
	close(pubErrs)
	if err := <-pubErrs; err != nil {
		return hostileRow{}, fmt.Errorf("publisher: %w", err)
	}
	if ctx.Err() != nil {
		return hostileRow{}, ctx.Err()
	}
	// What the reading viewer still has on its way, a bounded time.
	pub := published.Load()
	for deadline := time.Now().Add(5 * time.Second); received.Load() < pub && time.Now().Before(deadline); {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	got := received.Load()
	heapEnd, _ := heap()
	bst := h.cc.Broker().Stats()

	row := hostileRow{name: "slow consumers",
		load: fmt.Sprintf("%d viewers never reading; %d x %d msg/s x %.0f KiB for %v", cfg.SlowViewers, cfg.Publishers, cfg.PublishRate,
			float64(cfg.PayloadBytes)/1024, cfg.SlowFor),
		memory: memText(mem),
		result: fmt.Sprintf("%d cut off as slow, %d messages dropped at full queues; reading viewer got %d of %d",
			bst.SlowClientsDisconnected, bst.MessagesDroppedQueueFull, got, pub),
	}
	fmt.Fprintf(stdout, "  published %d messages (%.1f MiB); the reading viewer received %d of them\n", pub, mib(uint64(pub)*uint64(cfg.PayloadBytes)), got)
	fmt.Fprintf(stdout, "  slow viewers: %d connections subscribed, %d refused at CONNECT; broker: %d cut off as slow, %d messages dropped at full queues\n",
		st.subscribed.Load(), st.refused.Load(), bst.SlowClientsDisconnected, bst.MessagesDroppedQueueFull)
	fmt.Fprintf(stdout, "  memory: %s; heap %.1f MiB after a GC at the end; %d warnings logged\n", memText(mem), mib(heapEnd), h.warns.Load())
	if got*100 < pub*95 {
		row.failed = append(row.failed, fmt.Sprintf("the reading viewer received %d of %d messages (under 95%%)", got, pub))
	}
	if st.subscribed.Load() == 0 {
		row.failed = append(row.failed, "no slow viewer got subscribed")
	}
	return row, nil
}

type slowStats struct {
	subscribed atomic.Int64 // connections that subscribed, then stopped reading
	refused    atomic.Int64 // CONNECTs refused (sessions per user)
}

// viewer connects as u with client id id, subscribes to everything and never reads again. It
// sends a PINGREQ a second, as a client whose reader is stuck does; once a write fails (the
// broker cut it off) it connects again, until ctx ends.
func (st *slowStats) viewer(ctx context.Context, addr, id string, u hostileUser) {
	for ctx.Err() == nil {
		c, err := dialFrom(ctx, "", addr)
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		// A small receive window, so that the broker's writes block soon.
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		code, err := mqttConnect(c, connectOpts{id: id, user: u.name, pass: u.pass, keepalive: 30}, clientWait)
		if err == nil && code != 0 {
			st.refused.Add(1)
		}
		if err == nil && code == 0 {
			if _, err = mqttSubscribe(c, 1, clientWait, topics.AllFilter); err == nil {
				st.subscribed.Add(1)
				for err == nil && sleepCtx(ctx, time.Second) {
					_ = c.SetWriteDeadline(time.Now().Add(time.Second))
					_, err = c.Write(pingreqPacket)
				}
			}
		}
		stop()
		c.Close()
		if err != nil || code != 0 {
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
}

// metricsPadding returns a padding field that makes a metrics payload (as metricsPayload
// builds it) size bytes long.
func metricsPadding(size int) ([]byte, error) {
	base, err := metricsPayload(1, nil)
	if err != nil {
		return nil, err
	}
	const field = `,"bench_padding":""`
	n := size - len(base) - len(field)
	if n < 0 {
		return nil, fmt.Errorf("--payload %d: a metrics payload takes at least %d bytes", size, len(base)+len(field))
	}
	pad := []byte(field[:len(field)-1] + string(bytes.Repeat([]byte("x"), n)) + `"`)
	p, err := metricsPayload(1, pad)
	if err != nil {
		return nil, err
	}
	if len(p) != size {
		return nil, fmt.Errorf("padded metrics payload is %d bytes, want %d", len(p), size)
	}
	if _, err := topics.DecodeMetrics(p); err != nil {
		return nil, fmt.Errorf("padded metrics payload: %w", err)
	}
	return pad, nil
}

// metricsPayload is a valid metrics payload with pad (a JSON field, which readers ignore)
// spliced in before its closing brace. The sequence number takes a fixed width, so that every
// payload has the same size.
func metricsPayload(seq uint64, pad []byte) ([]byte, error) {
	load, cpu := 0.42, 3
	b, err := topics.Encode(topics.Metrics{V: topics.Version, Seq: 1e12 + seq, TS: time.Unix(1.8e9, 0).UTC(), Load1: &load, CPUCount: &cpu})
	if err != nil {
		return nil, err
	}
	return append(append(b[:len(b)-1:len(b)-1], pad...), '}'), nil
}

// publishMetrics publishes rate metrics messages a second as agent u (QoS 0, retained as
// agents do unless not retain) over a raw socket, until ctx ends.
func publishMetrics(ctx context.Context, addr string, u hostileUser, rate int, retain bool, pad []byte, published *atomic.Int64) error {
	c, err := dialFrom(ctx, "", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if code, err := mqttConnect(c, connectOpts{id: u.name, user: u.name, pass: u.pass, keepalive: 60}, clientWait); err != nil || code != 0 {
		return fmt.Errorf("agent %s: CONNECT: code %d, %v", u.name, code, err)
	}
	topic := topics.MetricsTopic("r1", u.name)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			_, _ = c.Write(disconnectPacket)
			return nil
		case <-tick.C:
		}
		p, err := metricsPayload(seq, pad)
		if err != nil {
			return err
		}
		_ = c.SetWriteDeadline(time.Now().Add(clientWait))
		if _, err := c.Write(publishPacket(topic, p, 0, retain, 0)); err != nil {
			return fmt.Errorf("agent %s: publish: %w", u.name, err)
		}
		published.Add(1)
	}
}

// preConnectFlood: silent sockets from 127.0.0.1, agents connecting from 127.0.0.2.
func preConnectFlood(ctx context.Context, cfg HostileConfig, stdout io.Writer) (hostileRow, error) {
	var users []hostileUser
	for i := range cfg.LegitAgents {
		users = append(users, hostileUser{benchMAC(i), auth.RoleAgent, auth.GeneratePassword()})
	}
	h, err := startHostileCC(cfg, broker.Limits{}, users...)
	if err != nil {
		return hostileRow{}, err
	}
	defer h.close()
	addr := h.cc.MQTTAddr()
	// Linux routes 127/8 to the loopback interface: check that 127.0.0.2 is a source here.
	if c, err := dialFrom(ctx, "127.0.0.2", addr); err != nil {
		return hostileRow{}, fmt.Errorf("dial from 127.0.0.2 (the scenario needs a second loopback address, as Linux has): %w", err)
	} else {
		c.Close()
	}
	fmt.Fprintf(stdout, "pre-CONNECT flood: %d silent sockets/s from 127.0.0.1 for %v, while %d agents connect again and again from 127.0.0.2\n",
		cfg.FloodRate, cfg.FloodFor, cfg.LegitAgents)

	runCtx, stop := context.WithTimeout(ctx, cfg.FloodFor)
	defer stop()
	mem, waitMem := startMemPeak(runCtx, "self", memEvery)
	var fl floodStats
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(cfg.FloodRate))
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			wg.Go(func() { fl.socket(runCtx, addr) })
		}
	})
	var legit legitStats
	for _, u := range users {
		wg.Go(func() { legit.agent(runCtx, addr, u) })
	}
	wg.Wait()
	waitMem()
	if ctx.Err() != nil {
		return hostileRow{}, ctx.Err()
	}

	lat := legit.latencies()
	ok, failed := len(lat), legit.failed.Load()
	opened := fl.refused.Load() + fl.timedOut.Load() + fl.open.Load()
	row := hostileRow{name: "pre-CONNECT flood",
		load:   fmt.Sprintf("%d silent sockets/s from one address for %v; %d agents from another", cfg.FloodRate, cfg.FloodFor, cfg.LegitAgents),
		memory: memText(mem),
		result: fmt.Sprintf("legitimate connects: %d succeeded, %d failed; %d flood sockets refused at once, %d held to the deadline",
			ok, failed, fl.refused.Load(), fl.timedOut.Load()+fl.open.Load()),
	}
	fmt.Fprintf(stdout, "  flood: %d sockets opened (%d could not be dialled): %d refused at once, %d closed at the CONNECT deadline, %d still open at the end\n",
		opened, fl.dialFailed.Load(), fl.refused.Load(), fl.timedOut.Load(), fl.open.Load())
	fmt.Fprintf(stdout, "  legitimate connects: %d succeeded, %d failed; CONNECT to CONNACK p50 %v, p99 %v, max %v\n",
		ok, failed, pct(lat, 50), pct(lat, 99), pct(lat, 100))
	legit.mu.Lock()
	for why, n := range legit.reasons {
		fmt.Fprintf(stdout, "  legitimate connects failed %d times: %s\n", n, why)
	}
	legit.mu.Unlock()
	fmt.Fprintf(stdout, "  memory: %s; %d warnings logged\n", memText(mem), h.warns.Load())
	if failed > 0 || ok == 0 {
		row.failed = append(row.failed, fmt.Sprintf("legitimate connects: %d succeeded, %d failed", ok, failed))
	}
	return row, nil
}

type floodStats struct {
	refused, timedOut, open, dialFailed atomic.Int64
}

// socket opens one silent socket from 127.0.0.1 and waits for the broker to close it: at once
// (refused) or at its CONNECT deadline (held a slot meanwhile).
func (fl *floodStats) socket(ctx context.Context, addr string) {
	c, err := dialFrom(ctx, "127.0.0.1", addr)
	if err != nil {
		if ctx.Err() == nil {
			fl.dialFailed.Add(1)
		}
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(broker.DefaultConnectTimeout + 5*time.Second))
	var b [1]byte
	_, _ = c.Read(b[:])
	switch {
	case ctx.Err() != nil: // closed by the end of the scenario, not by the broker
		fl.open.Add(1)
	case time.Since(start) < broker.DefaultConnectTimeout/2:
		fl.refused.Add(1)
	default:
		fl.timedOut.Add(1)
	}
}

type legitStats struct {
	failed  atomic.Int64
	mu      sync.Mutex
	lat     []time.Duration // of the connects that succeeded
	reasons map[string]int  // why connects failed
}

// agent connects as agent u from 127.0.0.2, disconnects, and does it again after 100-300 ms,
// until ctx ends. An attempt that ctx cut short is not counted.
func (l *legitStats) agent(ctx context.Context, addr string, u hostileUser) {
	for ctx.Err() == nil {
		start := time.Now()
		c, err := dialFrom(ctx, "127.0.0.2", addr)
		var code byte
		if err == nil {
			code, err = mqttConnect(c, connectOpts{id: u.name, user: u.name, pass: u.pass, keepalive: 30}, clientWait)
			if err == nil && code == 0 {
				_, _ = c.Write(disconnectPacket)
			}
			c.Close()
		}
		switch {
		case err == nil && code == 0:
			l.mu.Lock()
			l.lat = append(l.lat, time.Since(start))
			l.mu.Unlock()
		case ctx.Err() == nil:
			l.failed.Add(1)
			why := fmt.Sprintf("CONNACK code %d", code)
			if err != nil {
				why = err.Error()
			}
			l.mu.Lock()
			if l.reasons == nil {
				l.reasons = map[string]int{}
			}
			l.reasons[why]++
			l.mu.Unlock()
		}
		sleepCtx(ctx, time.Duration(100+rand.IntN(200))*time.Millisecond)
	}
}

func (l *legitStats) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.lat)
	slices.Sort(s)
	return s
}

// sessionFlood: one viewer opens persistent sessions and subscribes each, while an agent
// presses and times its acknowledgements.
func sessionFlood(ctx context.Context, cfg HostileConfig, stdout io.Writer) (hostileRow, error) {
	mallory := hostileUser{"mallory", auth.RoleViewer, auth.GeneratePassword()}
	presser := hostileUser{benchMAC(0), auth.RoleAgent, auth.GeneratePassword()}
	h, err := startHostileCC(cfg, broker.Limits{}, mallory, presser)
	if err != nil {
		return hostileRow{}, err
	}
	defer h.close()
	addr := h.cc.MQTTAddr()
	fmt.Fprintf(stdout, "session flood: one viewer opens %d persistent sessions, %d filters each, 4 at a time; an agent presses every 50 ms meanwhile\n",
		cfg.Sessions, cfg.FiltersPerSession)

	pressCtx, stopPresses := context.WithCancel(ctx)
	defer stopPresses()
	var ps pressTimes
	var flooding atomic.Bool
	pressDone := make(chan error, 1)
	go func() { pressDone <- ps.press(pressCtx, addr, presser, &flooding) }()
	if !sleepCtx(ctx, time.Second) { // presses without the flood, to compare
		stopPresses()
		<-pressDone
		return hostileRow{}, ctx.Err()
	}

	memCtx, stopMem := context.WithCancel(ctx)
	mem, waitMem := startMemPeak(memCtx, "self", memEvery)
	flooding.Store(true)
	start := time.Now()
	var fs sessionStats
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < cfg.Sessions && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				fs.open(ctx, addr, mallory, i, cfg.FiltersPerSession)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	flooding.Store(false)
	sleepCtx(ctx, 500*time.Millisecond) // a few presses after it
	stopPresses()
	pressErr := <-pressDone
	heapEnd, _ := heap()
	stopMem()
	waitMem()
	if ctx.Err() != nil {
		return hostileRow{}, ctx.Err()
	}
	if pressErr != nil {
		return hostileRow{}, fmt.Errorf("pressing agent: %w", pressErr)
	}
	bst := h.cc.Broker().Stats()
	before, during := ps.sorted()
	row := hostileRow{name: "session flood",
		load:   fmt.Sprintf("one viewer: %d persistent sessions x %d filters", cfg.Sessions, cfg.FiltersPerSession),
		memory: memText(mem),
		result: fmt.Sprintf("sessions %d accepted, %d refused; filters %d granted, %d refused; press PUBACK p99 %v (%v without)",
			fs.accepted.Load(), fs.refused.Load(), fs.granted.Load(), fs.denied.Load(), pct(during, 99), pct(before, 99)),
	}
	fmt.Fprintf(stdout, "  %v: sessions %d accepted, %d refused (broker: %d), %d failed otherwise; filters %d granted, %d refused (broker: %d)\n",
		took.Round(time.Millisecond), fs.accepted.Load(), fs.refused.Load(), bst.SessionsRefused, fs.errors.Load(),
		fs.granted.Load(), fs.denied.Load(), bst.SubscriptionsRefused)
	fmt.Fprintf(stdout, "  press PUBACK: without the flood (1 s before, 0.5 s after) p50 %v, p99 %v (%d presses); during it p50 %v, p99 %v, max %v (%d presses)\n",
		pct(before, 50), pct(before, 99), len(before), pct(during, 50), pct(during, 99), pct(during, 100), len(during))
	fmt.Fprintf(stdout, "  memory: %s; heap %.1f MiB after a GC with the sessions kept; %d warnings logged\n", memText(mem), mib(heapEnd), h.warns.Load())
	if fs.accepted.Load() == 0 {
		row.failed = append(row.failed, "no session accepted")
	}
	return row, nil
}

type sessionStats struct {
	accepted, refused, errors, granted, denied atomic.Int64
}

// open opens persistent session i of u, subscribes it to filters filters in packets of 100,
// and leaves it (DISCONNECT: the session stays on the broker).
func (s *sessionStats) open(ctx context.Context, addr string, u hostileUser, i, filters int) {
	c, err := dialFrom(ctx, "", addr)
	if err != nil {
		s.errors.Add(1)
		return
	}
	defer c.Close()
	code, err := mqttConnect(c, connectOpts{id: fmt.Sprintf("mallory-%d", i), user: u.name, pass: u.pass, persistent: true, keepalive: 60}, clientWait)
	switch {
	case err != nil:
		s.errors.Add(1)
		return
	case code != 0:
		s.refused.Add(1)
		return
	}
	s.accepted.Add(1)
	for first := 0; first < filters; first += 100 {
		var fs []string
		for j := first; j < min(first+100, filters); j++ {
			fs = append(fs, topics.MetricsTopic(fmt.Sprintf("r%d", j%32), benchMAC(i*filters+j)))
		}
		codes, err := mqttSubscribe(c, uint16(first/100+1), clientWait, fs...)
		if err != nil {
			s.errors.Add(1)
			return
		}
		for _, code := range codes {
			if code >= 0x80 {
				s.denied.Add(1)
			} else {
				s.granted.Add(1)
			}
		}
	}
	_, _ = c.Write(disconnectPacket)
}

// pressTimes are an agent's press acknowledgement times, without and during a flood.
type pressTimes struct {
	mu             sync.Mutex
	before, during []time.Duration
}

// press publishes a button press every 50 ms as agent u (QoS 1, one in flight) and times each
// PUBACK, until ctx ends.
func (p *pressTimes) press(ctx context.Context, addr string, u hostileUser, flooding *atomic.Bool) error {
	c, err := dialFrom(ctx, "", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if code, err := mqttConnect(c, connectOpts{id: u.name, user: u.name, pass: u.pass, keepalive: 60}, clientWait); err != nil || code != 0 {
		return fmt.Errorf("CONNECT: code %d, %v", code, err)
	}
	topic := topics.ButtonTopic("r1", u.name)
	for seq := uint64(1); sleepCtx(ctx, 50*time.Millisecond); seq++ {
		b, err := topics.Encode(topics.ButtonEvent{V: topics.Version, Press: topics.PressShort, Seq: seq, TS: time.Now().UTC()})
		if err != nil {
			return err
		}
		during := flooding.Load()
		start := time.Now()
		id := uint16(seq%65535 + 1)
		if _, err := c.Write(publishPacket(topic, b, 1, false, id)); err != nil {
			return fmt.Errorf("publish press %d: %w", seq, err)
		}
		if _, err := awaitPacket(c, pktPuback, clientWait); err != nil {
			return fmt.Errorf("press %d: no PUBACK: %w", seq, err)
		}
		p.mu.Lock()
		if during {
			p.during = append(p.during, time.Since(start))
		} else {
			p.before = append(p.before, time.Since(start))
		}
		p.mu.Unlock()
	}
	_, _ = c.Write(disconnectPacket)
	return nil
}

func (p *pressTimes) sorted() (before, during []time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before, during = slices.Clone(p.before), slices.Clone(p.during)
	slices.Sort(before)
	slices.Sort(during)
	return before, during
}
