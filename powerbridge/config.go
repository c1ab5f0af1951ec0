package powerbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// FileName is the bridge's configuration file inside the data directory, which `pirack serve`
// reads when it exists.
const FileName = "power-bridge.json"

// ErrInvalidConfig is returned (wrapped, with which plug is wrong and what to do) by ParseFile,
// LoadFile and File.Validate.
var ErrInvalidConfig = errors.New("invalid power bridge configuration")

// The plug types.
const (
	// TypeTasmota is any Tasmota device with energy monitoring (Sonoff POW, Nous A1T, Gosund,
	// Athom...). Topic is its telemetry topic tele/<topic>/SENSOR.
	TypeTasmota = "tasmota"
	// TypeShellyGen2 is a Shelly Gen2, Gen3, Plus or Pro device (Plus Plug S, Plug S Gen3, Plus
	// PM Mini, Pro 2PM...). Topic is its status topic <prefix>/status/switch:<n> (or
	// pm1:<n>); its <prefix>/events/rpc notifications are read too.
	TypeShellyGen2 = "shelly-gen2"
	// TypeShellyGen1 is a Shelly Gen1 device (Plug S, 1PM, 2.5, EM, 3EM). Topic is its prefix,
	// shellies/<id> by default; the bridge reads <prefix>/relay/<channel>/power, or
	// <prefix>/emeter/<channel>/{power,voltage,current} on energy meters.
	TypeShellyGen1 = "shelly-gen1"
)

// MaxPlugTopicLen bounds a configured topic.
const MaxPlugTopicLen = 256

// maxChannel bounds a Shelly Gen1 channel: a 3EM has three.
const maxChannel = 15

// File is the bridge's configuration file:
//
//	{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"}]}
//
// Ports, optional, are the USB hub ports with per-port power switching that single Pis hang
// off (see HubPort): package powerctl switches them.
type File struct {
	Plugs []Plug    `json:"plugs"`
	Ports []HubPort `json:"ports,omitempty"`
}

// HubPort is one Pi powered from a port of a USB hub that can switch its ports' power, on the
// control host: uhubctl -l <Hub> -p <Port>.
type HubPort struct {
	MAC  string `json:"mac"`  // the Pi's MAC, as its agent reports it (colons allowed)
	Hub  string `json:"hub"`  // the hub's location, as uhubctl lists it: 1-1, 2-1.4
	Port int    `json:"port"` // the port, 1 to 127
}

// hubLocation is what uhubctl prints as a hub's location: bus-port[.port...].
var hubLocation = regexp.MustCompile(`^[0-9]{1,3}(-[0-9]{1,3}(\.[0-9]{1,3}){0,6})?$`)

func (h HubPort) validate() error {
	if _, err := topics.NormalizeMAC(h.MAC); err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	if !hubLocation.MatchString(h.Hub) {
		return fmt.Errorf("hub %q: want the hub's location as uhubctl lists it, such as 1-1 or 2-1.4", clip(h.Hub))
	}
	if h.Port < 1 || h.Port > 127 {
		return fmt.Errorf("port %d: want 1 to 127, as uhubctl numbers the hub's ports", h.Port)
	}
	return nil
}

// Plug maps one smart plug to the row it feeds.
type Plug struct {
	// Row is the pirack row whose power the plug measures.
	Row string `json:"row"`
	// Type is TypeTasmota, TypeShellyGen2 or TypeShellyGen1.
	Type string `json:"type"`
	// Topic is where the plug publishes, as each type's doc says.
	Topic string `json:"topic"`
	// Channel is the relay or meter of a multi-channel Shelly Gen1 device (a 2.5, an EM); 0 is
	// the first. Other types name their channel in Topic (Gen2) or sum all (Tasmota).
	Channel int `json:"channel,omitempty"`
	// Switch lets admins switch the plug's relay from the page and the API: off, on, or a
	// power cycle of the row (package powerctl). The plug may then read its command topic
	// (Relay). Off by default: a plug that feeds the control host too must never be switched.
	Switch bool `json:"switch,omitempty"`
}

// String is the mapping as logged at start: "row r1 <- tasmota tele/rack-r1/SENSOR".
func (p Plug) String() string {
	s := "row " + p.Row + " <- " + p.Type + " " + p.Topic
	if p.Type == TypeShellyGen1 && p.Channel != 0 {
		s += " channel " + strconv.Itoa(p.Channel)
	}
	return s
}

// LoadFile reads and validates the configuration file at path.
func LoadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("power bridge: %w", err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return File{}, fmt.Errorf("power bridge file %s: %w", path, err)
	}
	return f, nil
}

