package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// serverTLS writes a server certificate for 127.0.0.1 signed by ca, its key (0600) and ca as
// the client CAs, and returns the TLSConfig naming them, on 127.0.0.1:0.
func serverTLS(t *testing.T, ca *testCA) *TLSConfig {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, "control", true, time.Now().Add(time.Hour)), 0o600)
	caFile := filepath.Join(dir, "clients-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
}

// wssBroker starts a broker with plain TCP, mqtts and wss listeners. ca signs the server
// certificate and the agents' client certificates.
func wssBroker(t *testing.T, mods ...func(*Config)) (*Broker, *testCA) {
	t.Helper()
	ca := newTestCA(t, "pirack test CA")
	tc := serverTLS(t, ca)
	b := newBroker(t, t.TempDir(), testUsers(t), true, append([]func(*Config){func(c *Config) {
		c.TLS = tc
		c.WSSAddr = "127.0.0.1:0"
	}}, mods...)...)
	return b, ca
}

// clientTLS is a client's TLS configuration trusting ca, presenting cert if it is not nil.
func clientTLS(ca *testCA, cert *tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always present it, as dialTLS does.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg
}

// dialWSS connects a paho client over wss://, trusting ca, presenting cert if it is not nil.
func dialWSS(t *testing.T, b *Broker, ca *testCA, cert *tls.Certificate, id, user, pass string) (*client, error) {
	t.Helper()
	return dialURL(t, "wss://"+b.WSSAddr()+"/mqtt", clientTLS(ca, cert), id, user, pass)
}

// refusedByMQTT says whether err is a CONNACK refusal, as opposed to a failure before MQTT.
func refusedByMQTT(err error) bool {
	for _, e := range []error{pahopackets.ErrorRefusedBadUsernameOrPassword, pahopackets.ErrorRefusedNotAuthorised,
		pahopackets.ErrorRefusedIDRejected, pahopackets.ErrorRefusedServerUnavailable, pahopackets.ErrorRefusedBadProtocolVersion} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func TestSecureWebSocket(t *testing.T) {
	b, ca := wssBroker(t)
	if b.WSSAddr() == "" || b.WSSAddr() == b.TLSAddr() || b.WSSAddr() == b.Addr() || b.WSAddr() != "" {
		t.Fatalf("listeners: tcp %q, tls %q, ws %q, wss %q", b.Addr(), b.TLSAddr(), b.WSAddr(), b.WSSAddr())
	}
	browser, err := dialWSS(t, b, ca, nil, "browser", "viewer", password)
	if err != nil {
		t.Fatalf("viewer over wss: %v", err)
	}
	browser.subscribe(t, topics.AllFilter)

	// An agent on TCP reaches the browser on wss, and an automation on wss reaches the agent.
	checkAcrossTransports(t, b, browser, "wss", func(id, user, pass string) (*client, error) {
		return dialWSS(t, b, ca, nil, id, user, pass)
	})
	for _, want := range []string{"blink", "blink 2"} { // and never the viewer's "blink 3"
		if m := browser.next(t); string(m.Payload()) != want {
			t.Fatalf("browser got %s %q, want %q", m.Topic(), m.Payload(), want)
		}
	}

	t.Run("wrong password", func(t *testing.T) {
		if _, err := dialWSS(t, b, ca, nil, "x", "admin", "wrong-password"); !errors.Is(err, pahopackets.ErrorRefusedBadUsernameOrPassword) {
			t.Fatalf("%v, want %v", err, pahopackets.ErrorRefusedBadUsernameOrPassword)
		}
	})

	t.Run("client that does not trust the CA", func(t *testing.T) {
		_, err := dialWSS(t, b, newTestCA(t, "another CA"), nil, "x", "admin", password)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("%v, want the server certificate refused (unknown authority)", err)
		}
	})

	t.Run("plain ws to the wss port", func(t *testing.T) {
		_, err := dialURL(t, "ws://"+b.WSSAddr()+"/mqtt", nil, "x", "admin", password)
		if err == nil || refusedByMQTT(err) {
			t.Fatalf("%v, want the WebSocket handshake refused", err)
		}
		// The broker answers the clear-text request with an HTTP error, and never upgrades it.
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+b.WSSAddr()+"/mqtt", nil)
		if err == nil {
			ws.Close()
			t.Fatal("plain WebSocket upgraded on the wss port")
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain WebSocket on the wss port: %v, response %v; want 400", err, resp)
		}
	})

	// Client certificates work as on mqtts: an agent's authenticates it without a password.
	later := time.Now().Add(time.Hour)
	t.Run("agent certificate", func(t *testing.T) {
		cert := ca.issue(t, macB, false, later)
		pi, err := dialWSS(t, b, ca, &cert, macB, "", "")
		if err != nil {
			t.Fatalf("agent with its certificate over wss: %v", err)
		}
		pi.publish(t, topics.ButtonTopic("r1", macA), 1, false, valid(topics.ButtonTopic("r1", macA), "forged")) // another Pi's topic: dropped
		own := valid(topics.MetricsTopic("r2", macB), "by certificate")
		pi.publish(t, topics.MetricsTopic("r2", macB), 1, false, own)
		if m := browser.next(t); string(m.Payload()) != own {
			t.Fatalf("browser got %s %q", m.Topic(), m.Payload())
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		rogue := newTestCA(t, "rogue CA").issue(t, macB, false, later)
		if _, err := dialWSS(t, b, ca, &rogue, macB, "", ""); err == nil || refusedByMQTT(err) {
			t.Fatalf("%v, want the TLS handshake refused", err)
		}
	})
}

// A socket that never starts its TLS handshake, and a wss connection that upgrades and sends no
// CONNECT, are closed after ConnectTimeout.
func TestSecureWebSocketDeadlines(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b, ca := wssBroker(t, func(c *Config) { c.ConnectTimeout = timeout })

	conn, err := net.Dial("tcp", b.WSSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadAll(conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a socket without a TLS handshake kept its connection")
	}
	if d := time.Since(start); d < timeout*8/10 {
		t.Errorf("closed after %v, before the %v timeout", d, timeout)
	}

	dialer := websocket.Dialer{TLSClientConfig: clientTLS(ca, nil), HandshakeTimeout: wait}
	ws, _, err := dialer.Dial("wss://"+b.WSSAddr()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	start = time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	if _, _, err := ws.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent wss connection: %v, want closed by the broker", err)
	}
	if d := time.Since(start); d < timeout*8/10 {
		t.Errorf("closed after %v, before the %v timeout", d, timeout)
	}
}

func TestSecureWebSocketConfigErrors(t *testing.T) {
	ca := newTestCA(t, "pirack test CA")
	_, looseKey := writePEM(t, t.TempDir(), "loose", ca.issue(t, "control", true, time.Now().Add(time.Hour)), 0o644)
	loose := serverTLS(t, ca)
	loose.KeyFile = looseKey
	for _, tc := range []struct {
		name     string
		tls      *TLSConfig
		want     string
		wantWrap error
	}{
		{"without TLS", nil, "WSSAddr needs Config.TLS", nil},
		{"key readable by others", loose, "chmod 600 " + looseKey, auth.ErrInsecureFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{DataDir: t.TempDir(), Users: testUsers(t), TLS: tc.tls, WSSAddr: "127.0.0.1:0", Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tc.want)
			}
			if tc.wantWrap != nil && !errors.Is(err, tc.wantWrap) {
				t.Errorf("%v does not wrap %v", err, tc.wantWrap)
			}
		})
	}
}
