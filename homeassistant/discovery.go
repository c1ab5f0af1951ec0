package homeassistant

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/pirack/pirack/topics"
)

// pi is what one Pi's discovery config is built from: the rack's view of it, reduced to what
// Home Assistant is told. Two equal pis give the same config, byte for byte.
type pi struct {
	MAC          string // normalised, as in topics
	Row          string
	Name         string // the slot's name, else the hostname, else the MAC
	Model        string
	Serial       string
	AgentVersion string
	// Has is the metrics the Pi has reported: only those get a sensor.
	Has metricSet
	// RowPower says which quantities the row's supply reports; RowPis is how many Pis share it,
	// for the watts per Pi (0: no such sensor).
	RowPower metricSet
	RowPis   int
}

// metricSet is a set of the fields of topics.Metrics and topics.Power that pirack publishes.
type metricSet uint32

// Metrics a Pi may or may not report; each names a payload field (or pair of fields).
const (
	hasLoad metricSet = 1 << iota
	hasCPUPercent
	hasCPUTemp
	hasMemory // mem_total_bytes and mem_available_bytes
	hasDisk   // disk_total_bytes and disk_free_bytes
	hasUptime
	hasNet
	hasThrottle
	hasWatts // row power
	hasVolts
	hasAmps
)

// has reports whether every metric of m is in s.
func (s metricSet) has(m metricSet) bool { return s&m == m }

// origin names pirack as the software behind every discovered item (required by Home Assistant
// in device-based discovery).
type origin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

// device is Home Assistant's device mapping.
type device struct {
	Identifiers   []string    `json:"identifiers"`
	Connections   [][2]string `json:"connections,omitempty"`
	Name          string      `json:"name"`
	Manufacturer  string      `json:"manufacturer,omitempty"`
	Model         string      `json:"model,omitempty"`
	SerialNumber  string      `json:"serial_number,omitempty"`
	SWVersion     string      `json:"sw_version,omitempty"`
	SuggestedArea string      `json:"suggested_area,omitempty"`
	ViaDevice     string      `json:"via_device,omitempty"`
}

// deviceConfig is a device-based discovery payload: shared options and the components.
type deviceConfig struct {
	Device               device               `json:"device"`
	Origin               origin               `json:"origin"`
	AvailabilityTopic    string               `json:"availability_topic,omitempty"`
	AvailabilityTemplate string               `json:"availability_template,omitempty"`
	Components           map[string]component `json:"components"`
}

// component is one entity (or device trigger) of a device. Fields are those of Home
// Assistant's sensor, binary_sensor, button and device_automation platforms that pirack uses.
type component struct {
	Platform                  string `json:"platform"`
	UniqueID                  string `json:"unique_id,omitempty"`
	Name                      string `json:"name,omitempty"`
	DeviceClass               string `json:"device_class,omitempty"`
	StateClass                string `json:"state_class,omitempty"`
	UnitOfMeasurement         string `json:"unit_of_measurement,omitempty"`
	SuggestedDisplayPrecision *int   `json:"suggested_display_precision,omitempty"`
	EntityCategory            string `json:"entity_category,omitempty"`
	Icon                      string `json:"icon,omitempty"`
	StateTopic                string `json:"state_topic,omitempty"`
	ValueTemplate             string `json:"value_template,omitempty"`
	PayloadOn                 string `json:"payload_on,omitempty"`
	PayloadOff                string `json:"payload_off,omitempty"`
	// button
	CommandTopic string `json:"command_topic,omitempty"`
	PayloadPress string `json:"payload_press,omitempty"`
	Retain       *bool  `json:"retain,omitempty"`
	QoS          *int   `json:"qos,omitempty"`
	// device_automation
	AutomationType string `json:"automation_type,omitempty"`
	Topic          string `json:"topic,omitempty"`
	Type           string `json:"type,omitempty"`
	Subtype        string `json:"subtype,omitempty"`
	Payload        string `json:"payload,omitempty"`
}

// Platforms used.
const (
	platformSensor       = "sensor"
	platformBinarySensor = "binary_sensor"
	platformButton       = "button"
	platformTrigger      = "device_automation"
)

// LocateBy is who an LED command from Home Assistant's Locate button says sent it, in the
// event log.
const LocateBy = "home-assistant"

// PiDeviceID is the Home Assistant device id of a Pi: its discovery topic's object id and its
// device identifier.
func PiDeviceID(mac string) string { return "pirack_" + mac }

// piMAC returns the MAC of a Pi's device id, or false.
func piMAC(id string) (string, bool) {
	mac, ok := strings.CutPrefix(id, "pirack_")
	return mac, ok && topics.IsMAC(mac)
}

// statusAvailability reads a Pi's status, JSON or the plain word a foreign tool may publish, as
// online or offline: Home Assistant's default payload_available and payload_not_available.
const statusAvailability = "{{ value_json.state if value_json is defined else value }}"

// field is a template reading a JSON field, rendering "" when the field is absent (a value the
// Pi could not read): Home Assistant ignores an empty value instead of logging an error.
func field(name string) string {
	return "{% if value_json." + name + " is defined %}{{ value_json." + name + " }}{% endif %}"
}

