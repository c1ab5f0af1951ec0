package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

const plugConfig = `{"plugs":[
	{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"},
	{"row":"r2","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/status/switch:0"}]}`

// dataDirWithAdmin is a data directory where serve finds an admin already (made at bcrypt's
// lowest cost, so that the first start does not spend a second making one).
func dataDirWithAdmin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := users.SetWithCost(auth.User{Name: "admin", Role: auth.RoleAdmin}, "admin-password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A power bridge file that cannot be used stops serve before anything listens, saying why.
func TestServePowerBridgeFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string // written to <data-dir>/power-bridge.json unless flag
		flag     bool   // pass it with --power-bridge instead
		missing  bool   // --power-bridge names a file that does not exist
		wantErrs []string
	}{
		{name: "not JSON", file: `{"plugs":`, wantErrs: []string{"power-bridge.json", "invalid power bridge configuration", "move it out of the data directory"}},
		{name: "plug topic under rack/", file: `{"plugs":[{"row":"r1","type":"tasmota","topic":"rack/r1/SENSOR"}]}`, flag: true,
			wantErrs: []string{`plugs[0] (row "r1")`, "under rack/"}},
		{name: "two plugs on a row", file: `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/a/SENSOR"},{"row":"r1","type":"tasmota","topic":"tele/b/SENSOR"}]}`,
			wantErrs: []string{"row r1 already has a plug"}},
		{name: "unknown field", file: `{"plugs":[{"row":"r1","type":"tasmota","topic":"tele/a/SENSOR","user":"plug-1"}]}`,
			wantErrs: []string{`unknown field "user"`}},
		{name: "missing file", flag: true, missing: true, wantErrs: []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dataDirWithAdmin(t)
			path := filepath.Join(dir, "power-bridge.json")
			args := []string{"serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"}
			if tc.flag {
				path = filepath.Join(t.TempDir(), "plugs.json")
				args = append(args, "--power-bridge", path)
			}
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- run(t.Context(), args, io.Discard, io.Discard) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("serve ran with a bad power bridge file")
				}
				for _, want := range tc.wantErrs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop on a bad power bridge file")
			}
		})
	}
}

