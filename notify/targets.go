package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/topics"
)

// sender delivers one notification to one target. An error means it was not delivered and
// will be retried.
type sender interface {
	Send(ctx context.Context, n Notification) error
}

// sendTimeout bounds one delivery attempt.
const sendTimeout = 15 * time.Second

// newSender builds the sender of target t, reading its secret files.
func newSender(name string, t Target) (sender, error) {
	switch t.Type {
	case TypeWebhook, TypeNtfy:
		u := t.URL
		if t.URLFile != "" {
			s, err := secretfile.ReadPassword(t.URLFile, "target "+name+" url_file")
			if err != nil {
				return nil, err
			}
			if err := checkHTTPURL(s); err != nil {
				return nil, fmt.Errorf("target %s: url_file %s: %v", name, t.URLFile, err)
			}
			u = s
		}
		var token string
		if t.TokenFile != "" {
			var err error
			if token, err = secretfile.ReadPassword(t.TokenFile, "target "+name+" token_file"); err != nil {
				return nil, err
			}
		}
		h := httpTarget{url: u, token: token, client: &http.Client{Timeout: sendTimeout}}
		if t.Type == TypeNtfy {
			return ntfy{h}, nil
		}
		return webhook{h}, nil
	case TypeSMTP:
		s := &mailer{host: t.Host, port: t.Port, tls: t.TLS, user: t.Username, from: t.From, to: t.To}
		if s.port == 0 {
			s.port = 587
		}
		if s.tls == "" {
			s.tls = TLSStartTLS
		}
		if t.PasswordFile != "" {
			var err error
			if s.password, err = secretfile.ReadPassword(t.PasswordFile, "target "+name+" password_file"); err != nil {
				return nil, err
			}
		}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("target %s: read ca_file: %w", name, err)
			}
			s.roots = x509.NewCertPool()
			if !s.roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("target %s: ca_file %s holds no PEM certificate", name, t.CAFile)
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("target %s: unknown type %q", name, t.Type)
}

// httpTarget is what webhook and ntfy share: a URL, an optional bearer token, a client.
type httpTarget struct {
	url, token string
	client     *http.Client
}

// post sends body and wants a 2xx answer. Its errors never carry the URL, which may be a
// secret and is shown on the page: only what went wrong.
func (h httpTarget) post(ctx context.Context, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad target URL")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "pirack/"+buildinfo.Version())
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if s := strings.TrimSpace(oneLine(strings.ToValidUTF8(string(msg), ""))); s != "" {
			return fmt.Errorf("answered %s: %s", resp.Status, s)
		}
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// webhook POSTs the Notification as JSON.
type webhook struct{ httpTarget }

func (w webhook) Send(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return w.post(ctx, body, http.Header{"Content-Type": {"application/json"}})
}

// ntfy publishes to an ntfy topic URL: the text as the body, the rest in headers
// (https://docs.ntfy.sh/publish/).
type ntfy struct{ httpTarget }

func (t ntfy) Send(ctx context.Context, n Notification) error {
	h := ntfyHeaders(n)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return t.post(ctx, []byte(n.Text()), h)
}

// ntfyHeaders are the Title, Priority, Tags and Click headers of n. A title that is not ASCII
// is RFC 2047-encoded, which ntfy decodes.
func ntfyHeaders(n Notification) http.Header {
	prio, tag := "default", "information_source"
	switch {
	case n.Event == EventTest:
		prio, tag = "low", "test_tube"
	case n.State == StateResolved:
		prio, tag = "low", "white_check_mark"
	case n.Severity == topics.SeverityCritical:
		prio, tag = "urgent", "rotating_light"
	case n.Severity == topics.SeverityWarning:
		prio, tag = "high", "warning"
	}
	h := http.Header{}
	h.Set("Title", mime.QEncoding.Encode("utf-8", n.Title()))
	h.Set("Priority", prio)
	tags := []string{tag, "pirack"}
	if n.Rule != "" {
		tags = append(tags, n.Rule)
	}
	h.Set("Tags", strings.Join(tags, ","))
	if n.URL != "" {
		h.Set("Click", n.URL)
	}
	return h
}

// mailer sends e-mail over SMTP: STARTTLS (or implicit TLS), then AUTH PLAIN when a username
// is set, never a login in clear text.
type mailer struct {
	host     string
	port     int
	tls      string // TLSStartTLS, TLSImplicit or TLSNone
	roots    *x509.CertPool
	user     string
	password string
	from     string
	to       []string
	now      func() time.Time // nil: time.Now; for the Date header
}

func (m *mailer) Send(ctx context.Context, n Notification) error {
	addr := net.JoinHostPort(m.host, strconv.Itoa(m.port))
	tlsCfg := &tls.Config{ServerName: m.host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}
	d := net.Dialer{Timeout: sendTimeout}
	var conn net.Conn
	var err error
	if m.tls == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsCfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect to SMTP server: %w", err)
	}
	// One deadline for the whole exchange, and the context's end closes the connection.
	deadline := time.Now().Add(sendTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("pirack"); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	if m.tls == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the SMTP server does not offer STARTTLS; nothing was sent (set tls to \"tls\" for port 465)")
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	}
	if m.user != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS {
			return errors.New("refusing to log in to the SMTP server without TLS")
		}
		if err := c.Auth(smtp.PlainAuth("", m.user, m.password, m.host)); err != nil {
			return fmt.Errorf("SMTP login as %s: %w", m.user, err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, to := range m.to {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(m.message(n)); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	return c.Quit()
}

// message is the RFC 5322 mail of n: a UTF-8 subject encoded as RFC 2047 asks, a
// quoted-printable body, and a Message-ID made from the notification's ID.
func (m *mailer) message(n Notification) []byte {
	now := time.Now
	if m.now != nil {
		now = m.now
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from)
	hdr("To", strings.Join(m.to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", "[pirack] "+n.Title()))
	hdr("Date", now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+n.ID+"."+n.Event+"@pirack>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Pirack-Rule", n.Rule)
	hdr("X-Pirack-State", n.State)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(n.Text(), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

// newID returns a random notification ID: 16 hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
