package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/config"
	"github.com/pirack/pirack/enroll/enrollapi"
)

// runEnroll is `pirack-agent enroll CONTROL-CENTER TOKEN`: it trades a token from `pirack
// enroll` for this Pi's account, writes the account into agent.toml and agent.secret, and
// starts the agent, which then waits for approval at the rack.
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pirack-agent enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/pirack/agent.toml", "the agent's config file, written with the broker and row")
	secretPath := fs.String("secret", "/etc/pirack/agent.secret", "where the agent's password is written (mode 0600)")
	mac := fs.String("mac", "", "this Pi's MAC (default: the first interface that is up with a hardware address)")
	caFile := fs.String("ca-file", "", "PEM CA of the Control Center's HTTPS certificate, for an https:// address (default: the system's)")
	start := fs.Bool("start", true, "restart the pirack-agent service once enrolled (when systemd runs)")
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for the Control Center")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sudo pirack-agent enroll [flags] CONTROL-CENTER TOKEN\n\nEnrols this Pi with the token `pirack enroll` printed on the control host. CONTROL-CENTER is\nits address as `pirack enroll` printed it (http://host:8080), or a host name (port 8080).\nThe Pi then waits for approval: press its button at the rack.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("enroll: give the Control Center's address and the token")
	}
	base, err := controlCenterURL(fs.Arg(0))
	if err != nil {
		return err
	}
	if *mac == "" {
		m, iface, err := agent.PrimaryMAC()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "This Pi is %s (the MAC of %s).\n", m, iface)
		*mac = m
	}
	host, _ := os.Hostname()
	model := new(agent.HostCollector).Model()
	client := &http.Client{Timeout: *timeout}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificate in it", *caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	acct, err := enrollapi.Enrol(ctx, client, base, enrollapi.Request{Token: fs.Arg(1), MAC: *mac, Hostname: host, Model: model})
	if err != nil {
		return err
	}

	if err := writeSecret(*secretPath, acct.Password); err != nil {
		return err
	}
	broker := "tcp://" + net.JoinHostPort(base.Hostname(), strconv.Itoa(acct.MQTTPort))
	var opts options
	var x rawFlags
	values := map[string]string{"broker": broker, "row": acct.Row, "mac": *mac, "password-file": *secretPath}
	if err := config.Set(*configPath, agentFlags(&opts, &x, io.Discard), values); err != nil {
		return fmt.Errorf("the Pi is enrolled, but its config could not be written: %w; set broker = %q and row = %q in %s by hand", err, broker, acct.Row, *configPath)
	}
	fmt.Fprintf(stdout, "Enrolled in row %s: broker %s, config %s, secret %s.\n", acct.Row, broker, *configPath, *secretPath)
	if *start && isSystemd() {
		if out, err := exec.CommandContext(ctx, "systemctl", "restart", "pirack-agent.service").CombinedOutput(); err != nil {
			return fmt.Errorf("enrolled, but systemctl restart pirack-agent failed: %v: %s", err, bytes.TrimSpace(out))
		}
		fmt.Fprintln(stdout, "pirack-agent started.")
	} else {
		fmt.Fprintf(stdout, "Start the agent: sudo systemctl restart pirack-agent (or pirack-agent --config %s).\n", *configPath)
	}
	fmt.Fprintln(stdout, "It waits for approval: press this Pi's button at the rack, or Approve on its tile.")
	return nil
}

// controlCenterURL accepts http(s)://host[:port], host:port or a bare host (port 8080).
func controlCenterURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, "8080")
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("control center address %q: want http://host:8080, https://host, or a host name", s)
	}
	return u, nil
}

// writeSecret writes the password readable by its owner only, atomically.
func writeSecret(path, password string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return fmt.Errorf("secret: %w (run as root: sudo pirack-agent enroll ...)", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(password + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func isSystemd() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}
