package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/auth"
	"golang.org/x/crypto/bcrypt"
)

// TestDemoRackComesAlive runs `pirack demo` as `make run` does (smaller, on free ports) and
// follows the Control Center's live stream until every simulated Pi is online with telemetry,
// then stops it as Ctrl-C would.
func TestDemoRackComesAlive(t *testing.T) {
	const rows, perRow = 2, 3
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	out, bannerW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0",
			"--rows", "2", "--per-row", "3", "--interval", "100ms", "--press-every", "0"}, bannerW, io.Discard)
		bannerW.Close()
	}()

	url, password := readBanner(t, out)
	go io.Copy(io.Discard, out)

	streamCtx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, url+"/api/events", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open the live stream with the printed credentials: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live stream with the printed credentials: HTTP %d", resp.StatusCode)
	}
	alive := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for len(alive) < rows*perRow && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var nodes []liveNode // a snapshot is an array, an update one node
		if strings.HasPrefix(line, "[") {
			json.Unmarshal([]byte(line), &nodes)
		} else {
			nodes = make([]liveNode, 1)
			json.Unmarshal([]byte(line), &nodes[0])
		}
		for _, n := range nodes {
			if n.State == "online" && len(n.Metrics) > 0 {
				alive[n.MAC] = true
			}
		}
	}
	if len(alive) != rows*perRow {
		t.Fatalf("%d of %d simulated Pis came online with telemetry: %v", len(alive), rows*perRow, alive)
	}

	// What the page reads besides the live stream, through the real broker, agents and history:
	// every row's slots filled in order, an hour of load per Pi for the sparklines (the week's
	// backfill included), and the rack-wide event log.
	getJSON := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+path, nil)
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var layoutRows []struct {
		Name  string `json:"name"`
		Slots []struct {
			Slot int    `json:"slot"`
			MAC  string `json:"mac"`
		} `json:"slots"`
	}
	getJSON("/api/rows", &layoutRows)
	for _, r := range layoutRows {
		if len(r.Slots) != perRow {
			t.Errorf("row %s has %d slots, want the demo's %d placed in order", r.Name, len(r.Slots), perRow)
		}
		for _, sl := range r.Slots {
			if !alive[sl.MAC] {
				t.Errorf("row %s slot %d holds %q, not one of the simulated Pis", r.Name, sl.Slot, sl.MAC)
			}
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var sparks struct {
			Series map[string][]*float64 `json:"series"`
		}
		getJSON("/api/sparklines?metric=load_1&minutes=60&buckets=60", &sparks)
		full := 0
		for mac := range alive {
			n := 0
			for _, v := range sparks.Series[mac] {
				if v != nil {
					n++
				}
			}
			if n >= 50 { // the backfill's hour, not just the minutes since start
				full++
			}
		}
		if full == len(alive) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sparklines: %d of %d Pis have an hour of load: %v", full, len(alive), sparks.Series)
		}
		time.Sleep(200 * time.Millisecond) // the backfill runs behind the banner
	}
	var log struct {
		Events []struct {
			MAC  string `json:"mac"`
			Kind string `json:"kind"`
		} `json:"events"`
	}
	// The log is written in batches: the last Pis' online events may still be on their way.
	online := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		getJSON("/api/log?kind=online&limit=100", &log)
		for _, e := range log.Events {
			online[e.MAC] = e.Kind == "online" || online[e.MAC]
		}
		missing := 0
		for mac := range alive {
			if !online[mac] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for mac := range alive {
				if !online[mac] {
					t.Errorf("the event log has no online event for %s: %+v", mac, log.Events)
				}
			}
			break
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo did not stop cleanly: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop within 15 s of Ctrl-C")
	}
}

// liveNode is the part of a dashboard node this test reads; cmd/pirack sees the dashboard only
// as its users do.
type liveNode struct {
	MAC     string          `json:"mac"`
	State   string          `json:"state"`
	Metrics json.RawMessage `json:"metrics"`
}

// readBanner reads the demo's banner up to "Press Ctrl-C" and returns the URL and password.
func readBanner(t *testing.T, r io.Reader) (url, password string) {
	t.Helper()
	var banner strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	b := banner.String()
	u := regexp.MustCompile(`Control Center\s+(http://\S+)`).FindStringSubmatch(b)
	p := regexp.MustCompile(`(?m)^\s+password\s+(\S+)$`).FindStringSubmatch(b)
	if u == nil || p == nil {
		t.Fatalf("demo banner lacks the URL or the password:\n%s", b)
	}
	return u[1], p[1]
}

// TestDemoBannerWithoutAdmin: a data directory whose users file was made before the first run
// (a homeassistant user added first) gets no admin; the banner says so and how to make one,
// instead of pointing at a password that does not exist.
func TestDemoBannerWithoutAdmin(t *testing.T) {
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "ha", Role: auth.RoleHomeAssistant}, "ha-password-1234"); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	out, bannerW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--data-dir", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0",
			"--rows", "1", "--per-row", "1", "--press-every", "0"}, bannerW, io.Discard)
		bannerW.Close()
	}()
	var banner strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
		banner.WriteString(sc.Text() + "\n")
	}
	go io.Copy(io.Discard, out)
	stop()
	<-done
	if !strings.Contains(banner.String(), "no admin user: pirack user add admin --role admin --data-dir "+dir) {
		t.Errorf("banner does not say there is no admin:\n%s", banner.String())
	}
}
