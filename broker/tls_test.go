package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/internal/testcert"
	"github.com/pirack/pirack/topics"
)

// tlsBroker starts a broker with a TLS listener whose client certificates are signed by the
// returned CA. The server certificate is signed by the same CA.
func tlsBroker(t *testing.T, users *auth.Users) (*Broker, *testcert.CA) {
	t.Helper()
	ca := testcert.NewCA(t, "pirack test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "clients-ca.pem")
	b := newBroker(t, t.TempDir(), users, true, func(c *Config) {
		c.TLS = &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	})
	return b, ca
}

// dialTLS connects a paho client over TLS (scheme ssl:// or tls://), trusting ca, presenting
// cert if it is not nil.
func dialTLS(t *testing.T, b *Broker, scheme string, ca *testcert.CA, cert *tls.Certificate, id, user, pass string) (*client, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always present it: Go's client would otherwise leave out a certificate that the
		// server's list of acceptable CAs does not name, and the server would never see it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := &client{msgs: make(chan paho.Message, 100), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker(scheme + "://" + b.TLSAddr()).
		SetTLSConfig(cfg).
		SetClientID(id).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect %s over TLS: no CONNACK within %v", id, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func TestTLSPassword(t *testing.T) {
	b, ca := tlsBroker(t, testUsers(t))
	if b.Addr() == "" || b.TLSAddr() == "" || b.Addr() == b.TLSAddr() {
		t.Fatalf("listeners: tcp %q, tls %q", b.Addr(), b.TLSAddr())
	}
	for _, scheme := range []string{"ssl", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			watcher, err := dialTLS(t, b, scheme, ca, nil, "watcher-"+scheme, "admin", password)
			if err != nil {
				t.Fatalf("admin with a password over %s://: %v", scheme, err)
			}
			watcher.subscribe(t, topics.AllFilter)
			agent, err := dialTLS(t, b, scheme, ca, nil, macA, macA, password)
			if err != nil {
				t.Fatalf("agent with a password, no certificate: %v", err)
			}
			over := valid(topics.MetricsTopic("r1", macA), "over "+scheme)
			agent.publish(t, topics.MetricsTopic("r1", macA), 1, false, over)
			if m := watcher.next(t); string(m.Payload()) != over {
				t.Fatalf("watcher got %q", m.Payload())
			}
			agent.Disconnect(0)
			if _, err := dialTLS(t, b, scheme, ca, nil, "x", "admin", "wrong-password"); !errors.Is(err, pahopackets.ErrorRefusedBadUsernameOrPassword) {
				t.Fatalf("wrong password over TLS: %v", err)
			}
		})
	}
}

func TestTLSClientCertificates(t *testing.T) {
	users := testUsers(t)
	b, ca := tlsBroker(t, users)
	rogue := testcert.NewCA(t, "rogue CA")
	certA := ca.Client(t, macA).TLS
	certB := ca.Client(t, macB).TLS
	certUnknown := ca.Client(t, "b827eb0000ff").TLS // no such user
	certPerson := ca.Client(t, "admin").TLS         // a user, but not an agent, nor a MAC
	certUpper := ca.Client(t, strings.ToUpper(macA)).TLS
	certRogue := rogue.Client(t, macA).TLS
	certExpired := ca.Client(t, macA, testcert.Validity(time.Now().Add(-time.Hour), time.Now().Add(-time.Minute))).TLS

	watcher := mustDial(t, b, "watcher", "admin")
	watcher.subscribe(t, topics.AllFilter)

	for _, tc := range []struct {
		name           string
		cert           *tls.Certificate
		id, user, pass string
		wantErr        error // nil: accepted
		handshake      bool  // refused by the TLS handshake, before MQTT
	}{
		{name: "certificate alone", cert: &certA, id: macA},
		{name: "certificate and its username", cert: &certA, id: macA, user: macA},
		{name: "certificate, username and right password", cert: &certA, id: macA, user: macA, pass: password},
		{name: "certificate and a wrong password", cert: &certA, id: macA, user: macA, pass: "wrong-password", wantErr: pahopackets.ErrorRefusedBadUsernameOrPassword},
		{name: "certificate with another agent's client id", cert: &certA, id: macB, wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "certificate with another agent's username and password", cert: &certA, id: macB, user: macB, pass: password, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "certificate with the admin's username and password", cert: &certA, id: "root", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "certificate with a client id that is not a MAC", cert: &certA, id: "pi-1", wantErr: pahopackets.ErrorRefusedIDRejected},
		{name: "certificate of an unknown agent", cert: &certUnknown, id: "b827eb0000ff", wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "certificate whose CN is not a MAC", cert: &certPerson, id: "root", user: "admin", pass: password, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "certificate whose CN is a MAC in capitals", cert: &certUpper, id: macA, wantErr: pahopackets.ErrorRefusedNotAuthorised},
		{name: "certificate from another CA", cert: &certRogue, id: macA, handshake: true},
		{name: "expired certificate", cert: &certExpired, id: macA, handshake: true},
		{name: "no certificate, no password", id: macA, user: macA, wantErr: pahopackets.ErrorRefusedBadUsernameOrPassword},
		{name: "other agent's certificate, right client id", cert: &certB, id: macB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialTLS(t, b, "ssl", ca, tc.cert, tc.id, tc.user, tc.pass)
			switch {
			case tc.handshake:
				if err == nil {
					t.Fatal("connection accepted")
				}
				if errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) || errors.Is(err, pahopackets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
					t.Fatalf("refused by MQTT (%v), want by the TLS handshake", err)
				}
			case tc.wantErr == nil:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				// Authenticated as its agent: its own topics go through, others' are dropped.
				u, _ := users.Lookup(tc.id)
				own, forged, last := valid(topics.ButtonTopic(u.Row, u.MAC), "forged?"), valid(topics.ButtonTopic("r1", other(u.MAC)), "forged"), valid(topics.MetricsTopic(u.Row, u.MAC), tc.name)
				c.publish(t, topics.ButtonTopic(u.Row, u.MAC), 1, false, own)
				c.publish(t, topics.ButtonTopic("r1", other(u.MAC)), 1, false, forged)
				c.publish(t, topics.MetricsTopic(u.Row, u.MAC), 1, false, last)
				for _, want := range []string{own, last} {
					if m := watcher.next(t); string(m.Payload()) != want {
						t.Fatalf("watcher got %s %q, want %q", m.Topic(), m.Payload(), want)
					}
				}
				c.Disconnect(0)
			default:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("%v, want %v", err, tc.wantErr)
				}
			}
		})
	}

	// Removing the agent's user revokes its certificate.
	if err := users.Remove(macA); err != nil {
		t.Fatal(err)
	}
	if _, err := dialTLS(t, b, "ssl", ca, &certA, macA, "", ""); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("certificate of a removed agent: %v, want refused", err)
	}
}

