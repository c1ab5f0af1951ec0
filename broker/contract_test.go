package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// TestInvalidPublishesAreDropped: a payload on a topic of the contract that topics rejects is
// acknowledged (the sender does not resend it for ever) and dropped: not delivered to MQTT
// subscribers nor in-process ones, not retained, counted and logged with its reason, once per
// client and minute. A valid message and an empty retained publish (a deletion) go through.
func TestInvalidPublishesAreDropped(t *testing.T) {
	var logs testlog.Buffer
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) { c.Logger = newBufferLogger(t, &logs) })
	var mu sync.Mutex
	var inproc []string
	if err := b.Subscribe(topics.AllFilter, func(m bus.Message) {
		mu.Lock()
		defer mu.Unlock()
		inproc = append(inproc, m.Topic+" "+string(m.Payload))
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	viewer := mustDial(t, b, "v", "viewer")
	viewer.subscribe(t, topics.AllFilter)
	agent := mustDial(t, b, macA, macA)
	auto := mustDial(t, b, "flows", "auto")

	metrics := topics.MetricsTopic("r1", macA)
	valid := `{"v":1,"ts":"2026-12-03T07:00:00Z","load_1":0.5}`
	bad := []struct {
		c       *client
		topic   string
		retain  bool
		payload string
	}{
		{agent, metrics, true, `{"v":1,"ts":"2026-12-03T07:00:00Z","load_1":-4}`},
		{agent, metrics, true, "not json"},
		{agent, topics.StatusTopic("r1", macA), true, "up"},
		{agent, topics.ButtonTopic("r1", macA), false, `{"v":1,"press":"sneeze","seq":1,"ts":"2026-12-03T07:00:00Z"}`},
		{auto, topics.LEDTopic(macA), false, "explode"},
		{auto, topics.LEDTopic(macA), false, `{"action":"blink","by":"` + strings.Repeat("x", 60<<10) + `"}`}, // over the contract's 16 KiB
		{auto, topics.LEDTopic(macA), true, "blink 2"},                                                        // a retained command
	}
	for _, p := range bad {
		p.c.publish(t, p.topic, 1, p.retain, p.payload) // acknowledged
	}
	agent.publish(t, metrics, 1, true, valid)
	if m := viewer.next(t); m.Topic() != metrics || string(m.Payload()) != valid {
		t.Fatalf("viewer got %s %.80q first, want the valid metrics: an invalid message was delivered", m.Topic(), m.Payload())
	}
	if got := b.Stats().PublishesInvalid; got != int64(len(bad)) {
		t.Errorf("PublishesInvalid = %d, want %d", got, len(bad))
	}
	mu.Lock()
	for _, m := range inproc {
		if !strings.HasPrefix(m, metrics+" "+valid) {
			t.Errorf("in-process subscriber got %.100q", m)
		}
	}
	mu.Unlock()
	if r := b.srv.Topics.Messages(topics.StatusTopic("r1", macA)); len(r) != 0 {
		t.Errorf("an invalid status was retained: %q", r[0].Payload)
	}
	if r := b.srv.Topics.Messages(topics.LEDTopic(macA)); len(r) != 0 {
		t.Errorf("a retained LED command was retained: %q", r[0].Payload)
	}
	// One line per client and minute, with the reason, however many it sends.
	if n := strings.Count(logs.String(), "breaks the topic contract"); n != 2 {
		t.Errorf("%d log lines for invalid publishes of 2 clients, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "load_1 -4: want 0 to 1e+06") {
		t.Errorf("the log does not say what was wrong:\n%s", logs.String())
	}

	// An empty retained publish deletes the retained metrics.
	agent.publish(t, metrics, 1, true, "")
	if r := b.srv.Topics.Messages(metrics); len(r) != 0 {
		t.Errorf("retained metrics after an empty retained publish: %q", r[0].Payload)
	}
}

// TestLEDCommandsQueuedForAnOfflinePiAreCapped: a user allowed to send LED commands cannot fill
// the control host's disk through an offline Pi's queue. The first MaxQueuedLED commands wait for
// the Pi; later ones are dropped, counted and logged once.
func TestLEDCommandsQueuedForAnOfflinePiAreCapped(t *testing.T) {
	var logs testlog.Buffer
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.Logger = newBufferLogger(t, &logs)
		c.MaxQueuedLED = 4
	})
	agent := mustDial(t, b, macA, macA, persistent)
	agent.subscribe(t, topics.LEDTopic(macA))
	agent.Disconnect(0)
	awaitOffline(t, b, macA)
	auto := mustDial(t, b, "flows", "auto")
	for i := range 10 {
		auto.publish(t, topics.LEDTopic(macA), 1, false, fmt.Sprintf("blink %d", i+1))
	}
	auto.barrier(t) // all ten fanned out while the Pi is away

	agent = mustDial(t, b, macA, macA, persistent)
	// Mochi re-sends a session's queue in no set order within a second (docs/reliability.md).
	got := map[string]bool{}
	for range 4 {
		got[string(agent.next(t).Payload())] = true
	}
	for i := range 4 {
		if want := fmt.Sprintf("blink %d", i+1); !got[want] {
			t.Errorf("queued commands %v, want the first 4 (blink 1 to 4)", got)
		}
	}
	// Sent once the Pi is back: it comes right after the queued ones, so nothing else was kept.
	if err := b.Publish(context.Background(), bus.Message{Topic: topics.LEDTopic(macA), Payload: []byte("on"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := agent.next(t); string(m.Payload()) != "on" {
		t.Fatalf("after the 4 queued commands the Pi got %q, want the live one: more than 4 were queued", m.Payload())
	}
	if got := b.Stats().LEDCommandsDropped; got != 6 {
		t.Errorf("LEDCommandsDropped = %d, want 6", got)
	}
	if n := strings.Count(logs.String(), "LED command dropped"); n != 1 {
		t.Errorf("%d log lines for 6 dropped commands, want 1", n)
	}
}

// awaitOffline returns once the broker has ended the connection of client id, keeping its
// session. paho's Disconnect does not wait for that.
func awaitOffline(t *testing.T, b *Broker, id string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if cl, ok := b.srv.Clients.Get(id); ok && cl.Closed() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s still connected after %v", id, wait)
		}
		time.Sleep(5 * time.Millisecond) // polled: Mochi has no event for it
	}
}

// valid is a payload the contract accepts on topic, carrying label in a field readers ignore
// (an LED command's "by"), so tests can tell messages apart. A topic outside the contract gets
// label itself.
func valid(topic, label string) string {
	t, err := topics.Parse(topic)
	if err != nil {
		return label
	}
	l := strconv.Quote(label)
	const ts = `"v":1,"ts":"2026-12-03T07:00:00Z"`
	switch t.Kind {
	case topics.KindStatus:
		return `{` + ts + `,"state":"online","label":` + l + `}`
	case topics.KindMetrics:
		return `{` + ts + `,"load_1":0.5,"label":` + l + `}`
	case topics.KindButton:
		return `{` + ts + `,"press":"short","seq":1,"label":` + l + `}`
	case topics.KindLED:
		return `{"action":"blink","by":` + l + `}`
	case topics.KindPower:
		return `{` + ts + `,"watts":5,"label":` + l + `}`
	case topics.KindLEDState:
		return `{` + ts + `,"state":"off","label":` + l + `}`
	case topics.KindAlert:
		return `{` + ts + `,"since":"2026-12-03T06:59:00Z","rule":"` + t.Rule + `","severity":"warning","state":"raised","row":"` +
			t.Row + `","mac":"` + t.MAC + `","message":` + l + `}`
	}
	panic("valid: no payload for " + topic)
}

// TestConnectRefusalsLoggedOncePerMinute: a client retrying a wrong password (or a user over its
// sessions) at the rate of password checks logs one line a minute per user and reason, not one
// per attempt; another user's refusal still gets its own line.
func TestConnectRefusalsLoggedOncePerMinute(t *testing.T) {
	var logs testlog.Buffer
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.Logger = newBufferLogger(t, &logs) })
	for range 5 {
		if _, err := dial(t, b, "guess", "viewer", "wrong-password"); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	if _, err := dial(t, b, "guess", "auto", "wrong-password"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if n := strings.Count(logs.String(), "MQTT connection refused"); n != 2 {
		t.Errorf("%d refusal lines for 5 attempts of one user and 1 of another, want 2:\n%s", n, logs.String())
	}
}
