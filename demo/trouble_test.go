package demo

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

func loopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The demo shows what goes wrong: with its pace sped up, the control center sees each trouble
// in turn on the simulated Pis (hot, under-voltage, a full disk, stale, offline, a row's
// supply sagging).
func TestDemoTroublesShowEveryState(t *testing.T) {
	cfg := Config{Rows: 1, PerRow: 4, Interval: 200 * time.Millisecond, TroubleEvery: 1500 * time.Millisecond, TroubleFor: 3 * time.Second}
	cc, err := controlcenter.New(controlcenter.Config{DataDir: t.TempDir(), MQTTAddr: loopback(t), HTTPAddr: loopback(t),
		Logger: slog.New(slog.DiscardHandler), StaleAfter: time.Second, Tasks: []controlcenter.Task{Task(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	seen := map[trouble]bool{}
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < len(troubles) {
		if time.Now().After(deadline) {
			t.Fatalf("in 90 s the page showed only %v of the troubles %v", seen, troubles)
		}
		for _, row := range cc.Rack().Rows() {
			if row.Power != nil && row.Power.Volts != nil && *row.Power.Volts < 4.8 {
				seen[troubleRowPower] = true
			}
		}
		for _, n := range cc.Rack().Nodes() {
			m := n.Metrics
			switch {
			case n.State == dashboard.StateOffline:
				seen[troubleOffline] = true
			case n.State == dashboard.StateStale:
				seen[troubleStale] = true
			case m == nil:
			case m.CPUTempC != nil && *m.CPUTempC >= 84:
				seen[troubleHot] = true
			case len(m.ThrottledNow) == 1 && m.ThrottledNow[0] == topics.ThrottleUnderVoltage:
				seen[troubleUnderVoltage] = true
			default:
				if pct, ok := m.DiskUsedPercent(); ok && pct > 90 {
					seen[troubleDiskFull] = true
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
