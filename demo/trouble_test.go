package demo

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
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
// supply sagging, an NVMe drive over its limit).
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
			case slices.ContainsFunc(m.Temps, func(s topics.Temp) bool { return s.MaxC != nil && s.C > *s.MaxC }):
				seen[troubleDriveHot] = true
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

// A simulated Pi takes a shutdown as a real one with --allow-system-commands would: its agent
// stops cleanly, its row draws about one Pi less, and (the demo's stand-in for a board pulled
// and plugged back) it comes back after a while.
func TestDemoShutdown(t *testing.T) {
	haltedFor = 2 * time.Second
	t.Cleanup(func() { haltedFor = 3 * time.Minute })
	cfg := Config{Rows: 1, PerRow: 4, Interval: 100 * time.Millisecond, NoTroubles: true}
	cc, err := controlcenter.New(controlcenter.Config{DataDir: t.TempDir(), MQTTAddr: loopback(t), HTTPAddr: loopback(t),
		Logger: slog.New(slog.DiscardHandler), RemoteSystem: true, Tasks: []controlcenter.Task{Task(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	await := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 20 s: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	state := func(mac string) string {
		for _, n := range cc.Rack().Nodes() {
			if n.MAC == mac {
				return n.State
			}
		}
		return ""
	}
	watts := func() float64 {
		if rows := cc.Rack().Rows(); len(rows) == 1 && rows[0].Power != nil && rows[0].Power.Watts != nil {
			return *rows[0].Power.Watts
		}
		return 0
	}
	mac := newPis(1, 4)[0].mac
	await("all four online", func() bool {
		n := 0
		for _, x := range cc.Rack().Nodes() {
			if x.State == dashboard.StateOnline {
				n++
			}
		}
		return n == 4 && watts() > 4*1.4
	})
	now := time.Now().UTC()
	payload, err := topics.Encode(topics.SystemCommand{V: 1, Action: topics.SystemShutdown, IssuedAt: now, ExpiresAt: now.Add(time.Minute), By: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Bus().Publish(ctx, bus.Message{Topic: topics.SystemTopic(mac), Payload: payload, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	await("offline after the shutdown", func() bool { return state(mac) == dashboard.StateOffline })
	await("the row draws for three Pis", func() bool { return watts() > 0 && watts() <= 3*1.8 })
	await("back after the off time", func() bool { return state(mac) == dashboard.StateOnline })
}
