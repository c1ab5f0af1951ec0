package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testcert"
	"github.com/pirack/pirack/topics"
)

// tlsBroker starts pirack's broker with an mqtts listener on loopback, its certificate and its
// agents' client certificates signed by ca, and an agent user for mac in row. The returned
// channel receives every status message on the agent's status topic.
func tlsBroker(t *testing.T, ca *testcert.CA) (url string, statuses <-chan topics.Status) {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Role: auth.RoleAgent, MAC: mac, Row: row}, "agent-password-1"); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "control")
	b, err := broker.New(broker.Config{
		Addr:    "127.0.0.1:0",
		DataDir: filepath.Join(dir, "data"),
		Users:   users,
		TLS:     &broker.TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.WriteFile(t, dir, "clients-ca.pem")},
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan topics.Status, 64)
	err = b.Subscribe(topics.StatusTopic(row, mac), func(m bus.Message) {
		payload := m.Payload
		st, err := topics.DecodeStatus(payload)
		if err != nil {
			t.Errorf("status payload %s: %v", payload, err)
			return
		}
		select {
		case ch <- st:
		default:
			t.Error("status buffer full")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return "ssl://" + b.TLSAddr(), ch
}

// logRecord is a log record's message and attributes, as text.
type logRecord struct {
	msg   string
	attrs map[string]string
}

// recordTap sends every log record to a channel, never blocking.
type recordTap struct {
	ch    chan logRecord
	attrs []slog.Attr
}

func (h recordTap) Enabled(context.Context, slog.Level) bool { return true }
func (h recordTap) WithGroup(string) slog.Handler            { return h }
func (h recordTap) WithAttrs(as []slog.Attr) slog.Handler {
	return recordTap{h.ch, append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h recordTap) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: map[string]string{}}
	add := func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	select {
	case h.ch <- rec:
	default:
	}
	return nil
}

// awaitConnectFailure waits for the agent to log a failed connection and returns the record.
func awaitConnectFailure(t *testing.T, logs <-chan logRecord) logRecord {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case r := <-logs:
			if r.msg == "cannot connect to broker; retrying" {
				return r
			}
		case <-timeout:
			t.Fatalf("no failed connection logged within %v", waitFor)
		}
	}
}

