// Package mosquittotest runs a real Mosquitto broker for tests, as httptest runs an HTTP server:
// a config in the test's temporary directory, a free loopback port, the broker's log in the test
// log, and the process killed when the test ends. It is for _test.go files only.
//
// When no mosquitto binary is installed the test is skipped, unless PIRACK_MOSQUITTO_TESTS is
// "require" (CI), which fails it instead.
package mosquittotest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/proctest"
	"github.com/pirack/pirack/internal/testlog"
)

// RequireEnv is the environment variable that, set to "require", turns a missing mosquitto
// binary from a skipped test into a failed one.
const RequireEnv = "PIRACK_MOSQUITTO_TESTS"

// startTimeout bounds how long Start and Restart wait for the broker to accept connections.
const startTimeout = 15 * time.Second

// Options configures the broker. The zero value is a broker nobody can log in to (Mosquitto 2.0
// refuses anonymous clients by default): set PasswordFile, or AllowAnonymous.
type Options struct {
	// PasswordFile and ACLFile are the password_file and acl_file; "" leaves them out.
	PasswordFile string
	ACLFile      string
	// AllowAnonymous lets clients connect without a username.
	AllowAnonymous bool
	// PersistenceDir turns persistence on, with the database in that directory; "" keeps
	// everything in memory, so a Restart starts empty.
	PersistenceDir string
	// Extra lines go into the config after the listener and the settings above (before any
	// bridge): "max_queued_messages 10", "sys_interval 1", ...
	Extra []string
	// Bridges are written last (everything after a "connection" line belongs to that bridge).
	Bridges []Bridge
	// Debug logs every packet (log_type all); by default errors, warnings, notices and
	// information (connections) are logged.
	Debug bool
}

// Bridge is a bridge connection from this broker to another one.
type Bridge struct {
	// Name is the connection name; it also makes the bridge's client id on the remote broker.
	Name string
	// Addr is the remote broker's host:port (Broker.Addr of another test broker).
	Addr string
	// RemoteUsername and RemotePassword log the bridge in to the remote broker.
	RemoteUsername, RemotePassword string
	// LocalUsername is the user whose ACL the bridge's messages are checked against on this
	// broker; "" means Mosquitto's default (the bridge is then checked as an anonymous client).
	LocalUsername string
	// Topics are bridge topic patterns, each "<topic> [out|in|both] [qos]" as in
	// mosquitto.conf; none means "# both 1".
	Topics []string
}

// Lines returns the mosquitto.conf lines of the bridge.
func (b Bridge) Lines() []string {
	lines := []string{
		"connection " + b.Name,
		"address " + b.Addr,
		"bridge_protocol_version mqttv311",
		"cleansession false",
		"restart_timeout 1 2", // reconnect fast after a broker outage in a test
		"try_private true",
	}
	if b.RemoteUsername != "" {
		lines = append(lines, "remote_username "+b.RemoteUsername, "remote_password "+b.RemotePassword)
	}
	if b.LocalUsername != "" {
		lines = append(lines, "local_username "+b.LocalUsername)
	}
	ts := b.Topics
	if len(ts) == 0 {
		ts = []string{"# both 1"}
	}
	for _, t := range ts {
		lines = append(lines, "topic "+t)
	}
	return lines
}

// Broker is a running (or stopped) Mosquitto.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	port int
	opts Options
	out  io.Writer // the test log

	log  proctest.Log
	mu   sync.Mutex
	proc *proctest.Proc // nil while stopped
}

// Binary returns the mosquitto binary: from PATH, else /usr/sbin/mosquitto (Debian installs it
// there, outside a normal user's PATH). It returns "" when there is none.
func Binary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	const debian = "/usr/sbin/mosquitto"
	if fi, err := os.Stat(debian); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return debian
	}
	return ""
}

