package loadtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/mosquittotest"
)

func TestParseStatCPU(t *testing.T) {
	// The name may hold spaces and parentheses: fields count from the last ')'.
	const stat = "4242 (pi rack) S) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 30 0 0 20 0 9 0 100 0 0"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 2800*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.8s", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (pirack) S 1 2")); err == nil {
		t.Error("a short stat line accepted")
	}
}

func TestMetricsTemplate(t *testing.T) {
	p, err := metricsTemplate(600)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 123456789)
	b := p.at(at)
	if len(b) != 600 {
		t.Errorf("payload of %d bytes, want 600", len(b))
	}
	if got := parseSeq(b); got != uint64(at.UnixNano()) {
		t.Errorf("seq %d, want %d", got, at.UnixNano())
	}
	if parseSeq(p.b) != seqBase {
		t.Error("at changed the template")
	}
}

// TestCompareTiny runs every scenario of `pirack bench compare` at a tiny size, so that the
// harness cannot rot: each scenario is in the JSON, with numbers that make sense.
func TestCompareTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pirack and runs servers: not in -short")
	}
	mosq := mosquittotest.Binary()
	if mosq == "" {
		if os.Getenv(mosquittotest.RequireEnv) == "require" {
			t.Fatal("no mosquitto binary, and " + mosquittotest.RequireEnv + "=require")
		}
		t.Skip("no mosquitto binary (scripts/bench-deps installs it)")
	}
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin+"/", "../cmd/pirack", "../cmd/pirack-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pirack: %v\n%s", err, out)
	}
	cfg := CompareConfig{
		Reps: 1, Agents: 20, SaturateFor: 300 * time.Millisecond, PacedFor: time.Second,
		IdleAgents: []int{20}, Presses: 10, FootprintFor: time.Second,
		ChartPis: 1, ChartQueries: 3, PayloadBytes: 600,
		Serve: []string{filepath.Join(bin, "pirack"), "serve"}, Agent: filepath.Join(bin, "pirack-agent"),
		Mosquitto: mosq,
	}
	var out strings.Builder
	res, err := Compare(t.Context(), cfg, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got CompareResult
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	byName := map[string]ScenarioResult{}
	for _, s := range got.Scenarios {
		byName[s.Name] = s
	}
	med := func(scenario, subject, key string) float64 {
		t.Helper()
		v, ok := byName[scenario].Median[subject][key]
		if !ok {
			t.Errorf("%s: %s has no %s", scenario, subject, key)
		}
		return v
	}
	for _, name := range append(CompareScenarios, "idle-20") {
		if name == "idle" {
			continue
		}
		if _, ok := byName[name]; !ok {
			t.Errorf("scenario %s missing from the JSON", name)
		}
	}
	for _, sc := range []string{"qos0-saturation", "qos1-saturation", "qos1-10hz", "qos0-1hz"} {
		for _, subj := range []string{subjPirack, subjMosq} {
			if v := med(sc, subj, kMsgPerS); v <= 0 || v > 1e7 {
				t.Errorf("%s: %s delivered %v msg/s", sc, subj, v)
			}
			if v := med(sc, subj, kLossPct); v < 0 || v > 100 {
				t.Errorf("%s: %s lost %v %%", sc, subj, v)
			}
			if v := med(sc, subj, kRSS); v < 1 || v > 4096 {
				t.Errorf("%s: %s RSS %v MiB", sc, subj, v)
			}
			// CPU time is counted in 10 ms ticks: a tiny paced run may take none.
			if v := med(sc, subj, kCPUUs); v < 0 || (v == 0 && strings.Contains(sc, "saturation")) {
				t.Errorf("%s: %s %v µs of CPU per message", sc, subj, v)
			}
		}
		if len(byName[sc].Ratios) == 0 && strings.Contains(sc, "saturation") {
			t.Errorf("%s: no ratio to Mosquitto", sc)
		}
	}
	// QoS 1 loses nothing on either side.
	for _, subj := range []string{subjPirack, subjMosq} {
		if v := med("qos1-saturation", subj, kLossPct); v != 0 {
			t.Errorf("qos1-saturation: %s lost %v %%", subj, v)
		}
		if v := med("idle-20", subj, kConnected); v != 20 {
			t.Errorf("idle-20: %s held %v connections", subj, v)
		}
	}
	for _, sc := range []string{"press", "locate", "chart-7d"} {
		if p50, mx := med(sc, subjPirack, kP50), med(sc, subjPirack, kMax); p50 <= 0 || mx < p50 || mx > 5000 {
			t.Errorf("%s: p50 %v ms, max %v ms", sc, p50, mx)
		}
	}
	if v := med("press", subjPirack, kLost) + med("locate", subjPirack, kLost); v != 0 {
		t.Errorf("%v presses or Locates without their event", v)
	}
	if v := med("chart-7d", subjPirack, kPoints); v < 100 {
		t.Errorf("7-day chart of %v points", v)
	}
	for _, subj := range []string{subjAgent1s, subjAgent5s} {
		if v := med("agent", subj, kRSS); v < 1 || v > 200 {
			t.Errorf("agent: %s RSS %v MiB", subj, v)
		}
	}
	if !strings.Contains(out.String(), "| scenario") {
		t.Errorf("no table printed:\n%s", out.String())
	}
}
