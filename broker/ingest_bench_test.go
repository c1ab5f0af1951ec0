package broker

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// BenchmarkIngestMetricsEndToEnd is one agent's QoS 0 metrics publish through the embedded
// broker's in-process path as pirack serve runs it: the hook's ACL and contract check, then the
// dashboard's ingestion (rack state, history queue, alert engine), for a rack of 1,000 Pis
// sending real 600-byte payloads, every one a new sample. The history's writer runs beside it,
// and the benchmark ends with its queue committed, so its work is paid for: cpu-ns/op is the
// process's CPU time (every goroutine, the SQLite writer's included) per message, the figure the
// issue measured from outside (203 µs a message for the whole process). dropped/op and
// merged/op say what the history did not store one by one because its writer fell behind.
func BenchmarkIngestMetricsEndToEnd(b *testing.B) {
	b.StopTimer()
	users := testUsers(b)
	br := newBroker(b, b.TempDir(), users, false, func(c *Config) { c.Logger = discardLogger() })
	hist, err := history.Open(filepath.Join(b.TempDir(), "history.db"), history.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hist.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		hist.Close()
	}()
	engine, err := alerts.New(alerts.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := dashboard.New(dashboard.Config{Bus: br, Auth: users, History: hist, Alerts: engine, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	// One publishing client with a session, as the hook keeps them after CONNECT. An admin may
	// publish for every Pi, so one client stands for the fleet's 1,000.
	admin, _ := users.Get("admin")
	cl := br.srv.NewClient(nil, "local", "bench-publisher", false)
	br.hook.mu.Lock()
	br.hook.sessions[cl.ID] = session{cl: cl, user: admin}
	br.hook.mu.Unlock()

	const pis = 1000
	names := make([]string, pis)
	for i := range names {
		names[i] = topics.MetricsTopic(fmt.Sprintf("r%d", i/25), fmt.Sprintf("b827eb%06x", i))
	}
	// An agent's payload (topics/testdata/metrics.json) whose seq and ts are rewritten in
	// place for each message: fixed-width fields, so no encoding is timed.
	template := []byte(`{"v":1,"seq":1000000000,"ts":"2026-11-24T07:30:00Z","load_1":0.42,"load_5":0.35,"load_15":0.3,` +
		`"cpu_count":4,"cpu_percent":11.5,"cpu_temp_c":48.7,"mem_total_bytes":4133834752,"mem_available_bytes":3289120768,` +
		`"disk_total_bytes":31254904832,"disk_free_bytes":24016633856,"throttled_now":[],"throttled_since_boot":[],` +
		`"uptime_s":259200,"net_rx_bytes":182736451,"net_tx_bytes":93847562,"hostname_pad":"` +
		"................................................................................................................" + `"}`)
	if _, err := topics.DecodeMetrics(template); err != nil {
		b.Fatal(err)
	}
	seqAt, tsAt := bytes.Index(template, []byte("1000000000")), bytes.Index(template, []byte("2026-11-24"))
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	payload := func(n int) []byte {
		p := append([]byte(nil), template...)
		strconv.AppendUint(p[seqAt:seqAt], uint64(1000000000+n/pis), 10)
		start.Add(time.Duration(n/pis)*time.Second).UTC().AppendFormat(p[tsAt:tsAt], time.RFC3339)
		return p
	}
	if _, err := topics.DecodeMetrics(payload(pis * 7)); err != nil {
		b.Fatal(err)
	}

	publish := func(n int) {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: names[n%pis], Payload: payload(n)}
		if _, err := br.hook.OnPublish(cl, pk); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.StartTimer()
	n := 0
	for b.Loop() {
		publish(n)
		n++
	}
	if err := hist.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	st := hist.Stats()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
	b.ReportMetric(float64(st.Dropped)/float64(n), "dropped/op")
	if rs := srv.Rack().Stats(); rs.Applied != uint64(n) {
		b.Fatalf("applied %d of %d messages (%+v)", rs.Applied, n, rs)
	}
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
