package alerts

import (
	"fmt"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// BenchmarkObserveMetrics is the engine's share of ingesting one metrics message (it runs on
// the broker's publish path): a healthy sample, every rule enabled at its default, for a rack
// of 1,000 Pis that are online.
func BenchmarkObserveMetrics(b *testing.B) {
	e, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	const pis = 1000
	macs := make([]string, pis)
	now := time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)
	for i := range macs {
		macs[i] = fmt.Sprintf("b827eb%06x", i)
		e.ObserveStatus(macs[i], row1, topics.Status{V: topics.Version, State: topics.StateOnline, Session: "s", TS: now}, now)
	}
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	cpus := 4
	m := topics.Metrics{
		V: topics.Version, Load1: f(0.42), Load5: f(0.35), Load15: f(0.3), CPUCount: &cpus, CPUPercent: f(11.5), CPUTempC: f(48.7),
		MemTotalBytes: u(4133834752), MemAvailableBytes: u(3289120768), DiskTotalBytes: u(31254904832), DiskFreeBytes: u(24016633856),
		ThrottledNow: []string{}, ThrottledSinceBoot: []string{}, UptimeS: u(259200),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%pis == 0 {
			now = now.Add(time.Second)
			m.Seq++
			m.TS = now
		}
		if out := e.ObserveMetrics(macs[i%pis], row1, m, now); len(out) != 0 {
			b.Fatalf("healthy sample raised %+v", out)
		}
		i++
	}
}
