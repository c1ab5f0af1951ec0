package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/internal/tcpproxy"
	"github.com/pirack/pirack/topics"
)

// bridgeUser is the user a site's bridge logs in to the central broker as, and whose rights it
// has on its own broker (local_username): it carries every pirack topic both ways.
const bridgeUser = "site-bridge"

// bridgedRig is a spread fleet: agents on a site's Mosquitto, bridged to a central Mosquitto
// where the control center connects; both brokers' access files are generated from the same
// users file. The bridge runs through link, which can be cut and restored.
type bridgedRig struct {
	*rig
	site, central *mosquittoSite
	link          *tcpproxy.Proxy
}

func newBridgedRig(t *testing.T, opts ...rigOption) *bridgedRig {
	t.Helper()
	dir, users, log := newDataDir(t)
	ccPassword, bridgePassword := auth.GeneratePassword(), auth.GeneratePassword()
	for _, u := range []struct {
		name, password string
	}{{ccUser, ccPassword}, {bridgeUser, bridgePassword}} {
		if err := users.Add(auth.User{Name: u.name, Role: auth.RoleAdmin}, u.password); err != nil {
			t.Fatal(err)
		}
	}
	pwFile := filepath.Join(t.TempDir(), "cc.password")
	if err := os.WriteFile(pwFile, []byte(ccPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &bridgedRig{}
	b.central = startMosquittoSite(t, users, mosquittotest.Options{PersistenceDir: t.TempDir()})
	b.link = tcpproxy.New(t, b.central.Addr())
	b.site = startMosquittoSite(t, users, mosquittotest.Options{PersistenceDir: t.TempDir(), Bridges: []mosquittotest.Bridge{{
		Name: "site-a", Addr: b.link.Addr(), RemoteUsername: bridgeUser, RemotePassword: bridgePassword,
		LocalUsername: bridgeUser, Topics: siteBridgeTopics(),
	}}})
	if !b.central.WaitLog("New bridge connected", waitLimit) {
		t.Fatalf("the site's bridge did not connect to the central broker:\n%s", b.central.Log())
	}
	r := &rig{dir: dir, users: users, log: log, mqttAddr: b.site.Addr(), seen: newPressLog()}
	httpAddr := freeAddr(t)
	r.url = "http://" + httpAddr
	r.base = controlcenter.Config{HTTPAddr: httpAddr, Broker: controlcenter.ExternalBroker{
		URL: "mqtt://" + b.central.Addr(), Username: ccUser, PasswordFile: pwFile, MaxReconnectDelay: fastReconnect,
	}}
	r.usersChanged = func(t *testing.T, u auth.User, password string) {
		b.central.refresh(t, u, password)
		b.site.refresh(t, u, password)
	}
	for _, o := range opts {
		o(t, r)
	}
	r.start(t)
	t.Cleanup(r.stop)
	b.rig = r
	return b
}

// siteBridgeTopics are the bridge's topic lines as docs/scale.md gives them: one direction per
// topic, so that each retained topic has one writer side (with "rack/# both", the central
// broker's older retained status flows back to the site when the link returns).
func siteBridgeTopics() []string {
	var lines []string
	for _, t := range []string{topics.StatusTopic("+", "+"), topics.MetricsTopic("+", "+"), topics.ButtonTopic("+", "+"),
		topics.LEDStateTopic("+", "+"), topics.PowerTopic("+")} {
		lines = append(lines, t+" out 1")
	}
	for _, t := range []string{topics.LEDFilter, topics.AlertTopic("+", "+", "+"), topics.AlertTopic("+", "", "+")} {
		lines = append(lines, t+" in 1")
	}
	return lines
}

func TestFlowThroughABridge(t *testing.T) {
	t.Parallel()
	testFlow(t, newBridgedRig(t, withAlerts(t, flowAlerts)).rig)
}

// The link between the site and the central broker is cut while a Pi's button is pressed, then
// restored: every press reaches the control center, in order.
func TestNoPressLostWhenTheBridgeLinkIsCut(t *testing.T) {
	t.Parallel()
	b := newBridgedRig(t)
	btn := newSyncButton()
	b.startPi(t, macA, "r1", b.mqttAddr, durablePi(t.TempDir(), btn))
	b.awaitNode(t, macA, "online", func(n dashboard.Node) bool { return n.Online() })
	btn.pressN(t, 5)
	if missing := b.seen.await(t, map[string]uint64{macA: 5}); missing != nil {
		t.Fatalf("with the bridge up: missing %v", missing)
	}
	b.link.Cut()
	btn.pressN(t, 20) // acknowledged by the site's broker, queued there for the bridge
	b.link.Restore()
	if missing := b.seen.await(t, map[string]uint64{macA: 25}); missing != nil {
		t.Fatalf("after the bridge link was cut and restored: missing %v\ncentral:\n%s\nsite:\n%s", missing, b.central.Log(), b.site.Log())
	}
	want := make([]uint64, 25)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := b.seen.firstSeen(macA); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("presses arrived in the order %v, want 1..25", got)
	}
}
