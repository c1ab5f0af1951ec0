package homeassistant

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// schema is what Home Assistant documents for one kind of mapping in a device-based discovery
// payload: its required keys and every key it allows (the documented configuration variables,
// full names; pirack writes no abbreviations). Taken from home-assistant.io:
// integrations/mqtt (device discovery payload, origin, device registry keys),
// sensor.mqtt, binary_sensor.mqtt, button.mqtt and device_trigger.mqtt.
type schema struct {
	required, allowed []string
}

// availability options, shared by every entity platform (and allowed at the payload's root).
var availabilityKeys = []string{"availability", "availability_mode", "availability_template", "availability_topic",
	"payload_available", "payload_not_available"}

// entityKeys are the options every MQTT entity platform documents.
var entityKeys = append([]string{"platform", "unique_id", "name", "object_id", "device", "device_class", "enabled_by_default",
	"encoding", "entity_category", "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "qos"},
	availabilityKeys...)

var schemas = map[string]schema{
	// The root of a device-based payload: device and origin are required; the shared options
	// are availability, origin, command_topic, state_topic, qos and encoding.
	"root": {
		required: []string{"device", "origin", "components"},
		allowed:  append([]string{"device", "origin", "components", "command_topic", "state_topic", "qos", "encoding"}, availabilityKeys...),
	},
	"device": {
		// "At least one of identifiers or connections must be present"; pirack sets both.
		required: []string{"identifiers", "name"},
		allowed: []string{"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
			"name", "serial_number", "suggested_area", "sw_version", "via_device"},
	},
	"origin": {required: []string{"name"}, allowed: []string{"name", "sw_version", "support_url"}},
	"sensor": {
		required: []string{"platform", "unique_id", "state_topic"},
		allowed: append(slices.Clone(entityKeys), "expire_after", "force_update", "last_reset_value_template", "options",
			"suggested_display_precision", "state_class", "state_topic", "unit_of_measurement", "value_template"),
	},
	"binary_sensor": {
		required: []string{"platform", "unique_id", "state_topic"},
		allowed:  append(slices.Clone(entityKeys), "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "state_topic", "value_template"),
	},
	"button": {
		required: []string{"platform", "unique_id", "command_topic"},
		allowed:  append(slices.Clone(entityKeys), "command_template", "command_topic", "payload_press", "retain"),
	},
	"device_automation": {
		required: []string{"platform", "automation_type", "topic", "type", "subtype"},
		allowed:  []string{"platform", "automation_type", "payload", "qos", "topic", "type", "subtype", "device", "value_template"},
	},
}

// Documented values pirack relies on.
var (
	sensorDeviceClasses = []string{"temperature", "data_size", "duration", "power", "voltage", "current"}
	stateClasses        = []string{"measurement", "total", "total_increasing"}
	// Units Home Assistant accepts for each sensor device class used.
	units = map[string][]string{
		"temperature": {"°C", "°F", "K"},
		"data_size":   {"B", "kB", "MB", "GB", "KiB", "MiB", "GiB", "TiB"},
		"duration":    {"d", "h", "min", "s", "ms"},
		"power":       {"W", "kW"},
		"voltage":     {"V", "mV"},
		"current":     {"A", "mA"},
	}
	triggerTypes    = []string{"button_short_press", "button_long_press", "button_double_press"}
	objectID        = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	entityCategory  = []string{"config", "diagnostic"}
	binaryClasses   = []string{"problem"}
	buttonClasses   = []string{"identify", "restart", "update"}
	topicInContract = func(s string) bool { _, err := topics.Parse(s); return err == nil }
)

// report collects what a payload gets wrong.
type report struct{ errs []string }

func (r *report) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// check checks one mapping's keys against its schema.
func check(t *report, where, kind string, m map[string]any) {
	s, ok := schemas[kind]
	if !ok {
		t.Errorf("%s: platform %q is not one pirack checks", where, kind)
		return
	}
	for _, k := range s.required {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: required %q missing", where, k)
		}
	}
	for k := range m {
		if !slices.Contains(s.allowed, k) {
			t.Errorf("%s: %q is not a documented %s option", where, k, kind)
		}
	}
}

// checkPayload holds a device-based discovery payload to Home Assistant's documented schema,
// field by field, and to pirack's contract for every topic it names.
func checkPayload(b []byte) []string {
	t := &report{}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	check(t, "root", "root", root)
	dev, _ := root["device"].(map[string]any)
	check(t, "device", "device", dev)
	origin, _ := root["origin"].(map[string]any)
	check(t, "origin", "origin", origin)
	ids, _ := dev["identifiers"].([]any)
	for _, id := range ids {
		if s, _ := id.(string); !objectID.MatchString(s) {
			t.Errorf("device identifier %q", id)
		}
	}
	if cns, ok := dev["connections"].([]any); ok {
		for _, c := range cns {
			pair := c.([]any)
			if len(pair) != 2 || pair[0] != "mac" {
				t.Errorf("connection %v: want [\"mac\", \"b8:27:...\"]", pair)
			} else if mac, err := topics.NormalizeMAC(pair[1].(string)); err != nil || topics.DisplayMAC(mac) != pair[1] {
				t.Errorf("connection MAC %q: want lowercase with colons", pair[1])
			}
		}
	}
	if at, ok := root["availability_topic"].(string); ok && !topicInContract(at) && !strings.HasPrefix(at, topics.HADiscoveryPrefix+"/") {
		t.Errorf("availability_topic %q is neither pirack's nor the control center's", at)
	}
	comps, _ := root["components"].(map[string]any)
	if len(comps) == 0 {
		t.Errorf("no components: Home Assistant would make no device")
	}
	uniq := map[string]bool{}
	for key, v := range comps {
		c, _ := v.(map[string]any)
		where := "components." + key
		if !objectID.MatchString(key) {
			t.Errorf("%s: component id not [a-zA-Z0-9_-]", where)
		}
		p, _ := c["platform"].(string)
		check(t, where, p, c)
		if len(c) < 2 {
			t.Errorf("%s: a component needs an option besides platform", where)
		}
		if u, ok := c["unique_id"].(string); ok {
			if uniq[u] {
				t.Errorf("%s: unique_id %q used twice", where, u)
			}
			uniq[u] = true
		}
		for _, k := range []string{"state_topic", "command_topic", "topic"} {
			if s, ok := c[k].(string); ok && !topicInContract(s) && !strings.HasPrefix(s, topics.HADiscoveryPrefix+"/pirack/") {
				t.Errorf("%s: %s %q is not a pirack topic", where, k, s)
			}
		}
		if ec, ok := c["entity_category"].(string); ok && !slices.Contains(entityCategory, ec) {
			t.Errorf("%s: entity_category %q", where, ec)
		}
		if tpl, ok := c["value_template"].(string); ok && strings.Count(tpl, "{{") != strings.Count(tpl, "}}") {
			t.Errorf("%s: value_template %q is unbalanced", where, tpl)
		}
		switch p {
		case "sensor":
			dc, hasDC := c["device_class"].(string)
			if hasDC && !slices.Contains(sensorDeviceClasses, dc) {
				t.Errorf("%s: device_class %q", where, dc)
			}
			if sc, ok := c["state_class"].(string); ok && !slices.Contains(stateClasses, sc) {
				t.Errorf("%s: state_class %q", where, sc)
			}
			if u, ok := c["unit_of_measurement"].(string); ok && hasDC && !slices.Contains(units[dc], u) {
				t.Errorf("%s: unit %q is not one of device class %s's", where, u, dc)
			}
			if hasDC && c["unit_of_measurement"] == nil {
				t.Errorf("%s: device class %s without a unit", where, dc)
			}
		case "binary_sensor":
			if dc, ok := c["device_class"].(string); ok && !slices.Contains(binaryClasses, dc) {
				t.Errorf("%s: device_class %q", where, dc)
			}
		case "button":
			if dc, ok := c["device_class"].(string); ok && !slices.Contains(buttonClasses, dc) {
				t.Errorf("%s: device_class %q", where, dc)
			}
			if c["retain"] != false {
				t.Errorf("%s: retain %v: the broker drops retained LED commands", where, c["retain"])
			}
			press, _ := c["payload_press"].(string)
			cmd, err := topics.ParseLEDCommand([]byte(press))
			if err != nil {
				t.Errorf("%s: payload_press is not a valid LED command: %v", where, err)
			} else if cmd.Action != topics.LEDIdentify {
				t.Errorf("%s: payload_press action %q, want identify", where, cmd.Action)
			}
		case "device_automation":
			if typ, _ := c["type"].(string); c["automation_type"] != "trigger" || !slices.Contains(triggerTypes, typ) {
				t.Errorf("%s: automation_type %v type %v", where, c["automation_type"], c["type"])
			}
		}
	}
	return t.errs
}

func TestDiscoveryPayloads(t *testing.T) {
	all := hasLoad | hasCPUPercent | hasCPUTemp | hasMemory | hasDisk | hasUptime | hasNet | hasThrottle
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"pi-full", must(piConfig(pi{MAC: "b827eb3f1a2c", Row: "r1", Name: "web-1", Model: "Raspberry Pi 4 Model B Rev 1.4",
			Serial: "10000000abcdef01", AgentVersion: "1.4.0", Has: all, RowPower: hasWatts | hasVolts | hasAmps, RowPis: 8},
			"pirack-control-center", "test"))},
		// A board that is no Pi, in a row without a supply sensor, before its first metrics.
		{"pi-bare", must(piConfig(pi{MAC: "0242ac110002", Row: "lab", Name: "02:42:ac:11:00:02"}, "pirack-control-center", "test"))},
		{"control-center", ccConfig("pirack-control-center", "test")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range checkPayload(tc.b) {
				t.Error(e)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, tc.b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("payload differs from %s (review, then go test -update):\n%s", golden, pretty.Bytes())
			}
		})
	}
}

// The schema table itself catches what Home Assistant would ignore or refuse.
func TestSchemaCatchesMistakes(t *testing.T) {
	good := must(piConfig(pi{MAC: "b827eb3f1a2c", Row: "r1", Name: "n", Has: hasCPUTemp}, "cc", "test"))
	for _, tc := range []struct{ name, from, to string }{
		{"abbreviated key", `"state_topic"`, `"stat_t"`},
		{"unknown platform", `"platform":"sensor"`, `"platform":"gauge"`},
		{"wrong unit", `"°C"`, `"C"`},
		{"retained button", `"retain":false`, `"retain":true`},
		{"topic outside the contract", `rack/r1/b827eb3f1a2c/metrics`, `rack/r1/b827eb3f1a2c/telemetry`},
		{"no origin", `"origin":{"name":"pirack","sw_version":"test"},`, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("%q not in the payload", tc.from)
			}
			if len(checkPayload([]byte(bad))) == 0 {
				t.Errorf("checkPayload accepted %s", bad)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
