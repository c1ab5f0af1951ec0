package mqttbus

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/internal/testcert"
)

// tlsBroker starts an embedded broker with a TLS listener whose certificate ca signed, and
// returns its mqtts URL.
func tlsBroker(t *testing.T, ca *testcert.CA) string {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	b, err := broker.New(broker.Config{
		DisableTCP: true,
		TLS:        &broker.TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile},
		DataDir:    t.TempDir(),
		Users:      testUsers(t),
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return "mqtts://" + b.TLSAddr()
}

func TestTLS(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	url := tlsBroker(t, ca)
	t.Run("trusted", func(t *testing.T) {
		b := newBus(t, Config{URL: url, Username: ccUser, Password: password, CAFile: ca.WriteFile(t, t.TempDir(), "ca.pem")})
		connect(t, b)
	})
	t.Run("unknown CA", func(t *testing.T) {
		other := testcert.NewCA(t, "another CA")
		b := newBus(t, Config{URL: url, Username: ccUser, Password: password, CAFile: other.WriteFile(t, t.TempDir(), "ca.pem")})
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		err := b.Connect(ctx)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not signed by a CA the control center trusts") {
			t.Fatalf("Connect: %v, want ErrRefused saying the CA is unknown", err)
		}
	})
	t.Run("plain client on the TLS port", func(t *testing.T) {
		b := newBus(t, Config{URL: strings.Replace(url, "mqtts://", "mqtt://", 1), Username: ccUser, Password: password})
		ctx, cancel := context.WithTimeout(t.Context(), wait/5)
		defer cancel()
		if err := b.Connect(ctx); err == nil {
			t.Fatal("Connect in plain MQTT to a TLS port succeeded")
		}
	})
}
