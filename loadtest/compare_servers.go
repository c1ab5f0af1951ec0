package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// The servers `pirack bench compare` runs side by side, each a subprocess on 127.0.0.1 so that
// /proc tells its CPU and memory apart from the benchmark's clients.

// benchServer is a broker with its one reader: the Control Center's live stream for pirack,
// one paho subscriber for Mosquitto.
type benchServer interface {
	name() string
	addr() string // MQTT host:port
	pid() int
	// sink is what the reader saw: messages delivered and their latencies.
	sink() *deliverySink
	// delivered is the number of messages the server's reader received (for pirack, what the
	// Control Center ingested: its live stream coalesces per Pi).
	delivered(ctx context.Context) (int64, error)
	stop() error
}

// deliverySink counts deliveries and keeps the publish-to-reader latencies of the messages
// whose seq is a publish time (see seqPayload).
type deliverySink struct {
	n    atomic.Int64
	mu   sync.Mutex
	lats []time.Duration
	last map[string]uint64 // pirack: last seq seen per MAC, so a node event repeated is not a delivery
}

func (s *deliverySink) record(mac string, seq uint64, at time.Time) {
	if seq < seqBase {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil {
		if s.last[mac] == seq {
			return
		}
		s.last[mac] = seq
	}
	s.n.Add(1)
	if len(s.lats) < maxLatencies {
		s.lats = append(s.lats, at.Sub(time.Unix(0, int64(seq))))
	}
}

// reset empties the sink at the start of a measurement.
func (s *deliverySink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n.Store(0)
	s.lats = s.lats[:0]
}

func (s *deliverySink) latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedCopy(s.lats)
}

// maxLatencies bounds the latencies one measurement keeps.
const maxLatencies = 2_000_000

// seqBase is the smallest seq that is a publish time (Unix nanoseconds, 19 digits).
const seqBase = uint64(1e18)

