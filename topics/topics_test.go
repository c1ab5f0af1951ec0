package topics

import (
	"errors"
	"strings"
	"testing"

	"github.com/pirack/pirack/internal/mqttfilter"
)

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"colons upper", "B8:27:EB:3F:1A:2C", "b827eb3f1a2c", false},
		{"dashes lower", "b8-27-eb-3f-1a-2c", "b827eb3f1a2c", false},
		{"bare", "b827eb3f1a2c", "b827eb3f1a2c", false},
		{"bare upper", "B827EB3F1A2C", "b827eb3f1a2c", false},
		{"cisco dots", "b827.eb3f.1a2c", "b827eb3f1a2c", false},
		{"too short", "b8:27:eb:3f:1a", "", true},
		{"too long", "b8:27:eb:3f:1a:2c:00", "", true},
		{"not hex", "g8:27:eb:3f:1a:2c", "", true},
		{"misplaced separator", "b8:27e:b3f:1a:2c", "", true},
		{"mixed separators", "b8:27-eb:3f:1a:2c", "", true},
		{"wildcard", "b827eb3f1a2+", "", true},
		{"empty", "", "", true},
		{"spaces", " b827eb3f1a2c", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeMAC(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidMAC) {
					t.Fatalf("NormalizeMAC(%q) = %q, %v; want ErrInvalidMAC", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeMAC(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidateRow(t *testing.T) {
	tests := []struct {
		row string
		ok  bool
	}{
		{"r1", true},
		{"row-a_2", true},
		{strings.Repeat("a", MaxRowLen), true},
		{"", false},
		{strings.Repeat("a", MaxRowLen+1), false},
		{"Row1", false},
		{"r/1", false},
		{"+", false},
		{"#", false},
		{"r 1", false},
		{"r\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.row, func(t *testing.T) {
			err := ValidateRow(tt.row)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateRow(%q) = %v, want ok=%v", tt.row, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRow) {
				t.Fatalf("ValidateRow(%q) = %v, want ErrInvalidRow", tt.row, err)
			}
		})
	}
}

func TestBuildersAndParseRoundTrip(t *testing.T) {
	const row, mac = "r1", "b827eb3f1a2c"
	tests := []struct {
		name  string
		topic string
		want  Topic
	}{
		{"status", StatusTopic(row, mac), Topic{Kind: KindStatus, Row: row, MAC: mac}},
		{"metrics", MetricsTopic(row, mac), Topic{Kind: KindMetrics, Row: row, MAC: mac}},
		{"button", ButtonTopic(row, mac), Topic{Kind: KindButton, Row: row, MAC: mac}},
		{"led", LEDTopic(mac), Topic{Kind: KindLED, MAC: mac}},
		{"power", PowerTopic(row), Topic{Kind: KindPower, Row: row}},
		{"led_state", LEDStateTopic(row, mac), Topic{Kind: KindLEDState, Row: row, MAC: mac}},
		{"alert", AlertTopic(row, mac, "temp_high"), Topic{Kind: KindAlert, Row: row, MAC: mac, Rule: "temp_high"}},
		{"row alert", AlertTopic(row, "", "power_band"), Topic{Kind: KindAlert, Row: row, Rule: "power_band"}},
		// A row alert whose rule is named like a Pi topic's leaf is still a row alert: "alert"
		// is never a MAC.
		{"row alert named status", AlertTopic(row, "", "status"), Topic{Kind: KindAlert, Row: row, Rule: "status"}},
	}
	wantNames := map[string]string{
		"status":    "rack/r1/b827eb3f1a2c/status",
		"metrics":   "rack/r1/b827eb3f1a2c/metrics",
		"button":    "rack/r1/b827eb3f1a2c/button",
		"led":       "rack/b827eb3f1a2c/led",
		"power":     "rack/r1/power",
		"led_state": "rack/r1/b827eb3f1a2c/led_state",
		"alert":     "rack/r1/b827eb3f1a2c/alert/temp_high",
		"row alert": "rack/r1/alert/power_band",

		"row alert named status": "rack/r1/alert/status",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.topic != wantNames[tt.name] {
				t.Fatalf("builder gave %q, want %q", tt.topic, wantNames[tt.name])
			}
			got, err := Parse(tt.topic)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.topic, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.topic, got, tt.want)
			}
			if got.String() != tt.topic {
				t.Fatalf("String() = %q, want %q", got.String(), tt.topic)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, topic string
		want        error
	}{
		{"other root", "home/r1/b827eb3f1a2c/status", ErrUnknownTopic},
		{"unknown leaf", "rack/r1/b827eb3f1a2c/reboot", ErrUnknownTopic},
		{"too few levels", "rack/r1", ErrUnknownTopic},
		{"too many levels", "rack/r1/b827eb3f1a2c/status/x", ErrUnknownTopic},
		{"upper-case mac", "rack/r1/B827EB3F1A2C/status", ErrInvalidMAC},
		{"colon mac", "rack/b8:27:eb:3f:1a:2c/led", ErrInvalidMAC},
		{"wildcard mac", "rack/r1/+/metrics", ErrInvalidMAC},
		{"wildcard row", "rack/#/b827eb3f1a2c/metrics", ErrInvalidRow},
		{"bad row power", "rack/Row 1/power", ErrInvalidRow},
		{"nul in row", "rack/r\x001/b827eb3f1a2c/status", ErrInvalidRow},
		{"huge", "rack/" + strings.Repeat("a", 64<<10) + "/power", ErrUnknownTopic},
		{"empty", "", ErrUnknownTopic},
		{"alert without rule", "rack/r1/b827eb3f1a2c/alert", ErrUnknownTopic},
		{"alert empty rule", "rack/r1/b827eb3f1a2c/alert/", ErrUnknownTopic},
		{"alert wildcard rule", "rack/r1/b827eb3f1a2c/alert/+", ErrUnknownTopic},
		{"alert upper-case rule", "rack/r1/b827eb3f1a2c/alert/TEMP", ErrUnknownTopic},
		{"alert dash in rule", "rack/r1/b827eb3f1a2c/alert/temp-high", ErrUnknownTopic},
		{"alert long rule", "rack/r1/b827eb3f1a2c/alert/" + strings.Repeat("a", MaxRuleLen+1), ErrUnknownTopic},
		{"alert too deep", "rack/r1/b827eb3f1a2c/alert/temp_high/x", ErrUnknownTopic},
		{"alert bad mac", "rack/r1/b827eb3f1a2/alert/temp_high", ErrInvalidMAC},
		{"alert bad row", "rack/R1/b827eb3f1a2c/alert/temp_high", ErrInvalidRow},
		{"row alert bad row", "rack/+/alert/power_band", ErrInvalidRow},
		{"row alert empty rule", "rack/r1/alert/", ErrUnknownTopic},
		{"row alert too deep", "rack/r1/alert/power_band/x", ErrUnknownTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.topic)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %+v, %v; want %v", clip(tt.topic), got, err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error message is %d bytes; hostile input must be clipped", len(err.Error()))
			}
		})
	}
}

