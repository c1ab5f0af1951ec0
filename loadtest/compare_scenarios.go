package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pirack/pirack/topics"
)

// drainQuiet is how long deliveries must have stopped growing for a measurement to end;
// drainMax bounds the wait after publishing stops.
const (
	drainQuiet = 700 * time.Millisecond
	drainMax   = 30 * time.Second
)

// eventWait bounds the wait for one press's SSE event or one Locate's LED command.
const eventWait = 3 * time.Second

func (c *comparer) startPirack(ctx context.Context, agents, chartPis int) (*pirackServer, error) {
	return startPirack(ctx, pirackOpts{agents: agents, chartPis: chartPis, serve: c.serve, serveEnv: c.cfg.ServeEnv, debug: c.cfg.ProfileDir != ""})
}

// profile takes a CPU profile of pirack serve for d into the profile directory, in the
// background; wait for the returned channel before stopping the server.
func (c *comparer) profile(ctx context.Context, srv benchServer, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	p, ok := srv.(*pirackServer)
	if !ok || p.debug == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		secs := max(1, int(d.Round(time.Second)/time.Second))
		path := filepath.Join(c.cfg.ProfileDir, fmt.Sprintf("%s-%d.pprof", c.scenario, c.rep))
		if err := fetchToFile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.debug, secs), path); err != nil {
			c.log.Warn("CPU profile", "scenario", c.scenario, "err", err)
			return
		}
		c.log.Info("CPU profile written", "file", path)
	}()
	return done
}

func fetchToFile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// flood runs the agents' publishing against pirack, then against Mosquitto: QoS qos, every
// period (0: as fast as they can) for d. noDrop gives Mosquitto its no-drop config.
func (c *comparer) flood(ctx context.Context, qos byte, period, d time.Duration, noDrop bool) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, subj := range []string{subjPirack, subjMosq} {
		var srv benchServer
		var pass string
		var err error
		if subj == subjPirack {
			var p *pirackServer
			p, err = c.startPirack(ctx, c.cfg.Agents, 0)
			if p != nil {
				srv, pass = p, p.agentPass
			}
		} else {
			var m *mosquittoServer
			m, err = startMosquitto(ctx, c.mosq, qos, noDrop)
			if m != nil {
				srv, pass = m, "anonymous"
			}
		}
		if err != nil {
			return nil, err
		}
		m, err := c.floodOne(ctx, srv, pass, qos, period, d)
		if serr := srv.stop(); err == nil && serr != nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
		out[subj] = m
	}
	return out, nil
}

