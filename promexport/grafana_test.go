package promexport_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pirack/pirack/promexport"
)

var (
	grafanaFile = filepath.Join("..", "docs", "grafana", "pirack.json")
	docsFile    = filepath.Join("..", "docs", "prometheus.md")
	metricName  = regexp.MustCompile(`\bpirack_[a-z0-9_]+`)
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// grafanaQuery is one PromQL expression of the dashboard, with where it is.
type grafanaQuery struct {
	where, expr, legend string
}

// grafanaQueries returns every panel target's expr and every query variable's query.
func grafanaQueries(t *testing.T) []grafanaQuery {
	t.Helper()
	b, err := os.ReadFile(grafanaFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", grafanaFile, err)
	}
	var out []grafanaQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, grafanaQuery{"panel " + p.Title, tg.Expr, tg.LegendFormat})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
		}
		out = append(out, grafanaQuery{where: "variable " + v.Name, expr: q.Query})
	}
	return out
}

// The Grafana dashboard references only metrics the exporter exposes, names only labels they
// carry in its legends, and shows the rack overview the docs promise.
func TestGrafanaDashboardUsesExportedNames(t *testing.T) {
	names := promexport.MetricNames()
	labels := []string{"row", "slot", "mac", "name", "hostname", "model", "agent_version", "state", "flag", "rule", "severity", "reason", "job", "instance", "sensor", "mountpoint", "device", "fstype"}
	used := map[string]bool{}
	for _, q := range grafanaQueries(t) {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q.where)
		}
		for _, n := range metricName.FindAllString(q.expr, -1) {
			used[n] = true
			if !slices.Contains(names, n) {
				t.Errorf("%s: %s is not a metric the exporter exposes", q.where, n)
			}
		}
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			if !slices.Contains(labels, m[1]) {
				t.Errorf("%s: legend uses label %q, which no pirack metric carries", q.where, m[1])
			}
		}
	}
	for _, n := range []string{"pirack_pi_up", "pirack_pi_load1", "pirack_pi_cpu_temperature_celsius", "pirack_row_power_watts"} {
		if !used[n] {
			t.Errorf("the dashboard does not show %s: the rack overview needs it", n)
		}
	}
}

// docs/prometheus.md lists every metric the exporter exposes, and no other.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	names := promexport.MetricNames()
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("%s does not list `%s`", docsFile, n)
		}
	}
	for _, n := range metricName.FindAllString(doc, -1) {
		if !slices.Contains(names, n) {
			t.Errorf("%s mentions %s, which the exporter does not expose", docsFile, n)
		}
	}
}
