package broker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// killTestAgents are the agents of the tests below, in row r1.
func killTestAgents(t *testing.T, path string, n int) (*auth.Users, []string) {
	t.Helper()
	users, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "auto", Role: auth.RoleAutomation}, password); err != nil {
		t.Fatal(err)
	}
	macs := make([]string, n)
	for i := range macs {
		macs[i] = fmt.Sprintf("b827eb2%05x", i)
		if err := users.Add(auth.User{Role: auth.RoleAgent, MAC: macs[i], Row: "r1"}, password); err != nil {
			t.Fatal(err)
		}
	}
	return users, macs
}

// leaveOfflineWatcher makes the persistent session "flows" of user auto, subscribed at QoS 1
// to every button topic, and disconnects it: messages for it are queued in broker.db.
func leaveOfflineWatcher(t *testing.T, b *Broker) {
	t.Helper()
	conn := rawConnect(t, b.Addr(), connectPacket{id: "flows", user: "auto", pass: password, persistent: true})
	expectConnack(t, conn, 0)
	if _, err := conn.Write(subscribePacket(topics.ButtonTopic("+", "+"))); err != nil {
		t.Fatal(err)
	}
	if suback := readN(t, conn, 5); suback[0] != 0x90 || suback[4] != 1 {
		t.Fatalf("SUBACK % x, want QoS 1 granted", suback)
	}
	if _, err := conn.Write([]byte{0xe0, 0}); err != nil { // DISCONNECT
		t.Fatal(err)
	}
	readUntilClosed(t, conn)
}

// pressAgent is an agent's raw connection that publishes presses at QoS 1, one in flight.
type pressAgent struct {
	mac  string
	conn net.Conn
	r    *bufio.Reader
}

func dialPressAgent(t *testing.T, addr, mac string) *pressAgent {
	t.Helper()
	conn := rawConnect(t, addr, connectPacket{id: mac, user: mac, pass: password, persistent: true})
	expectConnack(t, conn, 0)
	return &pressAgent{mac: mac, conn: conn, r: bufio.NewReader(conn)}
}