func (c *comparer) floodOne(ctx context.Context, srv benchServer, pass string, qos byte, period, d time.Duration) (map[string]float64, error) {
	agents, refused, err := connectAgents(ctx, srv.addr(), pass, c.cfg.Agents, false)
	defer closeAgents(agents)
	if refused > 0 {
		return nil, fmt.Errorf("%d of %d agents refused, the first: %w", refused, c.cfg.Agents, err)
	}
	pid := srv.pid()
	if err := warmUp(ctx, srv, agents, c.tmpl, qos); err != nil {
		return nil, err
	}
	srv.sink().reset() // before reading the count: the peer's count is its sink's
	before, err := srv.delivered(ctx)
	if err != nil {
		return nil, err
	}
	_ = resetPeakRSS(strconv.Itoa(pid))
	cpu0, err := readProcCPU(pid)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	profiled := c.profile(ctx, srv, d)
	defer func() { <-profiled }()
	published := publishFor(ctx, agents, c.tmpl, qos, period, d)
	// Until deliveries stop growing: what was published is delivered, or lost.
	// At QoS 0 saturation the sockets hold a backlog: wait for it at most as long as it took
	// to publish, and count what is still undelivered then as lost. At QoS 1 the window
	// bounds the backlog: wait for all of it.
	last, lastAt := int64(-1), time.Now()
	wait := min(drainMax, max(3*time.Second, d))
	if qos > 0 {
		wait = drainMax
	}
	deadline := time.Now().Add(wait)
	var got int64
	for time.Now().Before(deadline) {
		if got, err = srv.delivered(ctx); err != nil {
			return nil, err
		}
		got -= before
		if got != last {
			last, lastAt = got, time.Now()
		}
		if got >= published || time.Since(lastAt) >= drainQuiet {
			break
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	end := lastAt
	if got >= published {
		end = time.Now()
	}
	cpu1, err := readProcCPU(pid)
	if err != nil {
		return nil, err
	}
	mem, err := readProcMem(strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	// The ingest counter also sees what the Control Center publishes itself (alerts).
	got = min(got, published)
	wall := end.Sub(t0)
	m := map[string]float64{
		kPublished: float64(published), kDelivered: float64(got),
		kMsgPerS: float64(got) / wall.Seconds(),
		kLossPct: max(0, 100*float64(published-got)/float64(max(published, 1))),
		kCPUPct:  100 * (cpu1 - cpu0).Seconds() / wall.Seconds(),
		kRSS:     mib(mem.Peak),
	}
	if got > 0 {
		m[kCPUUs] = float64((cpu1 - cpu0).Microseconds()) / float64(got)
	}
	if lats := srv.sink().latencies(); len(lats) > 0 {
		m[kP50], m[kP99] = msOf(pct(lats, 50)), msOf(pct(lats, 99))
	}
	return m, nil
}

// warmUp has every agent publish one message and waits until the server delivered them: the
// first message of a Pi creates its state (pirack: its tile, its history series, its alert
// rules; both: its retained message), which a running rack has long done. The windows measure
// the steady state.
const warmUpSettle = 1500 * time.Millisecond

func warmUp(ctx context.Context, srv benchServer, agents []*rawAgent, tmpl seqPayload, qos byte) error {
	before, err := srv.delivered(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if err := a.publish(ctx, topics.MetricsTopic(benchRow, a.mac), tmpl.at(time.Now()), qos, true); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	deadline := time.Now().Add(drainMax)
	for time.Now().Before(deadline) {
		got, err := srv.delivered(ctx)
		if err != nil {
			return err
		}
		if got-before >= int64(len(agents)) {
			// pirack's history commits what it was given within a second: not in the window.
			sleepCtx(ctx, warmUpSettle)
			return nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("warm-up: %d messages not delivered within %v", len(agents), drainMax)
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// idle connects n agents that subscribe to their LED topics and then say nothing, and
// measures the server's RSS per connection.
func (c *comparer) idle(ctx context.Context, n int) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, subj := range []string{subjPirack, subjMosq} {
		var srv benchServer
		var pass string
		var err error
		if subj == subjPirack {
			var p *pirackServer
			if p, err = c.startPirack(ctx, n, 0); err == nil {
				srv, pass = p, p.agentPass
			}
		} else {
			var m *mosquittoServer
			if m, err = startMosquitto(ctx, c.mosq, 1, false); err == nil {
				srv, pass = m, "anonymous"
			}
		}
		if err != nil {
			return nil, err
		}
		m, err := c.idleOne(ctx, srv, pass, n)
		if serr := srv.stop(); err == nil && serr != nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
		out[subj] = m
	}
	return out, nil
}

// idleSettle is how long a server is left alone before and after the agents connect.
const idleSettle = 2 * time.Second

func (c *comparer) idleOne(ctx context.Context, srv benchServer, pass string, n int) (map[string]float64, error) {
	pid := strconv.Itoa(srv.pid())
	sleepCtx(ctx, idleSettle)
	m0, err := readProcMem(pid)
	if err != nil {
		return nil, err
	}
	agents, refused, _ := connectAgents(ctx, srv.addr(), pass, n, true)
	defer closeAgents(agents)
	sleepCtx(ctx, idleSettle)
	m1, err := readProcMem(pid)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{kConnected: float64(len(agents)), kRefused: float64(refused), kRSS: mib(m1.RSS)}
	if len(agents) > 0 {
		m[kPerConn] = (float64(m1.RSS) - float64(m0.RSS)) / float64(len(agents)) / 1000
	}
	return m, nil
}

// pressLocate times presses (press: publish to the SSE event showing the selection) or
// Locates (POST blink to the LED command at the agent), one at a time, round robin over the
// agents, while they publish metrics every 5 s.
func (c *comparer) pressLocate(ctx context.Context, press bool) (map[string]map[string]float64, error) {
	p, err := c.startPirack(ctx, c.cfg.Agents, 0)
	if err != nil {
		return nil, err
	}
	m, err := c.pressLocateOne(ctx, p, press)
	if serr := p.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	return map[string]map[string]float64{subjPirack: m}, nil
}

func (c *comparer) pressLocateOne(ctx context.Context, p *pirackServer, press bool) (map[string]float64, error) {
	agents, refused, err := connectAgents(ctx, p.addr(), p.agentPass, c.cfg.Agents, true)
	defer closeAgents(agents)
	if refused > 0 {
		return nil, fmt.Errorf("%d of %d agents refused, the first: %w", refused, c.cfg.Agents, err)
	}
	// Every Pi known to the Control Center first (Locate needs it), then the fleet's traffic.
	for _, a := range agents {
		if err := a.publish(ctx, topics.MetricsTopic(benchRow, a.mac), c.tmpl.at(time.Now()), 0, true); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(drainMax)
	for {
		n, err := p.delivered(ctx)
		if err != nil {
			return nil, err
		}
		if n >= int64(len(agents)) {
			break
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, fmt.Errorf("only %d of %d Pis known after %v", n, len(agents), drainMax)
		}
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { publishFor(fleetCtx, agents, c.tmpl, 0, 5*time.Second, time.Hour) })
	defer func() { stopFleet(); wg.Wait() }()

	var lats []time.Duration
	lost := 0
	for i := range c.cfg.Presses {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		a := agents[i%len(agents)]
		var d time.Duration
		var err error
		if press {
			d, err = c.pressOnce(ctx, p, a)
		} else {
			d, err = c.locateOnce(ctx, p, a)
		}
		switch {
		case errors.Is(err, errNoEvent):
			lost++
		case err != nil:
			return nil, err
		default:
			lats = append(lats, d)
		}
	}
	m := map[string]float64{kLost: float64(lost)}
	if len(lats) > 0 {
		lats = sortedCopy(lats)
		m[kP50], m[kP99], m[kMax] = msOf(pct(lats, 50)), msOf(pct(lats, 99)), msOf(lats[len(lats)-1])
	}
	return m, nil
}

var errNoEvent = errors.New("no event in time")

func (c *comparer) pressOnce(ctx context.Context, p *pirackServer, a *rawAgent) (time.Duration, error) {
	a.seq++
	t0 := time.Now()
	b, err := topics.Encode(topics.ButtonEvent{V: topics.Version, Press: topics.PressShort, Seq: a.seq, TS: t0.UTC()})
	if err != nil {
		return 0, err
	}
	ch := p.sse.awaitSelection(a.mac)
	if err := a.publish(ctx, topics.ButtonTopic(benchRow, a.mac), b, 1, false); err != nil {
		return 0, err
	}
	select {
	case at := <-ch:
		return at.Sub(t0), nil
	case <-time.After(eventWait):
		return 0, errNoEvent
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *comparer) locateOnce(ctx context.Context, p *pirackServer, a *rawAgent) (time.Duration, error) {
	for len(a.led) > 0 {
		<-a.led
	}
	t0 := time.Now()
	resp, err := p.request(ctx, http.MethodPost, "/api/nodes/"+a.mac+"/blink", strings.NewReader(`{"count":1}`))
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("POST blink %s: %s: %s", a.mac, resp.Status, body)
	}
	select {
	case at := <-a.led:
		return at.Sub(t0), nil
	case <-time.After(eventWait):
		return 0, errNoEvent
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// footprint runs two pirack-agents (telemetry every 1 s and every 5 s, simulated GPIO)
// against a pirack serve, and node_exporter twice (idle, and scraped once a second), all at
// once, and measures each one's RSS at the end and CPU over FootprintFor.
func (c *comparer) footprint(ctx context.Context) (map[string]map[string]float64, error) {
	p, err := c.startPirack(ctx, 2, 0)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	dir, err := os.MkdirTemp("", "pirack-compare-agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	procs := map[string]*serveProc{}
	defer func() {
		for _, pr := range procs {
			pr.kill()
		}
	}()
	for i, subj := range []string{subjAgent1s, subjAgent5s} {
		interval := "1s"
		if i == 1 {
			interval = "5s"
		}
		pr, err := startProc(c.agent, []string{"PIRACK_PASSWORD=" + p.agentPass},
			"--broker", "tcp://"+p.addr(), "--mac", benchMAC(i), "--row", benchRow, "--interval", interval, "--gpio", "sim")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
		procs[subj] = pr
	}
	var neScrape string
	if c.nodeEx != "" {
		for _, subj := range []string{subjNEIdle, subjNEScrape} {
			addr, err := freeLoopback()
			if err != nil {
				return nil, err
			}
			pr, err := startServe(ctx, []string{c.nodeEx}, nil, io.Discard, addr, "--web.listen-address="+addr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", subj, err)
			}
			procs[subj] = pr
			neScrape = addr
		}
	}
	sleepCtx(ctx, min(5*time.Second, c.cfg.FootprintFor)) // agents connected, first samples taken
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if neScrape != "" {
		wg.Go(func() { scrapeEverySecond(scrapeCtx, "http://"+neScrape+"/metrics") })
	}
	cpu0 := map[string]time.Duration{}
	for subj, pr := range procs {
		if cpu0[subj], err = readProcCPU(pr.cmd.Process.Pid); err != nil {
			stopScrape()
			wg.Wait()
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
	}
	t0 := time.Now()
	sleepCtx(ctx, c.cfg.FootprintFor)
	wall := time.Since(t0)
	stopScrape()
	wg.Wait()
	out := map[string]map[string]float64{}
	for subj, pr := range procs {
		cpu1, err := readProcCPU(pr.cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
		mem, err := readProcMem(strconv.Itoa(pr.cmd.Process.Pid))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subj, err)
		}
		out[subj] = map[string]float64{kRSS: mib(mem.RSS), kCPUPct: 100 * (cpu1 - cpu0[subj]).Seconds() / wall.Seconds()}
	}
	return out, ctx.Err()
}

// startProc starts a process that listens on nothing the benchmark waits for.
func startProc(bin string, env []string, args ...string) (*serveProc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (build it: make build)", bin, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	tail := &tailWriter{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serveProc{cmd: cmd, done: make(chan struct{}), tail: tail}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func scrapeEverySecond(ctx context.Context, url string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	cl := &http.Client{Timeout: 5 * time.Second}
	for {
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
			if resp, err := cl.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// chart times the 7-day chart of one Pi's load, as the detail page asks for it.
func (c *comparer) chart(ctx context.Context) (map[string]map[string]float64, error) {
	p, err := c.startPirack(ctx, 0, c.cfg.ChartPis)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	var lats []time.Duration
	var points int
	for i := range c.cfg.ChartQueries {
		mac := benchMAC(i % c.cfg.ChartPis)
		t0 := time.Now()
		resp, err := p.request(ctx, http.MethodGet, "/api/nodes/"+mac+"/series?metric=load_1&range=7d", nil)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET series of %s: %s: %.200s", mac, resp.Status, body)
		}
		points = strings.Count(string(body), `"t"`)
		lats = append(lats, d)
	}
	lats = sortedCopy(lats)
	return map[string]map[string]float64{subjPirack: {
		kP50: msOf(pct(lats, 50)), kP99: msOf(pct(lats, 99)), kMax: msOf(lats[len(lats)-1]), kPoints: float64(points),
	}}, nil
}
