package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// ErrInvalidConfig is returned (wrapped) by ParseConfig, LoadConfig, Config.Validate and New for
// a config that cannot be used. The message names every field that is wrong.
var ErrInvalidConfig = errors.New("invalid alert config")

// Duration is a time.Duration written in JSON as a Go duration string: "90s", "5m", "1h30m".
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "5m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string; a bare number is refused because its unit would be a
// guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"90s\" or \"5m\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a string such as \"90s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}

// Base holds what every rule has. In JSON its fields sit in the rule's object.
type Base struct {
	// Disabled turns the rule off: it never raises, and Restore clears an alert it raised
	// before a restart.
	Disabled bool `json:"disabled,omitempty"`
	// Severity is topics.SeverityWarning or topics.SeverityCritical.
	Severity string `json:"severity"`
	// For is how long the condition must hold before the alert is raised; 0 raises at once.
	For Duration `json:"for"`
	// ClearFor is how long the clear condition must hold before the alert clears; 0 clears at
	// once.
	ClearFor Duration `json:"clear_for"`
}

// ThresholdRule compares one measurement with a threshold. Threshold is where it raises and
// Clear where it clears: for a rule that fires above (load_high, disk_full, temp_high) Clear
// must be at or below Threshold, for one that fires below (mem_low) at or above it. Between
// the two, a raised alert stays raised and a pending one starts over.
type ThresholdRule struct {
	Base
	Threshold float64 `json:"threshold"`
	Clear     float64 `json:"clear"`
}

// StaleRule raises when a Pi that is not offline is stale: its condition is package presence's,
// under Config.Presence, the same the dashboard's tiles show. Only its Base (severity, for,
// clear_for, disabled) is the alert's own.
type StaleRule struct {
	Base
}

// ThrottledRule raises on the Pi firmware's throttling flags.
type ThrottledRule struct {
	Base
	// IgnoreSinceBoot, when true, raises on throttled_now only; by default under_voltage in
	// throttled_since_boot raises too, once per boot.
	IgnoreSinceBoot bool `json:"ignore_since_boot,omitempty"`
}

// SensorRule raises when a temperature sensor reaches the limit its hardware reports
// (topics.Temp.MaxC: an NVMe drive's warning temperature), and clears ClearMarginC under it.
// The limit is the drive's own: an NVMe drive is done at 70-85 °C where the SoC runs to 85.
type SensorRule struct {
	Base
	ClearMarginC float64 `json:"clear_margin_c"`
}

// PowerBand is a fixed band of watts for one row. A nil bound is not checked.
type PowerBand struct {
	MinW *float64 `json:"min_w,omitempty"`
	MaxW *float64 `json:"max_w,omitempty"`
}

// PowerBandRule raises when a row draws power outside its usual band: the band configured in
// Rows for that row, or else one learned from the row's readings, their median over Window
// plus or minus max(MarginPercent of the median, MinMarginW).
type PowerBandRule struct {
	Base
	// Window is how far back the median looks.
	Window Duration `json:"window"`
	// WarmUp is how long a row must have been read before a learned band is used.
	WarmUp Duration `json:"warm_up"`
	// MinSamples is how many readings in Window a learned band needs.
	MinSamples int `json:"min_samples"`
	// MarginPercent and MinMarginW set the learned band's half-width.
	MarginPercent float64 `json:"margin_percent"`
	MinMarginW    float64 `json:"min_margin_w"`
	// HysteresisW is how far inside the band the draw must come back for the alert to clear.
	HysteresisW float64 `json:"hysteresis_w"`
	// Rows holds fixed bands by row name; a row listed here learns nothing.
	Rows map[string]PowerBand `json:"rows,omitempty"`
}

// Config holds every rule's settings. Start from DefaultConfig (or ParseConfig, which overlays
// a JSON file on it): a zero Config is not valid, because zero thresholds mean nothing.
type Config struct {
	Offline   Base          `json:"offline"`
	Stale     StaleRule     `json:"stale"`
	LoadHigh  ThresholdRule `json:"load_high"` // load_1 per CPU (load_1 / cpu_count)
	MemLow    ThresholdRule `json:"mem_low"`   // percent of memory available
	DiskFull  ThresholdRule `json:"disk_full"` // percent used of the fullest filesystem
	TempHigh  ThresholdRule `json:"temp_high"` // CPU temperature, °C
	Throttled ThrottledRule `json:"throttled"`
	SensorHot SensorRule    `json:"sensor_hot"` // every sensor with a limit of its own (an NVMe drive)
	PowerBand PowerBandRule `json:"power_band"`
	// Presence is when a Pi is stale, for the stale rule. It is not read from the alert
	// config file: it is the one presence setting of the control center, and must be the one
	// the dashboard is given (dashboard.Config.StaleAfter, pirack serve --stale-after), which
	// the dashboard checks. The zero value is presence's default.
	Presence presence.Rule `json:"-"`
}

