package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/pirack/pirack/auth"
)

// TLSConfig configures the MQTT-over-TLS listener (mqtts), and the MQTT over secure WebSocket
// listener (wss, Config.WSSAddr) when there is one: both serve the same certificate and take the
// same client certificates.
//
// With ClientCAFile set, a client may present a certificate, which is then verified against
// those CAs (an unverifiable one fails the TLS handshake). A client certificate identifies an
// agent: its subject CN must be the Pi's MAC in topic form (b827eb3f1a2c), an agent user of
// that name must exist in the users file (removing the user revokes the certificate), and the
// client id, and the username if one is given, must be that MAC. The password is then optional;
// a password that is given must be right. Clients without a certificate (people, automations,
// agents not yet given one) authenticate with username and password as on the other listeners.
type TLSConfig struct {
	// Addr is the listen address; "" means ":8883".
	Addr string
	// CertFile is the server's certificate chain, PEM. Required.
	CertFile string
	// KeyFile is the server's private key, PEM. Required; it must be readable by its owner only
	// (mode 0600 or 0400): New refuses it otherwise, naming the chmod to run.
	KeyFile string
	// ClientCAFile is a PEM bundle of the CAs that sign agents' client certificates; "" means
	// client certificates are not asked for.
	ClientCAFile string
}

// load reads the certificate, key and client CAs. The files are read once: replacing a
// certificate takes a restart.
func (c *TLSConfig) load() (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("MQTT TLS needs both a certificate file and a key file")
	}
	if err := auth.CheckSecretFile(c.KeyFile, "MQTT TLS key"); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load MQTT TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	t := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("MQTT TLS client CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MQTT TLS client CAs: no PEM certificate in %s", c.ClientCAFile)
		}
		t.ClientCAs = pool
		t.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return t, nil
}

// clientCert returns the verified certificate a client presented over TLS (mqtts or wss), or
// nil.
func clientCert(cl *mqtt.Client) *x509.Certificate {
	conn := unwrapConn(cl.Net.Conn)
	if wc, ok := conn.(*wsConn); ok {
		conn = wc.Conn // the socket under the WebSocket: a *tls.Conn on wss
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	// VerifiedChains, not PeerCertificates: only a certificate verified against ClientCAs counts.
	if chains := tc.ConnectionState().VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
		return chains[0][0]
	}
	return nil
}
