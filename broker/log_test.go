package broker

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/internal/testlog"
)

func TestMochiLogHandlerLowersOnlyTheFreshStoreError(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(mochiLogHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("hook", "bolt-db")

	log.Error("failed to get data", "error", bolt.ErrKeyNotFound, "key", "SYS")
	if buf.Len() != 0 {
		t.Fatalf("harmless fresh-store error was logged at info level: %s", buf.String())
	}
	log.Error("failed to get data", "error", errors.New("disk I/O error"), "key", "SYS")
	log.Error("failed to delete data", "error", bolt.ErrKeyNotFound)
	if got := strings.Count(buf.String(), "level=ERROR"); got != 2 {
		t.Fatalf("real errors must stay errors; got %d ERROR lines:\n%s", got, buf.String())
	}
}

// Wills and values of types the handler does not know are logged without their contents;
// TestMochiLogsNoSecrets covers packets through a real broker.
func TestMochiLogHandlerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(mochiLogHandler{slog.NewJSONHandler(&buf, nil)}).With("extra", struct{ Secret string }{"with-secret"})
	will := mqtt.Will{TopicName: "rack/r1/b827eb000001/status", Payload: []byte("will-secret"), Qos: 1}
	log.Error("parse will error", "will", will, "nested", slog.GroupValue(slog.Any("pk", &packets.Packet{Payload: []byte("nested-secret")})))
	out := buf.String()
	for _, secret := range []string{"will-secret", "with-secret", "nested-secret", "d2lsbC1zZWNyZXQ="} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q: %s", secret, out)
		}
	}
	for _, want := range []string{`"topic":"rack/r1/b827eb000001/status"`, `"payload_bytes":11`, `"type":"RESERVED"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}

// A second CONNECT on an open connection is logged by Mochi with the packet it was: the log
// must say which packet, but carry neither its password nor, for a bad publish, its payload.
func TestMochiLogsNoSecrets(t *testing.T) {
	logs := new(testlog.Buffer)
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.Logger = newBufferLogger(t, logs) })
	const secret = "second-connect-secret-42"
	const payload = "payload-secret-43"

	conn := rawConnect(t, b.Addr(), connectPacket{id: "twice", user: "admin", pass: password})
	expectConnack(t, conn, 0)
	if _, err := conn.Write(connectPacket{id: "twice", user: "admin", pass: secret}.bytes()); err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, conn)

	// A QoS 1 publish without a packet id fails Mochi's checks, which log the packet.
	conn = rawConnect(t, b.Addr(), connectPacket{id: "bad-publish", user: "admin", pass: password})
	expectConnack(t, conn, 0)
	if _, err := conn.Write(packet(0x32, str("home/x"), []byte{0, 0}, []byte(payload))); err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, conn)

	log := logs.String()
	for _, s := range []string{secret, payload, password} {
		// slog prints a []byte field as decimal numbers (text) or base64 (JSON).
		for _, form := range []string{s, strings.Trim(fmt.Sprint([]byte(s)), "[]"), base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(log, form) {
				t.Errorf("the log contains %q (as %q)", s, form)
			}
		}
	}
	for _, want := range []string{"error processing packet", "CONNECT", "PUBLISH"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the log:\n%s", log)
	}
}
