package dashboard

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/testcert"
)

func TestHTTPS(t *testing.T) {
	cert := testcert.SelfSigned(t, "pirack test", "127.0.0.1")
	certFile, keyFile := cert.WriteFiles(t, t.TempDir(), "server")
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
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool()}},
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
	loose := testcert.SelfSigned(t, "pirack test", "127.0.0.1")
	certFile := testcert.WriteFile(t, filepath.Join(dir, "cert.pem"), loose.CertPEM, 0o644)
	keyFile := testcert.WriteFile(t, filepath.Join(dir, "key.pem"), loose.KeyPEM, 0o644)
	other := t.TempDir()
	goodCert, goodKey := testcert.SelfSigned(t, "pirack test", "127.0.0.1").WriteFiles(t, other, "server")
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
