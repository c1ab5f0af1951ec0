package powerbridge

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// memBus is an in-memory Bus for the timing tests, which run in a synctest bubble where the
// real broker's goroutines and sockets cannot. It delivers only to exact topics, which is all
// the bridge subscribes to. integration_test.go runs the bridge on the real broker.
type memBus struct {
	mu        sync.Mutex
	subs      map[string][]bus.Handler
	retained  map[string][]byte
	published []published
}

type published struct {
	topic  string
	power  topics.Power
	retain bool
	qos    byte
}

var _ bus.Bus = (*memBus)(nil)

func newMemBus() *memBus {
	return &memBus{subs: map[string][]bus.Handler{}, retained: map[string][]byte{}}
}

func (m *memBus) Subscribe(filter string, fn bus.Handler) error {
	m.mu.Lock()
	m.subs[filter] = append(m.subs[filter], fn)
	r, ok := m.retained[filter]
	m.mu.Unlock()
	if ok {
		fn(bus.Message{Topic: filter, Payload: r, Retained: true})
	}
	return nil
}

func (m *memBus) Publish(_ context.Context, msg bus.Message) error {
	topic, retain, qos := msg.Topic, msg.Retained, msg.QoS
	p, err := topics.DecodePower(msg.Payload)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published = append(m.published, published{topic, p, retain, qos})
	return nil
}

// plug delivers a plug's message as the broker would.
func (m *memBus) plug(topic string, payload []byte) {
	m.mu.Lock()
	fns := m.subs[topic]
	m.mu.Unlock()
	for _, fn := range fns {
		fn(bus.Message{Topic: topic, Payload: payload})
	}
}

func (m *memBus) take() []published {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.published
	m.published = nil
	return p
}

var testFile = File{Plugs: []Plug{
	{Row: "r1", Type: TypeTasmota, Topic: "tele/rack-r1/SENSOR"},
	{Row: "r2", Type: TypeShellyGen2, Topic: "shellyplusplugs-a8032ab1/status/switch:0"},
	{Row: "r3", Type: TypeShellyGen1, Topic: "shellies/shellyplug-s-7AB3C1"},
}}

func tasmota(watts string) []byte {
	return []byte(`{"Time":"1970-01-01T00:00:12","ENERGY":{"Power":` + watts + `,"Voltage":231,"Current":0.1}}`)
}

