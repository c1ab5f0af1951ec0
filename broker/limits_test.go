package broker

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
)

func TestLimitsDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	want := Limits{MaxPendingPerSource: 16, MaxWritesPending: 1024, WriteTimeout: 10 * time.Second,
		MaxSessionsPerUser: 16, MaxSessionsPerAdmin: 64, MaxSubscriptions: 100, MaxQueuedLED: 16, ViewerSessionExpiry: 24 * time.Hour}
	if c.Limits != want {
		t.Errorf("Limits defaults %+v, want %+v", c.Limits, want)
	}
	if got := c.capabilities().MaximumClientWritesPending; got != 1024 {
		t.Errorf("MaximumClientWritesPending %d, want 1024", got)
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:1883", "127.0.0.1"},
		{"[::ffff:10.0.0.7]:5", "10.0.0.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9]:2", "2001:db8:1:2::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sourceKey(a); got != tc.want {
			t.Errorf("sourceKey(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// dialFrom dials addr from the local IP from (any of 127/8 on Linux).
func dialFrom(t testing.TB, from, addr string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: wait}
	return d.Dial("tcp", addr)
}

// Item 5 of issue 11: one host flooding silent sockets takes only its own share of the
// sockets waiting for CONNECT; agents connecting from another address all get in, and the
// flood costs one log line per kind, not one per socket.
func TestPendingPerSource(t *testing.T) {
	const (
		flood     = 60
		legit     = 30
		perSource = 4
	)
	logs := new(testlog.Buffer)
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) {
		c.MaxPending = 20 // less than the flood: without a per-source share, it takes them all
		c.MaxPendingPerSource = perSource
		c.ConnectTimeout = 2 * time.Second
		c.Logger = newBufferLogger(t, logs)
	})
	handled := make(chan bool, flood+legit+10) // true: accepted, false: refused
	ended := make(chan net.Conn, flood+legit+10)
	b.afterAccept = func(net.Conn) { handled <- true }
	b.afterRefuse = func(net.Conn) { handled <- false }
	b.afterEnd = func(c net.Conn) { ended <- c }
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}

	for range flood {
		c, err := dialFrom(t, "127.0.0.1", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	accepted := 0
	for range flood {
		select {
		case ok := <-handled:
			if ok {
				accepted++
			}
		case <-time.After(wait):
			t.Fatal("the broker did not take every flood socket")
		}
	}
	t.Logf("flood from 127.0.0.1: %d of %d sockets held", accepted, flood)

	// While the flood holds its sockets, agents from 127.0.0.2 connect one after another.
	failed := 0
	for i := range legit {
		conn, err := dialFrom(t, "127.0.0.2", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		<-handled
		if _, err := conn.Write(connectPacket{id: "legit-" + string(rune('a'+i)), user: "admin", pass: password}.bytes()); err != nil {
			failed++
			conn.Close()
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		got := make([]byte, 4)
		if n, _ := conn.Read(got); n < 4 || !bytes.Equal(got, []byte{0x20, 2, 0, 0}) {
			failed++
		}
		conn.Close()
	}
	if failed > 0 {
		t.Errorf("%d of %d connects from another address failed during the flood", failed, legit)
	}
	if accepted > perSource {
		t.Errorf("one address held %d sockets waiting for CONNECT, want at most %d", accepted, perSource)
	}

	// The flood's held sockets time out; then every flood socket has cost one line per kind.
	for n := 0; n < accepted; {
		select {
		case c := <-ended:
			if strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.1:") {
				n++
			}
		case <-time.After(wait):
			t.Fatal("held flood sockets not closed after ConnectTimeout")
		}
	}
	var refusedLines, timeoutLines int
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, "remote=127.0.0.1:") {
			continue
		}
		switch {
		case strings.Contains(l, "too many sockets waiting for CONNECT"):
			refusedLines++
		case strings.Contains(l, "no CONNECT packet in time"):
			timeoutLines++
		}
	}
	if refusedLines != 1 || timeoutLines != 1 {
		t.Errorf("flood of %d sockets logged %d refusal and %d timeout lines, want 1 each (throttled per source):\n%s",
			flood, refusedLines, timeoutLines, logs)
	}
}

