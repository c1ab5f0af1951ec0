// Package testcert makes the X.509 certificates pirack's tests need: a private CA, server
// certificates for loopback, client certificates named by their CN, self-signed server
// certificates, and PEM files of them with the key readable by its owner alone. It is for
// _test.go files only.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test, valid from an hour ago to an hour from now.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // Cert, PEM-encoded
}

// Leaf is a certificate and its key.
type Leaf struct {
	TLS     tls.Certificate // the DER certificate and its private key
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte // PKCS #8
}

// Option changes a certificate before it is signed.
type Option func(*x509.Certificate)

// Validity makes a certificate valid from notBefore to notAfter, rather than from an hour ago
// to an hour from now: expired or not yet valid certificates.
func Validity(notBefore, notAfter time.Time) Option {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// NewCA makes a CA whose certificate's CN is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(name, nil)
	tmpl.SerialNumber = big.NewInt(1)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der := create(t, tmpl, tmpl, key, key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, PEM: certPEM(der)}
}

// Server signs a server certificate for hosts, IP addresses or DNS names; without hosts, for
// 127.0.0.1 and localhost.
func (ca *CA) Server(t testing.TB, hosts ...string) *Leaf {
	t.Helper()
	tmpl := template("pirack test server", nil)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	setHosts(tmpl, hosts)
	return ca.sign(t, tmpl)
}

// Client signs a client certificate whose CN is cn.
func (ca *CA) Client(t testing.TB, cn string, opts ...Option) *Leaf {
	t.Helper()
	tmpl := template(cn, opts)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.sign(t, tmpl)
}

// Pool returns a pool that trusts the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WriteFile writes the CA's certificate to dir/name, mode 0644, and returns its path.
func (ca *CA) WriteFile(t testing.TB, dir, name string) string {
	t.Helper()
	return WriteFile(t, filepath.Join(dir, name), ca.PEM, 0o644)
}

// SelfSigned makes a self-signed server certificate whose CN is cn, for hosts (127.0.0.1 and
// localhost without them). It is its own CA: a client trusts it by trusting its Pool.
func SelfSigned(t testing.TB, cn string, hosts ...string) *Leaf {
	t.Helper()
	key := newKey(t)
	tmpl := template(cn, nil)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	setHosts(tmpl, hosts)
	return leaf(t, create(t, tmpl, tmpl, key, key), key)
}

// Pool returns a pool that trusts the certificate itself, for a self-signed one.
func (l *Leaf) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(l.Cert)
	return p
}

// WriteFiles writes the certificate to dir/name.crt (mode 0644) and its key to dir/name.key
// (mode 0600), and returns their paths.
func (l *Leaf) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = WriteFile(t, filepath.Join(dir, name+".crt"), l.CertPEM, 0o644)
	keyFile = WriteFile(t, filepath.Join(dir, name+".key"), l.KeyPEM, 0o600)
	return certFile, keyFile
}

// WriteFile writes data to path with mode, whatever the umask, and returns path: a key file
// readable by others, say.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func (ca *CA) sign(t testing.TB, tmpl *x509.Certificate) *Leaf {
	t.Helper()
	key := newKey(t)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return leaf(t, create(t, tmpl, ca.Cert, key, ca.Key), key)
}

// template returns a certificate for cn with a random serial number, valid from an hour ago to
// an hour from now unless opts say otherwise.
func template(cn string, opts []Option) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	c := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func setHosts(c *x509.Certificate, hosts []string) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			c.IPAddresses = append(c.IPAddresses, ip)
		} else {
			c.DNSNames = append(c.DNSNames, h)
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func create(t testing.TB, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func leaf(t testing.TB, der []byte, key *ecdsa.PrivateKey) *Leaf {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Leaf{
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Cert:    cert,
		CertPEM: certPEM(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
