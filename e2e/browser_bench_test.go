package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// The rack page benchmark's workload: every Pi sends one metrics sample per round, a round a
// second, spread over the round in slices as real agents' timers are.
const (
	benchPis    = 1000
	benchPerRow = 25 // 40 rows
	benchRounds = 20
	benchRound  = time.Second
	benchSlices = 10 // per round: 100 Pis every 100 ms
	// benchMarkLoad is the final round's load average, outside what the simulator produces, so
	// the page can be seen to have caught up with the last update.
	benchMarkLoad = 99.99
)

// BenchmarkBrowserRack1000Pis opens the rack page in headless Chromium on a Control Center with
// 1,000 simulated Pis and measures, in the page: the time to the first full render, then,
// while every Pi updates once a second for 20 s, long tasks, animation frame gaps, how far
// the page lags behind the last update, and the JS heap. Each call is one run whatever b.N is:
// a run takes about a minute, more than the default -benchtime, so `go test -bench` makes one
// call. It prints a table for docs/benchmarks.md and reports the same figures as benchmark
// metrics, so two runs compare with benchstat.
//
//	go test -run '^$' -bench BrowserRack1000Pis ./e2e
//
// The Pis are not agents: their births and samples are published in-process through the
// broker, as agents' would arrive, so the browser and the page are what is measured.
func BenchmarkBrowserRack1000Pis(b *testing.B) {
	cc := newBenchCenter(b)
	fleet := newBenchFleet(benchPis, benchPerRow)
	fleet.birth(b, cc.cc.Bus())
	if n := len(cc.cc.Rack().Nodes()); n != benchPis {
		b.Fatalf("dashboard holds %d Pis after their births, want %d", n, benchPis)
	}

	ctx := browser(b,
		chromedp.Flag("enable-precise-memory-info", true), // performance.memory unrounded
		chromedp.Flag("js-flags", "--expose-gc"),          // window.gc, to weigh what stays
	)
	logIn(b, ctx, cc.url)
	step(b, ctx, "instrument the next page load", 10*time.Second,
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(fmt.Sprintf(benchProbeJS, benchPis)).Do(ctx)
			return err
		}),
	)

	var load benchLoad
	step(b, ctx, "first full render of 1,000 tiles", 2*time.Minute,
		chromedp.Navigate(cc.url+"/"),
		chromedp.Poll(`window.pirackBench && window.pirackBench.firstFull !== null`, nil, chromedp.WithPollingInterval(50*time.Millisecond)),
		chromedp.Evaluate(`window.pirackBench.load()`, &load),
	)

	step(b, ctx, "start measuring", 5*time.Second, chromedp.Evaluate(`window.pirackBench.reset()`, nil))
	sent, took := fleet.bursts(b, cc.cc.Bus())
	// Caught up: every tile shows the final round's load. A page without the load field (a
	// future layout) reports no lag rather than failing.
	t0 := time.Now()
	var loadFields int
	step(b, ctx, "see the last update on every tile", time.Minute,
		chromedp.Poll(fmt.Sprintf(`((f) => f.length === 0 ? 0 : [...f].filter((e) => !e.textContent.startsWith("%.2f")).length)(document.querySelectorAll('article.tile [data-field="load"]')) === 0`, benchMarkLoad),
			nil, chromedp.WithPollingInterval(50*time.Millisecond)),
	)
	lagMS := float64(time.Since(t0).Milliseconds())
	var run benchRun
	step(b, ctx, "collect the figures", 30*time.Second,
		chromedp.Evaluate(`document.querySelectorAll('article.tile [data-field="load"]').length`, &loadFields),
		chromedp.Evaluate(`window.pirackBench.report()`, &run),
	)
	if loadFields == 0 {
		lagMS = -1
	}

	b.ReportMetric(0, "ns/op") // one run is not an operation
	b.ReportMetric(load.FirstFull, "first-render-ms")
	b.ReportMetric(load.LongestTask, "load-longest-task-ms")
	b.ReportMetric(float64(run.LongTasks), "longtasks")
	b.ReportMetric(run.LongTaskMS, "longtask-total-ms")
	b.ReportMetric(100*run.LongTaskMS/run.Window, "longtask-pct")
	b.ReportMetric(run.LongTaskMax, "longtask-max-ms")
	b.ReportMetric(run.FrameP50, "frame-p50-ms")
	b.ReportMetric(run.FrameP95, "frame-p95-ms")
	b.ReportMetric(run.FrameMax, "frame-max-ms")
	b.ReportMetric(lagMS, "lag-ms")
	b.ReportMetric(run.HeapMB, "heap-MB")

	na := func(v float64, format string) string {
		if v < 0 {
			return "n/a"
		}
		return fmt.Sprintf(format, v)
	}
	// At most 9 lines: the testing package cuts a benchmark's log after that.
	var t strings.Builder
	fmt.Fprintf(&t, "rack page, %d Pis in %d rows, %d updates in %.1f s, GOMAXPROCS %d, %s:\n",
		benchPis, benchPis/benchPerRow, sent, took.Seconds(), runtime.GOMAXPROCS(0), load.UserAgent)
	row := func(what, value string) { fmt.Fprintf(&t, "| %-46s | %-38s |\n", what, value) }
	row("first full render (longest task meanwhile)", fmt.Sprintf("%.0f ms (%.0f ms)", load.FirstFull, load.LongestTask))
	row("node events handled / updates sent", fmt.Sprintf("%d / %d", run.NodeEvents, sent))
	row("long tasks during updates: count, total, max", fmt.Sprintf("%d, %.1f s (%.0f%% of %.1f s), %.0f ms",
		run.LongTasks, run.LongTaskMS/1000, 100*run.LongTaskMS/run.Window, run.Window/1000, run.LongTaskMax))
	row("frame gaps during updates: p50 / p95 / max", fmt.Sprintf("%.1f / %.1f / %.0f ms", run.FrameP50, run.FrameP95, run.FrameMax))
	row("frames during updates: all / over 50 ms", fmt.Sprintf("%d / %d", run.Frames, run.FramesOver50))
	row("last update on every tile after", na(lagMS, "%.0f ms"))
	row("JS heap after GC: after load / after updates", na(load.HeapMB, "%.1f MB")+" / "+na(run.HeapMB, "%.1f MB"))
	b.Log(strings.TrimSuffix(t.String(), "\n"))
}

