package topics

import "strings"

// Home Assistant's MQTT discovery topics, as its MQTT integration uses them with its default
// settings. They are not pirack's contract (no "v", not under Root): pirack writes Home
// Assistant's format there (package homeassistant), and spells the topics only here.
const (
	// HADiscoveryPrefix is Home Assistant's default discovery prefix.
	HADiscoveryPrefix = "homeassistant"
	// HAStatusTopic is where Home Assistant publishes its birth ("online") and its Will
	// ("offline").
	HAStatusTopic = HADiscoveryPrefix + "/status"
	// HAFilter is what Home Assistant subscribes to for discovery: its whole prefix.
	HAFilter = HADiscoveryPrefix + "/#"
	// HADeviceConfigFilter matches every device-based discovery config.
	HADeviceConfigFilter = HADiscoveryPrefix + "/device/+/config"
)

// Home Assistant's birth and Will payloads on HAStatusTopic.
const (
	HAOnline  = "online"
	HAOffline = "offline"
)

// HADeviceConfigTopic is the retained device-based discovery config of one device:
// homeassistant/device/<id>/config. id must be HAObjectID's.
func HADeviceConfigTopic(id string) string {
	return HADiscoveryPrefix + "/device/" + id + "/config"
}

// HADeviceID returns the device id of a device-based discovery topic, or false for any other
// topic.
func HADeviceID(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, HADiscoveryPrefix+"/device/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/config")
	if !ok || id == "" || HAObjectID(id) != id {
		return "", false
	}
	return id, true
}

// HAStateTopic is the retained state of a device that has no pirack topic of its own (the
// control center): homeassistant/pirack/<id>/state. Home Assistant's discovery reads only
// topics ending in /config, so it leaves this one alone.
func HAStateTopic(id string) string {
	return HADiscoveryPrefix + "/pirack/" + id + "/state"
}

// HAObjectID turns s into an id Home Assistant accepts in a discovery topic, [a-zA-Z0-9_-]:
// every other byte becomes '_'.
func HAObjectID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			b[i] = '_'
		}
	}
	return string(b)
}