// DefaultConfig returns the default rules. This is the one place defaults live; the package
// doc's table shows the same values.
func DefaultConfig() Config {
	return Config{
		Offline:  Base{Severity: topics.SeverityCritical, For: Duration(30 * time.Second)},
		Stale:    StaleRule{Base: Base{Severity: topics.SeverityWarning}},
		LoadHigh: ThresholdRule{Base: Base{Severity: topics.SeverityWarning, For: Duration(5 * time.Minute)}, Threshold: 1, Clear: 0.9},
		MemLow:   ThresholdRule{Base: Base{Severity: topics.SeverityWarning, For: Duration(time.Minute)}, Threshold: 10, Clear: 15},
		DiskFull: ThresholdRule{Base: Base{Severity: topics.SeverityWarning, For: Duration(time.Minute)}, Threshold: 90, Clear: 85},
		TempHigh: ThresholdRule{Base: Base{Severity: topics.SeverityCritical, For: Duration(time.Minute)}, Threshold: 80, Clear: 75},
		Throttled: ThrottledRule{
			Base: Base{Severity: topics.SeverityWarning, ClearFor: Duration(5 * time.Minute)},
		},
		SensorHot: SensorRule{Base: Base{Severity: topics.SeverityWarning, For: Duration(time.Minute)}, ClearMarginC: 5},
		PowerBand: PowerBandRule{
			Base:   Base{Severity: topics.SeverityWarning, For: Duration(2 * time.Minute)},
			Window: Duration(time.Hour), WarmUp: Duration(10 * time.Minute), MinSamples: 30,
			MarginPercent: 20, MinMarginW: 1, HysteresisW: 0.5,
		},
	}
}