// Start starts a Mosquitto on a free loopback port and returns when it accepts TCP connections.
// It is stopped when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv(RequireEnv) == "require" {
			t.Fatal("mosquitto not found (" + RequireEnv + "=require): install mosquitto: apt-get install mosquitto")
		}
		t.Skip("mosquitto not found; install mosquitto: apt-get install mosquitto (set " + RequireEnv + "=require to fail instead)")
	}
	b := &Broker{t: t, bin: bin, opts: opts, out: testlog.NewWriter(t)}
	t.Cleanup(b.Stop) // after the log writer's cleanup is registered, so it runs before it
	dir := t.TempDir()
	b.conf = filepath.Join(dir, "mosquitto.conf")

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := proctest.FreePort()
		if err != nil {
			t.Fatalf("mosquittotest: find a free port: %v", err)
		}
		b.port = port
		if err := os.WriteFile(b.conf, []byte(b.config()), 0o600); err != nil {
			t.Fatalf("mosquittotest: %v", err)
		}
		lastErr = b.start()
		if lastErr == nil {
			return b
		}
		if !errors.Is(lastErr, proctest.ErrPortInUse) {
			break
		}
	}
	t.Fatalf("mosquittotest: start mosquitto: %v", lastErr)
	return nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is the broker's address as paho takes it: tcp://127.0.0.1:<port>.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// ConfigPath is the mosquitto.conf the broker runs with.
func (b *Broker) ConfigPath() string { return b.conf }

// Log returns what the broker has logged so far, across restarts.
func (b *Broker) Log() string { return b.log.String() }

// WaitLog waits until the broker has logged a line containing s, for at most timeout, and
// reports whether it did. Mosquitto logs some events (a client's connection closing) before it
// finishes handling them in the same turn of its single-threaded loop, so whatever a test sends
// after WaitLog is handled after them.
func (b *Broker) WaitLog(s string, timeout time.Duration) bool { return b.log.Wait(s, timeout) }

// Stop stops the broker (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. Stopping a
// stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	p := b.proc
	b.proc = nil
	b.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// Restart stops the broker and starts it again on the same port with the same config: a broker
// outage, for clients that must reconnect. Without PersistenceDir it comes back empty.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	if err := b.start(); err != nil {
		b.t.Fatalf("mosquittotest: restart mosquitto on port %d: %v", b.port, err)
	}
}

// Reload sends SIGHUP: Mosquitto rereads its password and ACL files (as after regenerating
// them) without dropping connections.
func (b *Broker) Reload() {
	b.t.Helper()
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		b.t.Fatal("mosquittotest: Reload of a stopped broker")
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatalf("mosquittotest: reload: %v", err)
	}
}

func (b *Broker) config() string {
	var c strings.Builder
	line := func(s ...string) {
		for _, l := range s {
			c.WriteString(l + "\n")
		}
	}
	line("# written by mosquittotest",
		"per_listener_settings false",
		"listener "+strconv.Itoa(b.port)+" 127.0.0.1",
		"log_dest stderr",
		"log_timestamp_format %H:%M:%S",
		"connection_messages true",
		"allow_anonymous "+strconv.FormatBool(b.opts.AllowAnonymous))
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto switches to user mosquitto before reading its password and
		// ACL files, and could not read them in the test's root-only temporary directory.
		line("user root")
	}
	if b.opts.Debug {
		line("log_type all")
	} else {
		line("log_type error", "log_type warning", "log_type notice", "log_type information")
	}
	if b.opts.PasswordFile != "" {
		line("password_file " + b.opts.PasswordFile)
	}
	if b.opts.ACLFile != "" {
		line("acl_file " + b.opts.ACLFile)
	}
	if b.opts.PersistenceDir != "" {
		line("persistence true", "persistence_location "+strings.TrimSuffix(b.opts.PersistenceDir, "/")+"/", "autosave_interval 1")
	} else {
		line("persistence false")
	}
	line(b.opts.Extra...)
	for _, br := range b.opts.Bridges {
		line(br.Lines()...)
	}
	return c.String()
}

// start runs mosquitto and waits until it says it is running and its port accepts TCP
// connections, it exits, or startTimeout passes.
func (b *Broker) start() error {
	p, err := proctest.Start(exec.Command(b.bin, "-c", b.conf), proctest.Spec{
		Name: "mosquitto", Prefix: fmt.Sprintf("mosquitto:%d: ", b.port), Out: b.out, Log: &b.log,
		Ready: func(l string) bool { return strings.Contains(l, " running") },
		InUse: "Address already in use", Timeout: startTimeout,
	})
	if err != nil {
		return err
	}
	// "running" is logged once the listeners are open; check from outside all the same.
	c, err := net.DialTimeout("tcp", b.Addr(), startTimeout)
	if err != nil {
		p.Stop()
		return fmt.Errorf("mosquitto started but %s refuses connections: %w", b.Addr(), err)
	}
	c.Close()
	b.mu.Lock()
	b.proc = p
	b.mu.Unlock()
	return nil
}
