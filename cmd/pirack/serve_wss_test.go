package main

import (
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/internal/testcert"
)

// --mqtt-wss serves MQTT over secure WebSocket with the --mqtt-cert certificate.
func TestServeMQTTWSS(t *testing.T) {
	dir := dataDirWithAdmin(t)
	cert := testcert.SelfSigned(t, "rack-control", "127.0.0.1")
	certFile, keyFile := cert.WriteFiles(t, t.TempDir(), "mqtt")
	cfg := serveConfig{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", LogLevel: "info",
		MQTTTLSAddr: "127.0.0.1:0", MQTTCert: certFile, MQTTKey: keyFile, MQTTWSSAddr: "127.0.0.1:0"}
	cc, logs := serveControlCenter(t, cfg)
	wss := cc.Broker().WSSAddr()
	if wss == "" || !strings.Contains(logs.String(), "mqtt_wss="+wss) {
		t.Fatalf("wss listener %q not in the start log:\n%s", wss, logs.String())
	}

	got := make(chan string, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("wss://" + wss + "/mqtt").
		SetTLSConfig(&tls.Config{RootCAs: cert.Pool(), MinVersion: tls.VersionTLS12}).
		SetClientID("browser").SetUsername("admin").SetPassword("admin-password").
		SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over wss: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("test/wss", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe over wss: %v", tok.Error())
	}
	if tok := c.Publish("test/wss", 1, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over wss: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("own publish not received over wss")
	}
}

// --mqtt-wss without a certificate stops serve before anything listens, saying what to add.
func TestServeMQTTWSSNeedsCertificate(t *testing.T) {
	dir := dataDirWithAdmin(t)
	err := run(t.Context(), []string{"serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--mqtt-wss", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--mqtt-wss") || !strings.Contains(err.Error(), "--mqtt-cert") {
		t.Fatalf("serve --mqtt-wss without a certificate: %v, want an error naming --mqtt-cert", err)
	}
}
