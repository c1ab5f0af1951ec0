package hoststat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeEngine serves the two endpoints the agent reads, as Docker 27 answers them, on a unix
// socket; every request that is not a GET fails the test. Each stats call advances the running
// container's CPU counters: 0.5 s of CPU per 1 s of the host's 4 CPUs' time.
func fakeEngine(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/containers/json", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("all") != "1" {
			t.Errorf("containers listed without all=1: stopped ones would be missing")
		}
		fmt.Fprint(w, `[{"Id":"4f66ad9a0b2e1c7d5e6f","Names":["/grafana"],"Image":"grafana/grafana:11.3.0","State":"running","Status":"Up 2 hours"},
			{"Id":"9a1b2c3d4e5f60718293","Names":["/old-job"],"Image":"alpine:3.20","State":"exited","Status":"Exited (0) 3 days ago"}]`)
	})
	mux.HandleFunc("/containers/{id}/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "4f66ad9a0b2e1c7d5e6f" || r.URL.Query().Get("stream") != "false" {
			t.Errorf("stats of %s, stream=%s", r.PathValue("id"), r.URL.Query().Get("stream"))
		}
		n := calls.Add(1)
		fmt.Fprintf(w, `{"cpu_stats":{"cpu_usage":{"total_usage":%d},"system_cpu_usage":%d,"online_cpus":4},
			"precpu_stats":{},"memory_stats":{"usage":150000000,"stats":{"inactive_file":30000000,"active_file":1000}}}`,
			n*500_000_000, n*4_000_000_000)
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("the agent sent %s %s: it may only read", r.Method, r.URL)
			http.Error(w, "read only", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// Containers through a fake engine: every container with its state, the running one's memory
// as docker stats shows it, and its CPU from the second read on (one-shot stats carry no
// previous sample).
func TestEngine(t *testing.T) {
	sock := fakeEngine(t)
	if got := FindEngine([]string{filepath.Join(t.TempDir(), "absent.sock"), sock}); got != sock {
		t.Fatalf("FindEngine = %q, want the fake's socket", got)
	}
	notSocket := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notSocket, nil, 0o600)
	if got := FindEngine([]string{notSocket}); got != "" {
		t.Fatalf("a plain file taken for an engine: %q", got)
	}
	e := NewEngine(sock)
	ctx := context.Background()
	first, err := e.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].ID != "4f66ad9a0b2e" || first[0].Name != "grafana" || first[0].State != "running" ||
		first[0].MemBytes == nil || *first[0].MemBytes != 120000000 || first[0].CPUPercent != nil {
		t.Fatalf("first read: %+v", first)
	}
	if first[1].Name != "old-job" || first[1].State != "exited" || first[1].MemBytes != nil || first[1].CPUPercent != nil {
		t.Fatalf("the exited container: %+v", first[1])
	}
	second, err := e.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 0.5e9 of container time over 4e9 of system time (4 CPUs): 12.5 % of the host, 50 % of a core.
	if p := second[0].CPUPercent; p == nil || *p != 50 {
		t.Fatalf("second read CPU: %v", p)
	}

	_, err = NewEngine(filepath.Join(t.TempDir(), "gone.sock")).Read(ctx)
	if err == nil || !strings.Contains(err.Error(), "docker group") {
		t.Fatalf("an engine that is not there: %v", err)
	}
}
