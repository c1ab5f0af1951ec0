// Package prometheustest runs a real Prometheus server for tests, as httptest runs an HTTP
// server: a scrape config and a storage directory in the test's temporary directory, a free
// loopback port, the server's log in the test log, and the process stopped when the test ends.
// It also runs promtool. It is for _test.go files only.
//
// When no prometheus binary is installed (Debian's prometheus package brings both) the test
// is skipped, unless PIRACK_PROMETHEUS_TESTS is "require" (CI), which fails it instead.
package prometheustest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/proctest"
	"github.com/pirack/pirack/internal/testlog"
)

// RequireEnv is the environment variable that, set to "require", turns a missing prometheus
// or promtool binary from a skipped test into a failed one.
const RequireEnv = "PIRACK_PROMETHEUS_TESTS"

// startTimeout bounds how long Start waits for the server to be ready.
const startTimeout = 20 * time.Second

// Target is one scrape job of a single target.
type Target struct {
	Job  string // job_name
	Addr string // host:port
	// Path is the metrics path; "" means /metrics.
	Path string
	// BearerTokenFile, when set, authenticates with the token in that file (authorization:
	// credentials_file).
	BearerTokenFile string
	// Username and PasswordFile, when set, authenticate by HTTP Basic auth (basic_auth).
	Username, PasswordFile string
}

// Options configures the server.
type Options struct {
	// ScrapeInterval is the global scrape and evaluation interval; 0 means 1 s.
	ScrapeInterval time.Duration
	Targets        []Target
}

// Server is a running Prometheus.
type Server struct {
	port int
	out  io.Writer

	log  proctest.Log
	mu   sync.Mutex
	proc *proctest.Proc // nil once stopped
}

// binary finds name in PATH, or fails or skips t as RequireEnv says.
func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(RequireEnv) == "require" {
		t.Fatal(name + " not found (" + RequireEnv + "=require): install Debian's prometheus package: apt-get install prometheus")
	}
	t.Skip(name + " not found; install Debian's prometheus package: apt-get install prometheus (set " + RequireEnv + "=require to fail instead)")
	return ""
}

// Start starts a Prometheus on a free loopback port scraping opts.Targets, and returns when it
// is ready to answer queries. It is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := binary(t, "prometheus")
	s := &Server{out: testlog.NewWriter(t)}
	t.Cleanup(s.stop) // after the log writer's cleanup is registered, so it runs before it
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(config(opts)), 0o600); err != nil {
		t.Fatalf("prometheustest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := proctest.FreePort()
		if err != nil {
			t.Fatalf("prometheustest: find a free port: %v", err)
		}
		s.port = port
		lastErr = s.start(bin, conf, filepath.Join(dir, "data"))
		if lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, proctest.ErrPortInUse) {
			break
		}
	}
	t.Fatalf("prometheustest: start prometheus: %v", lastErr)
	return nil
}

// config is prometheus.yml. Strings are written as JSON strings, which YAML reads as they are.
func config(opts Options) string {
	iv := opts.ScrapeInterval
	if iv <= 0 {
		iv = time.Second
	}
	q := strconv.Quote
	var c strings.Builder
	fmt.Fprintf(&c, "# written by prometheustest\nglobal:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n", iv, iv)
	for _, tg := range opts.Targets {
		path := tg.Path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&c, "  - job_name: %s\n    metrics_path: %s\n", q(tg.Job), q(path))
		if tg.BearerTokenFile != "" {
			fmt.Fprintf(&c, "    authorization:\n      type: Bearer\n      credentials_file: %s\n", q(tg.BearerTokenFile))
		}
		if tg.Username != "" {
			fmt.Fprintf(&c, "    basic_auth:\n      username: %s\n      password_file: %s\n", q(tg.Username), q(tg.PasswordFile))
		}
		fmt.Fprintf(&c, "    static_configs:\n      - targets: [%s]\n", q(tg.Addr))
	}
	return c.String()
}

// start runs prometheus and waits until it says it is ready, it exits, or startTimeout passes.
func (s *Server) start(bin, conf, data string) error {
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+data,
		"--web.listen-address="+s.Addr(), "--log.level=info")
	p, err := proctest.Start(cmd, proctest.Spec{
		Name: "prometheus", Prefix: fmt.Sprintf("prometheus:%d: ", s.port), Out: s.out, Log: &s.log,
		Ready: func(l string) bool { return strings.Contains(l, "Server is ready to receive web requests") },
		InUse: "address already in use", Timeout: startTimeout,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
func (s *Server) stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Log returns what the server has logged so far.
func (s *Server) Log() string { return s.log.String() }

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant query through the HTTP API (/api/v1/query) and returns its vector.
func (s *Server) Query(ctx context.Context, query string) ([]Sample, error) {
	u := "http://" + s.Addr() + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"` // [unix seconds, "value"]
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", query, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", query, resp.Status, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", query, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// WaitQuery runs query every 200 ms until done accepts its result, and fails t when that has
// not happened within timeout (a scrape or two at Options.ScrapeInterval), with the last result.
func (s *Server) WaitQuery(t testing.TB, query string, timeout time.Duration, done func([]Sample) bool) []Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last []Sample
	var lastErr error
	for {
		last, lastErr = s.Query(ctx, query)
		if lastErr == nil && done(last) {
			return last
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			targets, err := s.Targets(tctx)
			cancel()
			if err != nil {
				targets = err.Error()
			}
			t.Fatalf("prometheustest: %q did not give the expected result within %v: last %v, error %v; targets:\n%s",
				query, timeout, last, lastErr, targets)
			return nil
		}
	}
}

// Targets returns each scrape target's job, health ("up", "down", "unknown") and last error,
// from /api/v1/targets, for a test's failure message.
func (s *Server) Targets(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr()+"/api/v1/targets", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, tg := range body.Data.ActiveTargets {
		fmt.Fprintf(&b, "%s: %s %s\n", tg.Labels["job"], tg.Health, tg.LastError)
	}
	return b.String(), nil
}

// CheckMetrics runs `promtool check metrics` on an exposition, as an operator would on a
// scrape, and returns what it printed; err is set when it found something to fix.
func CheckMetrics(t testing.TB, exposition []byte) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
