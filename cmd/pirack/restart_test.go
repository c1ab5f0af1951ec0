package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/topics"
)

// These tests stop a real control center cleanly and start it again on the same data
// directory and MQTT port, with real agents and MQTT clients over TCP, to check what must
// survive the restart (raised alerts, handed back to the alerts engine) and what must not (a
// forgotten Pi).

// restartWait bounds every wait here; the steps normally take milliseconds.
const restartWait = 15 * time.Second

const (
	restartAdmin, restartAdminPassword   = "admin", "admin-password" // made by dataDirWithAdmin
	restartViewer, restartViewerPassword = "viewer", "viewer-password"
)

// restartRig is a data directory and an MQTT address that successive runs of the control
// center share, so that agents reconnect to the new run by themselves.
type restartRig struct {
	dir, mqttAddr, alertsFile string
	remoteSystem              bool // pirack serve --remote-system
	users                     *auth.Users
	logs                      testlog.Writer
}

// newRestartRig makes a data directory with an admin and a viewer. alertsJSON, when not "",
// is written to an alerts file laid over the default rules.
func newRestartRig(t *testing.T, alertsJSON string) *restartRig {
	t.Helper()
	r := &restartRig{dir: dataDirWithAdmin(t), logs: testlog.NewWriter(t)}
	users, err := auth.Open(filepath.Join(r.dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: restartViewer, Role: auth.RoleViewer}, restartViewerPassword); err != nil {
		t.Fatal(err)
	}
	r.users = users
	if alertsJSON != "" {
		r.alertsFile = filepath.Join(t.TempDir(), "alerts.json")
		if err := os.WriteFile(r.alertsFile, []byte(alertsJSON), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A port reserved now, so that the agents find every run at the same address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.mqttAddr = ln.Addr().String()
	ln.Close()
	return r
}

// ccRun is one run of the control center.
type ccRun struct {
	cc      *controlcenter.ControlCenter
	base    string    // the Control Center's URL
	started time.Time // before controlcenter.New was called
	cancel  context.CancelFunc
	done    chan error // wait's result, once serving
}

// open starts a control center on the rig's data directory, as `pirack serve` does, without
// serving yet: retained messages have been handed to the dashboard, and the broker listens.
// Call serve next; a test may subscribe in-process first to see everything the run publishes.
func (r *restartRig) open(t *testing.T) *ccRun {
	t.Helper()
	log, err := newLogger(r.logs, "info")
	if err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig{DataDir: r.dir, MQTTAddr: r.mqttAddr, HTTPAddr: "127.0.0.1:0", LogLevel: "info", AlertsFile: r.alertsFile, RemoteSystem: r.remoteSystem}
	started := time.Now()
	cc, err := controlcenter.New(cfg.controlCenter(log, io.Discard))
	if err != nil {
		t.Fatalf("start the control center on %s: %v", r.dir, err)
	}
	return &ccRun{cc: cc, base: "http://" + cc.HTTPAddr(), started: started}
}

// serve serves the run until stop (or the end of the test).
func (c *ccRun) serve(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() { c.done <- c.cc.Run(ctx) }()
	t.Cleanup(func() { c.stop(t) })
	select {
	case <-c.cc.Ready():
	case err := <-c.done:
		t.Fatalf("control center stopped at start: %v", err)
	}
}

// stop stops the run as Ctrl-C does: the web server, then the broker (agents disconnected).
func (c *ccRun) stop(t *testing.T) {
	t.Helper()
	if c.done == nil {
		return
	}
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("control center stopped with: %v", err)
		}
	case <-time.After(restartWait):
		t.Fatalf("control center did not stop within %v", restartWait)
	}
	c.done = nil
}

