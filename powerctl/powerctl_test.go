package powerctl_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/powerctl"
	"github.com/pirack/pirack/powerctl/powerctltest"
)

const (
	wait     = 10 * time.Second
	password = "test-password-1"
)

// file has a switchable plug of each type, a Tasmota nobody may switch, and one Pi on a hub
// port.
const file = `{"plugs":[
	{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR","switch":true},
	{"row":"r2","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/status/switch:0","switch":true},
	{"row":"r3","type":"shelly-gen1","topic":"shellies/shellyplug-s-7AB3C1","switch":true},
	{"row":"r4","type":"tasmota","topic":"tele/rack-r4/SENSOR"}],
	"ports":[{"mac":"b8:27:eb:00:00:01","hub":"1-1","port":2}]}`

// newController starts the embedded broker with the plugs' rights as `pirack serve` gives them,
// and a Controller on it with short timings.
func newController(t *testing.T, uhubctl string, mods ...func(*powerctl.Config)) (*powerctl.Controller, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testlog.NewWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	for _, row := range []string{"r1", "r2", "r3", "r4"} {
		if err := users.Add(auth.User{Name: "plug-" + row, Role: auth.RolePlug, Row: row}, password); err != nil {
			t.Fatal(err)
		}
	}
	f, err := powerbridge.ParseFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", DataDir: dir, Users: users, PlugTopics: f.PlugTopics(), Logger: log.With("component", "broker")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg := powerctl.Config{Bus: b, File: f, Uhubctl: uhubctl, CycleOff: time.Second, Wait: 2 * time.Second, Logger: log.With("component", "powerctl")}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := powerctl.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return c, b.Addr()
}

