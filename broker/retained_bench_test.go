package broker

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"

	"github.com/pirack/pirack/topics"
)

// BenchmarkRetainedPublish publishes retained messages in-process into Mochi with each way of
// storing them, to a rack of 1,000 Pis' metrics topics (a 600-byte payload each):
//
//   - per-message: Mochi's stock bolt hook, one transaction and fsync per message (pirack
//     before group commit);
//   - group-commit: boltStore, as the broker runs it (RetainedFlushInterval 200 ms).
//
// qos0 is one publisher (agents' metrics); qos1-parallel is 32 concurrent publishers of QoS 1
// retained messages (births and Wills in a connection storm), which wait for their commit.
// The time includes closing the server, so the last commit is paid for.
func BenchmarkRetainedPublish(b *testing.B) {
	names := make([]string, 1000)
	for i := range names {
		names[i] = topics.MetricsTopic(fmt.Sprintf("r%d", i/25), fmt.Sprintf("b827eb%06x", i))
	}
	payload := []byte(strings.Repeat("x", 600))
	for _, store := range []string{"per-message", "group-commit"} {
		for _, qos := range []string{"qos0", "qos1-parallel"} {
			b.Run(store+"/"+qos, func(b *testing.B) {
				srv, commits := benchServer(b, store)
				var next atomic.Int64
				publish := func(q byte) {
					if err := srv.Publish(names[next.Add(1)%int64(len(names))], payload, true, q); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				if qos == "qos0" {
					for range b.N {
						publish(0)
					}
				} else {
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							publish(1)
						}
					})
				}
				if err := srv.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if commits != nil {
					b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/op")
				}
			})
		}
	}
}

// benchServer starts a Mochi server with the named store in a temporary directory. For
// group-commit it also returns the count of commits.
func benchServer(b *testing.B, store string) (*mqtt.Server, *atomic.Int64) {
	dir := b.TempDir()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: discardLogger(), Capabilities: Config{}.withDefaults().capabilities()})
	opts := &bolt.Options{Path: filepath.Join(dir, DBFile), Bucket: hookBucket, Options: &bbolt.Options{Timeout: time.Second}}
	var hook mqtt.Hook = new(bolt.Hook)
	var commits *atomic.Int64
	if store == "group-commit" {
		commits = new(atomic.Int64)
		hook = newBoltStore(retainedConfig{
			Path: filepath.Join(dir, RetainedDBFile), Interval: DefaultRetainedFlushInterval,
			Lookup: srv.Topics.Retained.Get, Logger: discardLogger(),
			afterCommit: func(int, error) { commits.Add(1) },
		})
	}
	if err := srv.AddHook(hook, opts); err != nil {
		b.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.Fatal(err)
	}
	return srv, commits
}