// do sends an API request with HTTP Basic auth and returns the status and body.
func (c *ccRun) do(t *testing.T, method, path, user, password, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// apiGet reads a JSON API resource as the viewer, failing the test unless it answers 200.
func apiGet[T any](t *testing.T, c *ccRun, path string) T {
	t.Helper()
	code, body := c.do(t, http.MethodGet, path, restartViewer, restartViewerPassword, "")
	var v T
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return v
}

// awaitNode polls GET /api/nodes/{mac} until the node satisfies cond.
func (c *ccRun) awaitNode(t *testing.T, mac, what string, cond func(dashboard.Node) bool) dashboard.Node {
	t.Helper()
	deadline := time.Now().Add(restartWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last dashboard.Node
	for ; time.Now().Before(deadline); <-tick.C {
		code, body := c.do(t, http.MethodGet, "/api/nodes/"+mac, restartViewer, restartViewerPassword, "")
		if code == http.StatusOK {
			last = dashboard.Node{}
			if err := json.Unmarshal(body, &last); err != nil {
				t.Fatalf("GET /api/nodes/%s: %v", mac, err)
			}
			if cond(last) {
				return last
			}
		}
	}
	t.Fatalf("waited %v for %s to be %s; last seen: %+v", restartWait, mac, what, last)
	return last
}

// addAgent makes an agent account and returns its password.
func (r *restartRig) addAgent(t *testing.T, mac, row string) string {
	t.Helper()
	password := auth.GeneratePassword()
	if err := r.users.Add(auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: row}, password); err != nil {
		t.Fatal(err)
	}
	return password
}

// runAgent runs a real agent against the rig's MQTT address, reconnecting within 300 ms, and
// returns a function that stops it cleanly (retained offline status, then DISCONNECT).
func (r *restartRig) runAgent(t *testing.T, mac, row, password string, col agent.Collector, interval time.Duration) (stop func()) {
	t.Helper()
	log, err := newLogger(r.logs, "info")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{
		Broker: "tcp://" + r.mqttAddr, MAC: mac, Row: row, Password: password,
		Interval: interval, KeepAlive: 2 * time.Second, MaxReconnectDelay: 300 * time.Millisecond,
		Collector: col, LED: new(sim.LED), Hostname: "pi-" + mac[8:], IP: "192.0.2.10",
		Logger: log.With("component", "agent", "mac", mac),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: %v", mac, err)
				}
			case <-time.After(restartWait):
				t.Errorf("agent %s did not stop within %v", mac, restartWait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// thermometer is a Collector whose CPU temperature the test sets. While held, Collect waits
// for release (or for the agent to stop), so the test decides which sample is the first a new
// run of the control center sees.
type thermometer struct {
	mu    sync.Mutex
	tempC float64
	open  chan struct{} // closed while samples flow
}

var _ agent.Collector = (*thermometer)(nil)

func newThermometer(tempC float64) *thermometer {
	open := make(chan struct{})
	close(open)
	return &thermometer{tempC: tempC, open: open}
}

func (c *thermometer) Collect(ctx context.Context) (topics.Metrics, error) {
	for {
		c.mu.Lock()
		open, tempC := c.open, c.tempC
		c.mu.Unlock()
		select {
		case <-open:
			// Read again: the sample must not carry a temperature set while it was held.
			c.mu.Lock()
			same, tempC2 := c.open == open, c.tempC
			c.mu.Unlock()
			if same && tempC2 == tempC {
				cpus := 4
				return topics.Metrics{CPUTempC: &tempC, CPUCount: &cpus}, nil
			}
		case <-ctx.Done():
			return topics.Metrics{}, ctx.Err()
		}
	}
}

// hold makes Collect wait; a sample already returned may still be published.
func (c *thermometer) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = make(chan struct{})
}

// release lets samples flow again.
func (c *thermometer) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.open:
	default:
		close(c.open)
	}
}

func (c *thermometer) set(tempC float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tempC = tempC
}

// mqttViewer is an MQTT client logged in as the viewer; every message it receives, retained
// or live, goes to msgs in the order the broker sent them.
type mqttViewer struct {
	paho.Client
	msgs chan paho.Message
}

