package notify

import (
	"bufio"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/internal/testcert"
	"github.com/pirack/pirack/internal/testlog"
)

// SMTPRequireEnv set to "require" turns a missing aiosmtpd from a skipped test into a failed one.
const SMTPRequireEnv = "PIRACK_SMTP_TESTS"

// aiosmtpdPython returns a python3 that can import aiosmtpd (Debian's python3-aiosmtpd
// installs it for /usr/bin/python3, which may not be the first python3 on PATH).
func aiosmtpdPython(t *testing.T) string {
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		if exec.Command(py, "-c", "import aiosmtpd").Run() == nil {
			return py
		}
	}
	const how = "install python3-aiosmtpd: apt-get install python3-aiosmtpd"
	if os.Getenv(SMTPRequireEnv) == "require" {
		t.Fatal("aiosmtpd not found (" + SMTPRequireEnv + "=require): " + how)
	}
	t.Skip("aiosmtpd not found; " + how + " (set " + SMTPRequireEnv + "=require to fail instead)")
	return ""
}

// smtpServer is aiosmtpd on 127.0.0.1 requiring STARTTLS, with one user.
type smtpServer struct {
	port   int
	caFile string
	mails  chan string // paths of the mails received
}

func startSMTP(t *testing.T, user, password string) *smtpServer {
	py := aiosmtpdPython(t)
	dir := t.TempDir()
	ca := testcert.NewCA(t, "pirack test CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "smtp")
	s := &smtpServer{caFile: ca.WriteFile(t, dir, "ca.pem"), mails: make(chan string, 8)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	out := filepath.Join(dir, "mail")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "smtpd.py"), certFile, keyFile, strconv.Itoa(s.port), out, user, password)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testlog.NewWriter(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "ready":
				close(ready)
			case strings.HasPrefix(line, "mail "):
				s.mails <- strings.TrimPrefix(line, "mail ")
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the server stops when its stdin closes
		exited := make(chan struct{})
		go func() { <-read; cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready:
	case <-read:
		t.Fatal("aiosmtpd exited before it was ready (its errors are in the test log)")
	case <-time.After(20 * time.Second):
		t.Fatal("aiosmtpd not ready in 20 s")
	}
	return s
}

func TestSMTPStartTLSMail(t *testing.T) {
	srv := startSMTP(t, "pirack", "s3cret pass")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp.password")
	if err := os.WriteFile(pwFile, []byte("s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &dashboardtest.Bus{}
	n := mustNew(t, Config{Bus: b, DataDir: dir, File: File{
		DashboardURL: "https://rack.example.org",
		Targets: map[string]Target{"mail": {Type: TypeSMTP, Host: "127.0.0.1", Port: srv.port, CAFile: srv.caFile,
			Username: "pirack", PasswordFile: pwFile, From: "pirack@example.org", To: []string{"ops@example.org", "oncall@example.org"}}},
	}})
	start(t, n)
	publish(t, b, tempAlert(t0, false))

	var path string
	select {
	case path = <-srv.mails:
	case <-time.After(20 * time.Second):
		t.Fatalf("no mail in 20 s; target status %+v", n.Status())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	for k, want := range map[string]string{
		"X-Test-Rcpt": "ops@example.org,oncall@example.org",
		"X-Test-Tls":  "True", // the mail came over STARTTLS
		"X-Test-Auth": "True", // after AUTH PLAIN
		"From":        "pirack@example.org",
		"To":          "ops@example.org, oncall@example.org",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != "[pirack] CRITICAL temp_high on pi-07 (b827eb3f1a2c, row r1)" {
		t.Errorf("Subject %q (%v)", subject, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CPU at 83.4 °C, over 80 °C for 1 min", "Value:    83.4 °C", "Limit:    80 °C",
		"https://rack.example.org/nodes/b827eb3f1a2c"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}

	// A wrong password fails the test-send, and the failure shows in the target's status.
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := mustNew(t, Config{Bus: b, DataDir: t.TempDir(), File: File{
		Targets: map[string]Target{"mail": {Type: TypeSMTP, Host: "127.0.0.1", Port: srv.port, CAFile: srv.caFile,
			Username: "pirack", PasswordFile: pwFile, From: "pirack@example.org", To: []string{"ops@example.org"}}},
	}})
	defer bad.Close()
	// After its 535, Go's net/smtp sends "*" to abort the AUTH and waits for an answer that
	// aiosmtpd does not give: a short deadline ends the wait.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	res, err := bad.SendTest(ctx, "", "admin")
	if err != nil || len(res) != 1 || res[0].OK || !strings.Contains(res[0].Error, "SMTP login as pirack") {
		t.Errorf("test-send with a wrong password: %+v, %v; want a failed login", res, err)
	}
	if st := bad.Status()[0]; st.OK || !strings.Contains(st.LastError, "SMTP login") {
		t.Errorf("status after the failed test-send: %+v", st)
	}
}
