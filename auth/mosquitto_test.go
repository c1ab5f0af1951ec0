package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A line written by mosquitto_passwd 2.0.11 (-b pw bob secretpw): the format must be the one
// Mosquitto reads. The real broker accepting our hashes is tested in brokerconfig.
const mosquittoPasswdBob = "$7$101$6PPbvligAoKXYU1u$NKDc0reZEQxrupgaymAb/0JXDeExsH80qgBagin4BOcYvsvEoOxKVrV1QJMHH2mTwfrxREu0ZhF6uuWeuMk8rA=="

func TestVerifyMosquittoPasswdHash(t *testing.T) {
	if !VerifyMosquittoHash(mosquittoPasswdBob, "secretpw") {
		t.Error("mosquitto_passwd's hash of secretpw not verified")
	}
	for _, bad := range []string{"secretpx", "", "secretpw "} {
		if VerifyMosquittoHash(mosquittoPasswdBob, bad) {
			t.Errorf("password %q verified", bad)
		}
	}
}

func TestMosquittoHash(t *testing.T) {
	h, err := MosquittoHash("password-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$") // "", "7", iterations, salt, key
	if len(parts) != 5 || parts[1] != "7" || parts[2] != "10000" || len(parts[3]) != 16 || len(parts[4]) != 88 {
		t.Fatalf("hash %q: want $7$10000$<16 base64 chars>$<88 base64 chars>", h)
	}
	if !VerifyMosquittoHash(h, "password-1") || VerifyMosquittoHash(h, "password-2") {
		t.Error("hash does not verify its own password only")
	}
	if h2, _ := MosquittoHash("password-1", 0); h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if _, err := MosquittoHash("password-1", -1); err == nil {
		t.Error("negative iterations accepted")
	}
	for _, bad := range []string{"", "$6$abc$def", "$7$x$YWJj$YWJj", "$7$0$YWJj$YWJj", "$7$101$!!$YWJj", "$7$101$YWJj"} {
		if VerifyMosquittoHash(bad, "password-1") {
			t.Errorf("malformed hash %q verified", bad)
		}
	}
}

// Every password set through the store gets a Mosquitto hash beside its bcrypt one.
func TestPutStoresMosquittoHash(t *testing.T) {
	s := openTemp(t)
	s.MosquittoIterations = 200
	if err := s.Add(User{Name: "alice", Role: RoleViewer}, pw); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWithCost(User{Role: RoleAgent, MAC: "b827eb000001", Row: "r1", MosquittoHash: "$7$1$forged$forged"}, pw, 4); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "b827eb000001"} {
		u, _ := s.Get(name)
		if !strings.HasPrefix(u.MosquittoHash, "$7$200$") || !VerifyMosquittoHash(u.MosquittoHash, pw) {
			t.Errorf("%s: mosquitto hash %q does not hold the password at 200 iterations", name, u.MosquittoHash)
		}
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"mosquitto_hash": "$7$200$`) {
		t.Errorf("users file lacks mosquitto_hash:\n%s", b)
	}
}

// A users file written before Mosquitto hashes existed still loads; its users have none.
func TestUsersFileWithoutMosquittoHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	old := `{"v":1,"users":[{"name":"alice","role":"viewer","hash":"$2a$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde","created":"2026-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := s.Get("alice")
	if !ok || u.MosquittoHash != "" || u.Role != RoleViewer {
		t.Fatalf("old user: %+v, %v", u, ok)
	}
}
