package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// CompareConfig shapes Compare. DefaultCompareConfig is `make bench`, QuickCompareConfig
// `make bench-quick`; every count and duration must be positive.
type CompareConfig struct {
	// Reps is how many times each scenario runs on each side, interleaved (pirack, then its
	// peer, then pirack again...). Medians are reported.
	Reps int
	// Agents is the simulated agents of the throughput scenarios and of press and Locate.
	Agents int
	// SaturateFor is how long the agents publish as fast as they can; PacedFor how long
	// they publish at a set rate (10 msg/s, 1 msg/s, every 5 s).
	SaturateFor, PacedFor time.Duration
	// IdleAgents are the fleet sizes whose memory per idle connection is measured.
	IdleAgents []int
	// Presses is how many presses, and how many Locates, are timed.
	Presses int
	// FootprintFor is how long the agents' and node_exporter's CPU is measured.
	FootprintFor time.Duration
	// ChartPis is how many Pis have 7 days of history for the chart query, timed
	// ChartQueries times.
	ChartPis, ChartQueries int
	// PayloadBytes is the size of each metrics message (600: a Pi 4's).
	PayloadBytes int
	// Only runs these scenarios (CompareScenarios); none means all.
	Only []string

	// Serve is the command that runs `pirack serve`, its flags appended; nil means this
	// executable with "serve". ServeEnv is added to its environment.
	Serve    []string
	ServeEnv []string
	// Agent is the pirack-agent binary; "" means pirack-agent beside this executable.
	Agent string
	// Mosquitto and NodeExporter are the peers' binaries; "" looks them up in PATH and
	// /usr/sbin. A missing node_exporter leaves its side of the footprint out.
	Mosquitto, NodeExporter string
	// ProfileDir, when set, receives a CPU profile of pirack serve over each throughput
	// window (<scenario>-<run>.pprof), taken through serve's --debug-addr.
	ProfileDir string
	// Commit is the pirack commit measured, for the JSON ("" leaves it out).
	Commit string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// DefaultCompareConfig is `make bench`: about 15 minutes on 2 cores.
func DefaultCompareConfig() CompareConfig {
	return CompareConfig{
		Reps: 3, Agents: 1000, SaturateFor: 8 * time.Second, PacedFor: 10 * time.Second,
		IdleAgents: []int{1000, 5000}, Presses: 1000, FootprintFor: 20 * time.Second,
		ChartPis: 24, ChartQueries: 100, PayloadBytes: 600,
	}
}

// QuickCompareConfig is `make bench-quick`: about 2 minutes.
func QuickCompareConfig() CompareConfig {
	return CompareConfig{
		Reps: 1, Agents: 200, SaturateFor: 3 * time.Second, PacedFor: 5 * time.Second,
		IdleAgents: []int{200, 1000}, Presses: 200, FootprintFor: 8 * time.Second,
		ChartPis: 4, ChartQueries: 30, PayloadBytes: 600,
	}
}

// CompareResult is the JSON Compare writes.
type CompareResult struct {
	Date      time.Time         `json:"date"`
	Commit    string            `json:"commit,omitempty"`
	GoVersion string            `json:"go_version"`
	CPUs      int               `json:"cpus"`
	LoadAvg   [2]string         `json:"load_avg"` // at the start and at the end
	Config    map[string]any    `json:"config"`
	Scenarios []ScenarioResult  `json:"scenarios"`
	Elapsed   float64           `json:"elapsed_s"`
	Notes     map[string]string `json:"notes,omitempty"`
}

// ScenarioResult is one scenario: each subject's runs and medians, and the ratios of pirack
// to its peer, of the same run.
type ScenarioResult struct {
	Name     string                          `json:"name"`
	Title    string                          `json:"title"`
	Subjects []string                        `json:"subjects"`
	Runs     map[string][]map[string]float64 `json:"runs"`
	Median   map[string]map[string]float64   `json:"median"`
	Ratios   []Ratio                         `json:"ratios,omitempty"`
}

// Ratio is Of's median of Key over To's.
type Ratio struct {
	Key   string  `json:"key"`
	Of    string  `json:"of"`
	To    string  `json:"to"`
	Value float64 `json:"value"`
}

// Measurement keys, with the units in their names.
const (
	kMsgPerS   = "msg_per_s"
	kPublished = "published"
	kDelivered = "delivered"
	kLossPct   = "loss_pct"
	kP50       = "p50_ms"
	kP99       = "p99_ms"
	kMax       = "max_ms"
	kCPUUs     = "cpu_us_per_msg"
	kCPUPct    = "cpu_pct"
	kRSS       = "rss_mib"
	kPerConn   = "per_conn_kb"
	kConnected = "connected"
	kRefused   = "refused"
	kLost      = "lost"
	kPoints    = "points"
)

// Subjects.
const (
	subjPirack   = "pirack"
	subjMosq     = "mosquitto"
	subjAgent1s  = "pirack-agent 1s"
	subjAgent5s  = "pirack-agent 5s"
	subjNEIdle   = "node_exporter idle"
	subjNEScrape = "node_exporter 1Hz"
)

// scenario is one line of the comparison. run measures every subject once.
type scenario struct {
	name, title string
	subjects    []string
	show        []string    // keys in the table, in order
	ratios      [][3]string // key, of, to
	run         func(ctx context.Context, c *comparer) (map[string]map[string]float64, error)
}

// comparer holds what the scenarios share.
type comparer struct {
	cfg    CompareConfig
	tmpl   seqPayload
	log    *slog.Logger
	notes  map[string]string
	serve  []string
	agent  string
	mosq   string
	nodeEx string
	// scenario and rep name the run in progress, for profiles' file names.
	scenario string
	rep      int
}

// CompareScenarios are the scenario names, in the order they run.
var CompareScenarios = func() []string {
	var n []string
	for _, s := range compareScenarios(CompareConfig{IdleAgents: []int{0}}) {
		n = append(n, strings.TrimSuffix(s.name, "-0"))
	}
	return slices.Compact(n)
}()

func compareScenarios(cfg CompareConfig) []scenario {
	flood := []string{kMsgPerS, kLossPct, kP50, kP99, kCPUUs, kRSS}
	both := []string{subjPirack, subjMosq}
	ss := []scenario{
		{"qos0-saturation", fmt.Sprintf("QoS 0 at saturation, %d publishers", cfg.Agents), both, flood,
			[][3]string{{kMsgPerS, subjPirack, subjMosq}, {kCPUUs, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.flood(ctx, 0, 0, c.cfg.SaturateFor, false)
			}},
		{"qos1-saturation", "QoS 1 retained at saturation (Mosquitto: no-drop config)", both, flood,
			[][3]string{{kMsgPerS, subjPirack, subjMosq}, {kCPUUs, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.flood(ctx, 1, 0, c.cfg.SaturateFor, true)
			}},
		{"qos1-10hz", fmt.Sprintf("QoS 1 retained, %d x 10 msg/s offered", cfg.Agents), both, flood,
			[][3]string{{kMsgPerS, subjPirack, subjMosq}, {kP99, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.flood(ctx, 1, 100*time.Millisecond, c.cfg.PacedFor, true)
			}},
		{"qos0-1hz", fmt.Sprintf("QoS 0, %d x 1 msg/s: CPU per message", cfg.Agents), both,
			[]string{kMsgPerS, kLossPct, kP50, kP99, kCPUUs, kCPUPct, kRSS},
			[][3]string{{kCPUUs, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.flood(ctx, 0, time.Second, c.cfg.PacedFor, false)
			}},
		{"fleet-5s", fmt.Sprintf("%d agents at the default 5 s interval", cfg.Agents), both,
			[]string{kCPUPct, kRSS, kP50, kP99, kLossPct},
			[][3]string{{kCPUPct, subjPirack, subjMosq}, {kRSS, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.flood(ctx, 0, 5*time.Second, 2*c.cfg.PacedFor, false)
			}},
	}
	for _, n := range cfg.IdleAgents {
		ss = append(ss, scenario{fmt.Sprintf("idle-%d", n), fmt.Sprintf("memory per idle agent connection, %d agents", n), both,
			[]string{kPerConn, kConnected, kRefused, kRSS},
			[][3]string{{kPerConn, subjPirack, subjMosq}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) { return c.idle(ctx, n) }})
	}
	return append(ss,
		scenario{"press", fmt.Sprintf("press -> SSE event, %d agents at 5 s", cfg.Agents), []string{subjPirack},
			[]string{kP50, kP99, kMax, kLost}, nil,
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.pressLocate(ctx, true)
			}},
		scenario{"locate", fmt.Sprintf("Locate (POST blink) -> LED command at the agent, %d agents at 5 s", cfg.Agents), []string{subjPirack},
			[]string{kP50, kP99, kMax, kLost}, nil,
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) {
				return c.pressLocate(ctx, false)
			}},
		scenario{"agent", "agent footprint: pirack-agent vs node_exporter", []string{subjAgent1s, subjAgent5s, subjNEIdle, subjNEScrape},
			[]string{kRSS, kCPUPct},
			[][3]string{{kRSS, subjAgent1s, subjNEIdle}, {kRSS, subjAgent5s, subjNEIdle}, {kCPUPct, subjAgent1s, subjNEScrape}},
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) { return c.footprint(ctx) }},
		scenario{"chart-7d", fmt.Sprintf("7-day chart query (GET .../series?range=7d), %d Pis of history", cfg.ChartPis), []string{subjPirack},
			[]string{kP50, kP99, kMax, kPoints}, nil,
			func(ctx context.Context, c *comparer) (map[string]map[string]float64, error) { return c.chart(ctx) }},
	)
}

func (c CompareConfig) check() error {
	if c.Reps < 1 || c.Agents < 1 || c.SaturateFor <= 0 || c.PacedFor <= 0 || len(c.IdleAgents) == 0 ||
		c.Presses < 1 || c.FootprintFor <= 0 || c.ChartPis < 1 || c.ChartQueries < 1 || c.PayloadBytes < 1 {
		return errors.New("bench compare: every count and duration must be positive")
	}
	for _, n := range c.IdleAgents {
		if n < 1 {
			return errors.New("bench compare: every idle fleet size must be positive")
		}
	}
	for _, o := range c.Only {
		if !slices.Contains(CompareScenarios, o) && !strings.HasPrefix(o, "idle-") {
			return fmt.Errorf("bench compare: unknown scenario %q, want one of %s", o, strings.Join(CompareScenarios, ", "))
		}
	}
	return nil
}

// Compare runs each scenario against pirack and its peer, interleaved, cfg.Reps times, prints
// a table to stdout and returns the result for the JSON file.
func Compare(ctx context.Context, cfg CompareConfig, stdout io.Writer) (*CompareResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c := &comparer{cfg: cfg, log: cfg.Logger, notes: map[string]string{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if c.tmpl, err = metricsTemplate(cfg.PayloadBytes); err != nil {
		return nil, err
	}
	if c.serve = cfg.Serve; len(c.serve) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find pirack to run serve with: %w", err)
		}
		c.serve = []string{exe, "serve"}
	}
	if c.agent = cfg.Agent; c.agent == "" {
		exe, _ := os.Executable()
		c.agent = filepath.Join(filepath.Dir(exe), "pirack-agent")
	}
	if c.mosq = cfg.Mosquitto; c.mosq == "" {
		c.mosq = lookBinary("mosquitto")
	}
	if c.mosq == "" {
		return nil, errors.New("bench compare: no mosquitto binary; run scripts/bench-deps (apt-get install mosquitto)")
	}
	if c.nodeEx = cfg.NodeExporter; c.nodeEx == "" {
		c.nodeEx = lookBinary("prometheus-node-exporter", "node_exporter")
	}
	if c.nodeEx == "" {
		c.notes["agent"] = "no prometheus-node-exporter: its side of the footprint is missing (scripts/bench-deps installs it)"
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench compare: %w", err)
		}
	}
	raiseFileLimit()

	res := &CompareResult{
		Date: time.Now().UTC().Truncate(time.Second), Commit: cfg.Commit, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		Config: map[string]any{
			"reps": cfg.Reps, "agents": cfg.Agents, "saturate_for_s": cfg.SaturateFor.Seconds(), "paced_for_s": cfg.PacedFor.Seconds(),
			"idle_agents": cfg.IdleAgents, "presses": cfg.Presses, "footprint_for_s": cfg.FootprintFor.Seconds(),
			"chart_pis": cfg.ChartPis, "chart_queries": cfg.ChartQueries, "payload_bytes": cfg.PayloadBytes,
		},
		Notes: c.notes,
	}
	res.LoadAvg[0] = loadAvg()
	start := time.Now()
	var ss []scenario
	for _, s := range compareScenarios(cfg) {
		if len(cfg.Only) == 0 || slices.Contains(cfg.Only, s.name) || slices.Contains(cfg.Only, strings.TrimRight(s.name, "0123456789-")) {
			ss = append(ss, s)
		}
	}
	results := make([]ScenarioResult, len(ss))
	for i, s := range ss {
		results[i] = ScenarioResult{Name: s.name, Title: s.title, Subjects: s.subjects, Runs: map[string][]map[string]float64{}}
	}
	for rep := 1; rep <= cfg.Reps; rep++ {
		for i, s := range ss {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t := time.Now()
			c.scenario, c.rep = s.name, rep
			got, err := s.run(ctx, c)
			if err != nil {
				return nil, fmt.Errorf("bench compare: %s, run %d: %w", s.name, rep, err)
			}
			for subj, m := range got {
				results[i].Runs[subj] = append(results[i].Runs[subj], m)
			}
			fmt.Fprintf(stdout, "run %d/%d %-16s %5.1fs  %s\n", rep, cfg.Reps, s.name, time.Since(t).Seconds(), runLine(s, got))
		}
	}
	for i, s := range ss {
		r := &results[i]
		r.Median = map[string]map[string]float64{}
		for subj, runs := range r.Runs {
			r.Median[subj] = medians(runs)
		}
		for _, q := range s.ratios {
			of, to := r.Median[q[1]], r.Median[q[2]]
			if of == nil || to == nil || to[q[0]] == 0 {
				continue
			}
			r.Ratios = append(r.Ratios, Ratio{Key: q[0], Of: q[1], To: q[2], Value: of[q[0]] / to[q[0]]})
		}
	}
	res.Scenarios = results
	res.Elapsed = time.Since(start).Seconds()
	res.LoadAvg[1] = loadAvg()
	printCompare(stdout, res, ss)
	return res, nil
}

// WriteJSON writes r, indented, to path.
func (r *CompareResult) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func medians(runs []map[string]float64) map[string]float64 {
	out := map[string]float64{}
	keys := map[string]bool{}
	for _, m := range runs {
		for k := range m {
			keys[k] = true
		}
	}
	for k := range keys {
		var v []float64
		for _, m := range runs {
			if x, ok := m[k]; ok {
				v = append(v, x)
			}
		}
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			out[k] = v[n/2]
		} else {
			out[k] = (v[n/2-1] + v[n/2]) / 2
		}
	}
	return out
}

// summary formats the keys of one subject's measurement, as in the docs' tables.
func summary(keys []string, m map[string]float64) string {
	if m == nil {
		return "—"
	}
	var parts []string
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		switch k {
		case kMsgPerS:
			s = si(v) + " msg/s"
		case kLossPct:
			s = fmt.Sprintf("%.1f %% lost", v)
		case kP50, kP99, kMax:
			s = strings.TrimSuffix(k, "_ms") + " " + ms(v)
		case kCPUUs:
			s = fmt.Sprintf("%.0f µs/msg", v)
		case kCPUPct:
			s = fmt.Sprintf("%.2f %% CPU", v)
		case kRSS:
			s = fmt.Sprintf("%.1f MiB", v)
		case kPerConn:
			s = fmt.Sprintf("%.1f KB/conn", v)
		case kConnected:
			s = fmt.Sprintf("%.0f connected", v)
		case kRefused:
			s = fmt.Sprintf("%.0f refused", v)
		case kLost:
			s = fmt.Sprintf("%.0f lost", v)
		case kPoints:
			s = fmt.Sprintf("%.0f points", v)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func si(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func runLine(s scenario, got map[string]map[string]float64) string {
	var parts []string
	for _, subj := range s.subjects {
		if m, ok := got[subj]; ok {
			parts = append(parts, subj+": "+summary(s.show, m))
		}
	}
	return strings.Join(parts, " | ")
}

func printCompare(w io.Writer, r *CompareResult, ss []scenario) {
	fmt.Fprintf(w, "\npirack bench compare, %s, %d CPUs, %s, medians of %d runs, load average %s -> %s\n\n",
		r.Date.Format("2006-01-02"), r.CPUs, r.GoVersion, r.Config["reps"], r.LoadAvg[0], r.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| scenario\t| pirack\t| peer\t| ratio\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|")
	for i, s := range ss {
		res := r.Scenarios[i]
		var ratios []string
		for _, q := range res.Ratios {
			ratios = append(ratios, fmt.Sprintf("%s %.2fx", strings.TrimSuffix(strings.TrimSuffix(q.Key, "_ms"), "_mib"), q.Value))
		}
		switch s.name {
		case "agent":
			peer := subjNEIdle + ": " + summary(s.show, res.Median[subjNEIdle]) + "; " + subjNEScrape + ": " + summary(s.show, res.Median[subjNEScrape])
			own := "1 s: " + summary(s.show, res.Median[subjAgent1s]) + "; 5 s: " + summary(s.show, res.Median[subjAgent5s])
			fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", s.title, own, peer, strings.Join(ratios, ", "))
		default:
			peer := "—"
			if len(s.subjects) > 1 {
				peer = summary(s.show, res.Median[s.subjects[1]])
			}
			fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", s.title, summary(s.show, res.Median[s.subjects[0]]), peer, strings.Join(ratios, ", "))
		}
	}
	tw.Flush()
	for k, v := range r.Notes {
		fmt.Fprintf(w, "note (%s): %s\n", k, v)
	}
}

// lookBinary finds the first of names in PATH, /usr/sbin or /usr/bin.
func lookBinary(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin"} {
			if fi, err := os.Stat(filepath.Join(d, n)); err == nil && !fi.IsDir() {
				return filepath.Join(d, n)
			}
		}
	}
	return ""
}

// raiseFileLimit lifts the soft limit on open files to the hard one, for this process and
// the servers it starts (Go restores the original limit in children unless it is set here):
// 5,000 agents are 10,000 sockets on loopback.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
