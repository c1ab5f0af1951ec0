package broker

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

func TestPacketIDFromKey(t *testing.T) {
	for key, want := range map[string]uint16{
		"if_b827eb000001:7":     7,
		"if_pirack-cli-ab:12:9": 9, // a client id may itself hold a colon
		"if_x:65535":            65535,
		"if_x:65536":            0,
		"if_x:":                 0,
		"if_x":                  0,
	} {
		if got := packetIDFromKey(key); got != want {
			t.Errorf("packetIDFromKey(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestBoltStoreProvidesRetained: Mochi calls a hook's method only if its Provides says so; the
// retained-message methods boltStore overrides must stay among those the bolt hook provides.
func TestBoltStoreProvidesRetained(t *testing.T) {
	h := newBoltStore(retainedConfig{})
	for name, b := range map[string]byte{
		"OnRetainMessage":        mqtt.OnRetainMessage,
		"OnRetainedExpired":      mqtt.OnRetainedExpired,
		"StoredRetainedMessages": mqtt.StoredRetainedMessages,
		"StoredInflightMessages": mqtt.StoredInflightMessages,
	} {
		if !h.Provides(b) {
			t.Errorf("boltStore does not provide %s", name)
		}
	}
}
