package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestAgentSecretHashedFast(t *testing.T) {
	s := openTemp(t)
	secret := GeneratePassword()
	for _, tc := range []struct {
		name     string
		u        User
		password string
		fast     bool
	}{
		{"agent, generated secret", User{Role: RoleAgent, MAC: "b827eb000001", Row: "r1"}, secret, true},
		{"agent, short password typed by hand", User{Role: RoleAgent, MAC: "b827eb000002", Row: "r1"}, "short-pw1", false},
		{"person, long password", User{Name: "alice", Role: RoleAdmin}, secret, false},
		{"plug, long password", User{Name: "plug-r1", Role: RolePlug, Row: "r1"}, secret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Set(tc.u, tc.password); err != nil {
				t.Fatal(err)
			}
			name := tc.u.Name
			if name == "" {
				name = tc.u.MAC
			}
			u, _ := s.Get(name)
			if got := isAgentHash(u.Hash); got != tc.fast {
				t.Fatalf("hash %q: fast form %v, want %v", u.Hash, got, tc.fast)
			}
			if strings.Contains(u.Hash, tc.password) {
				t.Fatal("hash holds the password")
			}
			if !VerifyMosquittoHash(u.MosquittoHash, tc.password) {
				t.Error("Mosquitto hash does not match the password")
			}
			if _, err := s.Authenticate(name, tc.password); err != nil {
				t.Fatalf("right password: %v", err)
			}
			for _, wrong := range []string{tc.password[:len(tc.password)-1], tc.password + "x", "", strings.ToUpper(tc.password)} {
				if _, err := s.Authenticate(name, wrong); !errors.Is(err, ErrBadCredentials) {
					t.Errorf("wrong password %q: %v, want ErrBadCredentials", wrong, err)
				}
			}
		})
	}
}

func TestAgentHashSalted(t *testing.T) {
	a, b := agentHash("same secret, two users"), agentHash("same secret, two users")
	if a == b {
		t.Fatal("two hashes of one secret are equal: no salt")
	}
	for _, bad := range []string{"", agentHashPrefix, agentHashPrefix + "$", agentHashPrefix + "AAAA$AAAA",
		agentHashPrefix + "!!$" + strings.Repeat("A", 43), "$2a$04$x"} {
		if verifyAgentHash(bad, "") || verifyAgentHash(bad, "x") {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
}

// writeLegacy writes a users file as an earlier pirack did: agents with bcrypt hashes.
func writeLegacy(t *testing.T, path string, users []User) {
	t.Helper()
	b, err := json.Marshal(usersFile{V: fileVersion, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func legacyAgent(t *testing.T, mac, secret string) User {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	mh, err := MosquittoHash(secret, 101)
	if err != nil {
		t.Fatal(err)
	}
	return User{Name: mac, Role: RoleAgent, MAC: mac, Row: "r1", Hash: string(h), MosquittoHash: mh, Created: time.Unix(1.7e9, 0).UTC()}
}

func TestLegacyBcryptAgentUpgraded(t *testing.T) {
	s := openTemp(t)
	secret := GeneratePassword()
	old := legacyAgent(t, "b827eb000001", secret)
	writeLegacy(t, s.Path(), []User{old})

	if _, err := s.Authenticate(old.Name, "wrong-"+secret); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong secret: %v, want ErrBadCredentials", err)
	}
	if u, _ := s.Get(old.Name); u.Hash != old.Hash {
		t.Fatal("a failed check changed the hash")
	}
	if _, err := s.Authenticate(old.Name, secret); err != nil {
		t.Fatalf("bcrypt agent entry: %v", err)
	}

	// The file now holds the fast form, read by a fresh store (another server lifetime).
	s2, err := Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := s2.Get(old.Name)
	if !isAgentHash(u.Hash) {
		t.Fatalf("after a successful check the agent's hash is %q, want the fast form", u.Hash)
	}
	if u.MosquittoHash != old.MosquittoHash || !u.Created.Equal(old.Created) || u.Row != old.Row {
		t.Errorf("upgrade changed more than the hash: %+v", u)
	}
	if _, err := s2.Authenticate(old.Name, secret); err != nil {
		t.Fatalf("upgraded entry: %v", err)
	}
	if _, err := s2.Authenticate(old.Name, "wrong-"+secret); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("upgraded entry, wrong secret: %v, want ErrBadCredentials", err)
	}
}

func TestLegacyUpgradeKeepsShortAndChangedPasswords(t *testing.T) {
	s := openTemp(t)
	short := legacyAgent(t, "b827eb000001", "hand-pw1")
	long := legacyAgent(t, "b827eb000002", GeneratePassword())
	writeLegacy(t, s.Path(), []User{short, long})
	if _, err := s.Authenticate(short.Name, "hand-pw1"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Get(short.Name); u.Hash != short.Hash {
		t.Errorf("a short hand-typed agent password was rehashed fast: %q", u.Hash)
	}
	// A password changed by another process between the check and the write is kept.
	if got := s.applyUpgrades(map[string][2]string{long.Name: {"$2a$04$not-the-stored-hash", agentHash("x")}}); got != nil {
		t.Fatal(got)
	}
	if u, _ := s.Get(long.Name); u.Hash != long.Hash {
		t.Error("an upgrade replaced a hash that had changed meanwhile")
	}
}

// A fleet reconnecting at once: every agent is upgraded, in far fewer writes than agents.
func TestLegacyUpgradeConcurrent(t *testing.T) {
	s := openTemp(t)
	const n = 64
	secrets := make([]string, n)
	var users []User
	for i := range n {
		secrets[i] = GeneratePassword()
		users = append(users, legacyAgent(t, fmt.Sprintf("b827eb%06x", i), secrets[i]))
	}
	writeLegacy(t, s.Path(), users)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.Authenticate(users[i].Name, secrets[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s2, err := Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range s2.List() {
		if !isAgentHash(u.Hash) {
			t.Errorf("%s not upgraded", u.Name)
		}
		if _, err := s2.Authenticate(u.Name, secrets[i]); err != nil {
			t.Errorf("%s after upgrade: %v", u.Name, err)
		}
	}
}

func TestUnknownAgentNameRefused(t *testing.T) {
	s := openTemp(t)
	for _, name := range []string{"b827eb000009", "nobody"} {
		if _, err := s.Authenticate(name, GeneratePassword()); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", name, err)
		}
	}
}

// BenchmarkAuthenticateAgent is one agent's CONNECT check after a server restart (nothing
// cached): its secret as an earlier pirack stored it (bcrypt at the default cost) and as now.
func BenchmarkAuthenticateAgent(b *testing.B) {
	secret := GeneratePassword()
	b.Run("bcrypt-cost10", func(b *testing.B) {
		h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if bcrypt.CompareHashAndPassword(h, []byte(secret)) != nil {
				b.Fatal("no match")
			}
		}
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		s, err := Open(b.TempDir() + "/users.json")
		if err != nil {
			b.Fatal(err)
		}
		s.MosquittoIterations = 101
		if err := s.Set(User{Role: RoleAgent, MAC: "b827eb000001", Row: "r1"}, secret); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Authenticate("b827eb000001", secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}