// benchLoad is what the page measured up to its first full render; benchRun what it measured
// since reset (milliseconds and MB; -1 when the browser cannot tell).
type benchLoad struct {
	FirstFull, LongestTask, HeapMB float64
	UserAgent                      string
}

type benchRun struct {
	NodeEvents, LongTasks, Frames, FramesOver50 int
	Window, LongTaskMS, LongTaskMax             float64 // Window: since reset
	FrameP50, FrameP95, FrameMax                float64
	HeapMB                                      float64
}

// benchProbeJS runs in the rack page before its own scripts (%d: the tiles expected). It only
// observes: long tasks, every animation frame, and the live stream's events, by wrapping the
// listeners the page adds to its EventSource (the event names are the server's contract, not
// app.js's). The first full render is the second frame to start after the snapshot event was
// handled, with every tile in the page: by then the frame that drew it, including work the
// page put off to requestAnimationFrame, has been painted.
const benchProbeJS = `(() => {
  const want = %d;
  const B = window.pirackBench = {firstFull: null, longtasks: [], frames: [], nodeEvents: 0, snapshotAt: null, since: 0};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) B.longtasks.push([e.startTime, e.duration]);
  }).observe({type: "longtask", buffered: true});
  let framesAfterSnapshot = 0;
  const frame = (now) => {
    B.frames.push(now);
    if (B.firstFull === null && B.snapshotAt !== null && ++framesAfterSnapshot >= 2 &&
        document.querySelectorAll("article.tile").length === want) B.firstFull = now;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  const ES = window.EventSource;
  window.EventSource = class extends ES {
    addEventListener(type, fn, opts) {
      const call = typeof fn === "function" ? fn : fn && typeof fn.handleEvent === "function" ? (e) => fn.handleEvent(e) : null;
      if (!call) return super.addEventListener(type, fn, opts);
      return super.addEventListener(type, function (e) {
        try { return call.call(this, e); } finally {
          if (type === "snapshot" && B.snapshotAt === null) B.snapshotAt = performance.now();
          if (type === "node") B.nodeEvents++;
        }
      }, opts);
    }
  };
  const heapMB = () => {
    if (!performance.memory) return -1;
    if (window.gc) window.gc();
    return performance.memory.usedJSHeapSize / 1048576;
  };
  B.load = () => ({firstFull: B.firstFull,
    longestTask: B.longtasks.filter(([s]) => s <= B.firstFull).reduce((m, [, d]) => Math.max(m, d), 0),
    heapMB: heapMB(), userAgent: (navigator.userAgent.match(/(?:Headless)?Chrome\/[\d.]+/) || ["unknown browser"])[0]});
  B.reset = () => { B.since = performance.now(); B.longtasks = []; B.frames = []; B.nodeEvents = 0; };
  B.report = () => {
    const gaps = [];
    for (let i = 1; i < B.frames.length; i++) gaps.push(B.frames[i] - B.frames[i - 1]);
    gaps.sort((a, b) => a - b);
    const pct = (p) => gaps.length ? gaps[Math.min(gaps.length - 1, Math.ceil(gaps.length * p / 100) - 1)] : 0;
    const tasks = B.longtasks.filter(([s]) => s >= B.since);
    return {window: performance.now() - B.since, nodeEvents: B.nodeEvents, longTasks: tasks.length,
      longTaskMS: tasks.reduce((t, [, d]) => t + d, 0), longTaskMax: tasks.reduce((m, [, d]) => Math.max(m, d), 0),
      frames: gaps.length, framesOver50: gaps.filter((g) => g > 50).length,
      frameP50: pct(50), frameP95: pct(95), frameMax: pct(100), heapMB: heapMB()};
  };
})()`