// Item 6 of issue 11: a subscriber that never reads while large messages are published costs a
// bounded amount of memory, is disconnected once a write to it blocks for WriteTimeout, and
// is counted; another subscriber keeps receiving.
func TestSlowConsumerBounded(t *testing.T) {
	const (
		payloadSize = 60 << 10
		messages    = 400 // 24 MiB in all
		maxQueued   = 32
	)
	logs := new(testlog.Buffer)
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) {
		c.MaxWritesPending = maxQueued
		c.WriteTimeout = 300 * time.Millisecond
		c.Logger = newBufferLogger(t, logs)
	})
	ended := make(chan net.Conn, 10)
	b.afterEnd = func(c net.Conn) { ended <- c }
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	healthy := mustDial(t, b, "healthy", "viewer")
	healthy.subscribe(t, "rack/end")

	slow := rawConnect(t, b.Addr(), connectPacket{id: "slow", user: "viewer", pass: password})
	_ = slow.(*net.TCPConn).SetReadBuffer(4 << 10)
	expectConnack(t, slow, 0)
	if _, err := slow.Write(subscribePacket("rack/#")); err != nil {
		t.Fatal(err)
	}
	readN(t, slow, 5) // SUBACK; from now on it reads nothing
	checkHealthy(t, b, "warm-up", nil)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := bytes.Repeat([]byte("x"), payloadSize)
	for range messages {
		if err := b.Publish(context.Background(), bus.Message{Topic: "rack/big", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("HeapInuse %d -> %d KiB (%+d KiB) after %d messages of %d KiB to a client that does not read",
		before.HeapInuse>>10, after.HeapInuse>>10, grew>>10, messages, payloadSize>>10)
	if grew > 8<<20 {
		t.Errorf("heap in use grew by %d MiB for one client that does not read, want under 8 MiB", grew>>20)
	}

	for done := false; !done; {
		select {
		case c := <-ended:
			done = c.RemoteAddr().String() == slow.LocalAddr().String()
		case <-time.After(wait):
			t.Fatal("the client that does not read is still connected")
		}
	}
	st := b.Stats()
	if st.SlowClientsDisconnected != 1 || st.MessagesDroppedQueueFull == 0 {
		t.Errorf("Stats %+v, want 1 slow client disconnected and messages dropped", st)
	}
	if !strings.Contains(logs.String(), "it stopped reading") || !strings.Contains(logs.String(), "client's queue is full") {
		t.Errorf("no log line for the slow client:\n%s", logs)
	}
	if n := strings.Count(logs.String(), "client's queue is full"); n != 1 {
		t.Errorf("%d log lines for dropped messages, want 1 (throttled per client)", n)
	}
	// The other subscriber was never disconnected and still receives.
	if err := b.Publish(context.Background(), bus.Message{Topic: "rack/end", Payload: []byte("end"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := healthy.next(t); string(m.Payload()) != "end" {
		t.Fatalf("healthy subscriber received %q", m.Payload())
	}
	healthy.expectConnected(t)
}

// connectV5 is an MQTT 5 CONNECT with no properties.
func connectV5(id, user, pass string, persistent bool) []byte {
	flags := byte(0xc0)
	if !persistent {
		flags |= 0x02
	}
	return packet(0x10, str("MQTT"), []byte{5, flags, 0, 60, 0}, str(id), str(user), str(pass))
}

// subscribeMany is a SUBSCRIBE of filters at QoS 1; v5 adds the empty properties.
func subscribeMany(v5 bool, filters ...string) []byte {
	body := [][]byte{{0, 7}}
	if v5 {
		body = append(body, []byte{0})
	}
	for _, f := range filters {
		body = append(body, str(f), []byte{1})
	}
	return packet(0x82, body...)
}

// Item 7 of issue 11: a viewer may hold MaxSessionsPerUser sessions, connected or persistent;
// one more is refused with "server unavailable" (3.1.1) or "quota exceeded" (5), while its own
// sessions can still be resumed and other users are not affected.
func TestSessionsPerUser(t *testing.T) {
	const max = 3
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) { c.MaxSessionsPerUser = max })
	for i := range max {
		c := rawConnect(t, b.Addr(), connectPacket{id: "view-" + string(rune('a'+i)), user: "viewer", pass: password, persistent: true})
		expectConnack(t, c, 0)
		if i > 0 {
			c.Close() // persistent: the session stays, and counts
		}
	}
	over := rawConnect(t, b.Addr(), connectPacket{id: "view-x", user: "viewer", pass: password})
	expectConnack(t, over, v3Unavailable)

	over5, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer over5.Close()
	if _, err := over5.Write(connectV5("view-y", "viewer", password, false)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, over5, 4); !bytes.Equal(got[:4], []byte{0x20, got[1], 0, 0x97}) {
		t.Errorf("MQTT 5 CONNACK % x, want reason 0x97 (quota exceeded)", got)
	}

	// A session the viewer holds can be resumed; the admin is counted on its own.
	again := rawConnect(t, b.Addr(), connectPacket{id: "view-b", user: "viewer", pass: password, persistent: true})
	if got := readN(t, again, 4); got[3] != 0 {
		t.Errorf("resuming a held session: CONNACK % x, want accepted", got)
	}
	checkHealthy(t, b, "admin-ok", nil)
	if st := b.Stats(); st.SessionsRefused != 2 {
		t.Errorf("SessionsRefused %d, want 2", st.SessionsRefused)
	}
}

// Item 7 of issue 11: a session holds at most MaxSubscriptions filters; more are refused
// filter by filter (0x80 on 3.1.1, 0x97 on 5), a filter it holds can be subscribed again, an
// unsubscribe makes room, and refused filters do not come back after a restart.
func TestSubscriptionsPerSession(t *testing.T) {
	const max = 5
	dir, users := t.TempDir(), testUsers(t)
	mods := func(c *Config) { c.MaxSubscriptions = max }
	b := newBroker(t, dir, users, true, mods)
	filters := []string{"rack/a/1", "rack/a/2", "rack/a/3", "rack/a/4", "rack/a/5", "rack/a/6", "rack/a/7"}

	c := rawConnect(t, b.Addr(), connectPacket{id: "subs", user: "viewer", pass: password, persistent: true})
	expectConnack(t, c, 0)
	if _, err := c.Write(subscribeMany(false, filters...)); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x90, 9, 0, 7, 1, 1, 1, 1, 1, 0x80, 0x80}
	if got := readN(t, c, len(want)); !bytes.Equal(got, want) {
		t.Errorf("SUBACK % x, want % x", got, want)
	}
	// Held filters again: granted. A new one: refused.
	if _, err := c.Write(subscribeMany(false, "rack/a/1", "rack/a/5", "rack/a/8")); err != nil {
		t.Fatal(err)
	}
	if got, want := readN(t, c, 7), []byte{0x90, 5, 0, 7, 1, 1, 0x80}; !bytes.Equal(got, want) {
		t.Errorf("SUBACK % x, want % x", got, want)
	}
	// UNSUBSCRIBE one, and a new one fits.
	if _, err := c.Write(packet(0xa2, []byte{0, 8}, str("rack/a/1"))); err != nil {
		t.Fatal(err)
	}
	readN(t, c, 4) // UNSUBACK
	if _, err := c.Write(subscribeMany(false, "rack/a/9")); err != nil {
		t.Fatal(err)
	}
	if got, want := readN(t, c, 5), []byte{0x90, 3, 0, 7, 1}; !bytes.Equal(got, want) {
		t.Errorf("SUBACK % x, want % x", got, want)
	}

	// MQTT 5: reason 0x97.
	c5, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c5.Close()
	if _, err := c5.Write(connectV5("subs5", "viewer", password, false)); err != nil {
		t.Fatal(err)
	}
	ack := readN(t, c5, 2)
	readN(t, c5, int(ack[1]))
	if _, err := c5.Write(subscribeMany(true, filters...)); err != nil {
		t.Fatal(err)
	}
	want5 := []byte{0x90, 10, 0, 7, 0, 1, 1, 1, 1, 1, 0x97, 0x97}
	if got := readN(t, c5, len(want5)); !bytes.Equal(got, want5) {
		t.Errorf("MQTT 5 SUBACK % x, want % x", got, want5)
	}
	if st := b.Stats(); st.SubscriptionsRefused != 5 {
		t.Errorf("SubscriptionsRefused %d, want 5", st.SubscriptionsRefused)
	}

	// After a restart the persistent session has its 5 filters, not the refused ones.
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = newBroker(t, dir, users, false, mods)
	cl, ok := b.srv.Clients.Get("subs")
	if !ok {
		t.Fatal("persistent session not restored")
	}
	if got := cl.State.Subscriptions.GetAll(); len(got) != max {
		t.Errorf("restored session has %d subscriptions, want %d: %v", len(got), max, got)
	}
}
