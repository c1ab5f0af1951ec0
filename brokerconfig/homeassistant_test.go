package brokerconfig_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/brokerconfig"
	"github.com/pirack/pirack/internal/mosquittotest"
	"github.com/pirack/pirack/topics"
)

// The homeassistant role's ACL block is its rights, line for line: what pirack's broker allows
// it, Mosquitto allows it.
func TestHomeAssistantACLIsItsRights(t *testing.T) {
	u := auth.User{Name: "homeassistant", Role: auth.RoleHomeAssistant, MosquittoHash: "$7$101$c2FsdA==$a2V5"}
	m, err := brokerconfig.GenerateMosquitto([]auth.User{u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(m.ACL), "user homeassistant\n")
	if !ok {
		t.Fatalf("no block for the homeassistant user:\n%s", m.ACL)
	}
	var got []string
	for l := range strings.Lines(block) {
		got = append(got, strings.TrimSpace(l))
	}
	r := u.Rights(nil)
	var want []string
	for _, f := range r.Write {
		want = append(want, "topic write "+f)
	}
	for _, f := range r.Read {
		want = append(want, "topic read "+f)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ACL block:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Contains(r.Write, topics.HAStatusTopic) || !slices.Contains(r.Read, topics.HAFilter) {
		t.Fatalf("rights %+v lack Home Assistant's status topic or discovery prefix", r)
	}
}

// On a real Mosquitto with the generated files, Home Assistant with its default options (a Will
// on homeassistant/status, a subscription to homeassistant/#) reads the discovery configs and
// the Pis' topics, and presses Locate; it cannot write a discovery config.
func TestHomeAssistantOnMosquitto(t *testing.T) {
	dir := t.TempDir()
	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	pw := map[string]string{}
	for _, u := range []auth.User{
		{Name: "root", Role: auth.RoleAdmin},
		{Name: "homeassistant", Role: auth.RoleHomeAssistant},
		{Role: auth.RoleAgent, MAC: macA, Row: "r1"},
	} {
		name := u.Name
		if name == "" {
			name = u.MAC
		}
		pw[name] = "pw-" + name + "-secret"
		if err := users.Add(u, pw[name]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := brokerconfig.GenerateMosquitto(users.List(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := brokerconfig.WriteMosquitto(out, m); err != nil {
		t.Fatal(err)
	}
	r := &rack{pw: pw, broker: mosquittotest.Start(t, mosquittotest.Options{
		PasswordFile: filepath.Join(out, brokerconfig.PasswdFileName),
		ACLFile:      filepath.Join(out, brokerconfig.ACLFileName),
	})}

	root := r.connect(t, "root")
	_, all := subscribe(t, root, "#")
	config := topics.HADeviceConfigTopic("pirack_" + macA)
	publish(t, root, config, `{"device":{}}`, true) // as the control center announces a Pi
	expectFirst(t, all, config, `{"device":{}}`)
	_, led := subscribe(t, r.connect(t, macA), topics.LEDTopic(macA))

	ha := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("4PLc2vQm9ZtK1rYbXw7sJd").
		SetUsername("homeassistant").SetPassword(pw["homeassistant"]).SetProtocolVersion(4).SetCleanSession(true).
		SetWill(topics.HAStatusTopic, topics.HAOffline, 0, false).SetAutoReconnect(false).SetConnectTimeout(wait))
	if tok := ha.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("Home Assistant's connect: %v", tok.Error())
	}
	t.Cleanup(func() { ha.Disconnect(0) })
	code, discovered := subscribe(t, ha, topics.HAFilter)
	if code >= 0x80 {
		t.Fatalf("subscribe %s: SUBACK %#x", topics.HAFilter, code)
	}
	expectFirst(t, discovered, config, `{"device":{}}`)
	if code, _ := subscribe(t, ha, topics.MetricsTopic("r1", macA)); code >= 0x80 {
		t.Fatalf("subscribe to a Pi's metrics: SUBACK %#x", code)
	}

	publish(t, ha, topics.HADeviceConfigTopic("pirack_"+macA), "", true) // refused: would remove the Pi
	publish(t, ha, topics.HAStatusTopic, topics.HAOnline, false)
	expectFirst(t, all, topics.HAStatusTopic, topics.HAOnline)
	publish(t, ha, topics.LEDTopic(macA), "identify", false)
	expectFirst(t, led, topics.LEDTopic(macA), "identify")
}
