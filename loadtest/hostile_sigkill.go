package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/topics"
)

// serveStartWithin bounds how long `pirack serve` may take to accept MQTT connections.
const serveStartWithin = 30 * time.Second

// flushWithin bounds how long the pressing agents may take, once pressing stops, to have
// their last press acknowledged.
const flushWithin = 30 * time.Second

// sigkillLoop: `pirack serve` SIGKILLed again and again under pressing agents; then every
// press acknowledged must be in the event log, once.
func sigkillLoop(ctx context.Context, cfg HostileConfig, stdout io.Writer) (hostileRow, error) {
	argv := cfg.Serve
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return hostileRow{}, fmt.Errorf("find pirack to run serve with: %w", err)
		}
		argv = []string{exe, "serve"}
	}
	level := cfg.LogLevel
	if level == "" {
		level = "error"
	}
	dir, err := os.MkdirTemp("", "pirack-hostile-serve-")
	if err != nil {
		return hostileRow{}, err
	}
	defer os.RemoveAll(dir)
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		return hostileRow{}, err
	}
	var pressers []*killPresser
	for i := range cfg.PressAgents {
		p := &killPresser{mac: benchMAC(i), pass: auth.GeneratePassword()}
		if err := users.SetWithCost(auth.User{Name: p.mac, Role: auth.RoleAgent, MAC: p.mac, Row: "r1"}, p.pass, bcrypt.MinCost); err != nil {
			return hostileRow{}, fmt.Errorf("create agent account: %w", err)
		}
		pressers = append(pressers, p)
	}
	// A fixed port, so that the restarted serve listens where the agents look.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return hostileRow{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logw := cfg.ServeLog
	if logw == nil {
		logw = io.Discard
	}
	start := func() (*serveProc, error) {
		return startServe(ctx, argv, cfg.ServeEnv, logw, addr,
			"--data-dir", dir, "--mqtt", addr, "--http", "127.0.0.1:0", "--log-level", level)
	}
	fmt.Fprintf(stdout, "SIGKILL loop: pirack serve SIGKILLed %d times, each after %v-%v up; %d agents press, one press in flight each, a new one every %v\n",
		cfg.Kills, cfg.UpMin, cfg.UpMax, cfg.PressAgents, cfg.PressEvery)

	serve, err := start()
	if err != nil {
		return hostileRow{}, err
	}
	defer func() {
		if serve != nil {
			serve.kill() // after a failure; a no-op once stopped
		}
	}()
	var acked atomic.Int64
	pressing, stopPressing := context.WithCancel(ctx)
	defer stopPressing()
	hard, stopHard := context.WithCancel(ctx)
	defer stopHard()
	var wg sync.WaitGroup
	for _, p := range pressers {
		wg.Go(func() { p.run(pressing, hard, addr, cfg.PressEvery, &acked) })
	}
	var peakRSS uint64
	var restarts []time.Duration
	notePeak := func() {
		if m, err := readProcMem(strconv.Itoa(serve.cmd.Process.Pid)); err == nil {
			peakRSS = max(peakRSS, m.Peak)
		}
	}
	for k := 1; k <= cfg.Kills; k++ {
		up := cfg.UpMin + rand.N(cfg.UpMax-cfg.UpMin+1)
		if !sleepCtx(ctx, up) {
			break
		}
		notePeak()
		serve.kill()
		before := acked.Load()
		t := time.Now()
		if serve, err = start(); err != nil {
			stopHard()
			wg.Wait()
			return hostileRow{}, fmt.Errorf("restart after kill %d: %w", k, err)
		}
		restarts = append(restarts, time.Since(t))
		fmt.Fprintf(stdout, "  kill %d after %v up, %d presses acknowledged so far; serve accepting again after %v\n",
			k, up.Round(time.Millisecond), before, time.Since(t).Round(time.Millisecond))
	}
	// Presses after the last restart, then every press still in flight delivered.
	sleepCtx(ctx, cfg.UpMin)
	stopPressing()
	flushed := make(chan struct{})
	go func() { wg.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(flushWithin):
		stopHard()
		<-flushed
	}
	if ctx.Err() != nil {
		return hostileRow{}, ctx.Err()
	}
	notePeak()
	if err := serve.stop(); err != nil {
		return hostileRow{}, err
	}

	keys, err := storedKeys(ctx, filepath.Join(dir, controlcenter.HistoryFile))
	if err != nil {
		return hostileRow{}, err
	}
	var made, ackedN, unacked, resent, lost, dups int
	ours := map[string]bool{}
	for _, p := range pressers {
		for _, pr := range p.presses {
			made++
			ours[pr.key] = true
			switch {
			case pr.acked:
				ackedN++
				if keys[pr.key] == 0 {
					lost++
				}
			default:
				unacked++
			}
			if pr.sends > 1 {
				resent++
			}
			dups += max(keys[pr.key]-1, 0)
		}
	}
	var strangers int // events of no press made here: keyless, or keys of nothing sent
	for k, n := range keys {
		if !ours[k] {
			strangers += n
		}
	}
	row := hostileRow{name: "SIGKILL loop",
		load: fmt.Sprintf("%d SIGKILLs of pirack serve, every %v-%v; %d agents pressing every %v", cfg.Kills, cfg.UpMin, cfg.UpMax,
			cfg.PressAgents, cfg.PressEvery),
		memory: fmt.Sprintf("serve RSS peak %.1f MiB", mib(peakRSS)),
		result: fmt.Sprintf("%d presses acknowledged: %d lost, %d duplicated", ackedN, lost, dups+strangers),
	}
	fmt.Fprintf(stdout, "  presses: %d made, %d acknowledged, %d never acknowledged; %d sent again after a kill\n", made, ackedN, unacked, resent)
	fmt.Fprintf(stdout, "  event log: %d presses stored; %d lost (acknowledged, not stored), %d duplicated (a press stored twice, or an event of no press made)\n",
		len(keys)-strangers, lost, dups+strangers)
	fmt.Fprintf(stdout, "  serve: peak RSS %.1f MiB (VmHWM, highest of its %d runs); accepting again after a kill within %v\n",
		mib(peakRSS), len(restarts)+1, pct(sortedCopy(restarts), 100))
	if lost > 0 || dups+strangers > 0 || unacked > 0 {
		row.failed = append(row.failed, fmt.Sprintf("%d lost, %d duplicated, %d never acknowledged", lost, dups+strangers, unacked))
	}
	if ackedN == 0 {
		row.failed = append(row.failed, "no press acknowledged")
	}
	return row, nil
}