// parseSeq finds "seq":<digits> in a metrics payload without decoding it.
func parseSeq(p []byte) uint64 {
	i := bytes.Index(p, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range p[i+6:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// pirackServer is `pirack serve` with real auth, dashboard and history, one admin reading the
// live stream, and agents bound to their MACs.
type pirackServer struct {
	proc      *serveProc
	debug     string // serve's --debug-addr, "" when not profiling
	dir       string
	mqtt, web string
	admin     string
	adminPass string
	agentPass string
	client    *http.Client
	sse       *sseReader
	stopSSE   context.CancelFunc
	sseDone   chan struct{}
}

// pirackOpts shapes one pirack run.
type pirackOpts struct {
	agents    int // agent accounts, benchMAC(0) to benchMAC(agents-1)
	chartPis  int // Pis with 7 days of history written before serve starts (0: none)
	serve     []string
	serveEnv  []string
	logLevel  string
	serveLogs io.Writer
	debug     bool // serve profiles on a loopback --debug-addr
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startPirack(ctx context.Context, o pirackOpts) (_ *pirackServer, err error) {
	dir, err := os.MkdirTemp("", "pirack-compare-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	s := &pirackServer{dir: dir, admin: "bench", adminPass: auth.GeneratePassword(), agentPass: auth.GeneratePassword()}
	if err := writeUsers(filepath.Join(dir, controlcenter.UsersFile), s.admin, s.adminPass, s.agentPass, o.agents); err != nil {
		return nil, err
	}
	if o.chartPis > 0 {
		if err := writeChartHistory(ctx, filepath.Join(dir, controlcenter.HistoryFile), o.chartPis, time.Now()); err != nil {
			return nil, err
		}
	}
	logw := o.serveLogs
	if logw == nil {
		logw = io.Discard
	}
	level := o.logLevel
	if level == "" {
		level = "error"
	}
	// A port found free may be taken by another process before serve binds it (tests of other
	// packages run alongside): then again, on other ports.
	for attempt := 1; ; attempt++ {
		if s.mqtt, err = freeLoopback(); err != nil {
			return nil, err
		}
		if s.web, err = freeLoopback(); err != nil {
			return nil, err
		}
		args := []string{"--data-dir", dir, "--mqtt", s.mqtt, "--http", s.web, "--log-level", level}
		if o.debug {
			if s.debug, err = freeLoopback(); err != nil {
				return nil, err
			}
			args = append(args, "--debug-addr", s.debug)
		}
		if s.proc, err = startServe(ctx, o.serve, o.serveEnv, logw, s.mqtt, args...); err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
	s.client = &http.Client{Timeout: 30 * time.Second}
	sseCtx, cancel := context.WithCancel(ctx)
	s.stopSSE, s.sseDone = cancel, make(chan struct{})
	s.sse = newSSEReader()
	ready := make(chan error, 1)
	go func() {
		defer close(s.sseDone)
		s.sse.run(sseCtx, s, ready)
	}()
	select {
	case err = <-ready:
	case <-time.After(serveStartWithin):
		err = errors.New("no snapshot on the live stream")
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("pirack live stream: %w", err)
	}
	return s, nil
}

// writeUsers writes the users file in one go: an admin, and agents sharing one bcrypt hash at
// the lowest cost (thousands of Add calls would each rewrite the file; the hash's cost is paid
// once per agent at its first CONNECT, outside every measurement).
func writeUsers(path, admin, adminPass, agentPass string, agents int) error {
	ah, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	if err != nil {
		return err
	}
	gh, err := bcrypt.GenerateFromPassword([]byte(agentPass), bcrypt.MinCost)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	users := []auth.User{{Name: admin, Role: auth.RoleAdmin, Hash: string(ah), Created: now}}
	for i := range agents {
		mac := benchMAC(i)
		users = append(users, auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: benchRow, Hash: string(gh), Created: now})
	}
	b, err := json.Marshal(struct {
		V     int         `json:"v"`
		Users []auth.User `json:"users"`
	}{1, users})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// benchRow is the row of every simulated agent.
const benchRow = "r1"

// writeChartHistory gives pis Pis 7 days of history as the store keeps it at now: a raw
// sample every 5 s for the last 24 h, a 1-minute aggregate for 7 days and a 1-hour one for 8,
// of each metric
// the charts draw. It opens the store once to create the schema, then writes in bulk.
func writeChartHistory(ctx context.Context, path string, pis int, now time.Time) error {
	st, err := history.Open(path, history.Options{})
	if err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	metrics := []string{history.MetricLoad1, history.MetricCPUPercent, history.MetricCPUTempC,
		history.MetricMemAvailable, history.MetricMemTotal, history.MetricDiskFree, history.MetricDiskTotal}
	for i := range pis {
		for _, m := range metrics {
			if _, err := tx.ExecContext(ctx, "INSERT INTO series (source, metric) VALUES (?, ?)", benchMAC(i), m); err != nil {
				return fmt.Errorf("history fixture: %w", err)
			}
		}
	}
	const value = `((ts.t / 5 * 7919 + s.id * 104729) % 100000) / 1000.0`
	end := now.Unix()
	for _, q := range []struct {
		sql  string
		step int64
		keep time.Duration
	}{
		{`INSERT INTO raw (series, t, v) SELECT s.id, ts.t, ` + value + ` FROM series s CROSS JOIN ts`, 5, 24 * time.Hour},
		{`INSERT INTO agg_1m (series, t, lo, sum, hi, n) SELECT s.id, ts.t, ` + value + `, 12 * ` + value + `, ` + value + `, 12
			FROM series s CROSS JOIN ts`, 60, 7 * 24 * time.Hour},
		// The store answers a range reaching its 1-minute tier's end from the 1-hour tier.
		{`INSERT INTO agg_1h (series, t, lo, sum, hi, n) SELECT s.id, ts.t, ` + value + `, 720 * ` + value + `, ` + value + `, 720
			FROM series s CROSS JOIN ts`, 3600, 8 * 24 * time.Hour},
	} {
		start := (end-int64(q.keep/time.Second))/q.step*q.step + q.step
		cte := `WITH RECURSIVE ts(t) AS (SELECT ?1 UNION ALL SELECT t + ?2 FROM ts WHERE t + ?2 <= ?3) `
		if _, err := tx.ExecContext(ctx, cte+q.sql, start, q.step, end); err != nil {
			return fmt.Errorf("history fixture: %w", err)
		}
	}
	return tx.Commit()
}

func (s *pirackServer) name() string        { return "pirack" }
func (s *pirackServer) addr() string        { return s.mqtt }
func (s *pirackServer) pid() int            { return s.proc.cmd.Process.Pid }
func (s *pirackServer) sink() *deliverySink { return &s.sse.metrics }

// request makes an HTTP request as the admin.
func (s *pirackServer) request(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.web+path, body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(s.admin, s.adminPass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return s.client.Do(req)
}

// delivered reads pirack_ingest_messages_received_total from /metrics.
func (s *pirackServer) delivered(ctx context.Context) (int64, error) {
	resp, err := s.request(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pirack_ingest_messages_received_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no pirack_ingest_messages_received_total in /metrics")
}

func (s *pirackServer) stop() error {
	s.stopSSE()
	<-s.sseDone
	err := s.proc.stop()
	os.RemoveAll(s.dir)
	return err
}

// sseReader reads the Control Center's live stream as the rack page does, and records when
// each Pi's telemetry and selection show up on it.
type sseReader struct {
	metrics deliverySink

	mu       sync.Mutex
	selected map[string]string         // MAC -> selected_at last shown
	waiters  map[string]chan time.Time // MAC -> a press waiting for its selection to show
}

func newSSEReader() *sseReader {
	return &sseReader{
		metrics:  deliverySink{last: map[string]uint64{}},
		selected: map[string]string{}, waiters: map[string]chan time.Time{},
	}
}

// awaitSelection returns a channel that receives the time the next change of mac's selection
// shows on the stream.
func (r *sseReader) awaitSelection(mac string) chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	r.waiters[mac] = ch
	r.mu.Unlock()
	return ch
}

type sseNode struct {
	MAC     string `json:"mac"`
	Metrics *struct {
		Seq uint64 `json:"seq"`
	} `json:"metrics"`
	SelectedAt string `json:"selected_at"`
}

func (r *sseReader) node(n sseNode, at time.Time) {
	if n.Metrics != nil {
		r.metrics.record(n.MAC, n.Metrics.Seq, at)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.selected[n.MAC] == n.SelectedAt {
		return
	}
	r.selected[n.MAC] = n.SelectedAt
	if ch, ok := r.waiters[n.MAC]; ok {
		delete(r.waiters, n.MAC)
		ch <- at
	}
}

// run reads /api/events until ctx ends; ready gets nil once the snapshot arrived.
func (r *sseReader) run(ctx context.Context, s *pirackServer, ready chan<- error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.web+"/api/events", nil)
	if err != nil {
		ready <- err
		return
	}
	req.SetBasicAuth(s.admin, s.adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ready <- err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ready <- fmt.Errorf("GET /api/events: %s", resp.Status)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var event string
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("event: ")); ok {
			event = string(v)
			continue
		}
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		at := time.Now()
		switch event {
		case "snapshot":
			var nodes []sseNode
			_ = json.Unmarshal(data, &nodes)
			for _, n := range nodes {
				r.node(n, at)
			}
			if ready != nil {
				ready <- nil
				ready = nil
			}
		case "node":
			var n sseNode
			if json.Unmarshal(data, &n) == nil {
				r.node(n, at)
			}
		}
	}
	if ready != nil {
		ready <- fmt.Errorf("stream ended before its snapshot: %v", sc.Err())
	}
}

// mosquittoServer is Mosquitto with anonymous clients allowed and one paho subscriber to
// everything.
type mosquittoServer struct {
	proc *serveProc
	dir  string
	mqtt string
	sub  paho.Client
	recv deliverySink
}

func startMosquitto(ctx context.Context, bin string, qos byte, noDrop bool) (_ *mosquittoServer, err error) {
	dir, err := os.MkdirTemp("", "pirack-compare-mosquitto-")
	if err != nil {
		return nil, err
	}
	s := &mosquittoServer{dir: dir}
	defer func() {
		if err != nil {
			if s.proc != nil {
				s.proc.kill()
			}
			os.RemoveAll(dir)
		}
	}()
	if s.mqtt, err = freeLoopback(); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(s.mqtt)
	conf := []string{"listener " + port + " 127.0.0.1", "allow_anonymous true", "persistence false", "log_dest none"}
	if noDrop {
		// Mosquitto's defaults queue 1,000 QoS 1 messages per client and then drop: no limit,
		// so that nothing acknowledged is lost.
		conf = append(conf, "max_queued_messages 0", "max_inflight_messages 0")
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.proc, err = startServe(ctx, []string{bin}, nil, io.Discard, s.mqtt, "-c", path); err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + s.mqtt).SetClientID("bench-subscriber").
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false)
	s.sub = paho.NewClient(opts)
	if tok := s.sub.Connect(); !tok.WaitTimeout(clientWait) || tok.Error() != nil {
		return nil, fmt.Errorf("mosquitto subscriber: connect: %v", tok.Error())
	}
	tok := s.sub.Subscribe(topics.MetricsTopic("+", "+"), qos, func(_ paho.Client, m paho.Message) {
		at := time.Now()
		s.recv.record("", parseSeq(m.Payload()), at)
	})
	if !tok.WaitTimeout(clientWait) || tok.Error() != nil {
		return nil, fmt.Errorf("mosquitto subscriber: subscribe: %v", tok.Error())
	}
	return s, nil
}

func (s *mosquittoServer) name() string        { return "mosquitto" }
func (s *mosquittoServer) addr() string        { return s.mqtt }
func (s *mosquittoServer) pid() int            { return s.proc.cmd.Process.Pid }
func (s *mosquittoServer) sink() *deliverySink { return &s.recv }
func (s *mosquittoServer) delivered(context.Context) (int64, error) {
	return s.recv.n.Load(), nil
}

func (s *mosquittoServer) stop() error {
	s.sub.Disconnect(100)
	err := s.proc.stop()
	os.RemoveAll(s.dir)
	if err != nil && strings.Contains(err.Error(), "stopped with") {
		err = nil // Mosquitto exits non-zero on SIGTERM on some builds
	}
	return err
}