// press publishes press seq and waits for its PUBACK.
func (a *pressAgent) press(seq int) error {
	payload := fmt.Sprintf(`{"v":1,"press":"short","seq":%d,"ts":"2026-12-03T07:00:00Z"}`, seq)
	if _, err := a.conn.Write(qos1Packet(topics.ButtonTopic("r1", a.mac), []byte(payload), seq)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(a.r, ack); err != nil {
		return err
	}
	if ack[0] != 0x40 {
		return fmt.Errorf("PUBACK expected, got % x", ack)
	}
	return nil
}

// TestQoS1PublishesShareCommits: presses from 8 agents at once, each queued for an offline
// persistent session, are saved to broker.db in fewer commits than there are presses, and all
// of them are queued after a restart, and sent again without a commit each.
func TestQoS1PublishesShareCommits(t *testing.T) {
	const agents, presses = 8, 40
	dir := t.TempDir()
	users, macs := killTestAgents(t, filepath.Join(t.TempDir(), "users.json"), agents)
	b := newBroker(t, dir, users, true)
	leaveOfflineWatcher(t, b)

	before := b.store.writer.stats()
	var wg sync.WaitGroup
	for _, mac := range macs {
		a := dialPressAgent(t, b.Addr(), mac)
		wg.Go(func() {
			for seq := range presses {
				if err := a.press(seq); err != nil {
					t.Errorf("%s press %d: %v", mac, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	after := b.store.writer.stats()
	commits, writes := after.commits-before.commits, after.changes-before.changes
	t.Logf("%d presses: %d writes to broker.db in %d commits", agents*presses, writes, commits)
	if writes < agents*presses {
		t.Errorf("%d writes for %d queued presses", writes, agents*presses)
	}
	if commits >= agents*presses {
		t.Errorf("%d commits for %d presses: no commit was shared", commits, agents*presses)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[pressKey]bool{}
	for _, mac := range macs {
		for seq := range presses {
			want[pressKey{mac, seq}] = true
		}
	}
	b = newBroker(t, dir, users, true)
	before = b.store.writer.stats()
	got := drainWatcher(t, b, want)
	for k := range want {
		if !got[k] {
			t.Errorf("press %s/%d not queued after the restart", k.mac, k.seq)
		}
	}
	// Mochi sends the 320 messages again on the session's connection and rewrites each: they
	// are on disk already, so none waits for a commit of its own.
	if c := b.store.writer.stats().commits - before.commits; c >= agents*presses/2 {
		t.Errorf("%d commits to send %d queued messages again", c, agents*presses)
	}
}

type pressKey struct {
	mac string
	seq int
}

// drainWatcher resumes "flows" and returns the presses queued for it, once it has every press
// of want (or after 10 s).
func drainWatcher(t *testing.T, b *Broker, want map[pressKey]bool) map[pressKey]bool {
	t.Helper()
	conn := rawConnect(t, b.Addr(), connectPacket{id: "flows", user: "auto", pass: password, persistent: true})
	if ack := readN(t, conn, 4); ack[0] != 0x20 || ack[2] != 1 || ack[3] != 0 {
		t.Fatalf("CONNACK % x, want the session present and accepted", ack)
	}
	var mu sync.Mutex
	got := map[pressKey]bool{}
	enough := make(chan struct{})
	found := 0
	if len(want) == 0 {
		close(enough)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ackPublishes(conn, func(topic string, payload []byte) {
			tp, err := topics.Parse(topic)
			var p struct{ Seq int }
			if err == nil {
				err = json.Unmarshal(payload, &p)
			}
			if err != nil {
				t.Errorf("unexpected message %s %q: %v", topic, payload, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			k := pressKey{tp.MAC, p.Seq}
			if want[k] && !got[k] {
				if found++; found == len(want) {
					close(enough)
				}
			}
			got[k] = true
		})
	}()
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
	}
	conn.Close()
	<-done
	return got
}

// TestQueuedPressesSurviveSIGKILL runs the broker in a subprocess (this test binary), with a
// persistent session offline, while 8 agents press as fast as PUBACKs come, and SIGKILLs it
// mid-stream: no Close, nothing flushed. Mochi acknowledges a QoS 1 publish just before it
// queues the message for subscribers, and handles a client's packets one at a time, so an
// agent's acknowledged press n+1 proves that press n was queued, and queued means on disk.
// Every such press must be queued for the session when the broker starts again on the file
// the kill left.
func TestQueuedPressesSurviveSIGKILL(t *testing.T) {
	if dir := os.Getenv("PIRACK_TEST_BROKER_DIR"); dir != "" {
		runKillChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	const agents = 8
	dir := t.TempDir()
	usersPath := filepath.Join(dir, "users.json")
	users, macs := killTestAgents(t, usersPath, agents)
	b := newBroker(t, dir, users, true)
	leaveOfflineWatcher(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run", "^TestQueuedPressesSurviveSIGKILL$")
	cmd.Env = append(os.Environ(), "PIRACK_TEST_BROKER_DIR="+dir)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "broker listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("the broker subprocess did not start: %v", sc.Err())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	// Each agent presses until the kill; acked[i] is its last acknowledged press.
	acked := make([]atomic.Int64, agents)
	var total atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i, mac := range macs {
		acked[i].Store(-1)
		a := dialPressAgent(t, addr, mac)
		wg.Go(func() {
			for seq := 0; ; seq++ {
				if a.press(seq) != nil {
					return // killed
				}
				acked[i].Store(int64(seq))
				if total.Add(1) == 400 {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(time.Minute):
		t.Fatal("400 presses were not acknowledged within a minute")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the subprocess ended with %v before the kill", err)
	}
	wg.Wait()

	want := map[pressKey]bool{} // presses 0 .. acked-1 of each agent
	for i, mac := range macs {
		for seq := range int(acked[i].Load()) {
			want[pressKey{mac, seq}] = true
		}
	}
	b = newBroker(t, dir, users, true)
	got := drainWatcher(t, b, want)
	lost := 0
	for k := range want {
		if !got[k] {
			lost++
		}
	}
	t.Logf("killed after %d acknowledged presses; %d of them proven queued, %d found after the restart", total.Load(), len(want), len(got))
	if lost > 0 {
		t.Errorf("%d presses acknowledged and queued before the kill were not in broker.db", lost)
	}
}

// runKillChild is the subprocess of TestQueuedPressesSurviveSIGKILL: a broker on dir, whose
// address it prints, running until it is killed.
func runKillChild(t *testing.T, dir string) {
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, dir, users, true, func(c *Config) { c.Logger = discardLogger() })
	fmt.Println("broker listening on " + b.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed (or the parent is gone)
}
