package dashboard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key (with keyMode) to dir,
// and returns their paths and a pool that trusts the certificate.
func writeCert(t *testing.T, dir string, keyMode os.FileMode) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pirack test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), keyMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, keyMode); err != nil { // past the umask
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir(), 0o600)
	f := newFixture(t, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	base := "https://" + ln.Addr().String()
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	t.Cleanup(client.CloseIdleConnections)

	resp, err := client.Get(base + "/login")
	if err != nil {
		t.Fatalf("GET /login over HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /login: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != hstsHeader {
		t.Errorf("HSTS = %q, want %q", got, hstsHeader)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/login",
		strings.NewReader(url.Values{"user": {"admin"}, "password": {"admin-pw"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.Secure {
		t.Fatalf("login over HTTPS: %d, cookie %+v; want 303 and a Secure cookie", resp.StatusCode, session)
	}

	// Plain HTTP on the same port is not served.
	plain, err := http.Get("http://" + ln.Addr().String() + "/login")
	if err == nil {
		body, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK || strings.Contains(string(body), `name="password"`) {
			t.Errorf("plain HTTP got the login page: %d", plain.StatusCode)
		}
	}
}

func TestNoHSTSOverPlainHTTP(t *testing.T) {
	f := newFixture(t)
	if h := f.do(t, "GET", "/login", "").Header().Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS over plain HTTP: %q", h)
	}
}

func TestTLSConfigRefused(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, 0o644)
	other := t.TempDir()
	goodCert, goodKey, _ := writeCert(t, other, 0o600)
	bus := newFixture(t).bus
	for _, tt := range []struct {
		name       string
		cert, key  string
		wantSubstr string
	}{
		{"key readable by others", certFile, keyFile, "chmod 600 " + keyFile},
		{"certificate without key", goodCert, "", "both"},
		{"key without certificate", "", goodKey, "both"},
		{"missing key", goodCert, filepath.Join(other, "nope.pem"), "nope.pem"},
		{"key of another certificate", certFile, goodKey, "load TLS certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Bus: bus, Auth: testUsers, TLSCertFile: tt.cert, TLSKeyFile: tt.key})
			if err == nil || !strings.Contains(err.Error(), tt.wantSubstr) {
				t.Errorf("New = %v, want an error containing %q", err, tt.wantSubstr)
			}
		})
	}
}
