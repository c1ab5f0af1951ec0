package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/topics"
)

// BenchmarkIngestMetrics measures one metrics message through the dashboard's ingestion: topic
// parse, decode, validate, state update and SSE fan-out bookkeeping, for a rack of 1,000 Pis.
// It runs on the broker's publish path, so it bounds how many messages a second one control
// center can take in.
func BenchmarkIngestMetrics(b *testing.B) {
	fake := new(dashboardtest.Bus)
	s, err := New(Config{Bus: fake, Auth: dashboardtest.Users{"admin": {Password: "x", Role: auth.RoleAdmin}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const pis = 1000
	topicsByPi := make([]string, pis)
	// Two samples, alternated per Pi, so every message differs from the one held (an identical
	// one would take the cheaper replay path).
	load := 0.5
	var payloads [2][]byte
	for seq := range payloads {
		payloads[seq], err = topics.Encode(topics.Metrics{V: 1, Seq: uint64(seq + 1), TS: time.Now(), Load1: &load})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range pis {
		topicsByPi[i] = topics.MetricsTopic("r1", fmt.Sprintf("b827eb%06x", i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		fake.Publish(context.Background(), bus.Message{Topic: topicsByPi[i%pis], Payload: payloads[(i/pis)%2], Retained: true})
		i++
	}
}
