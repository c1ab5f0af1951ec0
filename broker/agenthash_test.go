package broker

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
)

// TestLegacyBcryptAgentConnectsAndIsUpgraded connects, over TCP, an agent whose secret an
// earlier pirack stored as bcrypt: it is admitted, its entry is rehashed to the fast form, and
// it is admitted again on that; a wrong secret is refused both before and after.
func TestLegacyBcryptAgentConnectsAndIsUpgraded(t *testing.T) {
	users := testUsers(t)
	const mac = "b827ebf10001"
	secret := auth.GeneratePassword()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		V     int         `json:"v"`
		Users []auth.User `json:"users"`
	}
	b, err := os.ReadFile(users.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	f.Users = append(f.Users, auth.User{Name: mac, Role: auth.RoleAgent, MAC: mac, Row: "r1", Hash: string(h)})
	if b, err = json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users.Path(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	br := newBroker(t, t.TempDir(), users, true)

	connect := func(pass string, code byte) {
		t.Helper()
		conn := rawConnect(t, br.Addr(), connectPacket{id: mac, user: mac, pass: pass})
		expectConnack(t, conn, code)
		conn.Close()
	}
	connect("wrong-"+secret, v3BadPassword)
	if u, _ := users.Get(mac); u.Hash != string(h) {
		t.Fatal("a refused CONNECT changed the agent's hash")
	}
	connect(secret, 0)

	// Another server lifetime: a fresh store reads the file the broker's check rewrote.
	fresh, err := auth.Open(users.Path())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := fresh.Get(mac)
	if !strings.HasPrefix(u.Hash, "$hmac-sha256$") {
		t.Fatalf("after a successful CONNECT the agent's hash is %.7s..., want the fast form", u.Hash)
	}
	br2 := newBroker(t, t.TempDir(), fresh, true)
	conn := rawConnect(t, br2.Addr(), connectPacket{id: mac, user: mac, pass: secret})
	expectConnack(t, conn, 0)
	conn.Close()
	conn = rawConnect(t, br2.Addr(), connectPacket{id: mac, user: mac, pass: "wrong-" + secret})
	expectConnack(t, conn, v3BadPassword)
}
