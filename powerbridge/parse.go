package powerbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrMalformed is returned (wrapped, with what was wrong) by the parsers for a payload that is
// not the plug's documented shape or carries an impossible value.
var ErrMalformed = errors.New("malformed plug payload")

// Reading is what a plug measured, on the mains side of the row's supply. A nil field was not
// in the message.
type Reading struct {
	Watts *float64 // active power, W
	Volts *float64 // mains voltage, V
	Amps  *float64 // mains current, A
}

// merge returns r updated with the quantities newer carries: Shelly Gen2 notifications and
// Shelly Gen1 topics each carry only some of them.
func (r Reading) merge(newer Reading) Reading {
	if newer.Watts != nil {
		r.Watts = newer.Watts
	}
	if newer.Volts != nil {
		r.Volts = newer.Volts
	}
	if newer.Amps != nil {
		r.Amps = newer.Amps
	}
	return r
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseTasmotaSensor parses a Tasmota tele/<topic>/SENSOR message of a plug with energy
// monitoring:
//
//	{"Time":"2024-03-10T14:22:05","ENERGY":{"Total":41.237,...,"Power":17,"Voltage":231,"Current":0.125}}
//
// On multi-channel devices (Sonoff Dual, Shelly 2.5 running Tasmota) Power and Current are
// arrays, one value per channel: they are summed, as the row is fed through all of them.
// A Voltage array gives its first value. A message without ENERGY.Power is malformed.
func ParseTasmotaSensor(payload []byte) (Reading, error) {
	var m struct {
		Energy map[string]json.RawMessage `json:"ENERGY"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return Reading{}, malformed("not a Tasmota SENSOR message: %v", err)
	}
	if m.Energy == nil {
		return Reading{}, malformed("no ENERGY object: is this a Tasmota device with energy monitoring?")
	}
	power, err := numbers("ENERGY.Power", m.Energy["Power"])
	if err != nil {
		return Reading{}, err
	}
	if len(power) == 0 {
		return Reading{}, malformed("ENERGY has no Power")
	}
	current, err := numbers("ENERGY.Current", m.Energy["Current"])
	if err != nil {
		return Reading{}, err
	}
	voltage, err := numbers("ENERGY.Voltage", m.Energy["Voltage"])
	if err != nil {
		return Reading{}, err
	}
	var r Reading
	if r.Watts, err = sum("ENERGY.Power", power); err != nil {
		return Reading{}, err
	}
	if len(current) > 0 {
		if r.Amps, err = sum("ENERGY.Current", current); err != nil {
			return Reading{}, err
		}
	}
	if len(voltage) > 0 {
		if r.Volts, err = quantity("ENERGY.Voltage", voltage[0]); err != nil {
			return Reading{}, err
		}
	}
	return r, nil
}

// gen2Meter is the power part of a Shelly Gen2 switch or pm1 component status.
type gen2Meter struct {
	APower  *float64 `json:"apower"`
	Voltage *float64 `json:"voltage"`
	Current *float64 `json:"current"`
}

func (m gen2Meter) reading() (Reading, error) {
	var r Reading
	var err error
	for _, f := range []struct {
		name string
		in   *float64
		out  **float64
	}{{"apower", m.APower, &r.Watts}, {"voltage", m.Voltage, &r.Volts}, {"current", m.Current, &r.Amps}} {
		if f.in == nil {
			continue
		}
		if *f.out, err = quantity(f.name, *f.in); err != nil {
			return Reading{}, err
		}
	}
	return r, nil
}

// ParseShellyGen2Status parses the status a Shelly Gen2, Gen3, Plus or Pro device publishes on
// <prefix>/status/switch:<n> (or pm1:<n>) when "Generic status update over MQTT" is on:
//
//	{"id":0,"source":"timer","output":true,"apower":16.9,"voltage":230.4,"current":0.118,"aenergy":{...},...}
//
// A status without apower (a Shelly Plus 1, which does not meter) is malformed.
func ParseShellyGen2Status(payload []byte) (Reading, error) {
	var m gen2Meter
	if err := json.Unmarshal(payload, &m); err != nil {
		return Reading{}, malformed("not a Shelly status: %v", err)
	}
	if m.APower == nil {
		return Reading{}, malformed("status has no apower: does this Shelly meter power?")
	}
	return m.reading()
}

// ParseShellyGen2Event parses a message a Shelly Gen2 device publishes on <prefix>/events/rpc
// when "RPC status notifications over MQTT" is on, and returns what it says of component (such
// as "switch:0"):
//
//	{"src":"...","dst":"...","method":"NotifyStatus","params":{"ts":1710080541.27,"switch:0":{"id":0,"apower":18.2,"current":0.127}}}
//
// NotifyStatus carries only what changed, so a reading may have some quantities, or none (a
// notification of the energy counters only, sent every minute: the power is then unchanged).
// ok is false, with no error, for a message that is not about component: another method, such
// as NotifyEvent, or another component.
func ParseShellyGen2Event(payload []byte, component string) (r Reading, ok bool, err error) {
	var m struct {
		Method string                     `json:"method"`
		Params map[string]json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return Reading{}, false, malformed("not a Shelly RPC notification: %v", err)
	}
	if m.Method != "NotifyStatus" && m.Method != "NotifyFullStatus" {
		return Reading{}, false, nil
	}
	raw, found := m.Params[component]
	if !found {
		return Reading{}, false, nil
	}
	var meter gen2Meter
	if err := json.Unmarshal(raw, &meter); err != nil {
		return Reading{}, false, malformed("params[%q]: %v", component, err)
	}
	if r, err = meter.reading(); err != nil {
		return Reading{}, false, err
	}
	return r, true, nil
}

// ParseShellyGen1Value parses the plain number a Shelly Gen1 device publishes on each of its
// measurement topics, such as shellies/<id>/relay/0/power ("16.93").
func ParseShellyGen1Value(payload []byte) (float64, error) {
	s := string(bytes.TrimSpace(payload))
	if s == "" {
		return 0, malformed("empty message, want a number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, malformed("%q is not a number", clip(s))
	}
	p, err := quantity("value", v)
	if err != nil {
		return 0, err
	}
	return *p, nil
}

// quantity checks one measured value: a finite number, not negative. A negative power is what
// an energy meter reads with its clamp on backwards, or when it measures a feed-in.
func quantity(name string, v float64) (*float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, malformed("%s is %v", name, v)
	}
	if v < 0 {
		return nil, malformed("%s %v is negative (an energy meter's clamp on backwards?)", name, v)
	}
	return &v, nil
}

// sum adds the channels of a multi-channel reading.
func sum(name string, vs []float64) (*float64, error) {
	var total float64
	for i, v := range vs {
		if _, err := quantity(fmt.Sprintf("%s[%d]", name, i), v); err != nil {
			return nil, err
		}
		total += v
	}
	total = math.Round(total*1000) / 1000 // 9.6+5.1 is 14.7, not 14.700000000000001
	return &total, nil
}

// numbers parses a field Tasmota writes as a number, or as an array of numbers (one per
// channel). A missing field or null gives none.
func numbers(name string, raw json.RawMessage) ([]float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var vs []float64
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &vs); err != nil {
			return nil, malformed("%s: want an array of numbers, got %s", name, clip(string(raw)))
		}
		return vs, nil
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, malformed("%s: want a number, got %s", name, clip(string(raw)))
	}
	return []float64{v}, nil
}

// clip keeps hostile input out of errors and logs at a bounded length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