// ParseConfig reads a JSON config and overlays it on DefaultConfig, so a file names only what
// it changes: {"temp_high": {"threshold": 75, "clear": 70}}. Unknown fields are errors, so a
// misspelt rule or field is caught; stale.intervals and stale.default_interval, read by
// earlier versions, are refused with an error that says where the stale threshold is set now.
func ParseConfig(b []byte) (Config, error) {
	if err := checkRemovedStale(b); err != nil {
		return Config{}, err
	}
	cfg := DefaultConfig()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// errStaleMoved says where the stale threshold went.
const errStaleMoved = "the stale threshold is no longer an alert setting: it is one setting for the tiles and the " +
	"stale alert alike, pirack serve --stale-after (0, the default: 3 of the Pi's own telemetry intervals); remove it from the alert config"

// checkRemovedStale refuses the stale settings earlier versions read from the file, by name.
// Anything else wrong with the JSON is left to the decoder.
func checkRemovedStale(b []byte) error {
	var doc struct {
		Stale map[string]json.RawMessage `json:"stale"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var errs []error
	for _, k := range []string{"intervals", "default_interval"} {
		if _, ok := doc.Stale[k]; ok {
			errs = append(errs, fmt.Errorf("stale.%s: %s", k, errStaleMoved))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// LoadConfig reads and parses the JSON config file at path (see ParseConfig).
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read alert config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("alert config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every rule and reports all problems at once, wrapping ErrInvalidConfig.
// Disabled rules are checked too, so enabling one later cannot surprise.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	base := func(rule string, b Base) {
		if b.Severity != topics.SeverityWarning && b.Severity != topics.SeverityCritical {
			bad("%s.severity %q: want %q or %q", rule, b.Severity, topics.SeverityWarning, topics.SeverityCritical)
		}
		if b.For < 0 {
			bad("%s.for %v: must not be negative", rule, time.Duration(b.For))
		}
		if b.ClearFor < 0 {
			bad("%s.clear_for %v: must not be negative", rule, time.Duration(b.ClearFor))
		}
	}
	threshold := func(rule string, r ThresholdRule, min, max float64, above bool, unit string) {
		base(rule, r.Base)
		for _, f := range []struct {
			name string
			v    float64
		}{{"threshold", r.Threshold}, {"clear", r.Clear}} {
			if math.IsNaN(f.v) || f.v <= min || f.v >= max {
				bad("%s.%s %g: want above %g and below %g %s", rule, f.name, f.v, min, max, unit)
			}
		}
		if above && r.Clear > r.Threshold {
			bad("%s.clear %g: must not be above threshold %g (it raises over the threshold and clears under clear)", rule, r.Clear, r.Threshold)
		}
		if !above && r.Clear < r.Threshold {
			bad("%s.clear %g: must not be below threshold %g (it raises under the threshold and clears over clear)", rule, r.Clear, r.Threshold)
		}
	}

	base(RuleOffline, c.Offline)
	base(RuleStale, c.Stale.Base)
	if err := c.Presence.Validate(); err != nil {
		bad("presence: %v", err)
	}
	threshold(RuleLoadHigh, c.LoadHigh, 0, 1000, true, "load per CPU")
	threshold(RuleMemLow, c.MemLow, 0, 100, false, "percent available")
	threshold(RuleDiskFull, c.DiskFull, 0, 100, true, "percent used")
	threshold(RuleTempHigh, c.TempHigh, -60, 200, true, "°C")
	base(RuleThrottled, c.Throttled.Base)
	base(RuleSensorHot, c.SensorHot.Base)
	if m := c.SensorHot.ClearMarginC; math.IsNaN(m) || m < 0 || m > 50 {
		bad("sensor_hot.clear_margin_c %g: want 0 to 50 °C", m)
	}

	p := c.PowerBand
	base(RulePowerBand, p.Base)
	if p.Window < Duration(time.Minute) {
		bad("power_band.window %v: want at least 1m", time.Duration(p.Window))
	}
	if p.WarmUp < 0 || p.WarmUp > p.Window {
		bad("power_band.warm_up %v: want 0 to the window, %v", time.Duration(p.WarmUp), time.Duration(p.Window))
	}
	if p.MinSamples < 1 || p.MinSamples > maxPowerSamples {
		bad("power_band.min_samples %d: want 1 to %d", p.MinSamples, maxPowerSamples)
	}
	if math.IsNaN(p.MarginPercent) || p.MarginPercent <= 0 || p.MarginPercent >= 100 {
		bad("power_band.margin_percent %g: want above 0 and below 100", p.MarginPercent)
	}
	if math.IsNaN(p.HysteresisW) || p.HysteresisW < 0 {
		bad("power_band.hysteresis_w %g: must not be negative", p.HysteresisW)
	}
	if math.IsNaN(p.MinMarginW) || p.MinMarginW <= p.HysteresisW {
		bad("power_band.min_margin_w %g: must be above hysteresis_w %g, or a learned band could never clear", p.MinMarginW, p.HysteresisW)
	}
	rows := make([]string, 0, len(p.Rows))
	for row := range p.Rows {
		rows = append(rows, row)
	}
	sort.Strings(rows)
	for _, row := range rows {
		b := p.Rows[row]
		if err := topics.ValidateRow(row); err != nil {
			bad("power_band.rows: %v", err)
			continue
		}
		switch {
		case b.MinW == nil && b.MaxW == nil:
			bad("power_band.rows.%s: set min_w, max_w or both", row)
		case b.MinW != nil && (math.IsNaN(*b.MinW) || *b.MinW < 0):
			bad("power_band.rows.%s.min_w %g: must not be negative", row, *b.MinW)
		case b.MaxW != nil && (math.IsNaN(*b.MaxW) || *b.MaxW <= 0):
			bad("power_band.rows.%s.max_w %g: must be above 0", row, *b.MaxW)
		case b.MinW != nil && b.MaxW != nil && *b.MaxW-*b.MinW <= 2*p.HysteresisW:
			bad("power_band.rows.%s: max_w %g must be more than 2 x hysteresis_w (%g) above min_w %g, or the alert could never clear", row, *b.MaxW, p.HysteresisW, *b.MinW)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// base returns the settings every rule has.
func (c *Config) base(id ruleID) Base {
	switch id {
	case ruleOffline:
		return c.Offline
	case ruleStale:
		return c.Stale.Base
	case ruleLoadHigh:
		return c.LoadHigh.Base
	case ruleMemLow:
		return c.MemLow.Base
	case ruleDiskFull:
		return c.DiskFull.Base
	case ruleTempHigh:
		return c.TempHigh.Base
	case ruleThrottled:
		return c.Throttled.Base
	case ruleSensorHot:
		return c.SensorHot.Base
	case rulePowerBand:
		return c.PowerBand.Base
	}
	panic("alerts: unknown rule id")
}