func TestDisplayMAC(t *testing.T) {
	for in, want := range map[string]string{
		"b827eb3f1a2c":      "b8:27:eb:3f:1a:2c",
		"B827EB3F1A2C":      "B827EB3F1A2C", // not topic form: left alone
		"b8:27:eb:3f:1a:2c": "b8:27:eb:3f:1a:2c",
		"":                  "",
	} {
		if got := DisplayMAC(in); got != want {
			t.Errorf("DisplayMAC(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLEDFilter(t *testing.T) {
	if LEDFilter != "rack/+/led" {
		t.Fatalf("LEDFilter = %q", LEDFilter)
	}
	// Every LED command topic has the filter's shape: Root, one level, the LED leaf.
	want := strings.Split(LEDFilter, "/")
	got := strings.Split(LEDTopic("b827eb3f1a2c"), "/")
	if len(got) != len(want) || got[0] != want[0] || got[2] != want[2] {
		t.Fatalf("LEDTopic %v does not match LEDFilter %v", got, want)
	}
}

func TestAlertFiltersMatchAlertTopics(t *testing.T) {
	mac := "b827eb3f1a2c"
	for _, topic := range []string{AlertTopic("r1", mac, "temp_high"), AlertTopic("r1", "", "power_band")} {
		n := 0
		for _, f := range AlertFilters() {
			if mqttfilter.Match(f, topic) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s matches %d of AlertFilters %q, want exactly 1", topic, n, AlertFilters())
		}
	}
	for _, topic := range []string{StatusTopic("r1", mac), PowerTopic("r1"), LEDTopic(mac)} {
		for _, f := range AlertFilters() {
			if mqttfilter.Match(f, topic) {
				t.Errorf("%s matches alert filter %s", topic, f)
			}
		}
	}
}