// benchCenter is a Control Center built by package controlcenter as `pirack serve` builds
// it, on 127.0.0.1, logging only warnings (to the benchmark's log).
type benchCenter struct {
	cc  *controlcenter.ControlCenter
	url string
}

func newBenchCenter(b *testing.B) *benchCenter {
	b.Helper()
	dir, _, _ := newDataDir(b)
	log := slog.New(slog.NewTextHandler(testlog.NewWriter(b), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cc, err := controlcenter.New(controlcenter.Config{DataDir: dir, Logger: log, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	select {
	case <-cc.Ready():
	case err := <-done:
		b.Fatalf("control center stopped at start: %v", err)
	}
	return &benchCenter{cc: cc, url: "http://" + cc.HTTPAddr()}
}

// benchFleet is the simulated Pis: each one's topics and a simulator driven by a shared clock,
// so a round's samples differ from the last as real ones do.
type benchFleet struct {
	clock time.Time
	pis   []benchPi
}

type benchPi struct {
	mac, row, status, metrics string
	sim                       *agent.SimCollector
	seq                       uint64
}

func newBenchFleet(n, perRow int) *benchFleet {
	f := &benchFleet{clock: time.Now()}
	for i := range n {
		mac := fmt.Sprintf("b827eb%06x", 0xf00000+i)
		row := fmt.Sprintf("r%02d", i/perRow+1)
		f.pis = append(f.pis, benchPi{
			mac: mac, row: row, status: topics.StatusTopic(row, mac), metrics: topics.MetricsTopic(row, mac),
			sim: agent.NewSimCollector(uint64(i), func() time.Time { return f.clock }),
		})
	}
	return f
}

// birth publishes every Pi's retained online status and first sample, as agents do on connect.
func (f *benchFleet) birth(b *testing.B, br bus.Bus) {
	b.Helper()
	for i := range f.pis {
		p := &f.pis[i]
		st := topics.Status{
			V: topics.Version, State: topics.StateOnline, TS: time.Now().UTC(), Session: fmt.Sprintf("bench-%d", i),
			Hostname: fmt.Sprintf("pi-%s-%02d", p.row, i%benchPerRow+1), IP: fmt.Sprintf("10.1.%d.%d", i/benchPerRow, 10+i%benchPerRow),
			Model: agent.SimModel, AgentVersion: "bench",
		}
		payload, err := topics.Encode(st)
		if err != nil {
			b.Fatal(err)
		}
		if err := br.Publish(context.Background(), bus.Message{Topic: p.status, Payload: payload, QoS: 1, Retained: true}); err != nil {
			b.Fatal(err)
		}
		f.publish(b, br, p, false)
	}
}

// publish sends one sample of p, retained at QoS 0 as agents send it; last marks the final
// round's. (The broker group-commits retained messages, so this costs microseconds.)
func (f *benchFleet) publish(b *testing.B, br bus.Bus, p *benchPi, last bool) {
	m, err := p.sim.Collect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p.seq++
	m.V, m.Seq, m.TS = topics.Version, p.seq, time.Now().UTC()
	if last {
		load := benchMarkLoad
		m.Load1 = &load
	}
	payload, err := topics.Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Publish(context.Background(), bus.Message{Topic: p.metrics, Payload: payload, Retained: true}); err != nil {
		b.Fatal(err)
	}
}

// bursts runs benchRounds rounds, a slice of the Pis every benchRound/benchSlices, and returns
// how many samples it sent and how long that took.
func (f *benchFleet) bursts(b *testing.B, br bus.Bus) (sent int, took time.Duration) {
	b.Helper()
	start := time.Now()
	tick := time.NewTicker(benchRound / benchSlices)
	defer tick.Stop()
	per := (len(f.pis) + benchSlices - 1) / benchSlices
	for round := range benchRounds {
		f.clock = f.clock.Add(benchRound)
		for slice := range benchSlices {
			<-tick.C
			for i := slice * per; i < min((slice+1)*per, len(f.pis)); i++ {
				f.publish(b, br, &f.pis[i], round == benchRounds-1)
				sent++
			}
		}
	}
	return sent, time.Since(start)
}
