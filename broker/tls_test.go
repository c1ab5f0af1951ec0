package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate: a server one (with 127.0.0.1 as its address) or a client one.
func (ca *testCA) issue(t *testing.T, cn string, server bool, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writePEM writes a certificate and its key as PEM files in dir, the key with mode keyMode.
func writePEM(t *testing.T, dir, name string, c tls.Certificate, keyMode os.FileMode) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, keyMode); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// tlsBroker starts a broker with a TLS listener whose client certificates are signed by the
// returned CA. The server certificate is signed by the same CA.
func tlsBroker(t *testing.T, users *auth.Users) (*Broker, *testCA) {
	t.Helper()
	ca := newTestCA(t, "pirack test CA")
	dir := t.TempDir()
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, "control", true, time.Now().Add(time.Hour)), 0o600)
	caFile := filepath.Join(dir, "clients-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, t.TempDir(), users, true, func(c *Config) {
		c.TLS = &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	})
	return b, ca
}

// dialTLS connects a paho client over TLS (scheme ssl:// or tls://), trusting ca, presenting
// cert if it is not nil.
func dialTLS(t *testing.T, b *Broker, scheme string, ca *testCA, cert *tls.Certificate, id, user, pass string) (*client, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
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
			agent.publish(t, topics.MetricsTopic("r1", macA), 1, false, "over "+scheme)
			if m := watcher.next(t); string(m.Payload()) != "over "+scheme {
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
	rogue := newTestCA(t, "rogue CA")
	later := time.Now().Add(time.Hour)
	certA := ca.issue(t, macA, false, later)
	certB := ca.issue(t, macB, false, later)
	certUnknown := ca.issue(t, "b827eb0000ff", false, later) // no such user
	certPerson := ca.issue(t, "admin", false, later)         // a user, but not an agent, nor a MAC
	certUpper := ca.issue(t, strings.ToUpper(macA), false, later)
	certRogue := rogue.issue(t, macA, false, later)
	certExpired := ca.issue(t, macA, false, time.Now().Add(-time.Minute))

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
				c.publish(t, topics.ButtonTopic(u.Row, u.MAC), 1, false, "forged?")
				c.publish(t, topics.ButtonTopic("r1", other(u.MAC)), 1, false, "forged")
				c.publish(t, topics.MetricsTopic(u.Row, u.MAC), 1, false, tc.name)
				for _, want := range []string{"forged?", tc.name} {
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
	ca := newTestCA(t, "pirack test CA")
	dir := t.TempDir()
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, "control", true, time.Now().Add(time.Hour)), 0o600)
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.TLS = &TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	})
	cert := ca.issue(t, macA, false, time.Now().Add(time.Hour))
	if _, err := dialTLS(t, b, "ssl", ca, &cert, macA, "", ""); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("certificate without ClientCAFile: %v, want refused (no username)", err)
	}
	if _, err := dialTLS(t, b, "ssl", ca, &cert, macA, macA, password); err != nil {
		t.Fatalf("agent with a password: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := newTestCA(t, "pirack test CA")
	dir := t.TempDir()
	server := ca.issue(t, "control", true, time.Now().Add(time.Hour))
	certFile, keyFile := writePEM(t, dir, "server", server, 0o600)
	_, looseKey := writePEM(t, dir, "loose", server, 0o644)
	_, groupKey := writePEM(t, dir, "group", server, 0o640)
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
			_, k := writePEM(t, dir, "other", ca.issue(t, "x", true, time.Now().Add(time.Hour)), 0o600)
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
	ca := newTestCA(t, "pirack test CA")
	certFile, keyFile := writePEM(t, t.TempDir(), "server", ca.issue(t, "control", true, time.Now().Add(time.Hour)), 0o600)
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
