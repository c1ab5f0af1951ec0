package agent

import "testing"

// BenchmarkHostCollect is one telemetry sample of this machine, everything included (the
// agent takes one per interval, 5 s by default): docs/benchmarks.md.
func BenchmarkHostCollect(b *testing.B) {
	c := new(HostCollector)
	c.Collect(b.Context()) // the previous sample the rates need
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Collect(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
