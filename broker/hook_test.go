package broker

import (
	"errors"
	"strings"
	"sync"
	"testing"

	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// Pis of the authorization matrix: A (macA, row r1) and B (macB, row r2). For agent A, A's
// topics are its own and B's foreign; for agent B the other way round.
var (
	agentA     = auth.User{Name: macA, Role: auth.RoleAgent, MAC: macA, Row: "r1"}
	agentB     = auth.User{Name: macB, Role: auth.RoleAgent, MAC: macB, Row: "r2"}
	userAuto   = auth.User{Name: "auto", Role: auth.RoleAutomation}
	userViewer = auth.User{Name: "viewer", Role: auth.RoleViewer}
	userAdmin  = auth.User{Name: "admin", Role: auth.RoleAdmin}
	userPlug   = auth.User{Name: "plug", Role: auth.RolePlug, Row: "r1"}
	userPlugR2 = auth.User{Name: "plug-r2", Role: auth.RolePlug, Row: "r2"}
	userPlugR3 = auth.User{Name: "plug-r3", Role: auth.RolePlug, Row: "r3"} // no plug in the file
	userPlugNo = auth.User{Name: "plug-old", Role: auth.RolePlug}           // made before plugs had rows
	userNone   = auth.User{Name: "x", Role: "nonsense"}
)

// testPolicy is the matrix's policy: rows r1 and r2 each have a Tasmota, as the power bridge
// would configure for tele/rack-r1/SENSOR and tele/rack-r2/SENSOR; row r3 has no plug.
var testPolicy = policy{plugTopics: auth.PlugTopics{
	"r1": {Write: []string{"tele/rack-r1/#"}},
	"r2": {Write: []string{"tele/rack-r2/#"}},
}}

// matrixColumns are the topic patterns of the authorization matrix.
var matrixColumns = []struct{ name, topic string }{
	{"A status", topics.StatusTopic("r1", macA)},
	{"A metrics", topics.MetricsTopic("r1", macA)},
	{"A button", topics.ButtonTopic("r1", macA)},
	{"A led_state", topics.LEDStateTopic("r1", macA)},
	{"A alert", topics.AlertTopic("r1", macA, "temp_high")},
	{"A metrics in row r2", topics.MetricsTopic("r2", macA)},
	{"B status", topics.StatusTopic("r2", macB)},
	{"B metrics", topics.MetricsTopic("r2", macB)},
	{"B button", topics.ButtonTopic("r2", macB)},
	{"A led", topics.LEDTopic(macA)},
	{"B led", topics.LEDTopic(macB)},
	{"row power", topics.PowerTopic("r1")},
	{"rack/#", topics.AllFilter},
	{"$SYS/#", "$SYS/#"},
	{"other", "home/kitchen"},
	{"plug topic", "tele/rack-r1/SENSOR"},
	{"r2 plug topic", "tele/rack-r2/SENSOR"},
}

// authorizationMatrix is who may do what, one row per role and one cell per column above:
// p = publish, s = subscribe (and receive), w = leave a Will on it, - = nothing.
var authorizationMatrix = []struct {
	cells string
	role  string
	user  auth.User
}{
	// A     A     A     A     A     A in  B     B     B     A     B     row   rack  $SYS  other plug  r2
	// stat  metr  butt  ledst alert r2    stat  metr  butt  led   led   power /#    /#          topic plug
	{"pw    p     p     p     -     -     -     -     -     s     -     p     -     -     -     -     -", "agent A", agentA},
	{"-     -     -     -     -     -     pw    p     p     -     s     -     -     -     -     -     -", "agent B", agentB},
	{"s     s     s     s     s     s     s     s     s     psw   psw   s     s     -     -     -     -", "automation", userAuto},
	{"s     s     s     s     s     s     s     s     s     s     s     s     s     -     -     -     -", "viewer", userViewer},
	{"psw   psw   psw   psw   psw   psw   psw   psw   psw   psw   psw   psw   s     s     psw   psw   psw", "admin", userAdmin},
	{"-     -     -     -     -     -     -     -     -     -     -     -     -     -     -     pw    -", "plug of row r1", userPlug},
	{"-     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -     pw", "plug of row r2", userPlugR2},
	{"-     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -", "plug of row r3 (no plug)", userPlugR3},
	{"-     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -", "plug without a row", userPlugNo},
	{"-     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -     -", "unknown role", userNone},
}

// matrixCells returns a row's cells, one per column.
func matrixCells(t *testing.T, cells string) []string {
	t.Helper()
	f := strings.Fields(cells)
	if len(f) != len(matrixColumns) {
		t.Fatalf("matrix row has %d cells for %d columns: %q", len(f), len(matrixColumns), cells)
	}
	return f
}

// The authorization matrix on the pure functions; TestAuthorizationMatrixTCP checks the same
// table end to end through a real broker.
func TestAuthorizationMatrix(t *testing.T) {
	for _, row := range authorizationMatrix {
		for i, cell := range matrixCells(t, row.cells) {
			col := matrixColumns[i]
			t.Run(row.role+"/"+col.name, func(t *testing.T) {
				if got, want := testPolicy.readAllowed(row.user, col.topic), strings.Contains(cell, "s"); got != want {
					t.Errorf("subscribe %q: %v, want %v", col.topic, got, want)
				}
				if got, want := testPolicy.writeAllowed(row.user, col.topic), strings.Contains(cell, "p"); got != want {
					t.Errorf("publish %q: %v, want %v", col.topic, got, want)
				}
				if got, want := testPolicy.willAllowed(row.user, col.topic), strings.Contains(cell, "w"); got != want {
					t.Errorf("Will on %q: %v, want %v", col.topic, got, want)
				}
			})
		}
	}
}

// More filters and topics than the matrix columns: wildcards, shared subscriptions, malformed
// topics.
func TestAuthorizationEdges(t *testing.T) {
	viewer := auth.User{Name: "v", Role: auth.RoleViewer}
	automation := auth.User{Name: "a", Role: auth.RoleAutomation}
	admin := auth.User{Name: "root", Role: auth.RoleAdmin}
	plug := auth.User{Name: "plug", Role: auth.RolePlug, Row: "r1"}
	everything := func(row string) policy { return policy{plugTopics: auth.PlugTopics{row: {Write: []string{"#"}}}} }
	for _, tc := range []struct {
		name   string
		policy policy // the zero value unless set
		user   auth.User
		topic  string
		read   bool
		write  bool
	}{
		{"agent all LEDs", policy{}, agentA, topics.LEDTopic("+"), false, false},
		{"agent own LED and below", policy{}, agentA, topics.LEDTopic(macA) + "/#", false, false},
		{"agent own subtree", policy{}, agentA, "rack/r1/" + macA + "/#", false, false},
		{"agent hash", policy{}, agentA, "#", false, false},
		{"agent own status with a wildcard", policy{}, agentA, "rack/r1/+/status", false, false},
		{"viewer shared everything", policy{}, viewer, "$share/g/" + topics.AllFilter, true, false},
		{"viewer shared hash", policy{}, viewer, "$share/g/#", false, false},
		{"viewer hash", policy{}, viewer, "#", false, false},
		{"viewer plus", policy{}, viewer, "+/r1/x", false, false},
		{"viewer empty", policy{}, viewer, "", false, false},
		{"automation all LEDs", policy{}, automation, topics.LEDTopic("+"), true, false},
		{"automation malformed LED", policy{}, automation, topics.LEDTopic(strings.ToUpper(macA)), true, false},
		{"automation LED level below", policy{}, automation, topics.LEDTopic(macA) + "/x", true, false},
		{"admin hash", policy{}, admin, "#", true, false},
		{"admin SYS topic", policy{}, admin, "$SYS/broker/uptime", true, false},
		{"admin empty topic", policy{}, admin, "", true, false},
		{"admin NUL", policy{}, admin, "a\x00b", true, true}, // Mochi refuses NUL when decoding, before any ACL
		{"plug without plug topics", policy{}, plug, "tele/rack-r1/SENSOR", false, false},
		{"plug LWT", testPolicy, plug, "tele/rack-r1/LWT", false, true},
		{"plug own folder", testPolicy, plug, "tele/rack-r1/#", false, false},
		{"plug another row's Tasmota", testPolicy, plug, "tele/rack-r2/SENSOR", false, false},
		{"plug another row's Tasmota LWT", testPolicy, plug, "tele/rack-r2/LWT", false, false},
		{"plug an unmapped Tasmota", testPolicy, plug, "tele/rack-r3/SENSOR", false, false},
		{"plug Tasmota commands", testPolicy, plug, "cmnd/rack-r1/#", false, false},
		{"plug with a filter of everything: pirack topics", everything("r1"), plug, topics.PowerTopic("r1"), false, false},
		{"plug with a filter of everything: the root alone", everything("r1"), plug, topics.Root, false, false},
		{"plug with a filter of everything: $SYS", everything("r1"), plug, "$SYS/x", false, false},
		{"plug with a filter of everything: a Shelly", everything("r1"), plug, "shellies/plug-1/relay/0/power", false, true},
		{"plug with a filter of everything for another row", everything("r2"), plug, "shellies/plug-1/relay/0/power", false, false},
		{"plug without a row, filters for the empty row", everything(""), userPlugNo, "shellies/plug-1/relay/0/power", false, false},
		{"plug with a filter under the root", policy{plugTopics: auth.PlugTopics{"r1": {Write: []string{topics.AllFilter}}}}, plug, topics.PowerTopic("r1"), false, false},
		{"plug Shelly gen2", policy{plugTopics: auth.PlugTopics{"r1": {Write: []string{"shellyplusplugs-a8032ab1/#"}}}}, plug, "shellyplusplugs-a8032ab1/events/rpc", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.readAllowed(tc.user, tc.topic); got != tc.read {
				t.Errorf("subscribe %q: %v, want %v", tc.topic, got, tc.read)
			}
			if got := tc.policy.writeAllowed(tc.user, tc.topic); got != tc.write {
				t.Errorf("publish %q: %v, want %v", tc.topic, got, tc.write)
			}
		})
	}
}

