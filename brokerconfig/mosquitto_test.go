package brokerconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pirack/pirack/auth"
)

const h = "$7$101$c2FsdHNhbHRzYWx0$a2V5" // shape only: GenerateMosquitto does not verify hashes

func TestGenerateMosquitto(t *testing.T) {
	users := []auth.User{
		{Name: "viewer", Role: auth.RoleViewer, MosquittoHash: h},
		{Name: "b827eb3f1a2c", Role: auth.RoleAgent, MAC: "b827eb3f1a2c", Row: "r1", MosquittoHash: h},
		{Name: "admin", Role: auth.RoleAdmin, MosquittoHash: h},
		{Name: "auto", Role: auth.RoleAutomation, MosquittoHash: h},
		{Name: "plug-r1", Role: auth.RolePlug, Row: "r1", MosquittoHash: h},
		{Name: "plug-r3", Role: auth.RolePlug, Row: "r3", MosquittoHash: h},
		{Name: "plug-old", Role: auth.RolePlug, MosquittoHash: h},
		{Name: "legacy", Role: auth.RoleAdmin},
	}
	m, err := GenerateMosquitto(users, auth.PlugTopics{"r1": {Write: []string{"tele/rack-r1/#"}}, "r2": {Write: []string{"shellies/x/#"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantACL := aclHeader + `
# admin
user admin
topic readwrite #
topic read $SYS/#

# automation
user auto
topic write rack/+/led
topic read rack/#

# agent b8:27:eb:3f:1a:2c, row r1
user b827eb3f1a2c
topic write rack/r1/b827eb3f1a2c/status
topic write rack/r1/b827eb3f1a2c/metrics
topic write rack/r1/b827eb3f1a2c/button
topic write rack/r1/b827eb3f1a2c/led_state
topic write rack/r1/power
topic write rack/r1/b827eb3f1a2c/system_result
topic read rack/b827eb3f1a2c/led
topic read rack/b827eb3f1a2c/system

# plug, row r1
user plug-r1
topic write tele/rack-r1/#

# plug, row r3
user plug-r3
# row r3 has no plug in the power bridge file: this plug may publish nothing

# viewer
user viewer
topic read rack/#
`
	if string(m.ACL) != wantACL {
		t.Errorf("ACL:\n%s\nwant:\n%s", m.ACL, wantACL)
	}
	var wantPasswd string
	for _, n := range []string{"admin", "auto", "b827eb3f1a2c", "plug-r1", "plug-r3", "viewer"} {
		wantPasswd += n + ":" + h + "\n"
	}
	if string(m.Passwd) != wantPasswd {
		t.Errorf("passwd:\n%s\nwant:\n%s", m.Passwd, wantPasswd)
	}
	if strings.Join(m.NoHash, ",") != "legacy" {
		t.Errorf("NoHash = %v, want [legacy]", m.NoHash)
	}
	if len(m.Skipped) != 1 || m.Skipped[0].Name != "plug-old" || !strings.Contains(m.Skipped[0].Reason, "pirack user add plug-old --role plug --row ROW") {
		t.Errorf("Skipped = %+v, want plug-old with how to re-create it", m.Skipped)
	}
	if strings.Join(m.Users, ",") != "admin,auto,b827eb3f1a2c,plug-r1,plug-r3,viewer" {
		t.Errorf("Users = %v", m.Users)
	}
}

// What could inject lines into the files is refused, not written.
func TestGenerateMosquittoRefusesUnsafeInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users []auth.User
		plugs auth.PlugTopics
	}{
		{"name with a newline", []auth.User{{Name: "a\nuser x", Role: auth.RoleViewer, MosquittoHash: h}}, nil},
		{"name with a colon", []auth.User{{Name: "a:b", Role: auth.RoleViewer, MosquittoHash: h}}, nil},
		{"hash with a newline", []auth.User{{Name: "a", Role: auth.RoleViewer, MosquittoHash: h + "\nroot:" + h}}, nil},
		{"bcrypt hash as mosquitto hash", []auth.User{{Name: "a", Role: auth.RoleViewer, MosquittoHash: "$2a$04$x"}}, nil},
		{"agent not bound", []auth.User{{Name: "b827eb3f1a2c", Role: auth.RoleAgent, MAC: "b827eb3f1a2d", Row: "r1", MosquittoHash: h}}, nil},
		{"agent row a topic", []auth.User{{Name: "b827eb3f1a2c", Role: auth.RoleAgent, MAC: "b827eb3f1a2c", Row: "r1/#", MosquittoHash: h}}, nil},
		{"plug filter with a newline", []auth.User{{Name: "p", Role: auth.RolePlug, Row: "r1", MosquittoHash: h}},
			auth.PlugTopics{"r1": {Write: []string{"tele/x/#\ntopic readwrite #"}}}},
		{"plug filter under rack", []auth.User{{Name: "p", Role: auth.RolePlug, Row: "r1", MosquittoHash: h}},
			auth.PlugTopics{"r1": {Write: []string{"rack/#"}}}},
		{"plug filter a wildcard", []auth.User{{Name: "p", Role: auth.RolePlug, Row: "r1", MosquittoHash: h}},
			auth.PlugTopics{"r1": {Write: []string{"#"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := GenerateMosquitto(tc.users, tc.plugs); err == nil {
				t.Fatalf("accepted:\n%s\n%s", m.Passwd, m.ACL)
			}
		})
	}
}

func TestWriteMosquitto(t *testing.T) {
	dir := t.TempDir()
	m := Mosquitto{Passwd: []byte("a:" + h + "\n"), ACL: []byte("user a\n")}
	for range 2 { // the second write replaces the files
		if err := WriteMosquitto(dir, m); err != nil {
			t.Fatal(err)
		}
	}
	for name, mode := range map[string]os.FileMode{PasswdFileName: 0o600, ACLFileName: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want passwd and acl only", len(entries))
	}
}
