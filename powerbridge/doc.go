// Package powerbridge republishes the energy readings of Tasmota and Shelly smart plugs as
// pirack row power: an operator who already feeds each row of Pis through a smart plug maps
// the plug to its row in a JSON file (conventionally <data-dir>/power-bridge.json), and the
// bridge turns each plug message into a topics.Power on topics.PowerTopic(row), retained, QoS 0,
// which the dashboard, the history and the alerts already read.
//
// The package has three parts: the configuration file (File, LoadFile, ParseFile), pure
// parsers for each plug's payloads (ParseTasmotaSensor, ParseShellyGen2Status,
// ParseShellyGen2Event, ParseShellyGen1Value), and the Bridge, which subscribes to the plugs'
// topics on a Bus (the embedded broker) and publishes.
//
// Only watts are republished. A plug measures the mains side of the row's supply (230 V or
// 120 V, a tenth of an amp), while the contract's volts and amps are the row's 5 V side: the
// dashboard shows volts to spot a 5 V sag, and a Pi with an INA219 reports a few amps. Mains
// figures there would hide a sag and mix two scales in the row's history. Watts compare across
// both sides, with one caveat: a plug's watts include the supply's conversion loss, typically
// 10-20% more than the 5 V side delivers.
//
// Readings are stamped with the control center's clock when they arrive: plugs' clocks and
// time zones are unreliable (Tasmota's "Time" is local time without a zone, and a plug without
// NTP starts at 1970). The broker lets users of role plug publish only to the plug topics the
// file names (File.PlugTopics), never under the pirack root.
package powerbridge
