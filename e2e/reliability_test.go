package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// Agents in these tests reconnect within 300 ms (backoff 200 ms + jitter 100 ms), not 30 s.
const fastReconnect = 300 * time.Millisecond

// pressLog records the button presses the dashboard ingested: per MAC, the sequence numbers in
// the order they first arrived, and how many arrived again.
type pressLog struct {
	mu      sync.Mutex
	order   map[string][]uint64
	seen    map[string]map[uint64]bool
	dups    int
	changed chan struct{} // closed and replaced at each new press
}

func newPressLog() *pressLog {
	return &pressLog{order: map[string][]uint64{}, seen: map[string]map[uint64]bool{}, changed: make(chan struct{})}
}

func (l *pressLog) ingest(m bus.Message) {
	topic, payload := m.Topic, m.Payload
	tp, err := topics.Parse(topic)
	if err != nil || tp.Kind != topics.KindButton {
		return
	}
	ev, err := topics.DecodeButton(payload)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[tp.MAC] == nil {
		l.seen[tp.MAC] = map[uint64]bool{}
	}
	if l.seen[tp.MAC][ev.Seq] {
		l.dups++
		return
	}
	l.seen[tp.MAC][ev.Seq] = true
	l.order[tp.MAC] = append(l.order[tp.MAC], ev.Seq)
	close(l.changed)
	l.changed = make(chan struct{})
}

// await waits until every MAC in want has had presses 1..want[mac] ingested, and returns what
// is still missing when waitLimit runs out (nil when nothing is).
func (l *pressLog) await(t *testing.T, want map[string]uint64) (missing map[string][]uint64) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		missing = nil
		for mac, n := range want {
			for seq := uint64(1); seq <= n; seq++ {
				if !l.seen[mac][seq] {
					if missing == nil {
						missing = map[string][]uint64{}
					}
					missing[mac] = append(missing[mac], seq)
				}
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if missing == nil {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return missing
		case <-t.Context().Done():
			return missing
		}
	}
}

func (l *pressLog) firstSeen(mac string) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.order[mac])
}

func (l *pressLog) duplicates() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dups
}

// syncButton hands each press to the agent and returns once the agent has queued it, so a
// test knows exactly which sequence numbers were pressed, and when.
type syncButton struct {
	presses chan string
	handled chan struct{}
}

func newSyncButton() *syncButton {
	return &syncButton{presses: make(chan string), handled: make(chan struct{})}
}

func (b *syncButton) Run(ctx context.Context, press func(kind string)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-b.presses:
			press(k)
			b.handled <- struct{}{}
		}
	}
}

func (b *syncButton) press(kind string) error {
	timeout := time.After(waitLimit)
	select {
	case b.presses <- kind:
	case <-timeout:
		return fmt.Errorf("agent did not take the press within %v", waitLimit)
	}
	select {
	case <-b.handled:
		return nil
	case <-timeout:
		return fmt.Errorf("agent did not queue the press within %v", waitLimit)
	}
}

// pressN presses n times, as press does, failing the test on an error.
func (b *syncButton) pressN(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := b.press(topics.PressShort); err != nil {
			t.Fatal(err)
		}
	}
}

// durablePi configures an agent that keeps its press queue in dir, reconnects fast and takes
// presses from btn.
func durablePi(dir string, btn *syncButton) func(*agent.Config) {
	return func(c *agent.Config) {
		c.StoreDir = dir
		c.MaxReconnectDelay = fastReconnect
		c.Button = btn
	}
}

