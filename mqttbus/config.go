package mqttbus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pirack/pirack/internal/secretfile"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultClientID          = "pirack-control-center"
	DefaultKeepAlive         = 30 * time.Second
	DefaultMaxReconnectDelay = 30 * time.Second
	DefaultConnectTimeout    = 10 * time.Second
)

// Config configures a Bus. Zero fields take the defaults above.
type Config struct {
	// URL is the broker: mqtt://host:port or mqtts://host:port (TLS), ws://host:port/path or
	// wss://host:port/path (MQTT over WebSocket); paho's tcp://, ssl:// and tls:// are accepted
	// too. A missing port means 1883 (plain) or 8883 (TLS) for the MQTT schemes. Required.
	// Credentials go in Username and Password, never in the URL (it is logged).
	URL string
	// Username and Password log the control center in; "" sends none (an anonymous broker, or
	// one that authenticates by client certificate). The user needs to read and write every
	// pirack topic.
	Username string
	Password string
	// ClientID is the fixed MQTT client id of the control center, which names its persistent
	// session on the broker; "" means "pirack-control-center". Two control centers on one
	// broker need different ids, or they take the session from each other in turn.
	ClientID string
	// CAFile is a PEM bundle of the CAs that sign the broker's certificate; "" means the
	// system's roots. Only with a TLS URL (mqtts, ssl, tls, wss).
	CAFile string
	// CertFile and KeyFile are a client certificate and its private key, for brokers that
	// authenticate by certificate. Both or neither ("" for none); the key file must be readable
	// by its owner only. Only with a TLS URL.
	CertFile, KeyFile string
	// KeepAlive is the MQTT keep-alive interval: a dead connection is noticed within about
	// one and a half times it. 0 means 30 s.
	KeepAlive time.Duration
	// MaxReconnectDelay caps the wait between connection attempts, jitter included: two thirds
	// go to paho's doubling backoff, a third to a random jitter. 0 means 30 s.
	MaxReconnectDelay time.Duration
	// ConnectTimeout bounds one connection attempt (dial, TLS and the CONNECT handshake).
	// 0 means 10 s.
	ConnectTimeout time.Duration
	// StoreDir, if set, is a directory (created 0700 if missing) where paho keeps QoS 1
	// messages not yet acknowledged, so that those published while the broker was away are
	// still sent after a restart of the control center. "" keeps them in memory only: a
	// restart loses them.
	StoreDir string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// OnConnectionChange, when set, is called with true at each connection and false at each
	// loss of it, on paho's goroutines, in the order they happen. It must not block.
	OnConnectionChange func(connected bool)
}

func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxReconnectDelay == 0 {
		c.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// brokerURL checks raw and returns it as paho is given it, with the default port filled in,
// and whether it is a TLS URL.
func brokerURL(raw string) (*url.URL, bool, error) {
	if raw == "" {
		return nil, false, errors.New("mqttbus: Config.URL is required: the broker, such as mqtt://broker-host:1883")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, false, fmt.Errorf("mqttbus: broker %q is not a URL such as mqtt://broker-host:1883 or mqtts://broker-host:8883", raw)
	}
	if u.User != nil {
		return nil, false, fmt.Errorf("mqttbus: broker URL %s holds credentials: give the user name and password separately, so they stay out of logs", u.Redacted())
	}
	var secure bool
	port := ""
	switch u.Scheme {
	case "mqtt", "tcp":
		port = "1883"
	case "mqtts", "ssl", "tls":
		port, secure = "8883", true
	case "ws":
	case "wss":
		secure = true
	default:
		return nil, false, fmt.Errorf("mqttbus: broker URL scheme %q is not supported: use mqtt://, mqtts://, ws:// or wss:// (or tcp://, ssl://, tls://)", u.Scheme)
	}
	if port != "" && u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, secure, nil
}

// loadTLS builds the TLS configuration for a TLS broker URL from the configured files, checking
// them now so that a mistake stops the control center at start with a message saying what to
// fix. It returns nil for a plain URL, and an error if TLS files are given for one.
func (c Config) loadTLS(u *url.URL, secure bool) (*tls.Config, error) {
	if !secure {
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
			return nil, fmt.Errorf("mqttbus: broker %s is plain MQTT, but TLS files are given: use mqtts://%s:8883 (or wss://), or leave out the CA, certificate and key", u.Redacted(), u.Hostname())
		}
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqttbus: broker CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("mqttbus: broker CA file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", c.CAFile)
		}
		t.RootCAs = pool
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
		return t, nil
	case c.KeyFile == "":
		return nil, fmt.Errorf("mqttbus: client certificate %s given without its key file", c.CertFile)
	case c.CertFile == "":
		return nil, fmt.Errorf("mqttbus: client key %s given without its certificate file", c.KeyFile)
	}
	if err := secretfile.Check(c.KeyFile, "MQTT client key"); err != nil {
		return nil, fmt.Errorf("mqttbus: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mqttbus: load client certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	t.Certificates = []tls.Certificate{cert}
	// Always present the certificate: Go's client otherwise leaves out one whose CA the
	// broker's list does not name, and the broker then refuses a missing password instead.
	t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return t, nil
}

// validClientID refuses ids that MQTT brokers refuse or that would break pirack's per-client
// topics and logs.
func validClientID(id string) error {
	if strings.ContainsAny(id, "+#/") {
		return fmt.Errorf("mqttbus: client id %q contains +, # or /", id)
	}
	return nil
}
