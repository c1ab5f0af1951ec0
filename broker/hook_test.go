package broker

import (
	"strings"
	"testing"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

func TestFilterWithin(t *testing.T) {
	// Generic MQTT matching, tested on a neutral tree.
	for _, tc := range []struct {
		filter, allowed string
		want            bool
	}{
		{"a/#", "a/#", true},
		{"a", "a/#", true},
		{"a/r1/m1/status", "a/#", true},
		{"a/+/+/status", "a/#", true},
		{"a/+/#", "a/#", true},
		{"#", "a/#", false},
		{"+/r1/x", "a/#", false},
		{"+", "a/#", false},
		{"$SYS/#", "a/#", false},
		{"as/x", "a/#", false},
		{"", "a/#", false},
		{"a/m1/led", "a/m1/led", true},
		{"a/+/led", "a/m1/led", false},
		{"a/m1/#", "a/m1/led", false},
		{"a/m1/led/x", "a/m1/led", false},
		{"a/m1", "a/m1/led", false},
		{"a/x/led", "a/+/led", true},
		{"a/+/led", "a/+/led", true},
		{"a/#", "a/+/led", false},
		{"$SYS/x", "+/x", false},
		{"$SYS/x", "#", false},
		{"a/b", "#", true},
	} {
		if got := filterWithin(tc.filter, tc.allowed); got != tc.want {
			t.Errorf("filterWithin(%q, %q) = %v, want %v", tc.filter, tc.allowed, got, tc.want)
		}
	}
}

// The authorization matrix, checked on the pure functions; broker_test.go checks the same
// rules end to end through a real broker.
func TestAuthorizationMatrix(t *testing.T) {
	const mac, other = "b827eb000001", "b827eb000002"
	agent := auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: "r1"}
	viewer := auth.User{Name: "v", Role: auth.RoleViewer}
	automation := auth.User{Name: "a", Role: auth.RoleAutomation}
	admin := auth.User{Name: "root", Role: auth.RoleAdmin}
	none := auth.User{Name: "x", Role: "nonsense"}

	for _, tc := range []struct {
		name  string
		user  auth.User
		topic string
		read  bool // subscribe to it as a filter
		write bool // publish to it
		will  bool // leave a Will on it
	}{
		{"agent own status", agent, topics.StatusTopic("r1", mac), false, true, true},
		{"agent own metrics", agent, topics.MetricsTopic("r1", mac), false, true, false},
		{"agent own button", agent, topics.ButtonTopic("r1", mac), false, true, false},
		{"agent other MAC metrics", agent, topics.MetricsTopic("r1", other), false, false, false},
		{"agent own MAC in another row", agent, topics.MetricsTopic("r2", mac), false, false, false},
		{"agent other MAC status", agent, topics.StatusTopic("r1", other), false, false, false},
		{"agent own LED", agent, topics.LEDTopic(mac), true, false, false},
		{"agent other LED", agent, topics.LEDTopic(other), false, false, false},
		{"agent everything", agent, topics.AllFilter, false, false, false},
		{"agent row power", agent, topics.PowerTopic("r1"), false, false, false},
		{"agent SYS", agent, "$SYS/#", false, false, false},
		{"viewer everything", viewer, topics.AllFilter, true, false, false},
		{"viewer shared everything", viewer, "$share/g/" + topics.AllFilter, true, false, false},
		{"viewer LED", viewer, topics.LEDTopic(mac), true, false, false},
		{"viewer status", viewer, topics.StatusTopic("r1", mac), true, false, false},
		{"viewer hash", viewer, "#", false, false, false},
		{"viewer SYS", viewer, "$SYS/#", false, false, false},
		{"viewer other tree", viewer, "home/kitchen", false, false, false},
		{"automation everything", automation, topics.AllFilter, true, false, false},
		{"automation LED", automation, topics.LEDTopic(mac), true, true, true},
		{"automation status", automation, topics.StatusTopic("r1", mac), true, false, false},
		{"automation malformed LED", automation, topics.LEDTopic(strings.ToUpper(mac)), true, false, false},
		{"automation SYS", automation, "$SYS/#", false, false, false},
		{"admin SYS", admin, "$SYS/#", true, true, true},
		{"admin anything", admin, "home/kitchen", true, true, true},
		{"admin status", admin, topics.StatusTopic("r1", mac), true, true, true},
		{"unknown role", none, topics.AllFilter, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAllowed(tc.user, tc.topic); got != tc.read {
				t.Errorf("read %q: %v, want %v", tc.topic, got, tc.read)
			}
			if got := writeAllowed(tc.user, tc.topic); got != tc.write {
				t.Errorf("write %q: %v, want %v", tc.topic, got, tc.write)
			}
			if got := willAllowed(tc.user, tc.topic); got != tc.will {
				t.Errorf("Will on %q: %v, want %v", tc.topic, got, tc.will)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	caps := Config{}.withDefaults().capabilities()
	if caps.MaximumClients != 4096 {
		t.Errorf("MaximumClients %d, want 4096", caps.MaximumClients)
	}
	if caps.MaximumPacketSize != 64<<10 {
		t.Errorf("MaximumPacketSize %d, want 64 KiB", caps.MaximumPacketSize)
	}
	if caps.MaximumMessageExpiryInterval != 30*24*3600 {
		t.Errorf("MaximumMessageExpiryInterval %d, want 30 days", caps.MaximumMessageExpiryInterval)
	}
	if caps.MaximumSessionExpiryInterval != 7*24*3600 {
		t.Errorf("MaximumSessionExpiryInterval %d, want 7 days", caps.MaximumSessionExpiryInterval)
	}
	if caps.ReceiveMaximum == 0 || caps.MaximumQos != 2 {
		t.Errorf("capabilities not built from Mochi's defaults: %+v", caps)
	}
	if c := (Config{}).withDefaults(); c.Addr != ":1883" || c.ConnectTimeout != DefaultConnectTimeout || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
}
