package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

const (
	testMAC = "b8:27:eb:3f:1a:2c"
	mac     = "b827eb3f1a2c"
	row     = "row-1"
	waitFor = 15 * time.Second // generous: only reached when a test fails
)

// message is a publish seen by the test broker's inline subscriber.
type message struct {
	topic   string
	payload []byte
	qos     byte
}

// testBroker is a plain Mochi server on a free loopback port, allowing everything, with an
// inline subscriber to every pirack topic and a hook reporting disconnects and Wills.
type testBroker struct {
	srv         *mqtt.Server
	url         string
	msgs        chan message
	disconnects chan error // the error a client's connection ended with; nil for a DISCONNECT
	wills       chan string
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	b := &testBroker{msgs: make(chan message, 4096), disconnects: make(chan error, 16), wills: make(chan string, 16)}
	b.srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := b.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.AddHook(&watchHook{b: b}, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := b.srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	// Inline handlers run on the publisher's goroutine: never block there.
	err := b.srv.Subscribe(topics.AllFilter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		select {
		case b.msgs <- message{pk.TopicName, bytes.Clone(pk.Payload), pk.FixedHeader.Qos}:
		default:
			t.Error("test broker: message buffer full")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.srv.Close() })
	b.url = "tcp://" + tcp.Address()
	return b
}

type watchHook struct {
	mqtt.HookBase
	b *testBroker
}

func (h *watchHook) ID() string { return "watch" }
func (h *watchHook) Provides(b byte) bool {
	return b == mqtt.OnDisconnect || b == mqtt.OnWillSent
}
func (h *watchHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.ID == mac {
		h.b.disconnects <- err
	}
}
func (h *watchHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) { h.b.wills <- cl.ID }

// next returns the next message on topic that satisfies ok, failing the test after waitFor.
func (b *testBroker) next(t *testing.T, topic string, ok func(message) bool) message {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case m := <-b.msgs:
			if m.topic == topic && (ok == nil || ok(m)) {
				return m
			}
		case <-timeout:
			t.Fatalf("no matching message on %s within %v", topic, waitFor)
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}

func (b *testBroker) nextStatus(t *testing.T, state string) topics.Status {
	t.Helper()
	var st topics.Status
	b.next(t, topics.StatusTopic(row, mac), func(m message) bool {
		s, err := topics.DecodeStatus(m.payload)
		if err != nil {
			t.Errorf("status payload %s: %v", m.payload, err)
			return false
		}
		st = s
		return s.State == state
	})
	return st
}

func (b *testBroker) sendLED(t *testing.T, payload string) {
	t.Helper()
	if err := b.srv.Publish(topics.LEDTopic(mac), []byte(payload), false, 1); err != nil {
		t.Fatal(err)
	}
}

// fixedCollector returns the same readings every time.
type fixedCollector struct {
	m   topics.Metrics
	err error
}

func (c fixedCollector) Collect(context.Context) (topics.Metrics, error) { return c.m, c.err }

// runAgent starts Run in the background; stop cancels it and waits for Run to return.
func runAgent(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	if cfg.MAC == "" {
		cfg.MAC = testMAC
	}
	cfg.Row = row
	if cfg.Collector == nil {
		cfg.Collector = fixedCollector{m: topics.Metrics{Load1: ptr(0.5), CPUCount: ptr(4)}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var stopped bool
	var err error
	stop = func() error {
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(waitFor):
			t.Fatal("Run did not return after its context was cancelled")
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func tapLogs(t *testing.T) (*slog.Logger, <-chan string) {
	msgs := make(chan string, 1024)
	return slog.New(testlog.Tap{Handler: slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}), Msgs: msgs}), msgs
}

func awaitLog(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case m := <-msgs:
			if m == want {
				return
			}
		case <-timeout:
			t.Fatalf("no log %q within %v", want, waitFor)
		}
	}
}

// ready waits for the birth and then the first metrics, which the agent publishes after it has
// subscribed to its LED topic.
func ready(t *testing.T, b *testBroker) topics.Status {
	t.Helper()
	birth := b.nextStatus(t, topics.StateOnline)
	b.next(t, topics.MetricsTopic(row, mac), nil)
	return birth
}

func TestBirthAndMetrics(t *testing.T) {
	b := startBroker(t)
	boot := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	sc := NewSimCollector(7, nil)
	runAgent(t, Config{
		Broker:    b.url,
		Hostname:  "pi-07",
		IP:        "10.0.0.7",
		Interval:  50 * time.Millisecond,
		Collector: bootCollector{sc, boot},
	})

	birth := b.nextStatus(t, topics.StateOnline)
	if birth.Hostname != "pi-07" || birth.IP != "10.0.0.7" || birth.Model != SimModel || birth.AgentVersion == "" || birth.Session == "" || len(birth.Session) > 64 {
		t.Errorf("birth identity = %+v", birth)
	}
	if birth.Serial != sc.Serial() || len(birth.Serial) != 16 {
		t.Errorf("birth serial = %q, want the collector's %q", birth.Serial, sc.Serial())
	}
	if !birth.BootTime.Equal(boot) {
		t.Errorf("birth boot time = %v, want %v", birth.BootTime, boot)
	}
	if birth.TS.IsZero() {
		t.Error("birth has no timestamp")
	}
	retained := b.srv.Topics.Messages(topics.StatusTopic(row, mac))
	if len(retained) != 1 || !bytes.Contains(retained[0].Payload, []byte(`"online"`)) || retained[0].FixedHeader.Qos != 1 {
		t.Errorf("retained status = %+v, want the birth at QoS1", retained)
	}

	var last uint64
	for i := range 3 {
		m := b.next(t, topics.MetricsTopic(row, mac), nil)
		got, err := topics.DecodeMetrics(m.payload)
		if err != nil {
			t.Fatalf("metrics %d: %v", i, err)
		}
		if got.Seq <= last {
			t.Errorf("metrics seq %d after %d, want increasing", got.Seq, last)
		}
		last = got.Seq
		if got.Load1 == nil || got.MemTotalBytes == nil || got.CPUTempC == nil || got.UptimeS == nil {
			t.Errorf("metrics %s miss readings", m.payload)
		}
		if m.qos != 0 {
			t.Errorf("metrics qos = %d, want 0", m.qos)
		}
	}
	if r := b.srv.Topics.Messages(topics.MetricsTopic(row, mac)); len(r) != 1 {
		t.Errorf("metrics not retained: %d retained messages", len(r))
	}
}

type bootCollector struct {
	*SimCollector
	boot time.Time
}

func (c bootCollector) BootTime(context.Context) (time.Time, error) { return c.boot, nil }

func TestMetricsLeaveOutFailedReadings(t *testing.T) {
	b := startBroker(t)
	runAgent(t, Config{
		Broker:    b.url,
		Interval:  time.Hour, // only the sample published on connect
		Collector: fixedCollector{m: topics.Metrics{Load1: ptr(1.5)}, err: errors.New("read cpu temperature: no sensor")},
	})
	m := b.next(t, topics.MetricsTopic(row, mac), nil)
	var raw map[string]any
	if err := json.Unmarshal(m.payload, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["load_1"] != 1.5 {
		t.Errorf("load_1 = %v, want the reading that succeeded", raw["load_1"])
	}
	for _, k := range []string{"cpu_temp_c", "mem_total_bytes", "load_5"} {
		if _, ok := raw[k]; ok {
			t.Errorf("%s present in %s; unread values must be absent", k, m.payload)
		}
	}
}

func TestButtonPressPublishesEvent(t *testing.T) {
	b := startBroker(t)
	btn := new(sim.Button)
	dir := t.TempDir()
	stop := runAgent(t, Config{Broker: b.url, Button: btn, StoreDir: dir, Interval: time.Hour})
	ready(t, b)

	btn.Press(topics.PressLong)
	btn.Press(topics.PressShort)
	var seqs []uint64
	for _, want := range []string{topics.PressLong, topics.PressShort} {
		m := b.next(t, topics.ButtonTopic(row, mac), nil)
		ev, err := topics.DecodeButton(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Press != want || m.qos != 1 {
			t.Errorf("event %s at qos %d, want press %q at qos 1", m.payload, m.qos, want)
		}
		seqs = append(seqs, ev.Seq)
	}
	if seqs[1] != seqs[0]+1 {
		t.Errorf("seqs = %v, want consecutive", seqs)
	}
	if r := b.srv.Topics.Messages(topics.ButtonTopic(row, mac)); len(r) != 0 {
		t.Error("button event retained")
	}

	// The counter survives a restart through StoreDir.
	stop()
	b.nextStatus(t, topics.StateOffline)
	runAgent(t, Config{Broker: b.url, Button: btn, StoreDir: dir, Interval: time.Hour})
	ready(t, b)
	btn.Press(topics.PressDouble)
	ev, err := topics.DecodeButton(b.next(t, topics.ButtonTopic(row, mac), nil).payload)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != seqs[1]+1 {
		t.Errorf("seq after restart = %d, want %d", ev.Seq, seqs[1]+1)
	}
}

// blinks waits until the LED has gone off→on n times and then stayed off, by watching it.
func awaitTransitions(t *testing.T, changes <-chan bool, led *sim.LED, n uint64) {
	t.Helper()
	timeout := time.After(waitFor)
	for led.Transitions() < n || led.On() {
		select {
		case <-changes:
		case <-timeout:
			t.Fatalf("LED made %d flashes (on=%v), want %d and then off", led.Transitions(), led.On(), n)
		}
	}
}

func TestLEDCommands(t *testing.T) {
	b := startBroker(t)
	led := new(sim.LED)
	changes, unwatch := led.Watch()
	defer unwatch()
	logger, logs := tapLogs(t)
	// A retained command, left by a careless publisher, must not fire on every (re)subscribe.
	if err := b.srv.Publish(topics.LEDTopic(mac), []byte("on"), true, 1); err != nil {
		t.Fatal(err)
	}
	runAgent(t, Config{Broker: b.url, LED: led, Interval: time.Hour, Logger: logger})
	ready(t, b)
	awaitLog(t, logs, "ignoring retained LED command; publish commands without the retain flag")

	b.sendLED(t, `{"action":"blink","count":3,"period_ms":60}`)
	awaitTransitions(t, changes, led, 3)

	b.sendLED(t, "blink 2")
	awaitTransitions(t, changes, led, 5)

	// An expired command is ignored.
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	b.sendLED(t, `{"action":"on","expires_at":"`+past+`"}`)
	awaitLog(t, logs, "ignoring expired LED command")
	// Invalid commands are dropped too.
	b.sendLED(t, "explode")
	awaitLog(t, logs, "dropping invalid LED command")
	if led.On() || led.Transitions() != 5 {
		t.Errorf("LED on=%v after %d flashes; an expired, invalid or retained command changed it", led.On(), led.Transitions())
	}
}

func TestLEDNewerCommandReplacesRunning(t *testing.T) {
	b := startBroker(t)
	led := new(sim.LED)
	changes, unwatch := led.Watch()
	defer unwatch()
	runAgent(t, Config{Broker: b.url, LED: led, Interval: time.Hour})
	ready(t, b)

	// Each flash of this blink holds the LED on for 5 s.
	b.sendLED(t, `{"action":"blink","count":100,"period_ms":10000}`)
	if on := <-changes; !on {
		t.Fatal("blink did not start with the LED on")
	}
	sent := time.Now()
	b.sendLED(t, "off")
	select {
	case on := <-changes:
		if on {
			t.Fatal("LED turned on again")
		}
		if d := time.Since(sent); d > 2*time.Second {
			t.Errorf("off took %v: the running blink was not replaced", d)
		}
	case <-time.After(waitFor):
		t.Fatal("off never turned the LED off")
	}
}

func TestWillOnConnectionLoss(t *testing.T) {
	b := startBroker(t)
	runAgent(t, Config{Broker: b.url, Interval: time.Hour, KeepAlive: 5 * time.Second})
	birth := ready(t, b)

	cl, ok := b.srv.Clients.Get(mac)
	if !ok {
		t.Fatal("agent's client id is not its normalised MAC")
	}
	// Close the socket under Mochi's feet, as a dead network would. (cl.Stop would not do:
	// Mochi treats a client it stopped itself as gone cleanly when its read loop sees that
	// first, and then sends no Will.)
	cl.Net.Conn.Close()

	off := b.nextStatus(t, topics.StateOffline)
	if off.Session != birth.Session {
		t.Errorf("will session = %q, want the birth's %q", off.Session, birth.Session)
	}
	if got := <-b.wills; got != mac {
		t.Errorf("will sent for %q", got)
	}
	// The agent comes back by itself with the same session.
	if again := b.nextStatus(t, topics.StateOnline); again.Session != birth.Session {
		t.Errorf("session after reconnect = %q, want %q", again.Session, birth.Session)
	}
}

func TestCleanStopPublishesOffline(t *testing.T) {
	b := startBroker(t)
	stop := runAgent(t, Config{Broker: b.url, Interval: time.Hour})
	birth := ready(t, b)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v after a clean stop, want nil", err)
	}

	off := b.nextStatus(t, topics.StateOffline)
	if off.Session != birth.Session || off.TS.IsZero() {
		t.Errorf("offline status = %+v, want the session %q and a timestamp", off, birth.Session)
	}
	if err := <-b.disconnects; err != nil {
		t.Errorf("agent's connection ended with %v, want a clean DISCONNECT", err)
	}
	select {
	case id := <-b.wills:
		t.Errorf("will fired for %s on a clean stop", id)
	default: // the hook sends Wills before OnDisconnect, so none is coming
	}
	r := b.srv.Topics.Messages(topics.StatusTopic(row, mac))
	if len(r) != 1 || !bytes.Contains(r[0].Payload, []byte(`"offline"`)) {
		t.Errorf("retained status after stop = %+v, want offline", r)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no broker":    {Row: row, MAC: testMAC},
		"bad broker":   {Broker: "rack-host", Row: row, MAC: testMAC},
		"no row":       {Broker: "tcp://127.0.0.1:1", MAC: testMAC},
		"bad row":      {Broker: "tcp://127.0.0.1:1", Row: "Row 1", MAC: testMAC},
		"bad mac":      {Broker: "tcp://127.0.0.1:1", Row: row, MAC: "b8:27:eb"},
		"negative":     {Broker: "tcp://127.0.0.1:1", Row: row, MAC: testMAC, Interval: -time.Second},
		"store a file": {Broker: "tcp://127.0.0.1:1", Row: row, MAC: testMAC, StoreDir: "/dev/null"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			if err := Run(t.Context(), cfg); err == nil {
				t.Error("Run accepted the config")
			}
		})
	}
}

func TestRunWithoutBrokerStopsCleanly(t *testing.T) {
	// Nothing listens on the port: Run keeps retrying until cancelled, then returns nil.
	stop := runAgent(t, Config{Broker: "tcp://127.0.0.1:1", Interval: 10 * time.Millisecond})
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestStoreDirHoldsPressCounter(t *testing.T) {
	dir := t.TempDir()
	p := &pressCounter{path: filepath.Join(dir, pressSeqFile)}
	for range 3 {
		if _, err := p.next(); err != nil {
			t.Fatal(err)
		}
	}
	q := &pressCounter{path: p.path}
	if err := q.load(); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.next(); n != 4 {
		t.Errorf("next after reload = %d, want 4", n)
	}
	os.WriteFile(p.path, []byte("garbage"), 0o600)
	if err := (&pressCounter{path: p.path}).load(); err == nil {
		t.Error("corrupt counter file accepted")
	}
}

// syncButton hands each press to the agent and returns once the agent has taken it (queued it),
// so a test knows exactly what was pressed before it acts.
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

func (b *syncButton) press(t *testing.T, kind string) {
	t.Helper()
	timeout := time.After(waitFor)
	select {
	case b.presses <- kind:
	case <-timeout:
		t.Fatal("agent did not take the press")
	}
	select {
	case <-b.handled:
	case <-timeout:
		t.Fatal("agent did not handle the press")
	}
}

func TestCleanStopDeliversQueuedPressesFirst(t *testing.T) {
	b := startBroker(t)
	btn := newSyncButton()
	// No StoreDir: presses not delivered before the agent exits would be lost for good.
	stop := runAgent(t, Config{Broker: b.url, Button: btn, Interval: time.Hour})
	ready(t, b)

	const n = 200
	for range n {
		btn.press(t, topics.PressShort)
	}
	stop() // at once: most presses are still queued

	var next uint64 = 1
	timeout := time.After(waitFor)
	for {
		select {
		case m := <-b.msgs:
			switch m.topic {
			case topics.ButtonTopic(row, mac):
				ev, err := topics.DecodeButton(m.payload)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Seq != next {
					t.Fatalf("press seq %d, want %d: out of order or lost", ev.Seq, next)
				}
				next++
			case topics.StatusTopic(row, mac):
				st, err := topics.DecodeStatus(m.payload)
				if err != nil || st.State != topics.StateOffline {
					continue
				}
				if next != n+1 {
					t.Fatalf("offline status after %d of %d presses: a clean stop must deliver its queued presses first", next-1, n)
				}
				return
			}
		case <-timeout:
			t.Fatalf("%d of %d presses and no offline status within %v", next-1, n, waitFor)
		}
	}
}

// fakePower answers each Read with the next of its results, then repeats the last one.
type fakePower struct {
	mu      sync.Mutex
	results []powerResult
	reads   int
}

type powerResult struct {
	p   topics.Power
	err error
}

func (f *fakePower) Read() (topics.Power, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.results[min(f.reads, len(f.results)-1)]
	f.reads++
	return r.p, r.err
}

func TestPowerReadings(t *testing.T) {
	b := startBroker(t)
	logger, logs := tapLogs(t)
	loose := errors.New("ina219 at 0x40 on /dev/i2c-1: read the calibration: remote I/O error")
	first := topics.Power{Volts: ptr(5.1), Amps: ptr(2.9999), Watts: ptr(15.298), Source: "ina219"}
	second := topics.Power{Volts: ptr(5.02), Amps: ptr(1.5), Watts: ptr(7.53), Source: "ina219"}
	sensor := &fakePower{results: []powerResult{{p: first}, {err: loose}, {err: loose}, {err: loose}, {p: second}}}
	runAgent(t, Config{Broker: b.url, Interval: 20 * time.Millisecond, Power: sensor, Logger: logger})

	m := b.next(t, topics.PowerTopic(row), nil)
	got, err := topics.DecodePower(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Volts != 5.1 || *got.Amps != 2.9999 || *got.Watts != 15.298 || got.Source != "ina219" || got.V != topics.Version || got.TS.IsZero() {
		t.Errorf("power reading %s, want the sensor's first reading with v and ts set", m.payload)
	}
	if m.qos != 0 {
		t.Errorf("power published at QoS %d, want 0", m.qos)
	}

	// Three failed reads: logged once (rate-limited), skipped, and the agent carries on.
	awaitLog(t, logs, "cannot read the row's power sensor; reading skipped")
	m = b.next(t, topics.PowerTopic(row), nil)
	if got, err := topics.DecodePower(m.payload); err != nil || *got.Volts != 5.02 || *got.Amps != 1.5 {
		t.Errorf("power reading after the failures %s (%v), want the second reading", m.payload, err)
	}
	for msg := ""; msg != "power sensor readings are back"; {
		select {
		case msg = <-logs:
			if msg == "cannot read the row's power sensor; reading skipped" {
				t.Error("a failing sensor was logged more than once")
			}
		case <-time.After(waitFor):
			t.Fatal("no log that the sensor's readings are back")
		}
	}
	b.next(t, topics.MetricsTopic(row, mac), nil) // telemetry still flows
	r := b.srv.Topics.Messages(topics.PowerTopic(row))
	if len(r) != 1 || !bytes.Contains(r[0].Payload, []byte(`"volts":5.02`)) {
		t.Errorf("retained power = %+v, want the latest reading", r)
	}
}

// A Pi without a sensor publishes no power, whatever the interval.
func TestNoPowerWithoutSensor(t *testing.T) {
	b := startBroker(t)
	runAgent(t, Config{Broker: b.url, Interval: 10 * time.Millisecond})
	ready(t, b)
	for range 5 {
		b.next(t, topics.MetricsTopic(row, mac), nil)
	}
	if r := b.srv.Topics.Messages(topics.PowerTopic(row)); len(r) != 0 {
		t.Errorf("power retained without a sensor: %+v", r)
	}
}
