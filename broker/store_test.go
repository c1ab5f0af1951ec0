package broker

import "testing"

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
