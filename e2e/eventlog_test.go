package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history" // registers the sqlite driver the checks read with
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// presser publishes button presses as an agent does, one at a time at QoS 1, and remembers
// which ones the broker acknowledged. A press's bytes are kept, so it can be sent again as it
// was.
type presser struct {
	mac      string
	password string
	payloads [][]byte // by seq - 1
	acked    []bool   // by seq - 1
}

func (p *presser) dial(t *testing.T, addr string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(p.mac).
		SetUsername(p.mac).SetPassword(p.password).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(waitLimit))
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", p.mac, tok.Error())
	}
	return c
}

// send publishes press seq and reports whether it was acknowledged. No reconnect happens in
// between, so a completed token is a PUBACK for this very publish.
func (p *presser) send(c paho.Client, seq int) bool {
	tok := c.Publish(topics.ButtonTopic("r1", p.mac), 1, false, p.payloads[seq-1])
	return tok.WaitTimeout(waitLimit) && tok.Error() == nil
}

func (p *presser) next() int {
	b, err := topics.Encode(topics.ButtonEvent{V: topics.Version, Press: topics.PressShort, Seq: uint64(len(p.payloads) + 1), TS: time.Now()})
	if err != nil {
		panic(err)
	}
	p.payloads = append(p.payloads, b)
	p.acked = append(p.acked, false)
	return len(p.payloads)
}

// storedPresses counts, in the history file at path, the button events of each (mac, seq): the
// event log's key column holds button/<mac>/<seq>/<ts>.
func storedPresses(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT dedupe FROM events WHERE kind = ? AND dedupe IS NOT NULL", history.EventButton)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			t.Fatal(err)
		}
		var mac string
		var seq int
		var ts int64
		if _, err := fmt.Sscanf(key, "button/%12s/%d/%d", &mac, &seq, &ts); err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		got[fmt.Sprintf("%s/%d", mac, seq)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAcknowledgedPressesSurviveSIGKILL: 8 agents press as fast as their PUBACKs allow, one
// press in flight each, into a `pirack serve` subprocess that is SIGKILLed once 300 presses are
// acknowledged, mid-stream. Every acknowledged press must be in the history file as the kill
// left it. Then serve restarts and every press, acknowledged or not, is sent again (what agents
// do with the one in flight): each (mac, seq) must be in the log exactly once.
func TestAcknowledgedPressesSurviveSIGKILL(t *testing.T) {
	const agents, killAfter = 8, 300
	bin := buildPirack(t)
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, controlcenter.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: adminUser, Role: auth.RoleAdmin}, adminPassword); err != nil {
		t.Fatal(err)
	}
	var pressers []*presser
	for i := range agents {
		p := &presser{mac: fmt.Sprintf("b827eb00e%03x", i), password: auth.GeneratePassword()}
		if err := users.Add(auth.User{Name: p.mac, Role: auth.RoleAgent, MAC: p.mac, Row: "r1"}, p.password); err != nil {
			t.Fatal(err)
		}
		pressers = append(pressers, p)
	}
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	serve := startServe(t, bin, dir, mqttAddr, httpAddr)

	acks := make(chan struct{}, agents*1000)
	var wg sync.WaitGroup
	for _, p := range pressers {
		c := p.dial(t, mqttAddr)
		wg.Go(func() {
			defer c.Disconnect(0)
			for {
				seq := p.next()
				if !p.send(c, seq) {
					return // the kill
				}
				p.acked[seq-1] = true
				acks <- struct{}{}
			}
		})
	}
	for range killAfter {
		select {
		case <-acks:
		case <-time.After(waitLimit):
			t.Fatalf("fewer than %d presses acknowledged within %v", killAfter, waitLimit)
		}
	}
	serve.kill(t)
	wg.Wait()

	stored := storedPresses(t, filepath.Join(dir, controlcenter.HistoryFile))
	acked, missing := 0, []string{}
	for _, p := range pressers {
		for i, ok := range p.acked {
			if !ok {
				continue
			}
			acked++
			if k := fmt.Sprintf("%s/%d", p.mac, i+1); stored[k] == 0 {
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged presses missing from the event log after SIGKILL: %v", len(missing), acked, missing)
	}
	t.Logf("SIGKILL after %d acknowledged presses: all %d in the event log (%d stored)", killAfter, acked, len(stored))

	// Everything again, as agents re-send what they were not sure of: stored once each.
	startServe(t, bin, dir, mqttAddr, httpAddr)
	sent := 0
	for _, p := range pressers {
		c := p.dial(t, mqttAddr)
		for seq := range p.payloads {
			if !p.send(c, seq+1) {
				t.Fatalf("%s press %d not acknowledged after the restart", p.mac, seq+1)
			}
			sent++
		}
		c.Disconnect(0)
	}
	stored = storedPresses(t, filepath.Join(dir, controlcenter.HistoryFile))
	for _, p := range pressers {
		for seq := range p.payloads {
			if k := fmt.Sprintf("%s/%d", p.mac, seq+1); stored[k] != 1 {
				t.Errorf("press %s stored %d times, want once", k, stored[k])
			}
		}
	}
	if len(stored) != sent {
		t.Errorf("%d presses in the log, want the %d sent", len(stored), sent)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it at cleanup. It
// skips the test where mounting is not allowed (not root, or in a container without the
// capability).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	// The last partial blocks too, so that no write finds room.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			return path
		}
	}
}