// storedKeys counts the button events of the event log at path by key.
func storedKeys(ctx context.Context, path string) (map[string]int, error) {
	s, err := history.Open(path, history.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	keys, err := s.EventKeys(ctx, history.EventButton)
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, k := range keys {
		m[k]++
	}
	return m, nil
}

// killPresser publishes button presses as an agent does, at QoS 1 with one in flight, and
// sends a press again, as it was, on the next connection when its PUBACK did not come. It
// keeps each press's key in the event log and whether the broker acknowledged it. Only its
// run goroutine touches it until run returns.
type killPresser struct {
	mac, pass string
	presses   []killPress
}

type killPress struct {
	payload []byte
	key     string // dashboard.PressKey
	acked   bool   // a PUBACK came
	sends   int
}

// run makes a press every every until pressing ends, then delivers the one in flight, if any;
// hard ends everything.
func (p *killPresser) run(pressing, hard context.Context, addr string, every time.Duration, acked *atomic.Int64) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var c paho.Client
	defer func() {
		if c != nil {
			c.Disconnect(0)
		}
	}()
	pending := -1 // index of the press in flight
	for {
		if pending < 0 {
			select {
			case <-pressing.Done():
				return
			case <-tick.C:
			}
			if err := p.next(); err != nil {
				panic(err) // a constant payload
			}
			pending = len(p.presses) - 1
		}
		if c == nil {
			if c = p.dial(hard, addr); c == nil {
				return
			}
		}
		pr := &p.presses[pending]
		pr.sends++
		// No reconnection happens within one client: a completed token is a PUBACK for this
		// very publish (DESIGN.md: after a reconnection paho completes old tokens early).
		tok := c.Publish(topics.ButtonTopic("r1", p.mac), 1, false, pr.payload)
		if tok.WaitTimeout(clientWait) && tok.Error() == nil {
			pr.acked = true
			acked.Add(1)
			pending = -1
			continue
		}
		c.Disconnect(0) // the kill: connect again and send the same press
		c = nil
	}
}

func (p *killPresser) next() error {
	ev := topics.ButtonEvent{V: topics.Version, Press: topics.PressShort, Seq: uint64(len(p.presses) + 1), TS: time.Now().UTC()}
	b, err := topics.Encode(ev)
	if err != nil {
		return err
	}
	// The key of the payload as the control center decodes it.
	if ev, err = topics.DecodeButton(b); err != nil {
		return err
	}
	p.presses = append(p.presses, killPress{payload: b, key: dashboard.PressKey(p.mac, ev)})
	return nil
}

// dial connects, again every 50 ms while serve is down, until ctx ends (nil then).
func (p *killPresser) dial(ctx context.Context, addr string) paho.Client {
	for {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(p.mac).
			SetUsername(p.mac).SetPassword(p.pass).SetProtocolVersion(4).SetCleanSession(true).
			SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
		if tok := c.Connect(); tok.WaitTimeout(clientWait) && tok.Error() == nil {
			return c
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return nil
		}
	}
}

// serveProc is a `pirack serve` subprocess.
type serveProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and its output is copied
	tail *tailWriter
}

// startServe runs argv with args appended and returns once it accepts connections on addr.
func startServe(ctx context.Context, argv, env []string, logw io.Writer, addr string, args ...string) (*serveProc, error) {
	cmd := exec.Command(argv[0], append(argv[1:len(argv):len(argv)], args...)...)
	cmd.Env = append(os.Environ(), env...)
	tail := &tailWriter{max: 4 << 10}
	cmd.Stdout = io.MultiWriter(logw, tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &serveProc{cmd: cmd, done: make(chan struct{}), tail: tail}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(serveStartWithin)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("pirack serve exited at start: %s\n%s", cmd.ProcessState, tail)
		default:
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 20*time.Millisecond) {
			p.kill()
			return nil, fmt.Errorf("pirack serve not accepting MQTT on %s after %v (or cancelled):\n%s", addr, serveStartWithin, tail)
		}
	}
}

// kill sends SIGKILL, as the OOM killer or a power cut would, and waits for the exit.
func (p *serveProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks serve to shut down (SIGTERM), and kills it if it has not within 30 s.
func (p *serveProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("pirack serve stopped with %s:\n%s", p.cmd.ProcessState, p.tail)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return errors.New("pirack serve did not stop within 30 s of SIGTERM")
	}
}

// tailWriter keeps the last max bytes written to it, for an error message.
type tailWriter struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func sortedCopy(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	slices.Sort(s)
	return s
}