func loadTLS(t *testing.T, brokerURL string, f TLSFiles) *tls.Config {
	t.Helper()
	c, err := LoadTLS(brokerURL, f, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An agent trusting the control host's private CA, with a client certificate and no password,
// connects and its birth reaches the broker.
func TestTLSClientCertificateWithoutPassword(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	url, statuses := tlsBroker(t, ca)
	dir := t.TempDir()
	certFile, keyFile := ca.Client(t, mac).WriteFiles(t, dir, mac)
	cfg := loadTLS(t, url, TLSFiles{CAFile: ca.WriteFile(t, dir, "ca.pem"), CertFile: certFile, KeyFile: keyFile})
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "127.0.0.1" {
		t.Errorf("MinVersion %x, ServerName %q; want TLS 1.2 and the broker URL's host", cfg.MinVersion, cfg.ServerName)
	}
	stop := runAgent(t, Config{Broker: url, TLS: cfg})
	timeout := time.After(waitFor)
	for st := (topics.Status{}); st.State != topics.StateOnline; {
		select {
		case st = <-statuses:
		case <-timeout:
			t.Fatalf("no birth over TLS within %v", waitFor)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// The broker refuses a certificate its client CA did not sign, at the TLS handshake, and the
// agent's log says what to do.
func TestTLSClientCertificateFromAnotherCA(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	url, statuses := tlsBroker(t, ca)
	dir := t.TempDir()
	certFile, keyFile := testcert.NewCA(t, "rogue CA").Client(t, mac).WriteFiles(t, dir, mac)
	logs := make(chan logRecord, 1024)
	runAgent(t, Config{Broker: url, TLS: loadTLS(t, url, TLSFiles{CAFile: ca.WriteFile(t, dir, "ca.pem"), CertFile: certFile, KeyFile: keyFile}), Logger: slog.New(recordTap{ch: logs})})
	r := awaitConnectFailure(t, logs)
	if !strings.Contains(r.attrs["err"], "unknown certificate authority") || !strings.Contains(r.attrs["fix"], "--mqtt-client-ca") {
		t.Errorf("failed connection logged as %+v; want the broker's refusal and what to do", r.attrs)
	}
	select {
	case st := <-statuses:
		t.Errorf("agent with a rogue certificate published %+v", st)
	default:
	}
}

// Without a CA file the agent trusts only the system's roots, which did not sign the control
// host's certificate: the log says to give the CA.
func TestTLSWithoutCAFile(t *testing.T) {
	ca := testcert.NewCA(t, "pirack test CA")
	url, _ := tlsBroker(t, ca)
	logs := make(chan logRecord, 1024)
	runAgent(t, Config{Broker: url, Password: "agent-password-1", Logger: slog.New(recordTap{ch: logs})})
	r := awaitConnectFailure(t, logs)
	if !strings.Contains(r.attrs["err"], "certificate signed by unknown authority") || !strings.Contains(r.attrs["fix"], "--ca-file") {
		t.Errorf("failed connection logged as %+v; want the unknown authority and --ca-file", r.attrs)
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "pirack test CA")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	now := time.Now()
	client := ca.Client(t, mac, testcert.Validity(now.Add(-time.Hour), now.Add(time.Hour)))
	certFile, keyFile := client.WriteFiles(t, dir, mac)
	_, otherKey := ca.Client(t, "other").WriteFiles(t, dir, "other")
	expired, expiredKey := ca.Client(t, "expired", testcert.Validity(now.Add(-2*time.Hour), now.Add(-time.Hour))).WriteFiles(t, dir, "expired")
	early, earlyKey := ca.Client(t, "early", testcert.Validity(now.Add(time.Hour), now.Add(2*time.Hour))).WriteFiles(t, dir, "early")
	loose := testcert.WriteFile(t, filepath.Join(dir, "loose.key"), client.KeyPEM, 0o644)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const url = "ssl://rack-host:8883"
	for _, tc := range []struct {
		name   string
		broker string
		files  TLSFiles
		want   string
	}{
		{"plain broker", "tcp://rack-host:1883", TLSFiles{CAFile: caFile}, "use ssl://rack-host:8883"},
		{"missing CA", url, TLSFiles{CAFile: filepath.Join(dir, "none.pem")}, "broker CA file: open"},
		{"CA not PEM", url, TLSFiles{CAFile: notPEM}, "holds no PEM certificate"},
		{"certificate without key", url, TLSFiles{CertFile: certFile}, "without its key file"},
		{"key without certificate", url, TLSFiles{KeyFile: keyFile}, "without its certificate file"},
		{"missing certificate", url, TLSFiles{CertFile: filepath.Join(dir, "none.crt"), KeyFile: keyFile}, "no such file"},
		{"certificate not PEM", url, TLSFiles{CertFile: notPEM, KeyFile: keyFile}, "client certificate " + notPEM + " holds no PEM certificate"},
		{"key not PEM", url, TLSFiles{CertFile: certFile, KeyFile: notPEM}, "holds no PEM private key"},
		{"key readable by others", url, TLSFiles{CertFile: certFile, KeyFile: loose}, "chmod 600 " + loose},
		{"key of another certificate", url, TLSFiles{CertFile: certFile, KeyFile: otherKey}, "is not the key of certificate"},
		{"expired certificate", url, TLSFiles{CertFile: expired, KeyFile: expiredKey}, "expired on"},
		{"certificate not valid yet", url, TLSFiles{CertFile: early, KeyFile: earlyKey}, "check the clock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTLS(tc.broker, tc.files, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadTLS = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestRunRejectsBadTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "pirack test CA")
	certFile, keyFile := ca.Client(t, "b827eb000099").WriteFiles(t, dir, "b827eb000099")
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"TLS with a plain broker":   {Config{Broker: "tcp://127.0.0.1:1", TLS: &tls.Config{}}, "plain MQTT"},
		"certificate of another Pi": {Config{Broker: "ssl://127.0.0.1:1", TLS: loadTLS(t, "ssl://127.0.0.1:1", TLSFiles{CertFile: certFile, KeyFile: keyFile})}, fmt.Sprintf("CN %q, not this Pi's MAC %s", "b827eb000099", mac)},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Row, cfg.MAC, cfg.Logger = row, testMAC, slog.New(slog.NewTextHandler(io.Discard, nil))
			if err := Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestConnectHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string // "" for no hint
	}{
		{fmt.Errorf("network Error : %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), "--ca-file"},
		{fmt.Errorf("network Error : %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "rack-host"}), "host name"},
		{fmt.Errorf("network Error : %w", x509.CertificateInvalidError{Reason: x509.Expired}), "renew it"},
		{errors.New("network Error : remote error: tls: unknown certificate authority"), "--mqtt-client-ca"},
		{errors.New("network Error : remote error: tls: expired certificate"), "issue a new one"},
		{errors.New("network Error : remote error: tls: certificate required"), "--cert-file"},
		{errors.New("network Error : dial tcp 127.0.0.1:8883: connect: connection refused"), ""},
		{errors.New("bad user name or password"), ""},
	} {
		if got := connectHint(tc.err); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("connectHint(%v) = %q, want one saying %q", tc.err, got, tc.want)
		}
	}
}
