package broker

import (
	"net"
	"strings"
	"testing"

	"github.com/pirack/pirack/internal/testlog"
)

// 5,000 agents with the defaults: issue 13 measured 904 of them refused at Mochi's
// MaximumClients, which was 4096.
func TestDefaultMaxClientsHoldsThousandsOfAgents(t *testing.T) {
	if got := (Config{}).withDefaults().MaxClients; got < 5000+DefaultMaxPending {
		t.Errorf("default MaxClients %d: 5,000 agents and the control center's own clients do not fit", got)
	}
}

// TestMaxClientsRefusedLogged fills MaxClients and checks that the clients over it are refused
// with "server unavailable", counted, and logged in one line with the count, not one per client.
func TestMaxClientsRefusedLogged(t *testing.T) {
	logs := new(testlog.Buffer)
	const max = 3
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) {
		c.Logger = newBufferLogger(t, logs)
		c.MaxClients = max
	})
	ended := make(chan net.Conn, 16)
	b.afterEnd = func(c net.Conn) { ended <- c }
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range max {
		conn := rawConnect(t, b.Addr(), connectPacket{id: "in-" + string(rune('a'+i)), user: "admin", pass: password})
		expectConnack(t, conn, 0)
	}
	const over = 4
	for i := range over {
		conn := rawConnect(t, b.Addr(), connectPacket{id: "over-" + string(rune('a'+i)), user: "admin", pass: password})
		expectConnack(t, conn, v3Unavailable)
		readUntilClosed(t, conn)
		<-ended // its log line, if any, is written
	}
	if got := b.Stats().ConnectsRefusedMaxClients; got != over {
		t.Errorf("Stats.ConnectsRefusedMaxClients %d, want %d", got, over)
	}
	out := logs.String()
	if n := strings.Count(out, "the broker holds its most clients"); n != 1 {
		t.Fatalf("%d log lines about MaxClients for %d refusals, want 1 (throttled):\n%s", n, over, out)
	}
	if !strings.Contains(out, "max_clients=3") || !strings.Contains(out, "--mqtt-max-clients") {
		t.Errorf("the log line does not say the limit and how to raise it:\n%s", out)
	}
}