// fields is a template computing expr from JSON fields, "" unless all of them are present.
func fields(expr string, names ...string) string {
	cond := make([]string, len(names))
	for i, n := range names {
		cond[i] = "value_json." + n + " is defined"
	}
	return "{% if " + strings.Join(cond, " and ") + " %}{{ " + expr + " }}{% endif %}"
}

func ptr[T any](v T) *T { return &v }

// piConfig builds a Pi's device-based discovery payload. ccID is the control center's device
// identifier (via_device); version is pirack's.
func piConfig(p pi, ccID, version string) ([]byte, error) {
	mac := p.MAC
	id := PiDeviceID(mac)
	metrics, power, status := topics.MetricsTopic(p.Row, mac), topics.PowerTopic(p.Row), topics.StatusTopic(p.Row, mac)
	cfg := deviceConfig{
		Device: device{
			Identifiers:   []string{id},
			Connections:   [][2]string{{"mac", topics.DisplayMAC(mac)}},
			Name:          p.Name,
			Manufacturer:  manufacturer(p.Model),
			Model:         p.Model,
			SerialNumber:  p.Serial,
			SWVersion:     p.AgentVersion,
			SuggestedArea: p.Row,
			ViaDevice:     ccID,
		},
		Origin:               origin{Name: "pirack", SWVersion: version},
		AvailabilityTopic:    status,
		AvailabilityTemplate: statusAvailability,
		Components:           map[string]component{},
	}
	add := func(key string, c component) {
		if c.Platform != platformTrigger {
			c.UniqueID = id + "_" + key
		}
		cfg.Components[key] = c
	}
	sensor := func(key, name, tpl string, c component) {
		c.Platform, c.Name, c.StateTopic, c.ValueTemplate = platformSensor, name, metrics, tpl
		if c.StateClass == "" {
			c.StateClass = "measurement"
		}
		add(key, c)
	}
	const mib, gib = 1 << 20, 1 << 30
	if p.Has.has(hasLoad) {
		for _, n := range []string{"1", "5", "15"} {
			sensor("load_"+n, "Load ("+n+" min)", field("load_"+n), component{SuggestedDisplayPrecision: ptr(2), Icon: "mdi:gauge"})
		}
	}
	if p.Has.has(hasCPUPercent) {
		sensor("cpu_percent", "CPU", field("cpu_percent"), component{UnitOfMeasurement: "%", SuggestedDisplayPrecision: ptr(1), Icon: "mdi:cpu-64-bit"})
	}
	if p.Has.has(hasCPUTemp) {
		sensor("cpu_temp", "CPU temperature", field("cpu_temp_c"), component{DeviceClass: "temperature", UnitOfMeasurement: "°C", SuggestedDisplayPrecision: ptr(1)})
	}
	if p.Has.has(hasMemory) {
		sensor("memory_used", "Memory used",
			fields("(100 * (1 - value_json.mem_available_bytes / value_json.mem_total_bytes)) | round(1)", "mem_total_bytes", "mem_available_bytes"),
			component{UnitOfMeasurement: "%", SuggestedDisplayPrecision: ptr(1), Icon: "mdi:memory"})
		sensor("memory_available", "Memory available",
			fields("(value_json.mem_available_bytes / "+strconv.Itoa(mib)+") | round(1)", "mem_available_bytes"),
			component{DeviceClass: "data_size", UnitOfMeasurement: "MiB", SuggestedDisplayPrecision: ptr(0)})
	}
	if p.Has.has(hasDisk) {
		sensor("disk_used", "Disk used",
			// df's Use%: used / (used + free); an agent without disk_used_bytes: 1 - free / total.
			fields("(100 * (value_json.disk_used_bytes / (value_json.disk_used_bytes + value_json.disk_free_bytes)) if value_json.disk_used_bytes is defined else 100 * (1 - value_json.disk_free_bytes / value_json.disk_total_bytes)) | round(1)", "disk_total_bytes", "disk_free_bytes"),
			component{UnitOfMeasurement: "%", SuggestedDisplayPrecision: ptr(1), Icon: "mdi:harddisk"})
		sensor("disk_free", "Disk free",
			fields("(value_json.disk_free_bytes / "+strconv.Itoa(gib)+") | round(2)", "disk_free_bytes"),
			component{DeviceClass: "data_size", UnitOfMeasurement: "GiB", SuggestedDisplayPrecision: ptr(1)})
	}
	if p.Has.has(hasUptime) {
		sensor("uptime", "Uptime", field("uptime_s"), component{DeviceClass: "duration", UnitOfMeasurement: "s", StateClass: "total_increasing", EntityCategory: "diagnostic"})
	}
	if p.Has.has(hasNet) {
		for _, d := range []struct{ key, name, field string }{{"net_rx", "Network received", "net_rx_bytes"}, {"net_tx", "Network sent", "net_tx_bytes"}} {
			sensor(d.key, d.name, fields("(value_json."+d.field+" / "+strconv.Itoa(mib)+") | round(2)", d.field),
				component{DeviceClass: "data_size", UnitOfMeasurement: "MiB", StateClass: "total_increasing", SuggestedDisplayPrecision: ptr(1)})
		}
	}
	if p.Has.has(hasThrottle) {
		// "problem" is on while the firmware reports it now; the flags since boot are left to
		// the dashboard.
		binary := func(key, name, cond string) {
			add(key, component{Platform: platformBinarySensor, Name: name, DeviceClass: "problem", EntityCategory: "diagnostic",
				StateTopic: metrics, PayloadOn: "ON", PayloadOff: "OFF",
				ValueTemplate: "{% if value_json.throttled_now is defined %}{{ 'ON' if " + cond + " else 'OFF' }}{% endif %}"})
		}
		binary("throttled", "Throttled", fmt.Sprintf("'%s' in value_json.throttled_now or '%s' in value_json.throttled_now or '%s' in value_json.throttled_now",
			topics.ThrottleThrottled, topics.ThrottleFreqCapped, topics.ThrottleSoftTempLimit))
		binary("under_voltage", "Under-voltage", fmt.Sprintf("'%s' in value_json.throttled_now", topics.ThrottleUnderVoltage))
	}
	powerSensor := func(key, name, tpl, class, unit string) {
		add(key, component{Platform: platformSensor, Name: name, StateTopic: power, ValueTemplate: tpl, DeviceClass: class,
			UnitOfMeasurement: unit, StateClass: "measurement", SuggestedDisplayPrecision: ptr(2)})
	}
	if p.RowPower.has(hasWatts) {
		powerSensor("row_power", "Row power", field("watts"), "power", "W")
		if p.RowPis > 0 {
			powerSensor("power_per_pi", "Power per Pi", fields("(value_json.watts / "+strconv.Itoa(p.RowPis)+") | round(2)", "watts"), "power", "W")
		}
	}
	if p.RowPower.has(hasVolts) {
		powerSensor("row_voltage", "Row voltage", field("volts"), "voltage", "V")
	}
	if p.RowPower.has(hasAmps) {
		powerSensor("row_current", "Row current", field("amps"), "current", "A")
	}

	locate, err := topics.Encode(topics.LEDCommand{Action: topics.LEDIdentify, By: LocateBy}.WithDefaults())
	if err != nil {
		return nil, fmt.Errorf("build the Locate command: %w", err)
	}
	// Home Assistant publishes a button's command without the retain flag by default, as the
	// broker requires of LED commands; retain is set anyway so that nobody turns it on.
	add("locate", component{Platform: platformButton, Name: "Locate", DeviceClass: "identify", CommandTopic: topics.LEDTopic(mac),
		PayloadPress: string(locate), Retain: ptr(false), QoS: ptr(1)})

	for _, press := range []struct{ kind, typ string }{
		{topics.PressShort, "button_short_press"}, {topics.PressLong, "button_long_press"}, {topics.PressDouble, "button_double_press"},
	} {
		add("press_"+press.kind, component{Platform: platformTrigger, AutomationType: "trigger", Topic: topics.ButtonTopic(p.Row, mac),
			ValueTemplate: "{{ value_json.press }}", Payload: press.kind, Type: press.typ, Subtype: "button_1", QoS: ptr(1)})
	}
	return json.Marshal(cfg)
}

