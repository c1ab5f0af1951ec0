package alerts

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestDefaultConfigValidAndRoundTrips(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("ParseConfig(json of the defaults): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, def) {
		t.Fatalf("defaults do not round-trip:\n%+v\n%+v", got, def)
	}
	if got, err := ParseConfig([]byte(`{}`)); err != nil || !reflect.DeepEqual(got, def) {
		t.Fatalf("an empty file must give the defaults: %+v, %v", got, err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(Config{}) = %v, want ErrInvalidConfig", err)
	}
}

func TestConfigOverride(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "override.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Offline.For = Duration(time.Minute)
	want.TempHigh = ThresholdRule{Base: Base{Severity: topics.SeverityWarning}, Threshold: 70, Clear: 65}
	want.LoadHigh.Disabled = true
	want.Stale.For = Duration(10 * time.Second)
	want.PowerBand.Rows = map[string]PowerBand{"r1": {MinW: ptr(10.0), MaxW: ptr(18.0)}}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}

	// The overrides take effect: 71 °C raises at once, a load of 99 never.
	h := newHarness(t, cfg)
	out := h.metrics(func(m *topics.Metrics) { m.CPUTempC, m.Load1 = ptr(71.0), ptr(99.0) })
	if summary(out) != "temp_high:raised" || out[0].Severity != topics.SeverityWarning || out[0].Message != "CPU at 71.0 °C, over 70 °C" {
		t.Fatalf("got %+v", out)
	}
	h.at(time.Hour)
	if out := h.metrics(func(m *topics.Metrics) { m.CPUTempC, m.Load1 = ptr(66.0), ptr(99.0) }); len(out) != 0 {
		t.Fatalf("got %+v", out)
	}
	if out := h.metrics(func(m *topics.Metrics) { m.CPUTempC = ptr(64.0) }); summary(out) != "temp_high:cleared" {
		t.Fatalf("got %+v", out)
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name, json string
		mention    []string
	}{
		{"not json", `{"temp_high":`, []string{"unexpected EOF"}},
		{"trailing data", `{} {}`, []string{"trailing data"}},
		{"misspelt rule", `{"temp_hgih":{"threshold":70}}`, []string{`unknown field "temp_hgih"`}},
		{"misspelt field", `{"temp_high":{"treshold":70}}`, []string{`unknown field "treshold"`}},
		{"number for a duration", `{"temp_high":{"for":60}}`, []string{`want a string such as "90s"`}},
		{"bad duration", `{"offline":{"for":"5 minutes"}}`, []string{`"5 minutes"`}},
		{"negative for", `{"mem_low":{"for":"-1m"}}`, []string{"mem_low.for -1m0s: must not be negative"}},
		{"negative clear_for", `{"throttled":{"clear_for":"-1s"}}`, []string{"throttled.clear_for"}},
		{"severity", `{"disk_full":{"severity":"info"}}`, []string{`disk_full.severity "info"`}},
		{"clear above threshold", `{"temp_high":{"threshold":80,"clear":85}}`, []string{"temp_high.clear 85: must not be above threshold 80"}},
		{"clear below threshold for mem", `{"mem_low":{"threshold":10,"clear":5}}`, []string{"mem_low.clear 5: must not be below threshold 10"}},
		{"percent out of range", `{"disk_full":{"threshold":100,"clear":95}}`, []string{"disk_full.threshold 100"}},
		{"sensor margin", `{"sensor_hot":{"clear_margin_c":-2}}`, []string{"sensor_hot.clear_margin_c -2: want 0 to 50"}},
		{"zero load", `{"load_high":{"threshold":0,"clear":0}}`, []string{"load_high.threshold 0", "load_high.clear 0"}},
		{"stale intervals moved", `{"stale":{"intervals":5}}`, []string{"stale.intervals: the stale threshold is no longer an alert setting", "--stale-after"}},
		{"stale default interval moved", `{"stale":{"intervals":5,"default_interval":"10s"}}`, []string{"stale.intervals:", "stale.default_interval:", "--stale-after"}},
		{"presence is not a file setting", `{"presence":{"StaleAfter":1}}`, []string{`unknown field "presence"`}},
		{"power window", `{"power_band":{"window":"10s","warm_up":"0s"}}`, []string{"power_band.window 10s"}},
		{"power warm-up longer than window", `{"power_band":{"warm_up":"2h"}}`, []string{"power_band.warm_up 2h0m0s"}},
		{"power margin", `{"power_band":{"margin_percent":0}}`, []string{"power_band.margin_percent 0"}},
		{"power min margin under hysteresis", `{"power_band":{"min_margin_w":0.2}}`, []string{"power_band.min_margin_w 0.2"}},
		{"power bad row", `{"power_band":{"rows":{"Row 1":{"max_w":10}}}}`, []string{`invalid row name "Row 1"`}},
		{"power empty band", `{"power_band":{"rows":{"r1":{}}}}`, []string{"power_band.rows.r1: set min_w, max_w or both"}},
		{"power band too narrow", `{"power_band":{"rows":{"r1":{"min_w":10,"max_w":10.5}}}}`, []string{"power_band.rows.r1: max_w 10.5"}},
		{"power negative min", `{"power_band":{"rows":{"r1":{"min_w":-1}}}}`, []string{"power_band.rows.r1.min_w -1"}},
		{"several problems at once", `{"temp_high":{"severity":"loud","for":"-1s"},"mem_low":{"threshold":200}}`,
			[]string{"temp_high.severity", "temp_high.for", "mem_low.threshold 200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestConfigPresence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Presence.StaleAfter = -time.Second
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "presence") {
		t.Fatalf("New with a negative stale threshold = %v, want ErrInvalidConfig naming presence", err)
	}
	cfg.Presence.StaleAfter = time.Minute
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Presence(); got != cfg.Presence {
		t.Fatalf("Presence() = %+v, want %+v", got, cfg.Presence)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read alert config") {
		t.Fatalf("got %v", err)
	}
	path := filepath.Join(t.TempDir(), "alerts.json")
	if err := os.WriteFile(path, []byte(`{"temp_high":{"severity":"loud"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(path)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}
