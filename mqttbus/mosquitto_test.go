package mqttbus

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// mosquittoBin is Debian's Mosquitto. Set PIRACK_MOSQUITTO_TESTS=require to fail, rather
// than skip, when it is missing.
const mosquittoBin = "/usr/sbin/mosquitto"

// startMosquitto runs an anonymous, non-persistent Mosquitto on a free 127.0.0.1 port for
// the test and returns its URL. A small private harness: a shared one may replace it.
func startMosquitto(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		if os.Getenv("PIRACK_MOSQUITTO_TESTS") == "require" {
			t.Fatalf("mosquitto is required (PIRACK_MOSQUITTO_TESTS=require): %v", err)
		}
		t.Skipf("mosquitto not installed (%v); set PIRACK_MOSQUITTO_TESTS=require to fail instead", err)
	}
	addr := reservePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mosquittoBin, "-c", conf)
	w := testlog.NewWriter(t)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Ready once it accepts connections.
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "mqtt://" + addr
		}
		select {
		case err := <-exited:
			t.Fatalf("mosquitto exited at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s within %v", addr, wait)
		}
	}
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
