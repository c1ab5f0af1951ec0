package promexport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/internal/prometheustest"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/promexport"
	"github.com/pirack/pirack/topics"
)

const wait = 15 * time.Second

const (
	token      = "5e8ff9bf55ba3508199d22e984129be6"
	scraper    = "prometheus" // a viewer
	scraperPW  = "scraper-password"
	macPlaced  = "b827eb3f1a2c"
	macLoose   = "dca6320a0b0c"
	placedName = "db-1"
)

// A real Prometheus scrapes a running control center twice over, once with the bearer token
// and once as a viewer by Basic auth, and its query API returns the Pis' load with their
// labels; promtool finds nothing to fix in what it scraped.
func TestPrometheusScrapesControlCenter(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile, passwordFile := secret("metrics.token", token), secret("scraper.password", scraperPW)

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	users, err := auth.Open(filepath.Join(data, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, u := range []struct {
		name, pw string
		role     auth.Role
	}{{"admin", "admin-password", auth.RoleAdmin}, {scraper, scraperPW, auth.RoleViewer}} {
		if err := users.Add(auth.User{Name: u.name, Role: u.role}, u.pw); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := controlcenter.New(controlcenter.Config{DataDir: data, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		MetricsTokenFile: tokenFile, Logger: slog.New(slog.NewTextHandler(testlog.NewWriter(t), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() }) // when Run never ran: a skip below
	prom := prometheustest.Start(t, prometheustest.Options{Targets: []prometheustest.Target{
		{Job: "pirack-token", Addr: cc.HTTPAddr(), BearerTokenFile: tokenFile},
		{Job: "pirack-basic", Addr: cc.HTTPAddr(), Username: scraper, PasswordFile: passwordFile},
	}})
	run(t, cc)

	if _, err := cc.Layout().Put("r1", 3, macPlaced); err != nil {
		t.Fatal(err)
	}
	if err := cc.Layout().Name("r1", 3, placedName); err != nil {
		t.Fatal(err)
	}
	load := map[string]float64{macPlaced: 0.75, macLoose: 1.25}
	for mac, l := range load {
		publish(t, cc.Bus(), topics.StatusTopic("r1", mac), topics.Status{V: 1, State: topics.StateOnline, TS: time.Now(), Session: "s1",
			Hostname: "pi-" + mac[8:], Model: "Raspberry Pi 4 Model B", AgentVersion: "test"})
		publish(t, cc.Bus(), topics.MetricsTopic("r1", mac), topics.Metrics{V: 1, Seq: 1, TS: time.Now(), Load1: &l})
	}
	watts := 9.5
	publish(t, cc.Bus(), topics.PowerTopic("r1"), topics.Power{V: 1, TS: time.Now(), Watts: &watts})

	t.Run("load with labels", func(t *testing.T) {
		got := prom.WaitQuery(t, "pirack_pi_load1", wait, func(s []prometheustest.Sample) bool { return len(s) == 4 })
		want := map[string]map[string]string{
			macPlaced: {"row": "r1", "slot": "3", "mac": macPlaced, "name": placedName},
			macLoose:  {"row": "r1", "mac": macLoose, "name": "pi-" + macLoose[8:]}, // no slot: no slot label
		}
		jobs := map[string]int{}
		for _, s := range got {
			mac := s.Metric["mac"]
			w, ok := want[mac]
			if !ok {
				t.Errorf("unexpected series %v", s.Metric)
				continue
			}
			jobs[s.Metric["job"]]++
			if s.Value != load[mac] {
				t.Errorf("%s: load %v, want %v", mac, s.Value, load[mac])
			}
			for _, k := range []string{"row", "slot", "mac", "name"} {
				if s.Metric[k] != w[k] {
					t.Errorf("%s: label %s=%q, want %q (series %v)", mac, k, s.Metric[k], w[k], s.Metric)
				}
			}
			if s.Metric["instance"] != cc.HTTPAddr() {
				t.Errorf("%s: instance %q, want %s", mac, s.Metric["instance"], cc.HTTPAddr())
			}
		}
		if jobs["pirack-token"] != 2 || jobs["pirack-basic"] != 2 {
			t.Errorf("series by job %v, want 2 from each of pirack-token and pirack-basic", jobs)
		}
	})
	t.Run("up, power and health", func(t *testing.T) {
		for _, q := range []struct {
			query string
			want  float64
		}{
			{`sum(up{job=~"pirack-.*"})`, 2},
			{`sum(pirack_pi_up{job="pirack-token"})`, 2},
			{`pirack_row_power_watts{job="pirack-basic",row="r1"}`, watts},
			{`pirack_ingest_messages_applied_total{job="pirack-token"} >= 5`, -1}, // any value: present
			{`pirack_broker_retained_commits_total{job="pirack-token"} >= 0`, -1},
			{`pirack_history_samples_queued_total{job="pirack-token"} >= 1`, -1},
		} {
			prom.WaitQuery(t, q.query, wait, func(s []prometheustest.Sample) bool {
				return len(s) == 1 && (q.want < 0 || s[0].Value == q.want)
			})
		}
	})
	t.Run("grafana queries", func(t *testing.T) {
		// Grafana fills these in; any value Prometheus parses will do.
		vars := strings.NewReplacer("$row", ".*", "$__rate_interval", "1m")
		for _, q := range grafanaQueries(t) {
			expr := vars.Replace(q.expr)
			if strings.HasPrefix(expr, "label_values(") { // Grafana's, not PromQL
				continue
			}
			if _, err := prom.Query(t.Context(), expr); err != nil {
				t.Errorf("%s: %v", q.where, err)
			}
		}
	})
	t.Run("the docs' queries", func(t *testing.T) {
		// Every query docs/prometheus.md offers (its promql blocks, a comment after each) is
		// one Prometheus runs.
		doc, err := os.ReadFile("../docs/prometheus.md")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, block := range strings.Split(string(doc), "```promql\n")[1:] {
			block, _, _ = strings.Cut(block, "```")
			for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
				expr, _, _ := strings.Cut(line, "#")
				if expr = strings.TrimSpace(expr); expr == "" {
					continue
				}
				n++
				if _, err := prom.Query(t.Context(), expr); err != nil {
					t.Errorf("docs/prometheus.md: %s: %v", expr, err)
				}
			}
		}
		if n < 5 {
			t.Fatalf("found %d queries in docs/prometheus.md's promql blocks", n)
		}
	})
	t.Run("promtool check metrics", func(t *testing.T) {
		body := scrape(t, "http://"+cc.HTTPAddr()+promexport.Path)
		if !strings.Contains(string(body), "pirack_pi_load1{") {
			t.Fatalf("scrape lacks pirack_pi_load1:\n%s", body)
		}
		out, err := prometheustest.CheckMetrics(t, body)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

// run runs cc until the test ends, and returns once MQTT is up.
func run(t *testing.T, cc *controlcenter.ControlCenter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of its cancel", wait)
		}
	})
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	}
}

func publish(t *testing.T, b bus.Bus, topic string, p topics.Validator) {
	t.Helper()
	payload, err := topics.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), bus.Message{Topic: topic, Payload: payload, QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
}

// scrape GETs url with the bearer token, as Prometheus does, and returns the body.
func scrape(t *testing.T, url string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	if err != nil {
		t.Fatal(fmt.Errorf("scrape %s: %w: %.300s", url, err, body))
	}
	return body
}

// A token file others can read stops the control center at New, saying what to run.
func TestControlCenterRefusesOpenTokenFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "metrics.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := controlcenter.New(controlcenter.Config{DataDir: filepath.Join(dir, "data"), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		MetricsTokenFile: tokenFile})
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+tokenFile) {
		t.Fatalf("New = %v, want the token file refused with the chmod to run", err)
	}
}
