package controlcenter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

const wait = 15 * time.Second

// testConfig is a control center on free loopback ports in a fresh data directory.
func testConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "admin", Role: auth.RoleAdmin}, "admin-password"); err != nil {
		t.Fatal(err)
	}
	return Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(testlog.NewWriter(t), nil))}
}

// run runs cc until the test ends, and returns once MQTT is up.
func run(t *testing.T, cc *ControlCenter) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	var once bool
	var result error
	stop = func() error {
		if !once {
			once = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(wait):
				t.Fatalf("Run did not return within %v of its cancel", wait)
			}
		}
		return result
	}
	t.Cleanup(func() { stop() })
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	}
	return stop
}

// A failure while building unwinds what was opened: the broker's and the history's files are
// released, so the same data directory opens at once afterwards.
func TestNewUnwindsOnFailure(t *testing.T) {
	cfg := testConfig(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := cfg
	bad.HTTPAddr = busy.Addr().String()
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Fatalf("New with the web port taken = %v, want an error pointing at --http", err)
	}
	done := make(chan error, 1)
	go func() {
		cc, err := New(cfg)
		if err == nil {
			err = cc.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("New after a failed New on the same data directory: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("New after a failed New hangs: the first left a file locked")
	}
}

func TestNewRefusesEmbeddedSettingsOnAForeignBroker(t *testing.T) {
	cfg := testConfig(t)
	cfg.Broker.URL = "mqtt://127.0.0.1:1"
	cfg.MQTTWSAddr = "127.0.0.1:0"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--mqtt-ws") {
		t.Fatalf("New = %v, want --mqtt-ws refused next to --broker", err)
	}
}

// Tasks stop before the parts: a task still publishes through the broker when it is told to
// stop, as a simulated Pi saying goodbye does.
func TestTasksStopBeforeTheBroker(t *testing.T) {
	cfg := testConfig(t)
	said := make(chan error, 1)
	cfg.Tasks = []Task{func(ctx context.Context, cc *ControlCenter) error {
		<-ctx.Done()
		said <- cc.Bus().Publish(context.Background(), bus.Message{Topic: topics.LEDTopic("b827eb000001"), Payload: []byte("off"), QoS: 1})
		return nil
	}}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.Parts(); strings.Join(got, ",") != "broker,history,power-bridge,dashboard,http" {
		t.Errorf("Parts = %v", got)
	}
	if err := run(t, cc)(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := <-said; err != nil {
		t.Fatalf("a task's goodbye publish failed: %v (the broker closed before the tasks stopped)", err)
	}
}

// A task that fails stops the control center with its error, and everything is closed.
func TestFailingTaskStopsTheControlCenter(t *testing.T) {
	cfg := testConfig(t)
	boom := errors.New("simulator broke")
	cfg.Tasks = []Task{func(context.Context, *ControlCenter) error { return boom }}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cc.Run(t.Context()) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the task's error", err)
		}
	case <-time.After(wait):
		t.Fatal("a failed task did not stop Run")
	}
	if err := cc.Run(t.Context()); err == nil {
		t.Error("a second Run succeeded")
	}
	again, err := New(cfg)
	if err != nil {
		t.Fatalf("reopen after a failed run: %v", err)
	}
	again.Close()
}

func TestHTTPURL(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"[::]:8080", "http://localhost:8080"},
		{"0.0.0.0:8080", "http://localhost:8080"},
		{"127.0.0.1:8080", "http://localhost:8080"},
		{"10.0.0.2:80", "http://10.0.0.2:80"},
	} {
		if got := dialable(c.addr); c.addr == "[::]:8080" && got != "127.0.0.1:8080" {
			t.Errorf("dialable(%q) = %q", c.addr, got)
		}
		ln := fakeListener{addr: c.addr}
		cc := &ControlCenter{httpLn: ln}
		if got := cc.HTTPURL(); got != c.want {
			t.Errorf("HTTPURL with %s = %q, want %q", c.addr, got, c.want)
		}
	}
}

type fakeListener struct {
	net.Listener
	addr string
}

func (f fakeListener) Addr() net.Addr { a, _ := net.ResolveTCPAddr("tcp", f.addr); return a }

// --stale-after reaches the tiles and the stale alert alike (dashboard.New refuses a mismatch).
func TestStaleAfterReachesTilesAndAlerts(t *testing.T) {
	cfg := testConfig(t)
	cfg.StaleAfter = 30 * time.Second
	cc, err := New(cfg)
	if err != nil {
		t.Fatalf("New with StaleAfter: %v", err)
	}
	cc.Close()
}

// The first start's admin password is kept in a file, and only the file is named on stdout
// (the journal, under systemd).
func TestFirstAdminPasswordStaysOutOfTheLog(t *testing.T) {
	var out strings.Builder
	dir := t.TempDir()
	cc, err := New(Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	b, err := os.ReadFile(filepath.Join(dir, AdminPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(b))
	if _, err := cc.Users().Authenticate("admin", password); err != nil {
		t.Fatalf("the saved password does not log the admin in: %v", err)
	}
	if strings.Contains(out.String(), password) || !strings.Contains(out.String(), AdminPasswordFile) {
		t.Fatalf("first-start announcement %q: want the file named and the password left out", out.String())
	}
}

// A users file with users but no admin gets no new admin behind the operator's back: a warning
// says how to add one.
func TestNoAdminIsNotRecreated(t *testing.T) {
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "wall", Role: auth.RoleViewer}, "viewer-password"); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cc, err := New(Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, ok := cc.Users().Get("admin"); ok {
		t.Error("an admin was created although the users file has users")
	}
	if _, err := os.Stat(filepath.Join(dir, AdminPasswordFile)); err == nil {
		t.Error("an admin password file was written")
	}
	if !strings.Contains(logs.String(), "pirack user add NAME --role admin") {
		t.Errorf("no warning about the missing admin:\n%s", logs.String())
	}
}