// fakePlug connects as a plug user and answers commands on filter as its firmware does, through
// answer (which publishes the relay's reports). It returns the SUBACK code of its subscription.
func fakePlug(t *testing.T, addr, user, filter string, answer func(c paho.Client, topic, payload string)) byte {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user).SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(filter, 1, func(c paho.Client, m paho.Message) {
		go answer(c, m.Topic(), string(m.Payload())) // never block paho's router
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func report(c paho.Client, topic, payload string) {
	c.Publish(topic, 1, false, payload).WaitTimeout(wait)
}

// Each plug type, over real MQTT: on, off and a power cycle reach the fake plug as its firmware
// expects them, and the controller waits for the plug's own report; a Tasmota or Shelly Gen2
// cycles on the device. A plug that does not answer is an error that says what to check, and a
// row whose plug may not be switched cannot be.
func TestSwitchRowPlugs(t *testing.T) {
	var mu sync.Mutex
	var changes []string // rows whose relay was reported switched: pages are told
	c, addr := newController(t, "", func(cfg *powerctl.Config) {
		cfg.OnChange = func(row string) { mu.Lock(); changes = append(changes, row); mu.Unlock() }
	})
	got := make(chan string, 20) // the commands the plugs received
	tasmota := func(cl paho.Client, topic, payload string) {
		got <- topic + " " + payload
		switch {
		case topic == "cmnd/rack-r1/POWER":
			report(cl, "stat/rack-r1/POWER", strings.ToUpper(payload))
		case topic == "cmnd/rack-r1/Backlog":
			// "Power 0; Delay 10; Power 1": off, then on after Delay tenths of a second.
			report(cl, "stat/rack-r1/POWER", "OFF")
			var tenths int
			for _, cmd := range strings.Split(payload, ";") {
				if d, ok := strings.CutPrefix(strings.TrimSpace(cmd), "Delay "); ok {
					tenths, _ = strconv.Atoi(d)
				}
			}
			time.Sleep(time.Duration(tenths) * 100 * time.Millisecond)
			report(cl, "stat/rack-r1/POWER", "ON")
		}
	}
	gen2 := func(cl paho.Client, topic, payload string) {
		got <- topic + " " + payload
		status := "shellyplusplugs-a8032ab1/status/switch:0"
		switch cmd, after, _ := strings.Cut(payload, ","); cmd {
		case "on", "off":
			report(cl, status, `{"id":0,"source":"MQTT","output":`+strconv.FormatBool(cmd == "on")+`,"apower":0.0}`)
			if after != "" {
				s, _ := strconv.Atoi(after)
				time.Sleep(time.Duration(s) * time.Second)
				report(cl, status, `{"id":0,"source":"timer","output":`+strconv.FormatBool(cmd != "on")+`}`)
			}
		}
	}
	gen1 := func(cl paho.Client, topic, payload string) {
		got <- topic + " " + payload
		report(cl, "shellies/shellyplug-s-7AB3C1/relay/0", payload)
	}
	for _, p := range []struct {
		user, filter string
		answer       func(paho.Client, string, string)
	}{
		{"plug-r1", "cmnd/rack-r1/#", tasmota},
		{"plug-r2", "shellyplusplugs-a8032ab1/command/#", gen2},
		{"plug-r3", "shellies/shellyplug-s-7AB3C1/relay/0/command", gen1},
	} {
		if code := fakePlug(t, addr, p.user, p.filter, p.answer); code >= 0x80 {
			t.Fatalf("%s may not subscribe to its command topic %s", p.user, p.filter)
		}
	}
	// A plug may not read another row's commands.
	if code := fakePlug(t, addr, "plug-r4", "cmnd/rack-r1/#", func(paho.Client, string, string) {}); code < 0x80 {
		t.Fatal("the r4 plug may read r1's commands")
	}

	ctx := context.Background()
	for _, c2 := range []struct {
		row, action string
		want        []string // commands received, in order
	}{
		{"r1", powerctl.Off, []string{"cmnd/rack-r1/POWER OFF"}},
		{"r1", powerctl.On, []string{"cmnd/rack-r1/POWER ON"}},
		{"r1", powerctl.Cycle, []string{"cmnd/rack-r1/Backlog Power 0; Delay 10; Power 1"}},
		{"r2", powerctl.Off, []string{"shellyplusplugs-a8032ab1/command/switch:0 off"}},
		{"r2", powerctl.Cycle, []string{"shellyplusplugs-a8032ab1/command/switch:0 off,1"}},
		{"r3", powerctl.Cycle, []string{"shellies/shellyplug-s-7AB3C1/relay/0/command off", "shellies/shellyplug-s-7AB3C1/relay/0/command on"}},
	} {
		start := time.Now()
		st, err := c.SwitchRow(ctx, c2.row, c2.action)
		if err != nil {
			t.Fatalf("%s %s: %v", c2.row, c2.action, err)
		}
		if wantOn := c2.action != powerctl.Off; st.On == nil || *st.On != wantOn {
			t.Fatalf("%s %s: state %+v", c2.row, c2.action, st)
		}
		if c2.action == powerctl.Cycle && time.Since(start) < time.Second {
			t.Errorf("%s cycle: back on after %v, before the second off time", c2.row, time.Since(start))
		}
		for _, w := range c2.want {
			select {
			case g := <-got:
				if g != w {
					t.Errorf("%s %s: the plug got %q, want %q", c2.row, c2.action, g, w)
				}
			case <-time.After(wait):
				t.Fatalf("%s %s: the plug never got %q", c2.row, c2.action, w)
			}
		}
		if st2, ok := c.Row(c2.row); !ok || st2.On == nil || *st2.On != *st.On {
			t.Errorf("Row(%s) = %+v, %v after %s", c2.row, st2, ok, c2.action)
		}
	}

	mu.Lock()
	told := strings.Join(changes, " ")
	mu.Unlock()
	// r1: off, on, then the cycle's off and on; r2: off, then the cycle's on (it was off
	// already); r3: the cycle's off and on.
	if told != "r1 r1 r1 r1 r2 r2 r3 r3" {
		t.Errorf("relay changes told: %q", told)
	}
	if _, err := c.SwitchRow(ctx, "r4", powerctl.Off); !errors.Is(err, powerctl.ErrNotSwitchable) {
		t.Errorf("a plug without switch: %v", err)
	}
	if _, ok := c.Row("r4"); ok {
		t.Error("Row(r4) says it has a switch")
	}
	if _, err := c.SwitchRow(ctx, "r1", "reboot"); err == nil {
		t.Error("an unknown action was accepted")
	}
}

// A plug that takes the command but never reports fails after the wait, with what to check.
func TestSwitchRowSilentPlug(t *testing.T) {
	c, addr := newController(t, "")
	fakePlug(t, addr, "plug-r2", "shellyplusplugs-a8032ab1/command/#", func(paho.Client, string, string) {})
	_, err := c.SwitchRow(context.Background(), "r2", powerctl.Off)
	if err == nil || !strings.Contains(err.Error(), "did not report its relay off within 2s") || !strings.Contains(err.Error(), "MQTT control") {
		t.Fatalf("a silent plug: %v", err)
	}
}

// A Pi on a hub port, against a fake uhubctl on PATH: each action runs uhubctl with the hub's
// location, the port and the action (a cycle with its off time), and the state is what
// uhubctl reports after it. A uhubctl that fails says why, with its own words.
func TestSwitchPiHubPort(t *testing.T) {
	path, calls := powerctltest.FakeUhubctl(t, false)
	t.Setenv("PATH", filepath.Dir(path)+string(os.PathListSeparator)+os.Getenv("PATH"))
	c, _ := newController(t, "") // "uhubctl", found on PATH
	const mac = "b827eb000001"
	if _, ok := c.Pi(mac); !ok {
		t.Fatal("Pi() does not know the port")
	}
	ctx := context.Background()
	for _, action := range []string{powerctl.Off, powerctl.On, powerctl.Cycle} {
		st, err := c.SwitchPi(ctx, mac, action)
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		if st.On == nil || *st.On != (action != powerctl.Off) || st.Via != "uhubctl" {
			t.Errorf("%s: state %+v", action, st)
		}
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	want := "-l 1-1 -p 2 -a off\n-l 1-1 -p 2 -a on\n-l 1-1 -p 2 -a cycle -d 1\n"
	if string(b) != want {
		t.Errorf("uhubctl was run with\n%s\nwant\n%s", b, want)
	}
	if _, err := c.SwitchPi(ctx, "b827eb000002", powerctl.Off); !errors.Is(err, powerctl.ErrNotSwitchable) {
		t.Errorf("a Pi on no port: %v", err)
	}

	failing, _ := powerctltest.FakeUhubctl(t, true)
	c2, _ := newController(t, failing)
	_, err = c2.SwitchPi(ctx, mac, powerctl.Cycle)
	if err == nil || !strings.Contains(err.Error(), "No compatible devices detected") || !strings.Contains(err.Error(), "docs/hardware.md") {
		t.Fatalf("a failing uhubctl: %v", err)
	}
}

// A plug that reports "off" and "on" back to back (its timer is short, or the reports queued
// up) still completes a cycle: the "on" after the "off" counts even if both arrived before the
// controller looked.
func TestCycleReportsBackToBack(t *testing.T) {
	c, addr := newController(t, "")
	fakePlug(t, addr, "plug-r1", "cmnd/rack-r1/#", func(cl paho.Client, topic, payload string) {
		cl.Publish("stat/rack-r1/POWER", 1, false, "OFF")
		cl.Publish("stat/rack-r1/POWER", 1, false, "ON")
	})
	for range 20 {
		st, err := c.SwitchRow(context.Background(), "r1", powerctl.Cycle)
		if err != nil || st.On == nil || !*st.On {
			t.Fatalf("cycle with back-to-back reports: %+v %v", st, err)
		}
	}
}