func dialViewer(t *testing.T, addr string) *mqttViewer {
	t.Helper()
	v := &mqttViewer{msgs: make(chan paho.Message, 1000)}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("viewer-%d", time.Now().UnixNano())).
		SetUsername(restartViewer).SetPassword(restartViewerPassword).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			select {
			case v.msgs <- m:
			default:
				t.Errorf("viewer: dropped a message on %s: the test reads too slowly", m.Topic())
			}
		})
	v.Client = paho.NewClient(o)
	if tok := v.Connect(); !tok.WaitTimeout(restartWait) || tok.Error() != nil {
		t.Fatalf("viewer connect to %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { v.Disconnect(0) })
	return v
}

// subscribe subscribes at QoS 0; messages go to v.msgs. (At QoS 1 the broker's packet ids of
// the retained messages it is still sending can collide with the next SUBSCRIBE's, which Mochi
// then refuses with 0x91, packet identifier in use.)
func (v *mqttViewer) subscribe(t *testing.T, filter string) {
	t.Helper()
	tok := v.Subscribe(filter, 0, nil)
	if !tok.WaitTimeout(restartWait) || tok.Error() != nil {
		t.Fatalf("viewer subscribe %s: %v", filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code > 2 {
		t.Fatalf("viewer subscribe %s: refused (code %#x)", filter, code)
	}
}

// awaitAlert reads v.msgs until an alert on topic in state arrives.
func (v *mqttViewer) awaitAlert(t *testing.T, topic, state string) topics.Alert {
	t.Helper()
	deadline := time.After(restartWait)
	for {
		select {
		case m := <-v.msgs:
			if m.Topic() != topic {
				continue
			}
			a, err := topics.DecodeAlert(m.Payload())
			if err != nil {
				t.Fatalf("alert on %s: %v", topic, err)
			}
			if a.State == state {
				return a
			}
		case <-deadline:
			t.Fatalf("viewer saw no %s alert on %s within %v", state, topic, restartWait)
		}
	}
}

// retainedUnderRack returns every retained message a viewer subscribing to rack/# receives.
// sentinel is a retained topic: it is subscribed to on its own after rack/#, and the broker
// queues a subscription's retained messages in order, so its second retained copy comes after
// all of rack/#'s. Live messages are left out (a publish acknowledged just before may still be
// on its way to subscribers).
func retainedUnderRack(t *testing.T, addr, sentinel string) map[string][]byte {
	t.Helper()
	v := dialViewer(t, addr)
	v.subscribe(t, topics.AllFilter)
	v.subscribe(t, sentinel)
	got := map[string][]byte{}
	deadline := time.After(restartWait)
	for seen := 0; seen < 2; {
		select {
		case m := <-v.msgs:
			if !m.Retained() {
				continue
			}
			got[m.Topic()] = m.Payload()
			if m.Topic() == sentinel {
				seen++
			}
		case <-deadline:
			t.Fatalf("sentinel %s seen %d of 2 times within %v; got %d retained messages", sentinel, seen, restartWait, len(got))
		}
	}
	v.Disconnect(0)
	return got
}

// alertsOf returns the alerts of one rule shown by GET /api/alerts.
func alertsOf(t *testing.T, c *ccRun, rule string) []topics.Alert {
	t.Helper()
	var out []topics.Alert
	for _, a := range apiGet[[]topics.Alert](t, c, "/api/alerts") {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// tapAlerts subscribes in-process, before the run serves, to one alert topic: the first
// message is the retained one found at start, the rest what this run publishes.
func tapAlerts(t *testing.T, c *ccRun, topic string) <-chan topics.Alert {
	t.Helper()
	ch := make(chan topics.Alert, 100)
	err := c.cc.Bus().Subscribe(topic, func(m bus.Message) {
		p := m.Payload
		if len(p) == 0 {
			return
		}
		a, err := topics.DecodeAlert(bytes.Clone(p))
		if err != nil {
			t.Errorf("alert on %s: %v", topic, err)
			return
		}
		select {
		case ch <- a:
		default:
			t.Errorf("alert tap on %s full", topic)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

const (
	restartMAC  = "b827eb0c0a01"
	restartMAC2 = "b827eb0c0a02"
	restartRow  = "r1"
)

// tempHigh1s raises temp_high over 80 °C after 1 s, and clears it under 75 °C at once.
const tempHigh1s = `{"temp_high": {"threshold": 80, "clear": 75, "for": "1s"}}`

// raiseHot runs a control center and an agent reporting hot until temp_high is raised (a
// viewer sees it on MQTT), then holds the agent's samples and stops the control center
// cleanly. It returns the rig, the held thermometer and the alert as raised.
func raiseHot(t *testing.T) (*restartRig, *thermometer, topics.Alert) {
	t.Helper()
	rig := newRestartRig(t, tempHigh1s)
	password := rig.addAgent(t, restartMAC, restartRow)
	run1 := rig.open(t)
	run1.serve(t)
	therm := newThermometer(85)
	rig.runAgent(t, restartMAC, restartRow, password, therm, 200*time.Millisecond)

	topic := topics.AlertTopic(restartRow, restartMAC, alerts.RuleTempHigh)
	v := dialViewer(t, rig.mqttAddr)
	v.subscribe(t, topic)
	raised := v.awaitAlert(t, topic, topics.AlertRaised)
	if raised.MAC != restartMAC || !raised.Since.Before(raised.TS) {
		t.Fatalf("raised %+v, want temp_high of %s raised after its 1 s", raised, restartMAC)
	}
	if got := alertsOf(t, run1, alerts.RuleTempHigh); len(got) != 1 {
		t.Fatalf("first run shows temp_high %+v, want the raised one", got)
	}
	therm.hold()
	run1.stop(t)
	return rig, therm, raised
}

// checkRestored checks that the new run shows the alert raised before the restart, as it was,
// before any sample of the new run has arrived (the agent's samples are held).
func checkRestored(t *testing.T, run *ccRun, raised topics.Alert) {
	t.Helper()
	got := alertsOf(t, run, alerts.RuleTempHigh)
	if len(got) != 1 || got[0].State != topics.AlertRaised || !got[0].Since.Equal(raised.Since) || !got[0].TS.Equal(raised.TS) {
		t.Fatalf("after the restart, before any sample, GET /api/alerts shows temp_high %+v; want the one raised before: %+v", got, raised)
	}
	if n := apiGet[dashboard.Node](t, run, "/api/nodes/"+restartMAC); !slices.ContainsFunc(n.Alerts, func(a topics.Alert) bool { return a.Rule == alerts.RuleTempHigh }) {
		t.Errorf("after the restart the Pi's tile shows alerts %+v; want the restored temp_high", n.Alerts)
	}
}

// TestRestartClearsRestoredAlert: temp_high raised before a clean restart of the control
// center is handed back to the alerts engine by the new run, shown at once, and cleared
// (published cleared on its retained topic, keeping its since) by the first cool sample
// after the restart.
func TestRestartClearsRestoredAlert(t *testing.T) {
	rig, therm, raised := raiseHot(t)
	topic := topics.AlertTopic(restartRow, restartMAC, alerts.RuleTempHigh)

	therm.set(60) // the Pi cooled down while the control center was away
	run2 := rig.open(t)
	published := tapAlerts(t, run2, topic)
	run2.serve(t)
	if a := <-published; a.State != topics.AlertRaised || !a.TS.Equal(raised.TS) {
		t.Fatalf("retained on %s at the restart: %+v, want the alert raised before", topic, a)
	}
	checkRestored(t, run2, raised)

	therm.release()
	select {
	case a := <-published:
		if a.State != topics.AlertCleared || !a.Since.Equal(raised.Since) || a.TS.Before(run2.started) {
			t.Fatalf("the new run published %+v on %s; want temp_high cleared after the restart, since %v", a, topic, raised.Since)
		}
		if a.Value == nil || *a.Value != 60 {
			t.Errorf("cleared with value %v, want the cool sample's 60", a.Value)
		}
	case <-time.After(restartWait):
		t.Fatalf("the new run published nothing on %s within %v of a cool sample", topic, restartWait)
	}
	// The clear is shown before it is queued for publishing, so the page already agrees.
	if got := apiGet[[]topics.Alert](t, run2, "/api/alerts"); len(got) != 0 {
		t.Fatalf("GET /api/alerts shows %+v after the clear; want none", got)
	}

	v := dialViewer(t, rig.mqttAddr)
	v.subscribe(t, topic)
	if a := v.awaitAlert(t, topic, topics.AlertCleared); !a.Since.Equal(raised.Since) {
		t.Errorf("retained %+v, want the cleared temp_high", a)
	}
	select {
	case a := <-published:
		t.Errorf("published %+v after the clear; want nothing more", a)
	default:
	}
}

// TestRestartKeepsRestoredAlertWhileHot: temp_high raised before a clean restart, whose
// condition still holds after it, stays raised as it was: the new run publishes nothing on its
// topic (no clear, no second raise) while hot samples arrive for longer than the rule's "for".
func TestRestartKeepsRestoredAlertWhileHot(t *testing.T) {
	rig, therm, raised := raiseHot(t)
	topic := topics.AlertTopic(restartRow, restartMAC, alerts.RuleTempHigh)

	run2 := rig.open(t)
	published := tapAlerts(t, run2, topic)
	run2.serve(t)
	if a := <-published; a.State != topics.AlertRaised || !a.TS.Equal(raised.TS) {
		t.Fatalf("retained on %s at the restart: %+v, want the alert raised before", topic, a)
	}
	checkRestored(t, run2, raised)

	therm.release()
	// Hot samples for twice the rule's "for": a clear and a new raise would both be out.
	first := run2.awaitNode(t, restartMAC, "online with a sample of this run", func(n dashboard.Node) bool {
		return n.State == dashboard.StateOnline && n.Metrics != nil && n.Metrics.TS.After(run2.started)
	}).Metrics.TS
	run2.awaitNode(t, restartMAC, "2 s of hot samples later", func(n dashboard.Node) bool {
		return n.Metrics != nil && n.Metrics.TS.Sub(first) > 2*time.Second
	})
	select {
	case a := <-published:
		t.Fatalf("the new run published %+v on %s while the Pi stayed hot; want nothing", a, topic)
	default:
	}
	if got := alertsOf(t, run2, alerts.RuleTempHigh); len(got) != 1 || !got[0].TS.Equal(raised.TS) || !got[0].Since.Equal(raised.Since) {
		t.Errorf("GET /api/alerts shows temp_high %+v; want the one raised before the restart, %+v", got, raised)
	}
}

// steady is a Collector of a Pi in good health.
type steady struct{}

func (steady) Collect(context.Context) (topics.Metrics, error) {
	temp, cpus := 50.0, 4
	return topics.Metrics{CPUTempC: &temp, CPUCount: &cpus}, nil
}

// TestForgottenPiStaysGoneAfterRestart: a Pi placed in a slot, stopped and forgotten is not
// shown again after a restart on the same data directory: its retained status, metrics and
// LED state are gone from the broker's store, and the layout no longer names it. Another Pi,
// stopped but not forgotten, is shown after the restart from its retained status.
func TestForgottenPiStaysGoneAfterRestart(t *testing.T) {
	rig := newRestartRig(t, "")
	gone, kept := restartMAC, restartMAC2
	passwords := map[string]string{gone: rig.addAgent(t, gone, restartRow), kept: rig.addAgent(t, kept, restartRow)}
	run1 := rig.open(t)
	run1.serve(t)
	stops := map[string]func(){}
	for _, mac := range []string{gone, kept} {
		// A 1 s interval: a stale alert (whose clear would stay retained) needs 3 s without one.
		stops[mac] = rig.runAgent(t, mac, restartRow, passwords[mac], steady{}, time.Second)
	}
	for _, mac := range []string{gone, kept} {
		run1.awaitNode(t, mac, "online with an LED report", func(n dashboard.Node) bool {
			return n.State == dashboard.StateOnline && n.Metrics != nil && n.LED != nil
		})
	}
	if code, body := run1.do(t, http.MethodPost, "/api/rows/"+restartRow+"/slots/1", restartAdmin, restartAdminPassword, `{"mac":"`+gone+`"}`); code != http.StatusOK {
		t.Fatalf("place %s in slot 1: HTTP %d %s", gone, code, body)
	}
	layoutFile := filepath.Join(rig.dir, layout.FileName)
	if b, err := os.ReadFile(layoutFile); err != nil || !bytes.Contains(b, []byte(gone)) {
		t.Fatalf("%s after placing %s: %v\n%s", layout.FileName, gone, err, b)
	}

	for _, mac := range []string{gone, kept} {
		stops[mac]()
		run1.awaitNode(t, mac, "offline", func(n dashboard.Node) bool { return n.State == dashboard.StateOffline })
	}
	sentinel := topics.StatusTopic(restartRow, kept)
	before := retainedUnderRack(t, rig.mqttAddr, sentinel)
	for _, topic := range []string{topics.StatusTopic(restartRow, gone), topics.MetricsTopic(restartRow, gone), topics.LEDStateTopic(restartRow, gone)} {
		if len(before[topic]) == 0 {
			t.Fatalf("before the forget nothing is retained on %s; the test would prove nothing", topic)
		}
	}

	if code, body := run1.do(t, http.MethodPost, "/api/nodes/"+gone+"/forget", restartAdmin, restartAdminPassword, ""); code != http.StatusNoContent {
		t.Fatalf("forget %s: HTTP %d %s, want 204", gone, code, body)
	}
	if code, _ := run1.do(t, http.MethodGet, "/api/nodes/"+gone, restartViewer, restartViewerPassword, ""); code != http.StatusNotFound {
		t.Fatalf("GET /api/nodes/%s right after the forget: HTTP %d, want 404", gone, code)
	}
	run1.stop(t)

	run2 := rig.open(t)
	run2.serve(t)
	if n := apiGet[dashboard.Node](t, run2, "/api/nodes/"+kept); n.State != dashboard.StateOffline || n.Row != restartRow {
		t.Errorf("after the restart the Pi not forgotten shows %+v; want it offline in %s, from its retained status", n, restartRow)
	}
	if code, body := run2.do(t, http.MethodGet, "/api/nodes/"+gone, restartViewer, restartViewerPassword, ""); code != http.StatusNotFound {
		t.Errorf("after the restart GET /api/nodes/%s: HTTP %d %s, want 404", gone, code, body)
	}
	for _, n := range apiGet[[]dashboard.Node](t, run2, "/api/nodes") {
		if n.MAC == gone {
			t.Errorf("after the restart GET /api/nodes lists the forgotten Pi: %+v", n)
		}
	}
	after := retainedUnderRack(t, rig.mqttAddr, sentinel)
	for topic, payload := range after {
		if tp, err := topics.Parse(topic); err == nil && tp.MAC == gone {
			t.Errorf("after the restart a viewer receives %s retained: %s", topic, payload)
		}
	}
	if len(after[topics.StatusTopic(restartRow, kept)]) == 0 {
		t.Errorf("after the restart the Pi not forgotten has no retained status; got %d topics", len(after))
	}
	if b, err := os.ReadFile(layoutFile); err != nil || bytes.Contains(b, []byte(gone)) {
		t.Errorf("%s after the forget and the restart (%v) still names %s:\n%s", layout.FileName, err, gone, b)
	}
	if _, body := run2.do(t, http.MethodGet, "/api/layout", restartViewer, restartViewerPassword, ""); bytes.Contains(body, []byte(gone)) {
		t.Errorf("GET /api/layout after the restart names %s: %s", gone, body)
	}
}
