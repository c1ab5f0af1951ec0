package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/brokerconfig"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/mqttbus"
	"github.com/pirack/pirack/topics"
)

// ccUser is the control center's own user on a foreign broker: an admin, as security.md says.
const ccUser = "pirack-cc"

// foreignAccess writes the Mosquitto password and ACL files generated from users into dir, as
// `pirack broker-config mosquitto --out dir` does.
func foreignAccess(t *testing.T, users *auth.Users, dir string) (passwd, acl string) {
	t.Helper()
	m, err := brokerconfig.GenerateMosquitto(users.List(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := brokerconfig.WriteMosquitto(dir, m); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
}

// mosquittoSite is a Mosquitto whose access files are generated from a rig's users file.
type mosquittoSite struct {
	*mosquittotest.Broker
	users     *auth.Users
	accessDir string
}

func startMosquittoSite(t *testing.T, users *auth.Users, opts mosquittotest.Options) *mosquittoSite {
	t.Helper()
	s := &mosquittoSite{users: users, accessDir: t.TempDir()}
	opts.PasswordFile, opts.ACLFile = foreignAccess(t, users, s.accessDir)
	s.Broker = mosquittotest.Start(t, opts)
	return s
}

// refresh regenerates the access files, reloads Mosquitto, and waits until it lets u in.
func (s *mosquittoSite) refresh(t *testing.T, u auth.User, password string) {
	t.Helper()
	foreignAccess(t, s.users, s.accessDir)
	s.Reload()
	deadline := time.Now().Add(waitLimit)
	for {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(s.URL()).SetClientID(u.Name + "-probe").
			SetUsername(u.Name).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false))
		tok := c.Connect()
		if tok.WaitTimeout(waitLimit) && tok.Error() == nil {
			c.Disconnect(0)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not let the new user %s in after a reload: %v", u.Name, tok.Error())
		}
		time.Sleep(20 * time.Millisecond) // the reload is asynchronous: SIGHUP, then a reread
	}
}

