package topics

import (
	"os"
	"testing"
)

// The control center decodes every metrics message it receives: 1,000 Pis at a 5 s interval
// are 200 a second.
func BenchmarkDecodeMetrics(b *testing.B) {
	payload, err := os.ReadFile("testdata/metrics.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMetrics(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTopic(b *testing.B) {
	topic := MetricsTopic("r1", "b827eb3f1a2c")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(topic); err != nil {
			b.Fatal(err)
		}
	}
}
