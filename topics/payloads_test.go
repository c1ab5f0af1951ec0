package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func ptr[T any](v T) *T { return &v }

var ts = time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC)

// goldenPayloads are the canonical examples of every payload; docs/topics.md shows the same.
var goldenPayloads = []struct {
	file    string
	value   Validator
	decoder func([]byte) (any, error)
}{
	{"status_online.json", Status{
		V: 1, State: StateOnline, TS: ts, Session: "5f2c9a1e", Hostname: "pi-r1-03", IP: "10.0.1.13",
		Model: "Raspberry Pi 4 Model B Rev 1.4", Serial: "10000000a1b2c3d4", AgentVersion: "0.1.0", BootTime: ts.Add(-72 * time.Hour),
	}, func(b []byte) (any, error) { return DecodeStatus(b) }},
	{"status_offline.json", Status{V: 1, State: StateOffline, TS: ts, Session: "5f2c9a1e"},
		func(b []byte) (any, error) { return DecodeStatus(b) }},
	{"metrics.json", Metrics{
		V: 1, Seq: 1042, TS: ts,
		Load1: ptr(0.42), Load5: ptr(0.35), Load15: ptr(0.3), CPUCount: ptr(4), CPUPercent: ptr(11.5), CPUTempC: ptr(48.7),
		MemTotalBytes: ptr(uint64(4133834752)), MemAvailableBytes: ptr(uint64(3289120768)),
		DiskTotalBytes: ptr(uint64(31254904832)), DiskFreeBytes: ptr(uint64(24016633856)),
		ThrottledNow: []string{}, ThrottledSinceBoot: []string{ThrottleUnderVoltage},
		UptimeS: ptr(uint64(259200)), NetRxBytes: ptr(uint64(182736451)), NetTxBytes: ptr(uint64(93847562)),
	}, func(b []byte) (any, error) { return DecodeMetrics(b) }},
	{"metrics_partial.json", Metrics{V: 1, Seq: 7, TS: ts, Load1: ptr(1.5)},
		func(b []byte) (any, error) { return DecodeMetrics(b) }},
	{"button.json", ButtonEvent{V: 1, Press: PressShort, Seq: 12, TS: ts},
		func(b []byte) (any, error) { return DecodeButton(b) }},
	{"led_blink.json", LEDCommand{
		V: 1, Action: LEDBlink, Count: 5, PeriodMS: 500, IssuedAt: ts, ExpiresAt: ts.Add(2 * time.Minute), By: "admin",
	}, func(b []byte) (any, error) { return ParseLEDCommand(b) }},
	{"led_state.json", LEDState{V: 1, TS: ts, State: LEDStateBlinking, Action: LEDBlink, By: "admin", Until: ts.Add(2500 * time.Millisecond)},
		func(b []byte) (any, error) { return DecodeLEDState(b) }},
	{"alert_raised.json", Alert{
		V: 1, Rule: "temp_high", Severity: SeverityCritical, State: AlertRaised, TS: ts, Since: ts.Add(-time.Minute),
		Row: "r1", MAC: "b827eb3f1a2c", Hostname: "pi-r1-03", Value: ptr(83.4), Threshold: ptr(80.0), Unit: UnitCelsius,
		Message: "CPU at 83.4 °C, over 80 °C for 1 min",
	}, func(b []byte) (any, error) { return DecodeAlert(b) }},
	{"alert_cleared.json", Alert{
		V: 1, Rule: "temp_high", Severity: SeverityCritical, State: AlertCleared, TS: ts.Add(10 * time.Minute), Since: ts.Add(-time.Minute),
		Row: "r1", MAC: "b827eb3f1a2c", Hostname: "pi-r1-03", Value: ptr(74.1), Threshold: ptr(75.0), Unit: UnitCelsius,
		Message: "CPU at 74.1 °C, back under 75 °C",
	}, func(b []byte) (any, error) { return DecodeAlert(b) }},
	{"alert_row.json", Alert{
		V: 1, Rule: "power_band", Severity: SeverityWarning, State: AlertRaised, TS: ts, Since: ts.Add(-2 * time.Minute),
		Row: "r1", Value: ptr(9.8), Threshold: ptr(12.0), Unit: UnitWatts,
		Message: "row r1 draws 9.8 W, under its usual 12.0-18.0 W for 2 min",
	}, func(b []byte) (any, error) { return DecodeAlert(b) }},
	{"power.json", Power{V: 1, TS: ts, Volts: ptr(5.08), Amps: ptr(2.95), Watts: ptr(14.99), Source: "ina219"},
		func(b []byte) (any, error) { return DecodePower(b) }},
}