// ParseFile parses and validates a configuration file's contents. Unknown fields are refused,
// so that a misspelt one ("plug", "channels") is reported rather than ignored.
func ParseFile(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%w: %v (want {\"plugs\":[{\"row\":\"r1\",\"type\":\"tasmota\",\"topic\":\"tele/rack-r1/SENSOR\"}]})", ErrInvalidConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return File{}, fmt.Errorf("%w: more than one JSON value in the file", ErrInvalidConfig)
	}
	if err := f.Validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// Validate checks every plug and that no two share a row or a topic, and every hub port and
// that no Pi or port is named twice.
func (f File) Validate() error {
	macs, ports := map[string]int{}, map[string]int{}
	for i, h := range f.Ports {
		if err := h.validate(); err != nil {
			return fmt.Errorf("%w: ports[%d]: %w", ErrInvalidConfig, i, err)
		}
		mac, _ := topics.NormalizeMAC(h.MAC)
		if j, dup := macs[mac]; dup {
			return fmt.Errorf("%w: ports[%d]: Pi %s is already on ports[%d]; a Pi has one port", ErrInvalidConfig, i, clip(h.MAC), j)
		}
		macs[mac] = i
		key := h.Hub + " " + strconv.Itoa(h.Port)
		if j, dup := ports[key]; dup {
			return fmt.Errorf("%w: ports[%d]: hub %s port %d is already ports[%d]'s", ErrInvalidConfig, i, h.Hub, h.Port, j)
		}
		ports[key] = i
	}
	rows := map[string]int{}
	sources := map[string]int{}
	for i, p := range f.Plugs {
		if err := p.validate(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, p.entry(i), err)
		}
		if j, dup := rows[p.Row]; dup {
			return fmt.Errorf("%w: %s: row %s already has a plug (%s); a row has one plug, so remove one entry",
				ErrInvalidConfig, p.entry(i), p.Row, f.Plugs[j].entry(j))
		}
		rows[p.Row] = i
		if j, dup := sources[p.source()]; dup {
			return fmt.Errorf("%w: %s: the same plug as %s; a plug feeds one row, so remove one entry",
				ErrInvalidConfig, p.entry(i), f.Plugs[j].entry(j))
		}
		sources[p.source()] = i
		// Two devices whose topics nest would read each other's messages.
		for j, q := range f.Plugs[:i] {
			sameDevice := p.Type == q.Type && p.device() == q.device() // a multi-channel device
			if !sameDevice && filtersOverlap(p.folder(), q.folder()) {
				return fmt.Errorf("%w: %s: topic %s overlaps %s's %s; give each plug its own topic",
					ErrInvalidConfig, p.entry(i), p.Topic, q.entry(j), q.Topic)
			}
		}
	}
	return nil
}

// entry names plug i in an error: plugs[1] (row "r2").
func (p Plug) entry(i int) string {
	return fmt.Sprintf("plugs[%d] (row %q)", i, clip(p.Row))
}

func (p Plug) validate() error {
	if err := topics.ValidateRow(p.Row); err != nil {
		return err
	}
	if err := checkTopic(p.Topic); err != nil {
		return err
	}
	if p.Channel != 0 && p.Type != TypeShellyGen1 {
		return errors.New("channel is for shelly-gen1 devices only; a shelly-gen2 names its channel in its topic (status/switch:1)")
	}
	switch p.Type {
	case TypeTasmota:
		if dir, leaf, ok := cutLast(p.Topic); !ok || leaf != "SENSOR" || dir == "" {
			return fmt.Errorf("topic %q: a Tasmota plug's topic is its telemetry topic, tele/<its topic>/SENSOR", clip(p.Topic))
		}
	case TypeShellyGen2:
		if _, _, ok := gen2Parts(p.Topic); !ok {
			return fmt.Errorf("topic %q: a shelly-gen2 plug's topic is its status topic, <prefix>/status/switch:0 (or pm1:0), with \"Generic status update over MQTT\" on", clip(p.Topic))
		}
	case TypeShellyGen1:
		if p.Channel < 0 || p.Channel > maxChannel {
			return fmt.Errorf("channel %d: want 0 (the first relay or meter) to %d", p.Channel, maxChannel)
		}
		if strings.Contains(p.Topic, "/relay/") || strings.Contains(p.Topic, "/emeter/") {
			return fmt.Errorf("topic %q: a shelly-gen1 plug's topic is its prefix (shellies/<id>), not one of its measurement topics", clip(p.Topic))
		}
	case "":
		return fmt.Errorf("no type: want %s, %s (Gen2, Gen3, Plus and Pro devices) or %s", TypeTasmota, TypeShellyGen2, TypeShellyGen1)
	default:
		return fmt.Errorf("unknown type %q: want %s, %s (Gen2, Gen3, Plus and Pro devices) or %s", clip(p.Type), TypeTasmota, TypeShellyGen2, TypeShellyGen1)
	}
	if p.Switch {
		if _, err := p.Relay(); err != nil {
			return err
		}
	}
	return nil
}

// checkTopic refuses a topic the broker could not let a plug publish, or that is surely a typo.
func checkTopic(t string) error {
	first, _, _ := strings.Cut(t, "/")
	switch {
	case t == "":
		return errors.New("no topic: give the topic the plug publishes on")
	case len(t) > MaxPlugTopicLen:
		return fmt.Errorf("topic %q is longer than %d bytes", clip(t), MaxPlugTopicLen)
	case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return fmt.Errorf("topic %q is not valid UTF-8 without NUL", clip(t))
	case strings.ContainsAny(t, "+#"):
		return fmt.Errorf("topic %q has a wildcard (+ or #): name the one plug's topic", clip(t))
	case first == topics.Root:
		return fmt.Errorf("topic %q is under %s/, pirack's own topics, where plugs may not publish: set the plug's MQTT topic or prefix to something else", clip(t), topics.Root)
	case strings.HasPrefix(t, "$"):
		return fmt.Errorf("topic %q begins with $, which only the broker publishes", clip(t))
	case strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.Contains(t, "//"):
		return fmt.Errorf("topic %q has an empty level (a leading, trailing or doubled /)", clip(t))
	}
	return nil
}

// gen2Parts splits a Shelly Gen2 status topic <prefix>/status/<component> and checks the
// component is switch:<n> or pm1:<n>.
func gen2Parts(topic string) (prefix, component string, ok bool) {
	i := strings.LastIndex(topic, "/status/")
	if i <= 0 {
		return "", "", false
	}
	prefix, component = topic[:i], topic[i+len("/status/"):]
	kind, n, found := strings.Cut(component, ":")
	if !found || (kind != "switch" && kind != "pm1") || n == "" || strings.Trim(n, "0123456789") != "" || len(n) > 3 {
		return "", "", false
	}
	return prefix, component, true
}

// cutLast splits a topic at its last level.
func cutLast(topic string) (dir, leaf string, ok bool) {
	i := strings.LastIndexByte(topic, '/')
	if i < 0 {
		return "", topic, false
	}
	return topic[:i], topic[i+1:], true
}

// device is the plug's device topic: the level under which it publishes everything.
// The configuration is validated.
func (p Plug) device() string {
	switch p.Type {
	case TypeTasmota:
		dir, _, _ := cutLast(p.Topic)
		return dir
	case TypeShellyGen2:
		prefix, _, _ := gen2Parts(p.Topic)
		return prefix
	}
	return p.Topic
}

// folder is the MQTT filter of everything the plug's device publishes: its telemetry, its
// state, and its Will (Tasmota's tele/<topic>/LWT, a Shelly's <prefix>/online), which the
// broker must allow or it refuses the connection.
func (p Plug) folder() string { return p.device() + "/#" }

// source identifies what the plug reads: two entries with the same source are one plug.
func (p Plug) source() string {
	if p.Type == TypeShellyGen1 {
		return p.Type + " " + p.Topic + " " + strconv.Itoa(p.Channel)
	}
	return p.Type + " " + p.Topic
}

// PlugTopics are the rights of a user of role plug, by the user's row (broker
// Config.PlugTopics). Write is the device folder of that row's plug, such as tele/rack-r1/#
// (and a Tasmota's stat/rack-r1/#, where it answers commands), shellyplusplugs-a8032ab1/# or
// shellies/shellyplug-s-7AB3C1/#: granting the whole folder keeps the broker from logging a
// refusal for every STATE or status message the plug sends besides the one the bridge reads,
// and covers the plug's Will. Read is the relay's command filter, for a plug with Switch only.
// A row without a plug has no entry, so its plug users may do nothing. A multi-channel Shelly
// Gen1 feeding two rows appears under both: it is one device, logged in as one of those rows'
// users. The file is validated.
func (f File) PlugTopics() auth.PlugTopics {
	out := auth.PlugTopics{}
	for _, p := range f.Plugs {
		r := out[p.Row] // one plug per row: Validate
		r.Write = append(r.Write, p.folder())
		if p.Type == TypeTasmota && strings.HasPrefix(p.Topic, "tele/") && strings.Count(p.Topic, "/") == 2 {
			r.Write = append(r.Write, "stat/"+p.tasmotaTopic()+"/#")
		}
		if relay, err := p.Relay(); err == nil && p.Switch {
			r.Read = append(r.Read, relay.Subscribe)
		}
		out[p.Row] = r
	}
	return out
}

// filtersOverlap reports whether some topic matches both MQTT filters.
func filtersOverlap(a, b string) bool {
	al, bl := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; ; i++ {
		switch {
		case i < len(al) && al[i] == "#", i < len(bl) && bl[i] == "#":
			return true
		case i == len(al) || i == len(bl):
			return len(al) == len(bl)
		case al[i] != "+" && bl[i] != "+" && al[i] != bl[i]:
			return false
		}
	}
}
