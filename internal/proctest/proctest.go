// Package proctest runs a real program a test talks to (Mosquitto, Prometheus, Node-RED): its
// output goes to the test log and is kept for WaitLog, readiness is judged from its log lines,
// a clash on the port it was given is told apart so the caller can try another, and it is
// stopped, its whole process group, with SIGTERM and then SIGKILL. It is for test helpers only.
package proctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPortInUse is returned by Start when the program exited saying its port was taken: the
// caller may pick another port and start again.
var ErrPortInUse = errors.New("port in use")

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Log is what a program logged, across restarts. The zero value is ready to use.
type Log struct {
	mu    sync.Mutex
	b     strings.Builder
	added chan struct{} // closed and replaced at each line
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Wait waits until a line containing s has been logged (lines logged before the call count),
// for at most timeout, and reports whether one was.
func (l *Log) Wait(s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		found, added := strings.Contains(l.b.String(), s), l.addedLocked()
		l.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-added:
		case <-deadline:
			return false
		}
	}
}

func (l *Log) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line + "\n")
	close(l.addedLocked())
	l.added = make(chan struct{})
}

func (l *Log) addedLocked() chan struct{} {
	if l.added == nil {
		l.added = make(chan struct{})
	}
	return l.added
}

// Spec says how to run a program and when it is ready.
type Spec struct {
	// Name names the program in errors ("mosquitto").
	Name string
	// Prefix starts each of its lines in Out ("mosquitto:1883: ").
	Prefix string
	// Out is the test log; Log keeps the lines too.
	Out io.Writer
	Log *Log
	// Ready is told each line in turn and returns true once the program is ready; it runs on
	// one goroutine, so it may keep state across lines.
	Ready func(line string) bool
	// InUse is the text of the program's complaint that its port is taken (for ErrPortInUse).
	InUse string
	// Timeout bounds the wait for Ready.
	Timeout time.Duration
}

// Proc is a started program.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and its output is drained
	once sync.Once
}

// Start starts cmd in a process group of its own, reads its standard output and error, and
// returns once spec.Ready reports it ready. If it exits first, the error is ErrPortInUse when
// it said spec.InUse; if spec.Timeout passes, it is stopped and an error returned.
func Start(cmd *exec.Cmd, spec Spec) (*Proc, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a wrapper script's children stop too
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	var inUse bool
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		isReady := false
		for sc.Scan() {
			l := sc.Text()
			fmt.Fprintf(spec.Out, "%s%s", spec.Prefix, l)
			spec.Log.add(l)
			if spec.InUse != "" && strings.Contains(l, spec.InUse) {
				inUse = true
			}
			if !isReady && spec.Ready(l) {
				isReady = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out) // a line too long for the scanner: keep the pipe flowing
	}()
	go func() {
		<-drained // the pipe is drained before Wait closes it
		_ = cmd.Wait()
		close(p.done)
	}()

	select {
	case <-ready:
		return p, nil
	case <-p.done:
		if inUse {
			return nil, ErrPortInUse
		}
		return nil, fmt.Errorf("%s exited at start (%v); its log is above", spec.Name, cmd.ProcessState)
	case <-time.After(spec.Timeout):
		p.Stop()
		return nil, fmt.Errorf("%s was not ready within %v; its log is above", spec.Name, spec.Timeout)
	}
}

// Done is closed once the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the program (not its group): SIGHUP to reload, say.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop stops the program's process group (SIGTERM, then SIGKILL after 5 s) and waits for it to
// exit. Stopping it again does nothing.
func (p *Proc) Stop() {
	p.once.Do(func() {
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	})
}