// manufacturer names the maker of a board whose device tree model says it ("Raspberry Pi 4
// Model B Rev 1.4"); "" when unknown.
func manufacturer(model string) string {
	if strings.HasPrefix(model, "Raspberry Pi") {
		return "Raspberry Pi Ltd"
	}
	return ""
}

// ccState is the control center's retained state on topics.HAStateTopic.
type ccState struct {
	State     string `json:"state"` // online, or offline after a clean shutdown
	Pis       int    `json:"pis"`
	PisOnline int    `json:"pis_online"`
}

// ccConfig builds the control center's own device: the device the Pis are reached through
// (their via_device), with its counts of Pis.
func ccConfig(ccID, version string) []byte {
	state := topics.HAStateTopic(ccID)
	cfg := deviceConfig{
		Device: device{
			Identifiers:  []string{ccID},
			Name:         "pirack control center",
			Manufacturer: "pirack",
			Model:        "Control center",
			SWVersion:    version,
		},
		Origin:               origin{Name: "pirack", SWVersion: version},
		AvailabilityTopic:    state,
		AvailabilityTemplate: "{{ value_json.state }}",
		Components: map[string]component{
			"pis": {Platform: platformSensor, UniqueID: ccID + "_pis", Name: "Pis", StateTopic: state, ValueTemplate: "{{ value_json.pis }}",
				StateClass: "measurement", Icon: "mdi:raspberry-pi"},
			"pis_online": {Platform: platformSensor, UniqueID: ccID + "_pis_online", Name: "Pis online", StateTopic: state,
				ValueTemplate: "{{ value_json.pis_online }}", StateClass: "measurement", Icon: "mdi:lan-connect"},
		},
	}
	b, _ := json.Marshal(cfg) // plain strings and maps: cannot fail
	return b
}

func encodeState(st ccState) ([]byte, error) { return json.Marshal(st) }