// TestNoPressLostAcrossBrokerRestarts: 5 agents press 200 times each while the broker is
// killed and restarted three times (the whole control center, on the same data directory); the dashboard must see every (mac, seq), each agent's in
// order. Redeliveries are allowed (QoS 1) and counted. The dashboard recognises a redelivery
// among the last 256 presses of each Pi (its dedupe window); 200 presses fit in it.
func TestNoPressLostAcrossBrokerRestarts(t *testing.T) {
	const agents, perAgent, restarts = 5, 200, 3
	rr := newRig(t)
	want := map[string]uint64{}
	var buttons []*syncButton
	for i := range agents {
		mac := fmt.Sprintf("b827eb00c%03x", i)
		btn := newSyncButton()
		rr.startPi(t, mac, "r1", rr.mqttAddr, durablePi(t.TempDir(), btn))
		buttons = append(buttons, btn)
		want[mac] = perAgent
	}
	for mac := range want {
		rr.awaitNode(t, mac, "online", func(n dashboard.Node) bool { return n.Online() })
	}

	var pressed atomic.Int64
	errs := make(chan error, agents)
	for _, btn := range buttons {
		go func() {
			for range perAgent {
				if err := btn.press(topics.PressShort); err != nil {
					errs <- err
					return
				}
				pressed.Add(1)
			}
			errs <- nil
		}()
	}
	// Kill the broker at a quarter, half and three quarters of the presses, and keep it down
	// while another 50 presses are made (or until the presses end).
	total := int64(agents * perAgent)
	awaitPressed := func(n int64) {
		deadline := time.Now().Add(waitLimit)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for pressed.Load() < min(n, total) && time.Now().Before(deadline) {
			<-tick.C
		}
	}
	for i := range int64(restarts) {
		awaitPressed((i + 1) * total / (restarts + 1))
		rr.kill(t)
		awaitPressed(pressed.Load() + 50)
		rr.restart(t)
	}
	for range agents {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	if missing := rr.seen.await(t, want); missing != nil {
		n := 0
		for _, m := range missing {
			n += len(m)
		}
		t.Fatalf("%d presses never reached the dashboard: %v", n, missing)
	}
	for mac := range want {
		if got := rr.seen.firstSeen(mac); !slices.IsSorted(got) {
			t.Errorf("%s: presses first arrived out of order: %v", mac, got)
		}
	}
	t.Logf("%d presses from %d agents across %d broker restarts: 0 missing, %d redelivered (dashboard counted %d duplicates)",
		total, agents, restarts, rr.seen.duplicates(), rr.rack().Stats().Duplicates)
}

// TestPressesBufferedWhileBrokerDown: presses made while the broker is down, before and after
// an agent restart, are all delivered in order once it is back. The outage lasts 3 s rather
// than 10: what matters is that presses happen during it and the agent keeps retrying, and
// with the agent's backoff capped (here at 300 ms) a longer outage only adds retries.
func TestPressesBufferedWhileBrokerDown(t *testing.T) {
	const outage = 3 * time.Second
	rr := newRig(t)
	store := t.TempDir()
	btn := newSyncButton()
	p := rr.startPi(t, macA, "r1", rr.mqttAddr, durablePi(store, btn))
	rr.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	btn.pressN(t, 5) // 1-5, delivered
	if missing := rr.seen.await(t, map[string]uint64{macA: 5}); missing != nil {
		t.Fatalf("with the broker up: missing %v", missing)
	}

	rr.kill(t)
	down := time.Now()
	btn.pressN(t, 10) // 6-15, queued on disk
	p.stop()          // a clean stop while disconnected: the queue stays on disk
	btn = newSyncButton()
	rr.runPi(t, p, rr.mqttAddr, durablePi(store, btn))
	btn.pressN(t, 10) // 16-25, queued behind them
	select {
	case <-time.After(time.Until(down.Add(outage))):
	case <-t.Context().Done():
	}
	rr.restart(t)

	if missing := rr.seen.await(t, map[string]uint64{macA: 25}); missing != nil {
		t.Fatalf("after a %v outage and an agent restart: missing %v", outage, missing)
	}
	want := make([]uint64, 25)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := rr.seen.firstSeen(macA); !slices.Equal(got, want) {
		t.Errorf("presses arrived in the order %v, want 1..25", got)
	}
	t.Logf("25 presses, 20 of them during a %v outage spanning an agent restart: all delivered in order, %d redelivered",
		time.Since(down).Round(time.Millisecond), rr.seen.duplicates())
}

// TestOfflineWithinKeepaliveWhenLinkFreezes: a link that stops carrying bytes without closing
// (a pulled cable) is noticed by the broker after 1.5 x the agent's keepalive; it publishes the
// Will and the dashboard shows the Pi offline.
func TestOfflineWithinKeepaliveWhenLinkFreezes(t *testing.T) {
	const keepAlive = 2 * time.Second
	bound := keepAlive * 3 / 2
	r := newRig(t)
	link := tcpproxy.New(t, r.mqttAddr)
	r.startPi(t, macA, "r1", link.Addr(), func(c *agent.Config) { c.KeepAlive = keepAlive })
	r.awaitNode(t, macA, "online with metrics", func(n dashboard.Node) bool { return n.Online() && n.Metrics != nil })

	link.Freeze() // the agent's last packet (metrics every 50 ms) went through just before
	frozen := time.Now()
	r.awaitNode(t, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
	took := time.Since(frozen)
	t.Logf("link frozen: offline on the dashboard after %v (keepalive %v, bound 1.5 x keepalive = %v)", took.Round(time.Millisecond), keepAlive, bound)
	// 250 ms of slack for the Will's way to the dashboard on a loaded 2-core CI machine.
	if took > bound+250*time.Millisecond {
		t.Errorf("offline after %v, want within 1.5 x keepalive (%v)", took, bound)
	}
	// Earlier than the keepalive allows would mean something else noticed (a closed socket).
	if took < bound-time.Second {
		t.Errorf("offline after only %v: not the keepalive at work", took)
	}
}

// TestLEDCommandExpiresWhileAgentOffline: a command queued in an offline agent's persistent
// session is carried out when the agent comes back before its expires_at, and ignored after.
// The expiry is checked against the agent's clock: clock skew between the issuer and the Pi
// shifts it (see docs/reliability.md).
func TestLEDCommandExpiresWhileAgentOffline(t *testing.T) {
	r := newRig(t)
	logs := make(chan string, 256)
	tapped := func(c *agent.Config) { c.Logger = slog.New(testlog.Tap{Handler: c.Logger.Handler(), Msgs: logs}) }
	p := r.startPi(t, macA, "r1", r.mqttAddr, tapped)
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	changes, unwatch := p.led.Watch()
	defer unwatch()

	send := func(expires time.Time) {
		t.Helper()
		now := time.Now().UTC()
		cmd := topics.LEDCommand{Action: topics.LEDBlink, Count: 2, PeriodMS: 50, IssuedAt: now, ExpiresAt: expires, By: "e2e"}.WithDefaults()
		b, err := topics.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, bus.Message{Topic: topics.LEDTopic(macA), Payload: b, QoS: 1})
	}
	restart := func() {
		t.Helper()
		p.stop()
		r.awaitNode(t, macA, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
	}

	// Reconnecting after the expiry: no blink.
	restart()
	expires := time.Now().Add(500 * time.Millisecond)
	send(expires)
	select { // the agent stays away until the command has expired
	case <-time.After(time.Until(expires) + 50*time.Millisecond):
	case <-t.Context().Done():
	}
	r.runPi(t, p, r.mqttAddr, tapped)
	awaitLogged(t, logs, "ignoring expired LED command")
	if n := p.led.Transitions(); n != 0 {
		t.Fatalf("LED flashed %d times for a command that expired while the agent was away", n)
	}

	// Reconnecting before the expiry: blink.
	restart()
	send(time.Now().Add(time.Minute))
	r.runPi(t, p, r.mqttAddr, tapped)
	deadline := time.After(waitLimit)
	for p.led.Transitions() < 2 {
		select {
		case <-changes:
		case <-deadline:
			t.Fatalf("LED flashed %d times, want 2: a queued command still valid was not carried out", p.led.Transitions())
		}
	}
}

func awaitLogged(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-msgs:
			if m == want {
				return
			}
		case <-deadline:
			t.Fatalf("no log %q within %v", want, waitLimit)
		}
	}
}