// runBridge starts a bridge on bus in the bubble and stops it at the end of the test.
func runBridge(t *testing.T, bus *memBus, log *slog.Logger) *Bridge {
	t.Helper()
	b, err := New(Config{Bus: bus, File: testFile, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b
}

func watts(t *testing.T, p published) float64 {
	t.Helper()
	if p.power.Watts == nil {
		t.Fatalf("%s: no watts in %+v", p.topic, p.power)
	}
	return *p.power.Watts
}

// A row's first reading goes out at once; then at most one a second, the latest, stamped with
// when it arrived. Rows are paced apart.
func TestBridgePacesEachRow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newMemBus()
		runBridge(t, bus, nil)
		start := time.Now()

		bus.plug("tele/rack-r1/SENSOR", tasmota("10"))
		synctest.Wait()
		got := bus.take()
		if len(got) != 1 || got[0].topic != topics.PowerTopic("r1") || watts(t, got[0]) != 10 || !got[0].retain || got[0].qos != 0 {
			t.Fatalf("first reading: published %+v, want rack/r1/power 10 W retained QoS 0 at once", got)
		}
		p := got[0].power
		if !p.TS.Equal(start) || p.Source != "tasmota" || p.Volts != nil || p.Amps != nil {
			t.Errorf("first reading %+v: want TS %v (the control center's clock, not the plug's 1970), source tasmota, no mains volts or amps", p, start)
		}

		// A chatty plug: four more readings in the next 400 ms, and another row meanwhile.
		var lastAt time.Time
		for i, w := range []string{"11", "12", "13", "14"} {
			time.Sleep(100 * time.Millisecond)
			lastAt = time.Now()
			bus.plug("tele/rack-r1/SENSOR", tasmota(w))
			if i == 1 {
				bus.plug("shellies/shellyplug-s-7AB3C1/relay/0/power", []byte("5.5"))
			}
		}
		synctest.Wait()
		got = bus.take()
		if len(got) != 1 || got[0].topic != topics.PowerTopic("r3") || watts(t, got[0]) != 5.5 || got[0].power.Source != "shelly" {
			t.Fatalf("within r1's second: published %+v, want only row r3's first reading (5.5 W)", got)
		}

		time.Sleep(time.Second - time.Since(start) - time.Nanosecond)
		synctest.Wait()
		if got := bus.take(); len(got) != 0 {
			t.Fatalf("before r1's second was over: published %+v", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got = bus.take()
		if len(got) != 1 || got[0].topic != topics.PowerTopic("r1") || watts(t, got[0]) != 14 || !got[0].power.TS.Equal(lastAt) {
			t.Fatalf("a second after r1's first: published %+v, want the latest reading, 14 W at %v", got, lastAt)
		}

		// Quiet for longer than a second: the next reading goes out at once.
		time.Sleep(5 * time.Second)
		bus.plug("tele/rack-r1/SENSOR", tasmota("20"))
		synctest.Wait()
		if got := bus.take(); len(got) != 1 || watts(t, got[0]) != 20 {
			t.Fatalf("after a quiet spell: published %+v, want 20 W at once", got)
		}
	})
}

// A Shelly Gen2's notifications carry only what changed: they are merged with its last status.
// A notification of the energy counters alone says the power is unchanged, and refreshes it.
func TestBridgeMergesShellyGen2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newMemBus()
		runBridge(t, bus, nil)
		const status, events = "shellyplusplugs-a8032ab1/status/switch:0", "shellyplusplugs-a8032ab1/events/rpc"
		for _, step := range []struct {
			topic, file string
			want        float64 // 0: nothing published
		}{
			{events, "rpc-notify-voltage.json", 0}, // no watts known yet
			{status, "plus-plug-s.json", 16.9},
			{events, "rpc-notify-partial.json", 18.2},
			{events, "rpc-notify-aenergy.json", 18.2},
			{events, "rpc-notify-event.json", 0},        // not a status
			{events, "rpc-notify-other-switch.json", 0}, // another switch's
		} {
			time.Sleep(time.Second)
			bus.plug(step.topic, testdata(t, "shelly-gen2", step.file))
			synctest.Wait()
			got := bus.take()
			switch {
			case step.want == 0 && len(got) != 0:
				t.Errorf("%s: published %+v, want nothing", step.file, got)
			case step.want != 0 && (len(got) != 1 || got[0].topic != topics.PowerTopic("r2") || watts(t, got[0]) != step.want):
				t.Errorf("%s: published %+v, want rack/r2/power %v W", step.file, got, step.want)
			case step.want != 0 && !got[0].power.TS.Equal(time.Now()):
				t.Errorf("%s: TS %v, want now (%v)", step.file, got[0].power.TS, time.Now())
			}
		}
	})
}