func TestGoldenPayloads(t *testing.T) {
	for _, g := range goldenPayloads {
		t.Run(g.file, func(t *testing.T) {
			got, err := Encode(g.value)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./topics -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Fatalf("encoding changed; the contract is public, so review it and run with -update.\ngot:\n%s\nwant:\n%s", pretty.Bytes(), want)
			}
			decoded, err := g.decoder(want)
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			if !reflect.DeepEqual(decoded, g.value) {
				t.Fatalf("decode(golden) = %+v\nwant %+v", decoded, g.value)
			}
		})
	}
}

func TestDecodersReject(t *testing.T) {
	tests := []struct {
		name    string
		decode  func([]byte) (any, error)
		payload string
		mention string // the error must say what is wrong
	}{
		{"status not json", dStatus, `{"v":1,`, "not valid JSON"},
		{"status bad state", dStatus, `{"v":1,"state":"sleeping"}`, "state"},
		{"status wrong version", dStatus, `{"v":2,"state":"online"}`, "v 2"},
		{"status control char hostname", dStatus, `{"v":1,"state":"online","hostname":"pi\u001b[31m"}`, "control character"},
		{"status long serial", dStatus, `{"v":1,"state":"online","serial":"` + strings.Repeat("0", 65) + `"}`, "serial is 65 bytes"},
		{"status control char serial", dStatus, `{"v":1,"state":"online","serial":"1000\n0000"}`, `serial "1000\n0000" contains a control character`},
		{"status long hostname", dStatus, `{"v":1,"state":"online","hostname":"` + strings.Repeat("a", 300) + `"}`, "hostname"},
		{"metrics wrong type", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","load_1":"high"}`, "not valid JSON"},
		{"metrics missing ts", dMetrics, `{"v":1,"seq":1}`, "ts is missing"},
		{"metrics negative load", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","load_1":-1}`, "load_1"},
		{"metrics cpu over 100", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","cpu_percent":250}`, "cpu_percent"},
		{"metrics available over total", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","mem_total_bytes":10,"mem_available_bytes":11}`, "mem_available_bytes"},
		{"metrics free over total", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","disk_total_bytes":10,"disk_free_bytes":11}`, "disk_free_bytes"},
		{"metrics absurd temp", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","cpu_temp_c":900}`, "cpu_temp_c"},
		{"metrics oversized", dMetrics, `{"v":1,"pad":"` + strings.Repeat("x", MaxPayload) + `"}`, "limit"},
		{"metrics unknown throttle flag", dMetrics, `{"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","throttled_now":["melting"]}`, "throttling flag"},
		{"led_state bad state", dLEDState, `{"v":1,"ts":"2026-11-24T07:30:00Z","state":"dim"}`, "state"},
		{"led_state missing ts", dLEDState, `{"v":1,"state":"on"}`, "ts is missing"},
		{"button bad press", dButton, `{"v":1,"press":"mash","seq":1,"ts":"2026-11-24T07:30:00Z"}`, "press"},
		{"button missing ts", dButton, `{"v":1,"press":"short","seq":1}`, "ts is missing"},
		{"power empty", dPower, `{"v":1,"ts":"2026-11-24T07:30:00Z"}`, "no volts"},
		{"power negative", dPower, `{"v":1,"ts":"2026-11-24T07:30:00Z","watts":-3}`, "watts"},
		{"alert bad state", dAlert, alertJSON("state", `"firing"`), "state"},
		{"alert bad severity", dAlert, alertJSON("severity", `"info"`), "severity"},
		{"alert bad rule", dAlert, alertJSON("rule", `"Temp High"`), "rule"},
		{"alert bad row", dAlert, alertJSON("row", `"R1"`), "row"},
		{"alert bad mac", dAlert, alertJSON("mac", `"b8:27:eb:3f:1a:2c"`), "mac"},
		{"alert missing ts", dAlert, alertJSON("ts", ``), "ts is missing"},
		{"alert missing since", dAlert, alertJSON("since", ``), "since is missing"},
		{"alert since after ts", dAlert, alertJSON("since", `"2026-11-24T08:00:00Z"`), "after ts"},
		{"alert missing message", dAlert, alertJSON("message", `""`), "message is missing"},
		{"alert control char in message", dAlert, alertJSON("message", `"hot\u001b[31m"`), "control character"},
		{"alert long message", dAlert, alertJSON("message", `"`+strings.Repeat("a", 300)+`"`), "message"},
		{"alert wrong version", dAlert, alertJSON("v", `2`), "v 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.decode([]byte(tt.payload))
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("got %v, want ErrInvalidPayload", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func dStatus(b []byte) (any, error)   { return DecodeStatus(b) }
func dMetrics(b []byte) (any, error)  { return DecodeMetrics(b) }
func dButton(b []byte) (any, error)   { return DecodeButton(b) }
func dPower(b []byte) (any, error)    { return DecodePower(b) }
func dLEDState(b []byte) (any, error) { return DecodeLEDState(b) }
func dAlert(b []byte) (any, error)    { return DecodeAlert(b) }

// alertJSON is a valid alert with one field replaced by raw JSON, or left out when raw is "".
func alertJSON(key, raw string) string {
	fields := map[string]string{
		"v": `1`, "rule": `"temp_high"`, "severity": `"critical"`, "state": `"raised"`,
		"ts": `"2026-11-24T07:30:00Z"`, "since": `"2026-11-24T07:29:00Z"`, "row": `"r1"`,
		"mac": `"b827eb3f1a2c"`, "message": `"hot"`,
	}
	fields[key] = raw
	var parts []string
	for k, v := range fields {
		if v != "" {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestAlertValidBaseline(t *testing.T) {
	if _, err := DecodeAlert([]byte(alertJSON("v", `1`))); err != nil {
		t.Fatalf("the baseline of the alert rejection cases must be valid: %v", err)
	}
	if _, err := Encode(Alert{V: 1, Rule: "x", Severity: SeverityWarning, State: AlertRaised, TS: ts, Since: ts, Row: "r1", Message: "m", Value: ptr(math.NaN())}); !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("Encode of a NaN value = %v, want ErrInvalidPayload", err)
	}
}

func TestDecodeStatusPlainWords(t *testing.T) {
	for _, in := range []string{"online", "offline", " Offline\n"} {
		s, err := DecodeStatus([]byte(in))
		if err != nil {
			t.Fatalf("DecodeStatus(%q): %v", in, err)
		}
		if want := strings.ToLower(strings.TrimSpace(in)); s.State != want || s.V != Version {
			t.Fatalf("DecodeStatus(%q) = %+v, want state %q", in, s, want)
		}
	}
}

func TestUnknownFieldsTolerated(t *testing.T) {
	m, err := DecodeMetrics([]byte(`{"v":1,"seq":3,"ts":"2026-11-24T07:30:00Z","load_1":0.5,"fan_rpm":1200}`))
	if err != nil {
		t.Fatalf("a newer publisher's extra field must not break an older reader: %v", err)
	}
	if m.Load1 == nil || *m.Load1 != 0.5 {
		t.Fatalf("load_1 = %v, want 0.5", m.Load1)
	}
	if m.CPUTempC != nil {
		t.Fatalf("absent cpu_temp_c decoded as %v; absent must stay absent", *m.CPUTempC)
	}
	if m.ThrottledNow != nil {
		t.Fatalf("absent throttled_now decoded as %v; absent must stay absent", m.ThrottledNow)
	}
	read, err := DecodeMetrics([]byte(`{"v":1,"seq":3,"ts":"2026-11-24T07:30:00Z","throttled_now":[]}`))
	if err != nil || read.ThrottledNow == nil || len(read.ThrottledNow) != 0 {
		t.Fatalf("throttled_now [] (read, no flags) decoded as %#v, %v; want an empty, non-nil list", read.ThrottledNow, err)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	if _, err := Encode(ButtonEvent{V: 1, Press: "short"}); !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("Encode of a press without ts = %v, want ErrInvalidPayload", err)
	}
}

// Disk use as df prints it: used / (used + free); without used bytes, the older 1 - free/total.
func TestDiskUsedPercent(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	// A 100 GiB filesystem with 5 GiB reserved: 16 used, 79 available.
	m := Metrics{DiskTotalBytes: u(100 << 30), DiskFreeBytes: u(79 << 30), DiskUsedBytes: u(16 << 30)}
	if pct, ok := m.DiskUsedPercent(); !ok || int(pct*10) != 168 {
		t.Errorf("df-style = %.2f %v, want 16.8 (16 of 95)", pct, ok)
	}
	m.DiskUsedBytes = nil
	if pct, ok := m.DiskUsedPercent(); !ok || int(pct) != 21 {
		t.Errorf("without used bytes = %.2f %v, want 21 (1 - 79/100)", pct, ok)
	}
	if _, ok := (Metrics{}).DiskUsedPercent(); ok {
		t.Error("no disk figures, yet a percentage")
	}
	bad := Metrics{V: 1, TS: time.Now(), DiskTotalBytes: u(10), DiskUsedBytes: u(11)}
	if err := bad.Validate(); err == nil {
		t.Error("disk_used_bytes over disk_total_bytes validates")
	}
}