// TestPressesWaitOutAFullDisk: the control center's data directory is a small tmpfs, filled up
// while a real agent presses its button. Presses made while the disk is full are not
// acknowledged: none reaches the event log, and each delivery is refused again as the agent
// sends it again on every reconnection. Once space is freed they all arrive, each once.
func TestPressesWaitOutAFullDisk(t *testing.T) {
	const before, during = 3, 5
	tmpfs := mountTmpfs(t, 16<<20)
	logs := make(chan string, 1024)
	r := newRig(t, func(t *testing.T, r *rig) {
		users, err := auth.Open(filepath.Join(tmpfs, controlcenter.UsersFile))
		if err != nil {
			t.Fatal(err)
		}
		users.Cost = bcrypt.MinCost
		if err := users.Add(auth.User{Name: adminUser, Role: auth.RoleAdmin}, adminPassword); err != nil {
			t.Fatal(err)
		}
		r.dir, r.users = tmpfs, users
		r.log = slog.New(testlog.Tap{Handler: r.log.Handler(), Msgs: logs})
	})
	// Every button message, after the dashboard has saved or refused it: in-process
	// subscribers run in the order they subscribed.
	delivered := make(chan struct{}, 1024)
	if err := r.cc.Bus().Subscribe(topics.ButtonTopic("+", "+"), func(bus.Message) {
		select {
		case delivered <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	btn := newSyncButton()
	p := r.startPi(t, macA, "r1", r.mqttAddr, durablePi(t.TempDir(), btn))
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	inLog := func() int {
		evs, err := r.cc.History().RackEvents(t.Context(), history.EventQuery{MAC: p.mac, Kinds: []string{history.EventButton}})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	// awaitLog waits, one delivery at a time, until the log holds want presses.
	awaitLog := func(want int) {
		t.Helper()
		deadline := time.After(waitLimit)
		for inLog() != want {
			select {
			case <-delivered:
			case <-deadline:
				t.Fatalf("%d presses in the event log after %v, want %d, checked after each delivery (a press acknowledged before it is saved would be seen late)", inLog(), waitLimit, want)
			}
		}
	}
	btn.pressN(t, before)
	awaitLog(before)

	filler := fillDisk(t, tmpfs)
	btn.pressN(t, during)
	// The first press of the outage is refused, sent again after a reconnection, refused
	// again: three refusals, and nothing new in the log meanwhile.
	deadline := time.After(waitLimit)
	for r.rack().Stats().PressesRefused < 3 {
		select {
		case <-delivered:
		case <-deadline:
			t.Fatalf("%d refused deliveries within %v, want 3", r.rack().Stats().PressesRefused, waitLimit)
		}
		if n := inLog(); n != before {
			t.Fatalf("%d presses in the event log while the disk is full, want %d", n, before)
		}
	}
	awaitLogged(t, logs, "button press not saved to the event log: not acknowledged, the Pi sends it again")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	awaitLog(before + during)
	t.Logf("%d presses refused while the disk was full; all %d in the event log once it was not", r.rack().Stats().PressesRefused, before+during)
}