// other returns the test agent MAC that is not mac.
func other(mac string) string {
	if mac == macA {
		return macB
	}
	return macA
}

// A client certificate on a listener without ClientCAFile is not asked for, so it counts for
// nothing: the password is what authenticates.
func TestTLSWithoutClientCA(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.TLS = &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	})
	cert := ca.Client(t, macA).TLS
	if _, err := dialTLS(t, b, "ssl", ca, &cert, macA, "", ""); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("certificate without ClientCAFile: %v, want refused (no username)", err)
	}
	if _, err := dialTLS(t, b, "ssl", ca, &cert, macA, macA, password); err != nil {
		t.Fatalf("agent with a password: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	dir := t.TempDir()
	server := ca.Server(t)
	certFile, keyFile := server.WriteFiles(t, dir, "server")
	looseKey := testcert.WriteFile(t, filepath.Join(dir, "loose.key"), server.KeyPEM, 0o644)
	groupKey := testcert.WriteFile(t, filepath.Join(dir, "group.key"), server.KeyPEM, 0o640)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"key readable by others", TLSConfig{CertFile: certFile, KeyFile: looseKey}, "chmod 600 " + looseKey},
		{"key readable by the group", TLSConfig{CertFile: certFile, KeyFile: groupKey}, "chmod 600 " + groupKey},
		{"no key", TLSConfig{CertFile: certFile}, "key file"},
		{"missing key", TLSConfig{CertFile: certFile, KeyFile: filepath.Join(dir, "none.key")}, "no such file"},
		{"key of another certificate", TLSConfig{CertFile: certFile, KeyFile: func() string {
			_, k := ca.Server(t).WriteFiles(t, dir, "other")
			return k
		}()}, "private key does not match"},
		{"client CAs not PEM", TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: notPEM}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.tls
			_, err := New(Config{DataDir: t.TempDir(), Users: testUsers(t), TLS: &cfg, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tc.want)
			}
			if tc.name == "key readable by others" && !errors.Is(err, auth.ErrInsecureFile) {
				t.Errorf("%v does not wrap auth.ErrInsecureFile", err)
			}
		})
	}
}

// TLS only: the plain listener can be switched off.
func TestDisableTCP(t *testing.T) {
	if _, err := New(Config{DataDir: t.TempDir(), Users: testUsers(t), DisableTCP: true, Logger: testLogger(t)}); err == nil {
		t.Error("New with every listener off succeeded")
	}
	ca := testcert.NewCA(t, "pirack test CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, t.TempDir(), "server")
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.DisableTCP = true
		c.TLS = &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	})
	if b.Addr() != "" {
		t.Errorf("plain TCP listening on %s", b.Addr())
	}
	if _, err := dialTLS(t, b, "ssl", ca, nil, "root", "admin", password); err != nil {
		t.Fatal(err)
	}
}

// testCA, newTestCA, issue and writePEM keep wss_test.go and ws_test.go on their old helper
// names; the certificates come from testcert.
type testCA struct {
	cert *x509.Certificate
	pem  []byte
	ca   *testcert.CA
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := testcert.NewCA(t, name)
	return &testCA{cert: ca.Cert, pem: ca.PEM, ca: ca}
}

// issue signs a leaf certificate valid until notAfter: a server one (for 127.0.0.1) or a
// client one for cn.
func (ca *testCA) issue(t *testing.T, cn string, server bool, notAfter time.Time) tls.Certificate {
	t.Helper()
	if server {
		return ca.ca.Server(t).TLS
	}
	return ca.ca.Client(t, cn, testcert.Validity(time.Now().Add(-time.Hour), notAfter)).TLS
}

// writePEM writes a certificate and its key as PEM files in dir, the key with mode keyMode.
func writePEM(t *testing.T, dir, name string, c tls.Certificate, keyMode os.FileMode) (certFile, keyFile string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile = testcert.WriteFile(t, filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
	keyFile = testcert.WriteFile(t, filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), keyMode)
	return certFile, keyFile
}