// Client-id rules on the pure functions; TestConnectRefused checks them over TCP.
func TestClientIDRules(t *testing.T) {
	viewer := auth.User{Name: "viewer", Role: auth.RoleViewer}
	admin := auth.User{Name: "admin", Role: auth.RoleAdmin}
	automation := auth.User{Name: "auto", Role: auth.RoleAutomation}
	for _, tc := range []struct {
		name string
		user auth.User
		id   string
		ok   bool
	}{
		{"agent with its MAC", agentA, macA, true},
		{"agent with another agent's MAC", agentA, macB, false},
		{"agent with a name", agentA, "pi-1", false},
		{"agent with its MAC in capitals", agentA, strings.ToUpper(macA), false},
		{"agent with an empty id", agentA, "", false},
		{"viewer with a MAC", viewer, macA, false},
		{"admin with a MAC", admin, macB, false},
		{"automation with a name", automation, "node-red", true},
		{"viewer with an empty id (Mochi assigns one)", viewer, "", true},
		{"admin with a MAC-like name that is not a MAC", admin, "b827eb00000g", true},
		{"slash", admin, "a/b", false},
		{"plus", admin, "a+b", false},
		{"hash", admin, "a#", false},
		{"Mochi's inline client", admin, "inline", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clientIDValid(tc.id)
			if r == nil {
				r = clientIDAllowed(tc.user, tc.id)
			}
			if ok := r == nil; ok != tc.ok {
				t.Errorf("client id %q for %s: refusal %v, want allowed=%v", tc.id, tc.user.Name, r, tc.ok)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	caps := Config{}.withDefaults().capabilities()
	if caps.MaximumClients != DefaultMaxClients {
		t.Errorf("MaximumClients %d, want %d", caps.MaximumClients, DefaultMaxClients)
	}
	if caps.MaximumPacketSize != 64<<10 {
		t.Errorf("MaximumPacketSize %d, want 64 KiB", caps.MaximumPacketSize)
	}
	if caps.MaximumMessageExpiryInterval != 30*24*3600 {
		t.Errorf("MaximumMessageExpiryInterval %d, want 30 days", caps.MaximumMessageExpiryInterval)
	}
	if caps.MaximumSessionExpiryInterval != 7*24*3600 {
		t.Errorf("MaximumSessionExpiryInterval %d, want 7 days", caps.MaximumSessionExpiryInterval)
	}
	if caps.ReceiveMaximum == 0 || caps.MaximumQos != 2 {
		t.Errorf("capabilities not built from Mochi's defaults: %+v", caps)
	}
	if c := (Config{}).withDefaults(); c.Addr != ":1883" || c.ConnectTimeout != DefaultConnectTimeout || c.Logger == nil ||
		c.MaxPending != 256 || c.TLS != nil || c.WSAddr != "" {
		t.Errorf("defaults: %+v", c)
	}
	tlsCfg := &TLSConfig{CertFile: "c", KeyFile: "k"}
	if c := (Config{TLS: tlsCfg}).withDefaults(); c.TLS.Addr != ":8883" || tlsCfg.Addr != "" {
		t.Errorf("TLS defaults: %+v (caller's config changed: %+v)", c.TLS, tlsCfg)
	}
}

// The authorization matrix end to end: every row but the unknown role (which cannot be
// enrolled) and the plug without a row (refused at CONNECT: TestRowlessPlugRefused) as a real
// user over TCP, publishing and subscribing to every column and leaving a
// Will on it. A publish is judged by the in-process subscriber, which receives an allowed
// publish before its PUBACK: once the token completes, the verdict is in.
func TestAuthorizationMatrixTCP(t *testing.T) {
	b := newBroker(t, t.TempDir(), testUsers(t), false, func(c *Config) { c.PlugTopics = testPolicy.plugTopics })
	var mu sync.Mutex
	seen := map[string]bool{} // payloads that reached subscribers
	if err := b.Subscribe("#", func(m bus.Message) {
		payload := m.Payload
		mu.Lock()
		seen[string(payload)] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}

	for _, row := range authorizationMatrix {
		if !row.user.Role.Valid() || row.user == userPlugNo {
			continue
		}
		cells := matrixCells(t, row.cells)
		id := "matrix-" + row.user.Name
		if row.user.Role == auth.RoleAgent {
			id = row.user.MAC
		}
		t.Run(row.role, func(t *testing.T) {
			// Wills first, one connection each, closed cleanly (no Will sent) before the next.
			for i, col := range matrixColumns {
				c, err := dial(t, b, id, row.user.Name, password, withWill(col.topic))
				if want := strings.Contains(cells[i], "w"); want && err != nil {
					t.Errorf("Will on %s (%q) refused: %v", col.name, col.topic, err)
				} else if !want && !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
					t.Errorf("Will on %s (%q): %v, want refused as not authorised", col.name, col.topic, err)
				}
				if c != nil {
					c.Disconnect(0)
				}
			}

			c := mustDial(t, b, id, row.user.Name)
			for i, col := range matrixColumns {
				granted := c.subscribe(t, col.topic) != 0x80
				if want := strings.Contains(cells[i], "s"); granted != want {
					t.Errorf("subscribe %s (%q): granted=%v, want %v", col.name, col.topic, granted, want)
				}
				if strings.ContainsAny(col.topic, "+#") || strings.HasPrefix(col.topic, "$") {
					continue // not a topic a client can publish to (the pure test covers the rule)
				}
				payload := valid(col.topic, row.role+" -> "+col.name)
				c.publish(t, col.topic, 1, false, payload)
				mu.Lock()
				delivered := seen[payload]
				mu.Unlock()
				if want := strings.Contains(cells[i], "p"); delivered != want {
					t.Errorf("publish %s (%q): delivered=%v, want %v", col.name, col.topic, delivered, want)
				}
			}
			c.expectConnected(t) // refused publishes are dropped, not answered by a disconnect
			c.Disconnect(0)
		})
	}
}

// PlugTopics that could reach pirack's own topics or "$" topics, or are keyed by something
// that is not a row, are refused before anything starts.
func TestPlugTopicsChecked(t *testing.T) {
	users := testUsers(t)
	for _, tc := range []struct {
		filter string
		want   string // in the error; "" means accepted
		row    string // the filter's key; "" means r2
	}{
		{filter: "tele/rack-r1/#"},
		{filter: "shellies/shellyplug-s-7AB3C1/#"},
		{filter: "home/+/SENSOR"},
		{filter: "tele/rack-r1/SENSOR"},
		{filter: "#", want: "wildcard"},
		{filter: "+/r1/power", want: "wildcard"},
		{filter: topics.AllFilter, want: "never publish pirack topics"},
		{filter: topics.PowerTopic("r1"), want: "never publish pirack topics"},
		{filter: topics.Root, want: "never publish pirack topics"},
		{filter: "$SYS/#", want: "$ topic"},
		{filter: "", want: "not a valid MQTT topic filter"},
		{filter: "tele/#/SENSOR", want: "not a valid MQTT topic filter"},
		{filter: "tele/rack+/SENSOR", want: "not a valid MQTT topic filter"},
		{filter: "tele/rack-x/#", row: "rack/r1", want: "invalid row name"},
		{filter: "tele/rack-x/#", row: "+", want: "invalid row name"},
		{filter: "tele/rack-x/#", row: " ", want: "invalid row name"},
	} {
		t.Run(tc.row+" "+tc.filter, func(t *testing.T) {
			row := tc.row
			if row == "" {
				row = "r2"
			}
			b, err := New(Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Users: users, Logger: discardLogger(),
				PlugTopics: auth.PlugTopics{"r1": {Write: []string{"shellies/ok/#"}}, row: {Write: []string{"shellies/ok2/#", tc.filter}}}})
			if b != nil {
				defer b.Close()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("PlugTopics %q refused: %v", tc.filter, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "PlugTopics") {
				t.Fatalf("PlugTopics %q: error %v, want one naming PlugTopics and saying %q", tc.filter, err, tc.want)
			}
		})
	}
	t.Run("empty row", func(t *testing.T) {
		b, err := New(Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Users: users, Logger: discardLogger(),
			PlugTopics: auth.PlugTopics{"": {Write: []string{"tele/rack-r1/#"}}}})
		if b != nil {
			defer b.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "invalid row name") {
			t.Fatalf("PlugTopics keyed by the empty row: error %v, want an invalid row name", err)
		}
	})
}

// A plug user without a row, as the pirack that did not bind plugs to rows stored it, is
// refused at CONNECT, even with the plug folders it used to publish in, and the log says how to
// fix it. With a row, the same device connects.
func TestRowlessPlugRefused(t *testing.T) {
	var logs testlog.Buffer
	b := newBroker(t, t.TempDir(), testUsers(t), true, func(c *Config) {
		c.PlugTopics = testPolicy.plugTopics
		c.Logger = newBufferLogger(t, &logs)
	})
	if _, err := dial(t, b, "DVES_3F1A2C", userPlugNo.Name, password, withWill("tele/rack-r1/LWT")); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("plug user without a row: %v, want refused as not authorised", err)
	}
	if _, err := dial(t, b, "DVES_3F1A2C", userPlugNo.Name, password); !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
		t.Fatalf("plug user without a row, without a Will: %v, want refused as not authorised", err)
	}
	for _, want := range []string{"MQTT connection refused", "username=plug-old", "has no row",
		"pirack user add plug-old --role plug --row ROW"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	c := mustDial(t, b, "DVES_3F1A2C", userPlug.Name, withWill("tele/rack-r1/LWT"))
	c.expectConnected(t)
}
