package powerbridge

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pirack/pirack/auth"
)

func TestLoadFileExample(t *testing.T) {
	f, err := LoadFile(filepath.Join("testdata", "config", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mappings []string
	for _, p := range f.Plugs {
		mappings = append(mappings, p.String())
	}
	if want := []string{
		"row r1 <- tasmota tele/rack-r1/SENSOR",
		"row r2 <- shelly-gen2 shellyplusplugs-a8032ab1/status/switch:0",
		"row r3 <- shelly-gen1 shellies/shellyplug-s-7AB3C1",
	}; !slices.Equal(mappings, want) {
		t.Errorf("mappings %q, want %q", mappings, want)
	}
	// Each row's plug's whole device folder: its Will (tele/rack-r1/LWT, <prefix>/online) lies
	// there; a Tasmota's answers to commands go to stat/. Plugs pirack may not switch read
	// nothing.
	if got, want := f.PlugTopics(), (auth.PlugTopics{
		"r1": {Write: []string{"tele/rack-r1/#", "stat/rack-r1/#"}},
		"r2": {Write: []string{"shellyplusplugs-a8032ab1/#"}},
		"r3": {Write: []string{"shellies/shellyplug-s-7AB3C1/#"}},
	}); !reflect.DeepEqual(got, want) {
		t.Errorf("PlugTopics() = %q, want %q", got, want)
	}
}

// A plug pirack may switch reads its relay's command topic, and only that; each type's
// commands and reports are its firmware's. A meter without a relay, or a Tasmota whose
// FullTopic is not the default, cannot be switched.
func TestSwitchablePlugs(t *testing.T) {
	f, err := ParseFile([]byte(`{"plugs":[
		{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR","switch":true},
		{"row":"r2","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/status/switch:0","switch":true},
		{"row":"r3","type":"shelly-gen1","topic":"shellies/shelly25-C45BBE","channel":1,"switch":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := auth.PlugTopics{
		"r1": {Read: []string{"cmnd/rack-r1/#"}, Write: []string{"tele/rack-r1/#", "stat/rack-r1/#"}},
		"r2": {Read: []string{"shellyplusplugs-a8032ab1/command/#"}, Write: []string{"shellyplusplugs-a8032ab1/#"}},
		"r3": {Read: []string{"shellies/shelly25-C45BBE/relay/1/command"}, Write: []string{"shellies/shelly25-C45BBE/#"}},
	}
	if got := f.PlugTopics(); !reflect.DeepEqual(got, want) {
		t.Errorf("PlugTopics() = %q, want %q", got, want)
	}
	for _, c := range []struct {
		plug                           int
		command, state, off, on, cycle string
	}{
		{0, "cmnd/rack-r1/POWER", "stat/rack-r1/POWER", "OFF", "ON", "Power 0; Delay 50; Power 1"},
		{1, "shellyplusplugs-a8032ab1/command/switch:0", "shellyplusplugs-a8032ab1/status/switch:0", "off", "on", "off,5"},
		{2, "shellies/shelly25-C45BBE/relay/1/command", "shellies/shelly25-C45BBE/relay/1", "off", "on", ""},
	} {
		r, err := f.Plugs[c.plug].Relay()
		if err != nil {
			t.Fatal(err)
		}
		cycle := ""
		if r.CycleOff != nil {
			cycle = r.CycleOff(5)
		}
		if r.Command != c.command || r.State != c.state || r.Off != c.off || r.On != c.on || cycle != c.cycle {
			t.Errorf("plug %d: %+v (cycle %q)", c.plug, r, cycle)
		}
	}
	for payload, want := range map[string]int{`ON`: 1, `OFF`: 0, `on`: 1, `off`: 0, `{"id":0,"output":true,"apower":4.2}`: 1,
		`{"id":0,"output":false}`: 0, `{"id":0,"apower":4.2}`: -1, `garbage`: -1} {
		on, ok := Relay{}.ParseState([]byte(payload))
		got := -1
		if ok {
			got = map[bool]int{false: 0, true: 1}[on]
		}
		if got != want {
			t.Errorf("ParseState(%s) = %d, want %d", payload, got, want)
		}
	}
	for _, bad := range []string{
		`{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"shellypmmini-1/status/pm1:0","switch":true}]}`,
		`{"plugs":[{"row":"r1","type":"tasmota","topic":"racks/r1/tele/SENSOR","switch":true}]}`,
	} {
		if _, err := ParseFile([]byte(bad)); err == nil || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: accepted (%v)", bad, err)
		}
	}
}

// One two-channel Shelly feeding two rows is one device, with one MQTT login: the user of
// either row may publish its folder.
func TestPlugTopicsSharedDevice(t *testing.T) {
	f, err := ParseFile([]byte(`{"plugs":[
		{"row":"r1","type":"shelly-gen1","topic":"shellies/shelly25-C45BBE","channel":0},
		{"row":"r2","type":"shelly-gen1","topic":"shellies/shelly25-C45BBE","channel":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := auth.PlugTopics{"r1": {Write: []string{"shellies/shelly25-C45BBE/#"}}, "r2": {Write: []string{"shellies/shelly25-C45BBE/#"}}}
	if got := f.PlugTopics(); !reflect.DeepEqual(got, want) {
		t.Errorf("PlugTopics() = %q, want %q", got, want)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), FileName))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "power bridge") {
		t.Fatalf("error %v, want a not-exist error naming the power bridge", err)
	}
}

func TestPlugSubscriptions(t *testing.T) {
	for _, tc := range []struct {
		plug Plug
		want []string
	}{
		{Plug{Row: "r1", Type: TypeTasmota, Topic: "tele/rack-r1/SENSOR"}, []string{"tele/rack-r1/SENSOR"}},
		{Plug{Row: "r1", Type: TypeShellyGen2, Topic: "home/shelly/pro2pm-1/status/switch:1"},
			[]string{"home/shelly/pro2pm-1/status/switch:1", "home/shelly/pro2pm-1/events/rpc"}},
		{Plug{Row: "r1", Type: TypeShellyGen1, Topic: "shellies/shellyem-B9F1E2", Channel: 1}, []string{
			"shellies/shellyem-B9F1E2/relay/1/power",
			"shellies/shellyem-B9F1E2/emeter/1/power",
			"shellies/shellyem-B9F1E2/emeter/1/voltage",
			"shellies/shellyem-B9F1E2/emeter/1/current",
		}},
	} {
		var got []string
		for _, s := range tc.plug.subscriptions() {
			got = append(got, s.filter)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: subscribes to %q, want %q", tc.plug, got, tc.want)
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want string // in the error; "" means valid
	}{
		{"empty list", `{"plugs":[]}`, ""},
		{"no plugs", `{}`, ""},
		{"gen2 pm1", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"shellypmmini-1/status/pm1:0"}]}`, ""},
		{"gen1 channel", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"shellies/em","channel":1}]}`, ""},
		{"one device, two switches for two rows", `{"plugs":[
			{"row":"r1","type":"shelly-gen2","topic":"pro2pm/status/switch:0"},
			{"row":"r2","type":"shelly-gen2","topic":"pro2pm/status/switch:1"}]}`, ""},
		{"one Gen1 device, two channels for two rows", `{"plugs":[
			{"row":"r1","type":"shelly-gen1","topic":"shellies/em"},
			{"row":"r2","type":"shelly-gen1","topic":"shellies/em","channel":1}]}`, ""},
		{"sibling devices", `{"plugs":[
			{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"},
			{"row":"r2","type":"tasmota","topic":"tele/rack-r2/SENSOR"}]}`, ""},

		{"not JSON", `plugs: []`, "invalid character"},
		{"unknown top-level field", `{"plug":[]}`, `unknown field "plug"`},
		{"unknown plug field", `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/a/SENSOR","channels":2}]}`, `unknown field "channels"`},
		{"two values", `{"plugs":[]} {"plugs":[]}`, "more than one JSON value"},
		{"bad row", `{"plugs":[{"row":"Row 1","type":"tasmota","topic":"tele/a/SENSOR"}]}`, `plugs[0] (row "Row 1"): invalid row name`},
		{"no row", `{"plugs":[{"type":"tasmota","topic":"tele/a/SENSOR"}]}`, `plugs[0] (row ""): invalid row name`},
		{"no type", `{"plugs":[{"row":"r1","topic":"tele/a/SENSOR"}]}`, "no type: want tasmota, shelly-gen2"},
		{"unknown type", `{"plugs":[{"row":"r1","type":"shelly-plus","topic":"a/status/switch:0"}]}`, `unknown type "shelly-plus": want tasmota, shelly-gen2 (Gen2, Gen3, Plus and Pro devices) or shelly-gen1`},
		{"no topic", `{"plugs":[{"row":"r1","type":"tasmota"}]}`, "no topic"},
		{"wildcard", `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/+/SENSOR"}]}`, "wildcard"},
		{"hash", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"shellies/#"}]}`, "wildcard"},
		{"pirack root", `{"plugs":[{"row":"r1","type":"tasmota","topic":"rack/r1/SENSOR"}]}`, "under rack/, pirack's own topics"},
		{"dollar", `{"plugs":[{"row":"r1","type":"tasmota","topic":"$SYS/x/SENSOR"}]}`, "begins with $"},
		{"empty level", `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele//SENSOR"}]}`, "empty level"},
		{"leading slash", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"/shellies/x"}]}`, "empty level"},
		{"too long", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"` + strings.Repeat("a", 257) + `"}]}`, "longer than 256"},
		{"Tasmota STATE", `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/rack-r1/STATE"}]}`, "tele/<its topic>/SENSOR"},
		{"Tasmota bare SENSOR", `{"plugs":[{"row":"r1","type":"tasmota","topic":"SENSOR"}]}`, "tele/<its topic>/SENSOR"},
		{"Gen2 prefix only", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1"}]}`, "<prefix>/status/switch:0"},
		{"Gen2 events topic", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/events/rpc"}]}`, "<prefix>/status/switch:0"},
		{"Gen2 sys status", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/status/sys"}]}`, "<prefix>/status/switch:0"},
		{"Gen2 switch without number", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"p/status/switch:"}]}`, "<prefix>/status/switch:0"},
		{"Gen2 with channel", `{"plugs":[{"row":"r1","type":"shelly-gen2","topic":"p/status/switch:0","channel":1}]}`, "channel is for shelly-gen1 devices only"},
		{"Gen1 measurement topic", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"shellies/plug/relay/0/power"}]}`, "its prefix (shellies/<id>)"},
		{"Gen1 negative channel", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"shellies/plug","channel":-1}]}`, "channel -1"},
		{"Gen1 channel too high", `{"plugs":[{"row":"r1","type":"shelly-gen1","topic":"shellies/plug","channel":16}]}`, "channel 16"},
		{"two plugs on one row", `{"plugs":[
			{"row":"r1","type":"tasmota","topic":"tele/a/SENSOR"},
			{"row":"r1","type":"tasmota","topic":"tele/b/SENSOR"}]}`, `plugs[1] (row "r1"): row r1 already has a plug (plugs[0] (row "r1"))`},
		{"one plug on two rows", `{"plugs":[
			{"row":"r1","type":"tasmota","topic":"tele/a/SENSOR"},
			{"row":"r2","type":"tasmota","topic":"tele/a/SENSOR"}]}`, `plugs[1] (row "r2"): the same plug as plugs[0] (row "r1")`},
		{"one Gen1 channel on two rows", `{"plugs":[
			{"row":"r1","type":"shelly-gen1","topic":"shellies/em","channel":1},
			{"row":"r2","type":"shelly-gen1","topic":"shellies/em","channel":1}]}`, "the same plug as plugs[0]"},
		{"nested devices", `{"plugs":[
			{"row":"r1","type":"shelly-gen1","topic":"shellies/a"},
			{"row":"r2","type":"tasmota","topic":"shellies/a/tele/SENSOR"}]}`, `plugs[1] (row "r2"): topic shellies/a/tele/SENSOR overlaps plugs[0] (row "r1")'s shellies/a`},
		{"one device, two types", `{"plugs":[
			{"row":"r1","type":"shelly-gen1","topic":"tele/a"},
			{"row":"r2","type":"tasmota","topic":"tele/a/SENSOR"}]}`, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile([]byte(tc.json))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalidConfig saying %q", err, tc.want)
			}
			if len(f.Plugs) != 0 {
				t.Errorf("a refused file returned plugs: %v", f.Plugs)
			}
		})
	}
}

func TestFiltersOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a/#", "a/#", true},
		{"a/#", "a/b/#", true},
		{"a/#", "a", true},
		{"a/b/#", "a/c/#", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"ab/#", "a/#", false},
	} {
		if got := filtersOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := filtersOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}