// serveControlCenter starts a control center with cfg, logging at info to the test's log and
// to the returned buffer, and serves it until the test ends; then it stops it and checks that
// serve and close succeed.
func serveControlCenter(t *testing.T, cfg serveConfig) (*controlcenter.ControlCenter, *testlog.Buffer) {
	t.Helper()
	logs := new(testlog.Buffer)
	log, err := newLogger(io.MultiWriter(logs, testlog.NewWriter(t)), "info")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := controlcenter.New(cfg.controlCenter(log, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- cc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-cc.Ready():
	case err := <-served:
		t.Fatalf("control center stopped at start: %v", err)
	}
	return cc, logs
}

// With <data-dir>/power-bridge.json and no flag, serve logs each mapping, lets a plug user
// publish its topic, and republishes the reading as the row's power.
func TestServePowerBridgeFromDataDir(t *testing.T) {
	dir := dataDirWithAdmin(t)
	if err := os.WriteFile(filepath.Join(dir, "power-bridge.json"), []byte(plugConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cc, logs := serveControlCenter(t, serveConfig{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", LogLevel: "info"})

	for _, want := range []string{
		`plug="row r1 <- tasmota tele/rack-r1/SENSOR"`,
		`plug="row r2 <- shelly-gen2 shellyplusplugs-a8032ab1/status/switch:0"`,
		"no plug user for row r1, so its plug cannot connect: add one with pirack user add plug-r1 --role plug --row r1",
		"no plug user for row r2",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("serve's log lacks %q:\n%s", want, logs.String())
		}
	}

	power := make(chan []byte, 10)
	if err := cc.Bus().Subscribe(topics.PowerTopic("r1"), func(m bus.Message) { power <- bytes.Clone(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	cc.Users().Cost = bcrypt.MinCost
	if err := cc.Users().Add(auth.User{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"}, "plug-password"); err != nil {
		t.Fatal(err)
	}
	plug := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://"+cc.MQTTAddr()).SetClientID("DVES_3F1A2C").
		SetUsername("plug-r1").SetPassword("plug-password").SetProtocolVersion(4).SetAutoReconnect(false).
		SetWill("tele/rack-r1/LWT", "Offline", 1, true))
	if tok := plug.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plug connect: %v", tok.Error())
	}
	defer plug.Disconnect(0)
	sensor := `{"Time":"2024-03-10T14:22:05","ENERGY":{"Total":41.237,"Power":17.5,"Voltage":231,"Current":0.125}}`
	if tok := plug.Publish("tele/rack-r1/SENSOR", 1, false, sensor); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plug publish: %v", tok.Error())
	}
	select {
	case b := <-power:
		p, err := topics.DecodePower(b)
		if err != nil || p.Watts == nil || *p.Watts != 17.5 || p.Source != "tasmota" {
			t.Fatalf("rack/r1/power %s (%v), want 17.5 W from tasmota", b, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no row power published for the plug's reading")
	}
}

// At start, serve warns of plug users that can do nothing and of plugs no user can publish for:
// the broker binds each plug user to its row.
func TestServePlugUserWarnings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string // <data-dir>/power-bridge.json; "" means none
		users    []auth.User
		rowless  bool // add plug-old, a plug user without a row as an earlier pirack made it
		want     []string
		dontWant []string
	}{
		{
			name:     "every row has its plug user",
			file:     plugConfig,
			users:    []auth.User{{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"}, {Name: "plug-r2", Role: auth.RolePlug, Row: "r2"}},
			dontWant: []string{"level=WARN"},
		},
		{
			name:    "a plug user of a row without a plug, a row without a plug user, a plug user without a row",
			file:    plugConfig,
			users:   []auth.User{{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"}, {Name: "plug-r3", Role: auth.RolePlug, Row: "r3"}},
			rowless: true,
			want: []string{
				`msg="power bridge: plug user plug-r3 is for row r3, which has no plug in power-bridge.json, so it may publish nothing" user=plug-r3 row=r3`,
				`msg="power bridge: no plug user for row r2, so its plug cannot connect: add one with pirack user add plug-r2 --role plug --row r2" row=r2`,
				`msg="power bridge: plug user plug-old has no row (made by an earlier pirack), so the broker refuses it: re-create it with pirack user remove plug-old and pirack user add plug-old --role plug --row ROW"`,
			},
			dontWant: []string{"no plug user for row r1", "plug user plug-r1"},
		},
		{
			name:    "no power bridge file",
			users:   []auth.User{{Name: "plug-r1", Role: auth.RolePlug, Row: "r1"}},
			rowless: true,
			want: []string{
				"plug user plug-r1 is for row r1, which has no plug in power-bridge.json",
				"plug user plug-old has no row",
			},
			dontWant: []string{"no plug user for row"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dataDirWithAdmin(t)
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "power-bridge.json"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			users, err := auth.Open(filepath.Join(dir, "users.json"))
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range tc.users {
				if err := users.SetWithCost(u, "plug-password", bcrypt.MinCost); err != nil {
					t.Fatal(err)
				}
			}
			if tc.rowless {
				addRowlessPlug(t, users, "plug-old")
			}
			var logs testlog.Buffer
			log, err := newLogger(io.MultiWriter(&logs, testlog.NewWriter(t)), "info")
			if err != nil {
				t.Fatal(err)
			}
			cc, err := controlcenter.New(controlcenter.Config{DataDir: dir, Logger: log, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			if err := cc.Close(); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs.String())
				}
			}
			for _, dont := range tc.dontWant {
				if strings.Contains(logs.String(), dont) {
					t.Errorf("log has %q:\n%s", dont, logs.String())
				}
			}
		})
	}
}

// addRowlessPlug writes a plug user without a row straight into the users file, as a pirack
// that did not bind plugs to rows stored it (Add refuses one now). Its password is
// "plug-password".
func addRowlessPlug(t *testing.T, users *auth.Users, name string) {
	t.Helper()
	if err := users.SetWithCost(auth.User{Name: name, Role: auth.RolePlug, Row: "r1"}, "plug-password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	rewriteUser(t, users.Path(), name, func(u *auth.User) { u.Row = "" })
	if u, ok := users.Get(name); !ok || u.Row != "" {
		t.Fatalf("rowless plug user not loaded: %+v, %v", u, ok)
	}
}

// rewriteUser changes a user straight in the users file at path, as an earlier pirack may have
// written it (Add and Set refuse what these tests need).
func rewriteUser(t *testing.T, path, name string, change func(*auth.User)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		V     int         `json:"v"`
		Users []auth.User `json:"users"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for i := range f.Users {
		if f.Users[i].Name == name {
			change(&f.Users[i])
		}
	}
	if b, err = json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
