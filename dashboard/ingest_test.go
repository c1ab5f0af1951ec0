package dashboard

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

type msg struct {
	topic   string
	payload any
}

func TestIngest(t *testing.T) {
	statusA := topics.StatusTopic(rowA, macA)
	metricsA := topics.MetricsTopic(rowA, macA)
	buttonA := topics.ButtonTopic(rowA, macA)

	tests := []struct {
		name  string
		msgs  []msg
		check func(t *testing.T, nodes []Node)
		want  Stats // counters only; SSE fields are not compared
	}{
		{
			name: "online birth sets identity",
			msgs: []msg{{statusA, online("pi-a", "s1")}},
			check: func(t *testing.T, nodes []Node) {
				n := only(t, nodes)
				if n.State != StateOnline || n.Hostname != "pi-a" || n.IP != "10.0.0.7" || n.AgentVersion != "0.1.0" || n.Row != rowA {
					t.Errorf("node = %+v", n)
				}
				if !n.LastSeen.Equal(t0) {
					t.Errorf("LastSeen = %v, want %v", n.LastSeen, t0)
				}
			},
			want: Stats{Received: 1, Applied: 1},
		},
		{
			name: "offline Will of the same session",
			msgs: []msg{{statusA, online("pi-a", "s1")}, {statusA, offline("s1")}},
			check: func(t *testing.T, nodes []Node) {
				if n := only(t, nodes); n.State != StateOffline || n.Hostname != "pi-a" {
					t.Errorf("node = %+v, want offline with identity kept", n)
				}
			},
			want: Stats{Received: 2, Applied: 2},
		},
		{
			name: "late Will of an older session is ignored",
			msgs: []msg{{statusA, online("pi-a", "s2")}, {statusA, offline("s1")}},
			check: func(t *testing.T, nodes []Node) {
				if n := only(t, nodes); n.State != StateOnline {
					t.Errorf("State = %q, want online: a late Will overwrote a fresh birth", n.State)
				}
			},
			want: Stats{Received: 2, Applied: 1, StatusOutOfOrder: 1},
		},
		{
			name: "plain word offline without session applies",
			msgs: []msg{{statusA, online("pi-a", "s1")}, {statusA, "offline"}},
			check: func(t *testing.T, nodes []Node) {
				if n := only(t, nodes); n.State != StateOffline {
					t.Errorf("State = %q, want offline", n.State)
				}
			},
			want: Stats{Received: 2, Applied: 2},
		},
		{
			name: "metrics for an unseen MAC create the node",
			msgs: []msg{{metricsA, metrics(1, 0.5)}},
			check: func(t *testing.T, nodes []Node) {
				n := only(t, nodes)
				if n.State != StateUnknown || n.Metrics == nil || *n.Metrics.Load1 != 0.5 || n.MAC != macA {
					t.Errorf("node = %+v", n)
				}
			},
			want: Stats{Received: 1, Applied: 1},
		},
		{
			name: "metrics do not make an offline Pi online",
			msgs: []msg{{statusA, offline("")}, {metricsA, metrics(1, 0.5)}},
			check: func(t *testing.T, nodes []Node) {
				if n := only(t, nodes); n.State != StateOffline || n.Metrics == nil {
					t.Errorf("node = %+v", n)
				}
			},
			want: Stats{Received: 2, Applied: 2},
		},
		{
			name: "invalid payloads leave state untouched",
			msgs: []msg{
				{metricsA, metrics(1, 0.5)},
				{metricsA, "not json"},
				{metricsA, `{"v":2,"ts":"2026-03-01T12:00:00Z"}`},
				{metricsA, `{"v":1,"ts":"2026-03-01T12:00:00Z","load_1":-3}`},
				{metricsA, strings.Repeat(" ", topics.MaxPayload+1)},
				{statusA, `{"v":1,"state":"sideways"}`},
				{statusA, `{"v":1,"state":"online","hostname":"a\u0000b"}`},
				{buttonA, `{"v":1,"press":"stomp","seq":1,"ts":"2026-03-01T12:00:00Z"}`},
			},
			check: func(t *testing.T, nodes []Node) {
				n := only(t, nodes)
				if n.State != StateUnknown || n.Hostname != "" || n.Selected || *n.Metrics.Load1 != 0.5 {
					t.Errorf("node = %+v, want only the first valid metrics applied", n)
				}
			},
			want: Stats{Received: 8, Applied: 1, Invalid: 7, InvalidBy: InvalidCounts{JSON: 1, Payload: 5, Oversized: 1}},
		},
		{
			name: "topics outside the contract are invalid; LED commands are ignored; power is applied",
			msgs: []msg{
				{topics.Root + "/" + rowA + "/" + macA + "/shoe", "x"},
				{topics.Root + "/" + rowA + "/B827EB3F1A2C/status", "online"},
				{topics.Root + "/Row!/" + macA + "/status", "online"},
				{topics.Root, "x"},
				{topics.LEDTopic(macA), "blink"},
				{topics.PowerTopic(rowA), `{"v":1,"ts":"2026-03-01T12:00:00Z","volts":5.1}`},
			},
			check: func(t *testing.T, nodes []Node) {
				if len(nodes) != 0 {
					t.Errorf("nodes = %+v, want none", nodes)
				}
			},
			want: Stats{Received: 6, Applied: 1, Ignored: 1, Invalid: 4, InvalidBy: InvalidCounts{UnknownTopic: 4}},
		},
		{
			name: "button press selects; a repeated seq is a duplicate",
			msgs: []msg{{buttonA, press(7)}, {buttonA, press(7)}, {buttonA, press(8)}},
			check: func(t *testing.T, nodes []Node) {
				n := only(t, nodes)
				if !n.Selected || n.SelectedBy != topics.PressShort || !n.SelectedAt.Equal(t0) {
					t.Errorf("node = %+v, want selected by a short press", n)
				}
			},
			want: Stats{Received: 3, Applied: 2, Duplicates: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, m := range tt.msgs {
				f.publish(t, m.topic, m.payload)
			}
			tt.check(t, f.rack.Nodes())
			got := f.rack.Stats()
			got.SSEClients, got.SSEDropped = 0, 0
			if got != tt.want {
				t.Errorf("Stats = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func only(t *testing.T, nodes []Node) Node {
	t.Helper()
	if len(nodes) != 1 {
		t.Fatalf("got %d nodes, want 1: %+v", len(nodes), nodes)
	}
	return nodes[0]
}

func TestNewSubscribesToAllTopics(t *testing.T) {
	f := newFixture(t)
	if got := f.bus.Filters(); !slices.Equal(got, []string{topics.AllFilter}) {
		t.Errorf("subscribed %q, want %q", got, topics.AllFilter)
	}
}

func TestNodesSortedByRowThenMAC(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowB, macA), online("b-a", "s"))
	f.publish(t, topics.StatusTopic(rowA, macB), online("a-b", "s"))
	f.publish(t, topics.StatusTopic(rowA, macA), online("a-a", "s")) // macA moves to row A
	f.publish(t, topics.StatusTopic(rowB, "000000000001"), online("b-1", "s"))
	var got []string
	for _, n := range f.rack.Nodes() {
		got = append(got, n.Hostname)
	}
	if want := []string{"a-a", "a-b", "b-1"}; !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestPressMemoryIsBounded(t *testing.T) {
	f := newFixture(t)
	topic := topics.ButtonTopic(rowA, macA)
	for seq := range uint64(pressMemory + 1) {
		f.publish(t, topic, press(seq))
	}
	f.rack.state.clearSelection(macA)
	// Seq 0 has left the memory: an agent whose counter restarted is not locked out.
	f.publish(t, topic, press(0))
	if n := only(t, f.rack.Nodes()); !n.Selected {
		t.Error("press with a forgotten seq was dropped")
	}
	// A recent seq is still a duplicate.
	f.rack.state.clearSelection(macA)
	f.publish(t, topic, press(pressMemory))
	if n := only(t, f.rack.Nodes()); n.Selected {
		t.Error("recent duplicate press selected the node")
	}
}

func TestInvalidPayloadLogIsRateLimited(t *testing.T) {
	f := newFixture(t)
	for range 20 {
		f.publish(t, topics.MetricsTopic(rowA, macA), "garbage")
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "dropping invalid payload"); n != 1 {
		t.Errorf("%d warnings for a flood of 20 invalid payloads in under %v, want 1:\n%s", n, invalidLogEvery, logs)
	}
	if !strings.Contains(logs, "topic="+topics.MetricsTopic(rowA, macA)) || !strings.Contains(logs, "err=") {
		t.Errorf("warning lacks topic or error:\n%s", logs)
	}
	if got := f.rack.Stats().Invalid; got != 20 {
		t.Errorf("Invalid = %d, want 20", got)
	}
}

func TestLastSeenFollowsTheClock(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi", "s"))
	f.clock.Advance(time.Minute)
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(1, 1))
	if n := only(t, f.rack.Nodes()); !n.LastSeen.Equal(t0.Add(time.Minute)) || !n.Since.Equal(t0) {
		t.Errorf("LastSeen %v, Since %v", n.LastSeen, n.Since)
	}
}

// TestIngestUsesTheBrokersDecoding: a message the bus already decoded (the embedded broker,
// checking the contract) is not decoded again: its Decoded value is what is applied. Without
// one, the payload is decoded (TestIngest's messages come through a fake network bus).
func TestIngestUsesTheBrokersDecoding(t *testing.T) {
	f := newFixture(t)
	payload, err := topics.Encode(metrics(1, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	f.rack.ingest(bus.Message{Topic: topics.MetricsTopic(rowA, macA), Payload: payload, Decoded: metrics(2, 0.75)})
	if n, ok := f.rack.node(macA); !ok || n.Metrics == nil || *n.Metrics.Load1 != 0.75 || n.Metrics.Seq != 2 {
		t.Fatalf("node %+v: want the decoded value applied (load 0.75, seq 2), not the payload decoded again", n)
	}
	f.rack.ingest(bus.Message{Topic: topics.MetricsTopic(rowA, macA), Payload: payload})
	if n, _ := f.rack.node(macA); *n.Metrics.Load1 != 0.5 {
		t.Fatalf("load %v: want the payload decoded, 0.5", *n.Metrics.Load1)
	}
}