// A Shelly Gen1 sends each quantity on its own topic; its voltage alone publishes nothing.
func TestBridgeShellyGen1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newMemBus()
		b, err := New(Config{Bus: bus, File: File{Plugs: []Plug{{Row: "r4", Type: TypeShellyGen1, Topic: "shellies/shellyem-B9F1E2", Channel: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go b.Run(ctx)

		bus.plug("shellies/shellyem-B9F1E2/emeter/1/voltage", []byte("231.4"))
		bus.plug("shellies/shellyem-B9F1E2/emeter/0/power", []byte("999")) // the other channel
		synctest.Wait()
		if got := bus.take(); len(got) != 0 {
			t.Fatalf("voltage alone, or another channel: published %+v", got)
		}
		bus.plug("shellies/shellyem-B9F1E2/emeter/1/power", []byte("33.25"))
		synctest.Wait()
		if got := bus.take(); len(got) != 1 || got[0].topic != topics.PowerTopic("r4") || watts(t, got[0]) != 33.25 {
			t.Fatalf("published %+v, want rack/r4/power 33.25 W", got)
		}
	})
}

// A malformed message is counted, logged (at most one line a minute per plug) and dropped;
// the plug's last good reading stands.
func TestBridgeDropsMalformed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newMemBus()
		var logs testlog.Buffer
		b := runBridge(t, bus, slog.New(slog.NewTextHandler(&logs, nil)))

		bus.plug("tele/rack-r1/SENSOR", tasmota("10"))
		synctest.Wait()
		bus.take()
		for _, payload := range [][]byte{
			[]byte(`{"ENERGY":{"Power":"ten"}}`),
			[]byte(`not json`),
			tasmota("-5"),
			tasmota("200000"), // beyond what the contract allows
		} {
			time.Sleep(2 * time.Second)
			bus.plug("tele/rack-r1/SENSOR", payload)
		}
		synctest.Wait()
		if got := bus.take(); len(got) != 0 {
			t.Fatalf("malformed messages published %+v", got)
		}
		if s := b.Stats(); s.Malformed != 4 || s.Received != 5 || s.Published != 1 {
			t.Errorf("stats %+v, want 5 received, 4 malformed, 1 published", s)
		}
		lines := strings.Count(logs.String(), "malformed plug message dropped")
		if lines != 1 || !strings.Contains(logs.String(), "topic=tele/rack-r1/SENSOR") || !strings.Contains(logs.String(), "ENERGY.Power") {
			t.Fatalf("want one log line naming the topic and the fault, got:\n%s", logs.String())
		}
		time.Sleep(time.Minute)
		bus.plug("tele/rack-r1/SENSOR", []byte(`{}`))
		if n := strings.Count(logs.String(), "malformed plug message dropped"); n != 2 || !strings.Contains(logs.String(), "unlogged_since_last_line=3") {
			t.Fatalf("a minute later: want a second line counting the 3 not logged, got:\n%s", logs.String())
		}
		// Good messages go through again.
		bus.plug("tele/rack-r1/SENSOR", tasmota("11"))
		synctest.Wait()
		if got := bus.take(); len(got) != 1 || got[0].topic != topics.PowerTopic("r1") || watts(t, got[0]) != 11 {
			t.Fatalf("after malformed messages: published %+v, want rack/r1/power 11 W", got)
		}
	})
}

// Retained plug messages replayed when the bridge subscribes are of unknown age: skipped.
func TestBridgeSkipsRetained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newMemBus()
		bus.retained["tele/rack-r1/SENSOR"] = tasmota("10")
		b := runBridge(t, bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
		synctest.Wait()
		if got := bus.take(); len(got) != 0 {
			t.Fatalf("a retained plug message was republished: %+v", got)
		}
		if s := b.Stats(); s.Skipped != 1 || s.Received != 0 {
			t.Errorf("stats %+v, want 1 skipped", s)
		}
	})
}

// On a network bus the broker's retained replay arrives after Subscribe returned, mixed with
// live messages: the flag, not the timing, tells the bridge to skip it.
func TestBridgeSkipsRetainedArrivingLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mb := newMemBus()
		b := runBridge(t, mb, slog.New(slog.NewTextHandler(io.Discard, nil)))
		for _, fn := range mb.subs["tele/rack-r1/SENSOR"] {
			fn(bus.Message{Topic: "tele/rack-r1/SENSOR", Payload: tasmota("10"), Retained: true})
		}
		synctest.Wait()
		if got := mb.take(); len(got) != 0 {
			t.Fatalf("a late retained plug message was republished: %+v", got)
		}
		mb.plug("tele/rack-r1/SENSOR", tasmota("12"))
		synctest.Wait()
		if got := mb.take(); len(got) != 1 || watts(t, got[0]) != 12 {
			t.Fatalf("the live message after it: published %+v, want 12 W", got)
		}
		if s := b.Stats(); s.Skipped != 1 || s.Received != 1 {
			t.Errorf("stats %+v, want 1 skipped, 1 received", s)
		}
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{File: testFile}); err == nil || !strings.Contains(err.Error(), "Bus is required") {
		t.Errorf("no bus: %v", err)
	}
	bad := File{Plugs: []Plug{{Row: "r1", Type: TypeTasmota, Topic: topics.PowerTopic("r1")}}}
	if _, err := New(Config{Bus: newMemBus(), File: bad}); err == nil || !strings.Contains(err.Error(), "under rack/") {
		t.Errorf("plug topic under the pirack root: %v", err)
	}
	if _, err := New(Config{Bus: newMemBus(), File: testFile, MinInterval: -time.Second}); err == nil {
		t.Error("negative MinInterval accepted")
	}
}
