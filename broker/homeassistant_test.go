package broker

import (
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// haClientID is shaped like the client id Home Assistant generates when none is configured:
// 22 base62 characters of a random UUID.
const haClientID = "4PLc2vQm9ZtK1rYbXw7sJd"

// haDefaults are the options of Home Assistant's MQTT integration left at their defaults:
// MQTT 3.1.1, a clean session, keepalive 60 s, and a Will "offline" on homeassistant/status
// at QoS 0, not retained (its birth is "online" on the same topic).
func haDefaults(o *paho.ClientOptions) {
	o.SetProtocolVersion(4).SetCleanSession(true).SetKeepAlive(60e9).
		SetWill(topics.HAStatusTopic, topics.HAOffline, 0, false)
}

// Home Assistant connects with its default options as a homeassistant user, and does what its
// MQTT integration does: birth, discovery subscription, state subscriptions, a Locate button
// press. It is refused what it does not need. Without the role it cannot connect at all.
func TestHomeAssistantDefaults(t *testing.T) {
	users := testUsers(t)
	if err := users.Add(auth.User{Name: "homeassistant", Role: auth.RoleHomeAssistant}, password); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, t.TempDir(), users, true)
	admin := mustDial(t, b, "admin-watch", "admin")
	admin.subscribe(t, "#")
	agent := mustDial(t, b, macA, macA, withWill(topics.StatusTopic("r1", macA)))
	agent.subscribe(t, topics.LEDTopic(macA))

	ha := mustDial(t, b, haClientID, "homeassistant", haDefaults)
	for _, f := range []string{topics.HAFilter, topics.HAStatusTopic, topics.MetricsTopic("r1", macA), topics.StatusTopic("r1", macA), topics.ButtonTopic("r1", macA), topics.PowerTopic("r1")} {
		if code := ha.subscribe(t, f); code >= 0x80 {
			t.Errorf("subscribe %s: SUBACK %#x, want granted", f, code)
		}
	}
	ha.publish(t, topics.HAStatusTopic, 0, false, topics.HAOnline) // its birth
	if m := admin.next(t); m.Topic() != topics.HAStatusTopic || string(m.Payload()) != topics.HAOnline {
		t.Fatalf("birth: admin got %s %q", m.Topic(), m.Payload())
	}
	for len(ha.msgs) > 0 {
		<-ha.msgs // its own birth, through homeassistant/#
	}
	// The Locate button: QoS 1, not retained, as the discovery config asks.
	ha.publish(t, topics.LEDTopic(macA), 1, false, `{"v":1,"action":"identify","by":"home-assistant"}`)
	if m := agent.next(t); m.Topic() != topics.LEDTopic(macA) {
		t.Fatalf("agent got %s, want its LED command", m.Topic())
	}
	admin.next(t)

	// What it may not do: write discovery configs (the control center's), speak for a Pi,
	// retain an LED command, read $SYS.
	for _, p := range []struct {
		topic  string
		retain bool
	}{
		{topics.HADeviceConfigTopic("pirack_" + macA), true},
		{topics.MetricsTopic("r1", macA), true},
		{topics.LEDTopic(macA), true},
		{"other/topic", false},
	} {
		ha.publish(t, p.topic, 1, p.retain, "{}")
	}
	ha.barrier(t)
	admin.barrier(t)
	select {
	case m := <-admin.msgs:
		t.Fatalf("a refused publish was delivered: %s %q", m.Topic(), m.Payload())
	default:
	}
	if code := ha.subscribe(t, auth.SysFilter); code < 0x80 {
		t.Errorf("subscribe $SYS/#: SUBACK %#x, want refused", code)
	}
	ha.expectConnected(t)

	// Other roles are refused at CONNECT for the Will alone: without it they connect.
	for _, u := range []string{"viewer", "auto"} {
		if _, err := dial(t, b, haClientID+"x"+u, u, password, haDefaults); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("%s with Home Assistant's defaults: connect = %v, want refused (its Will on %s)", u, err, topics.HAStatusTopic)
		}
		c := mustDial(t, b, haClientID+u, u, haDefaults, func(o *paho.ClientOptions) { o.UnsetWill() })
		c.Disconnect(0)
	}
}
