package mqttbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/topics"
)

// startMosquitto runs an anonymous Mosquitto on a free 127.0.0.1 port for the test and returns
// its URL (see internal/mosquittotest for when it skips).
func startMosquitto(t *testing.T) string {
	t.Helper()
	return "mqtt://" + mosquittotest.Start(t, mosquittotest.Options{AllowAnonymous: true}).Addr()
}

func TestMosquittoSubscribePublish(t *testing.T) {
	url := startMosquitto(t)
	other := pahoClient(t, url, "", "watcher", true)
	metrics := topics.MetricsTopic(row, mac)
	await(t, other.Publish(metrics, 1, true, encode(t, topics.Metrics{V: topics.Version, Seq: 1, TS: time.Now().UTC()})), "publish retained metrics")
	leds := pahoRecorder(t, other, topics.LEDTopic(mac))

	b := newBus(t, Config{URL: url})
	all := newRecorder()
	if err := b.Subscribe(topics.AllFilter, all.handle); err != nil {
		t.Fatal(err)
	}
	connect(t, b)
	all.expect(t, metrics, true)

	button := topics.ButtonTopic(row, mac)
	await(t, other.Publish(button, 1, false, buttonPayload(t, 3)), "publish button")
	if m := all.expect(t, button, false); m.QoS != 1 || !strings.Contains(string(m.Payload), `"seq":3`) {
		t.Errorf("button press arrived as %+v", m)
	}
	for _, qos := range []byte{1, 0} {
		by := fmt.Sprintf("qos%d", qos)
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		err := b.Publish(ctx, bus.Message{Topic: topics.LEDTopic(mac), QoS: qos, Payload: ledPayload(t, by)})
		cancel()
		if err != nil {
			t.Fatalf("Publish QoS %d: %v", qos, err)
		}
		if got := ledBy(t, leds.expect(t, topics.LEDTopic(mac), false)); got != by {
			t.Errorf("watcher got the command of %q, want %s", got, by)
		}
	}
}