// newMosquittoRig is a rig whose control center runs on Debian's Mosquitto (`pirack serve
// --broker`), with the access files `pirack broker-config mosquitto` generates. Agents connect
// to Mosquitto. Adding a user regenerates the files and reloads Mosquitto.
func newMosquittoRig(t *testing.T, opts ...rigOption) (*rig, *mosquittoSite) {
	t.Helper()
	dir, users, log := newDataDir(t)
	ccPassword := auth.GeneratePassword()
	if err := users.Add(auth.User{Name: ccUser, Role: auth.RoleAdmin}, ccPassword); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "cc.password")
	if err := os.WriteFile(pwFile, []byte(ccPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	site := startMosquittoSite(t, users, mosquittotest.Options{PersistenceDir: t.TempDir()})
	r := &rig{dir: dir, users: users, log: log, mqttAddr: site.Addr(), seen: newPressLog()}
	httpAddr := freeAddr(t)
	r.url = "http://" + httpAddr
	r.base = controlcenter.Config{HTTPAddr: httpAddr, Broker: controlcenter.ExternalBroker{
		URL: "mqtt://" + site.Addr(), Username: ccUser, PasswordFile: pwFile, MaxReconnectDelay: fastReconnect,
	}}
	r.usersChanged = site.refresh
	for _, o := range opts {
		o(t, r)
	}
	r.start(t)
	t.Cleanup(r.stop)
	return r, site
}

func TestFlowOnMosquitto(t *testing.T) {
	t.Parallel()
	r, _ := newMosquittoRig(t, withAlerts(t, flowAlerts))
	if r.cc.Broker() != nil {
		t.Fatal("the control center runs its own broker next to Mosquitto")
	}
	testFlow(t, r)
}

// brokerOutage is how long the foreign broker stays down in TestForeignBrokerOutage.
const brokerOutage = 30 * time.Second

// The foreign broker goes away for 30 s while a Pi's button is pressed: the control center,
// still running, reconnects by itself and every press arrives, in order, from the agent's
// on-disk queue.
func TestForeignBrokerOutage(t *testing.T) {
	t.Parallel()
	r, site := newMosquittoRig(t)
	btn := newSyncButton()
	r.startPi(t, macA, "r1", r.mqttAddr, durablePi(t.TempDir(), btn))
	r.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	btn.pressN(t, 5)
	if missing := r.seen.await(t, map[string]uint64{macA: 5}); missing != nil {
		t.Fatalf("with the broker up: missing %v", missing)
	}
	cc := r.cc
	nb, ok := cc.Bus().(*mqttbus.Bus)
	if !ok {
		t.Fatalf("the control center's bus is a %T, want the network bus", cc.Bus())
	}

	site.Stop()
	down := time.Now()
	btn.pressN(t, 10) // 6-15, queued on the agent's disk
	select {          // the outage, held for its length
	case <-time.After(time.Until(down.Add(brokerOutage))):
	case <-t.Context().Done():
	}
	if nb.Connected() {
		t.Fatal("the network bus says it is connected to a stopped broker")
	}
	// 30 s without a word from a Pi that reports every 50 ms: the control center knows it
	// could not hear, and does not call the Pi stale. (It shows it offline: Mosquitto publishes
	// its clients' Wills as it shuts down.)
	for _, n := range r.rack().Nodes() {
		if n.MAC == macA && n.State == dashboard.StateStale {
			t.Errorf("during the broker outage the Pi shows %s", n.State)
		}
	}
	site.Restart()
	btn.pressN(t, 5) // 16-20, while everything reconnects

	if missing := r.seen.await(t, map[string]uint64{macA: 20}); missing != nil {
		t.Fatalf("after a %v outage of the broker: missing %v", brokerOutage, missing)
	}
	if r.cc != cc {
		t.Fatal("the control center was restarted; it should have reconnected by itself")
	}
	want := make([]uint64, 20)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := r.seen.firstSeen(macA); !slices.Equal(got, want) {
		t.Errorf("presses arrived in the order %v, want 1..20", got)
	}
	n := r.awaitNode(t, macA, "online again", func(n dashboard.Node) bool { return n.Online() })
	r.noAlerts(t, macA, "an alert about the Pi during the broker outage")
	t.Logf("broker down %v: 20 presses, 10 of them during the outage, all shown in order; %d duplicates dropped; network bus %+v; Pi %s",
		brokerOutage, r.rack().Stats().Duplicates, nb.Stats(), n.State)
}

// viaLink puts a link that can be cut between the control center and its foreign broker.
func viaLink(link **tcpproxy.Proxy) rigOption {
	return func(t *testing.T, r *rig) {
		*link = tcpproxy.New(t, strings.TrimPrefix(r.base.Broker.URL, "mqtt://"))
		r.base.Broker.URL = "mqtt://" + (*link).Addr()
	}
}

// Only the control center's own link to the broker dies; the Pis go on publishing. It cannot
// hear them, so it calls none of them stale and raises no alert, and the page (in Chromium)
// says the broker is lost; once back, the press made meanwhile arrives (queued by the broker
// for its persistent session) and the Pi's fresh telemetry with it.
func TestControlCenterLinkLost(t *testing.T) {
	t.Parallel()
	var link *tcpproxy.Proxy
	r, _ := newMosquittoRig(t, viaLink(&link), func(_ *testing.T, r *rig) { r.base.StaleAfter = time.Second })
	btn := newSyncButton()
	r.startPi(t, macA, "r1", r.mqttAddr, durablePi(t.TempDir(), btn))
	r.awaitNode(t, macA, "online with metrics", func(n dashboard.Node) bool { return n.Online() && n.Metrics != nil })
	nb := r.cc.Bus().(*mqttbus.Bus)
	ctx := browser(t)
	logIn(t, ctx, r.url)
	step(t, ctx, "the page is live", 20*time.Second, pollTrue(`document.getElementById("live").textContent === "live"`))

	link.Cut()
	eventually(t, "the network bus notices the lost link", func() bool { return !nb.Connected() })
	step(t, ctx, "the page says the broker is lost", 20*time.Second,
		pollTrue(`document.getElementById("live").textContent.startsWith("MQTT broker lost since")`))
	if err := btn.press(topics.PressShort); err != nil {
		t.Fatal(err)
	}
	// Twice the stale threshold (1 s): the Pi would be stale if the control center blamed it.
	time.Sleep(2 * time.Second) // holding the outage, not waiting for something
	for _, n := range r.rack().Nodes() {
		if n.MAC == macA && n.State != dashboard.StateOnline {
			t.Errorf("with only the control center's link lost, the Pi shows %s, want online as last heard", n.State)
		}
	}
	link.Restore()
	step(t, ctx, "the page is live again", 20*time.Second, pollTrue(`document.getElementById("live").textContent === "live"`))
	if missing := r.seen.await(t, map[string]uint64{macA: 1}); missing != nil {
		t.Fatalf("the press made while the control center's link was down never arrived: %v", missing)
	}
	before := r.rack().Stats()
	r.awaitNode(t, macA, "fresh telemetry", func(n dashboard.Node) bool { return r.rack().Stats().Applied > before.Applied+3 })
	r.noAlerts(t, macA, "an alert about the Pi while the control center could not hear it")
}

// eventually polls cond until it holds, failing after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noAlerts fails the test if the Pi's event log has an alert; why says when none was due.
func (r *rig) noAlerts(t *testing.T, mac, why string) {
	t.Helper()
	var events []history.Event
	if code := r.getJSON(t, "/api/nodes/"+mac+"/events", &events); code != http.StatusOK {
		t.Fatalf("GET events: HTTP %d", code)
	}
	for _, e := range events {
		if e.Kind == dashboard.EventAlert {
			t.Errorf("%s: %+v", why, e)
		}
	}
}
