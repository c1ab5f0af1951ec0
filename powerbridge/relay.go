package powerbridge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Relay is how pirack switches a plug's relay over MQTT, and how the plug reports it.
type Relay struct {
	// Command is the topic commands are published on; Subscribe the filter the plug reads
	// them through (its rights).
	Command, Subscribe string
	// State is the topic the plug reports its relay on; ParseState reads it.
	State string
	// Off, On are the command payloads. CycleOff, when not nil, is the payload (on
	// CycleTopic) that makes the plug itself switch off and back on after the given whole
	// seconds, so that the row is powered again even if the control center loses the plug
	// meanwhile; nil means pirack sends off, waits and sends on.
	Off, On    string
	CycleTopic string
	CycleOff   func(seconds int) string
}

// Relay returns how to switch p's relay: Tasmota's cmnd/<topic>/POWER (its default FullTopic
// %prefix%/%topic%/), a Shelly Gen2's <prefix>/command/switch:<n> ("Enable MQTT control" on),
// a Shelly Gen1's <prefix>/relay/<channel>/command. A Gen2 energy meter (pm1) has no relay.
func (p Plug) Relay() (Relay, error) {
	switch p.Type {
	case TypeTasmota:
		if !strings.HasPrefix(p.Topic, "tele/") || strings.Count(p.Topic, "/") != 2 {
			return Relay{}, fmt.Errorf("topic %q: switching a Tasmota plug needs its default FullTopic, so that its telemetry is tele/<topic>/SENSOR and its commands cmnd/<topic>/POWER", clip(p.Topic))
		}
		t := p.tasmotaTopic()
		return Relay{Command: "cmnd/" + t + "/POWER", Subscribe: "cmnd/" + t + "/#", State: "stat/" + t + "/POWER", Off: "OFF", On: "ON",
			CycleTopic: "cmnd/" + t + "/Backlog", CycleOff: func(s int) string { return "Power 0; Delay " + strconv.Itoa(10*s) + "; Power 1" }}, nil
	case TypeShellyGen2:
		prefix, component, _ := gen2Parts(p.Topic)
		if !strings.HasPrefix(component, "switch:") {
			return Relay{}, fmt.Errorf("topic %q: a %s is a meter without a relay: it cannot be switched (drop \"switch\")", clip(p.Topic), component)
		}
		return Relay{Command: prefix + "/command/" + component, Subscribe: prefix + "/command/#", State: p.Topic, Off: "off", On: "on",
			CycleTopic: prefix + "/command/" + component, CycleOff: func(s int) string { return "off," + strconv.Itoa(s) }}, nil
	case TypeShellyGen1:
		base := p.Topic + "/relay/" + strconv.Itoa(p.Channel)
		return Relay{Command: base + "/command", Subscribe: base + "/command", State: base, Off: "off", On: "on"}, nil
	}
	return Relay{}, fmt.Errorf("type %q cannot be switched", clip(p.Type))
}

// ParseState reads a relay report on r.State: Tasmota's ON/OFF, a Shelly Gen1's on/off, a
// Shelly Gen2's status JSON with "output". ok is false for a report that does not say.
func (r Relay) ParseState(payload []byte) (on, ok bool) {
	s := strings.TrimSpace(string(payload))
	switch strings.ToLower(s) {
	case "on":
		return true, true
	case "off":
		return false, true
	}
	var st struct {
		Output *bool `json:"output"`
	}
	if json.Unmarshal(payload, &st) == nil && st.Output != nil {
		return *st.Output, true
	}
	return false, false
}

// tasmotaTopic is a Tasmota's %topic%: rack-r1 of tele/rack-r1/SENSOR.
func (p Plug) tasmotaTopic() string {
	dir, _, _ := cutLast(p.Topic)
	_, t, _ := strings.Cut(dir, "/")
	return t
}
