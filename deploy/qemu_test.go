package deploy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/topics"
)

// emulated is an agent binary of a package and how qemu runs it: as the oldest board the
// package is for.
type emulated struct {
	arch, qemu, cpu string
	mac             string
}

var emulatedAgents = []emulated{
	{"armhf", "qemu-arm-static", "arm1176", "b827eb000a06"},        // Pi 1 and Zero: ARMv6 (ARM1176JZF-S)
	{"arm64", "qemu-aarch64-static", "cortex-a53", "b827eb000a64"}, // Pi 3 on a 64-bit OS
}

const (
	qemuAdmin     = "admin"
	qemuAdminPass = "admin-password-qemu"
	qemuWait      = 60 * time.Second // emulation is slow, and make test runs packages in parallel
)

// seen records, per MAC, what the control center received from the agents.
type seen struct {
	mu      sync.Mutex
	online  map[string]bool
	metrics map[string]int
	led     map[string]topics.LEDState
	offline map[string]bool
	changed chan struct{}
}

func (s *seen) ingest(m bus.Message) {
	t, err := topics.Parse(m.Topic)
	if err != nil || len(m.Payload) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t.Kind {
	case topics.KindStatus:
		if st, err := topics.DecodeStatus(m.Payload); err == nil {
			s.online[t.MAC] = st.State == topics.StateOnline
			s.offline[t.MAC] = st.State == topics.StateOffline
		}
	case topics.KindMetrics:
		s.metrics[t.MAC]++
	case topics.KindLEDState:
		if st, err := topics.DecodeLEDState(m.Payload); err == nil {
			s.led[t.MAC] = st
		}
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// await waits until cond holds on what was seen.
func (s *seen) await(t *testing.T, what string, cond func(*seen) bool) {
	t.Helper()
	deadline := time.After(qemuWait)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited %v for %s", qemuWait, what)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The ARM agents of the packages, run by qemu as the boards they are for, against a real
// control center on 127.0.0.1: they start, publish their birth and metrics, blink the
// simulated LED on a Locate from the Control Center, and go offline cleanly on SIGTERM.
func TestPackagedAgentsUnderQemu(t *testing.T) {
	needTools(t, "dpkg-deb", "qemu-arm-static", "qemu-aarch64-static")
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: qemuAdmin, Role: auth.RoleAdmin}, qemuAdminPass); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, a := range emulatedAgents {
		secrets[a.mac] = auth.GeneratePassword()
		if err := users.Add(auth.User{Name: a.mac, Role: auth.RoleAgent, MAC: a.mac, Row: "r1"}, secrets[a.mac]); err != nil {
			t.Fatal(err)
		}
	}
	httpAddr := freeAddr(t)
	cc, err := controlcenter.New(controlcenter.Config{DataDir: dir, MQTTAddr: freeAddr(t), HTTPAddr: httpAddr,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{online: map[string]bool{}, metrics: map[string]int{}, led: map[string]topics.LEDState{},
		offline: map[string]bool{}, changed: make(chan struct{}, 1)}
	if err := cc.Bus().Subscribe(topics.AllFilter, s.ingest); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-cc.Ready():
	case err := <-done:
		t.Fatalf("control center: %v", err)
	}

	for _, a := range emulatedAgents {
		t.Run(a.arch, func(t *testing.T) {
			t.Parallel()
			files := t.TempDir()
			run(t, "dpkg-deb", "--extract", deb(t, "pirack-agent", a.arch), files)
			secret := filepath.Join(files, "agent.secret")
			if err := os.WriteFile(secret, []byte(secrets[a.mac]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			cmd := exec.Command(a.qemu, "-cpu", a.cpu, filepath.Join(files, "usr/bin/pirack-agent"),
				"--broker", "tcp://"+cc.MQTTAddr(), "--row", "r1", "--mac", a.mac, "--password-file", secret,
				"--gpio", "sim", "--interval", "1s")
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				cmd.Process.Kill()
				if t.Failed() {
					t.Logf("agent output:\n%s", logs.String())
				}
			}()
			alive := func() {
				t.Helper()
				select {
				case err := <-exited:
					t.Fatalf("agent exited: %v\n%s", err, logs.String())
				default:
				}
			}

			s.await(t, "birth and two metrics samples", func(s *seen) bool { return s.online[a.mac] && s.metrics[a.mac] >= 2 })
			alive()

			// Locate from the Control Center, as the page's button does.
			req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/api/nodes/"+a.mac+"/blink", nil)
			req.SetBasicAuth(qemuAdmin, qemuAdminPass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("POST blink: %d %s", resp.StatusCode, body)
			}
			s.await(t, "the LED blinking on the simulated GPIO, by the admin", func(s *seen) bool {
				st := s.led[a.mac]
				return st.State == topics.LEDStateBlinking && st.Action == topics.LEDBlink && st.By == qemuAdmin
			})

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("agent stopped with %v", err)
				}
			case <-time.After(qemuWait):
				t.Fatal("agent did not stop on SIGTERM")
			}
			s.await(t, "offline after the clean stop", func(s *seen) bool { return s.offline[a.mac] })
		})
	}
}

// The check above can fail: the emulated ARMv6 CPU refuses a build for ARMv7, so an armhf
// package built for ARMv7 would not pass it.
func TestARMv6EmulationRefusesARMv7(t *testing.T) {
	needTools(t, "qemu-arm-static")
	bin := filepath.Join(t.TempDir(), "pirack-agent-armv7")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/pirack-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build for ARMv7: %v\n%s", err, out)
	}
	out, err := exec.Command("qemu-arm-static", "-cpu", "arm1176", bin, "--version").CombinedOutput()
	if err == nil {
		t.Fatalf("an ARMv7 build ran on the emulated ARM1176 (ARMv6): %s", out)
	}
	// And the same binary runs on an ARMv7 CPU, so the failure above is the CPU's refusal.
	if out, err := exec.Command("qemu-arm-static", "-cpu", "cortex-a7", bin, "--version").CombinedOutput(); err != nil {
		t.Fatalf("the ARMv7 build fails on an ARMv7 CPU too: %v\n%s", err, out)
	}
}
