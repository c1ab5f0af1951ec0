package auth

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const pw = "correct horse battery"

func openTemp(t *testing.T) *Users {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.Cost = bcrypt.MinCost
	s.MosquittoIterations = 101 // mosquitto_passwd's default: fast enough under -race
	return s
}

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Role
		err  bool
	}{
		{"agent", RoleAgent, false},
		{"Viewer", RoleViewer, false},
		{" automation ", RoleAutomation, false},
		{"admin", RoleAdmin, false},
		{"PLUG", RolePlug, false},
		{"root", "", true},
		{"", "", true},
	} {
		got, err := ParseRole(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseRole(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ParseRole(%q) error %v does not wrap ErrInvalidRole", tc.in, err)
		}
	}
}

func TestAddValidation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		user     User
		password string
		wantName string
		wantMAC  string
		err      error
	}{
		{"admin", User{Name: "alice", Role: RoleAdmin}, pw, "alice", "", nil},
		{"name with dots", User{Name: "node-red.home_1", Role: RoleAutomation}, pw, "node-red.home_1", "", nil},
		{"agent name defaults to MAC", User{Role: RoleAgent, MAC: "B8:27:EB:3F:1A:2C", Row: "r1"}, pw, "b827eb3f1a2c", "b827eb3f1a2c", nil},
		{"agent name may be the MAC in another spelling", User{Name: "B827EB3F1A2C", Role: RoleAgent, MAC: "b8:27:eb:3f:1a:2c", Row: "r1"}, pw, "b827eb3f1a2c", "b827eb3f1a2c", nil},
		{"agent name other than MAC", User{Name: "pi1", Role: RoleAgent, MAC: "b8:27:eb:3f:1a:2c", Row: "r1"}, pw, "", "", ErrInvalidUser},
		{"agent without MAC", User{Role: RoleAgent, Row: "r1"}, pw, "", "", ErrInvalidUser},
		{"agent with bad MAC", User{Role: RoleAgent, MAC: "b8:27:eb:3f:1a", Row: "r1"}, pw, "", "", ErrInvalidUser},
		{"agent without row", User{Role: RoleAgent, MAC: "b8:27:eb:3f:1a:2c"}, pw, "", "", ErrInvalidUser},
		{"agent with bad row", User{Role: RoleAgent, MAC: "b8:27:eb:3f:1a:2c", Row: "Row 1"}, pw, "", "", ErrInvalidUser},
		{"viewer with MAC", User{Name: "bob", Role: RoleViewer, MAC: "b8:27:eb:3f:1a:2c"}, pw, "", "", ErrInvalidUser},
		{"viewer with row", User{Name: "bob", Role: RoleViewer, Row: "r1"}, pw, "", "", ErrInvalidUser},
		{"plug", User{Name: "plug-r1", Role: RolePlug, Row: "r1"}, pw, "plug-r1", "", nil},
		{"plug without row", User{Name: "plug-r1", Role: RolePlug}, pw, "", "", ErrInvalidUser},
		{"plug with bad row", User{Name: "plug-r1", Role: RolePlug, Row: "rack/r1"}, pw, "", "", ErrInvalidUser},
		{"plug with MAC", User{Name: "plug-r1", Role: RolePlug, Row: "r1", MAC: "b8:27:eb:3f:1a:2c"}, pw, "", "", ErrInvalidUser},
		{"plug without name", User{Role: RolePlug, Row: "r1"}, pw, "", "", ErrInvalidUser},
		{"empty name", User{Role: RoleViewer}, pw, "", "", ErrInvalidUser},
		{"name with slash", User{Name: "a/b", Role: RoleViewer}, pw, "", "", ErrInvalidUser},
		{"name with plus", User{Name: "a+b", Role: RoleViewer}, pw, "", "", ErrInvalidUser},
		{"name too long", User{Name: strings.Repeat("a", 65), Role: RoleViewer}, pw, "", "", ErrInvalidUser},
		{"name of 64", User{Name: strings.Repeat("a", 64), Role: RoleViewer}, pw, strings.Repeat("a", 64), "", nil},
		{"unknown role", User{Name: "bob", Role: "root"}, pw, "", "", ErrInvalidRole},
		{"short password", User{Name: "bob", Role: RoleViewer}, "1234567", "", "", ErrInvalidPassword},
		{"long password", User{Name: "bob", Role: RoleViewer}, strings.Repeat("p", 73), "", "", ErrInvalidPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			err := s.Add(tc.user, tc.password)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Add: %v, want %v", err, tc.err)
			}
			if err != nil {
				if len(s.List()) != 0 {
					t.Errorf("a refused Add stored a user: %v", s.List())
				}
				return
			}
			u, ok := s.Get(tc.wantName)
			if !ok {
				t.Fatalf("Get(%q): not found; have %v", tc.wantName, s.List())
			}
			if u.MAC != tc.wantMAC || u.Hash == "" || u.Created.IsZero() {
				t.Errorf("stored %+v, want MAC %q, a hash and a creation time", u, tc.wantMAC)
			}
			if strings.Contains(u.Hash, tc.password) {
				t.Errorf("hash contains the password")
			}
		})
	}
}

func TestAddDuplicateAndSet(t *testing.T) {
	s := openTemp(t)
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.Add(User{Name: "alice", Role: RoleViewer, Created: created}, pw); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(User{Name: "alice", Role: RoleAdmin}, "another password"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("second Add: %v, want ErrUserExists", err)
	}
	if _, err := s.Authenticate("alice", pw); err != nil {
		t.Fatalf("a refused Add changed the password: %v", err)
	}
	if err := s.Set(User{Name: "alice", Role: RoleAdmin}, "another password"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	u, _ := s.Get("alice")
	if u.Role != RoleAdmin || !u.Created.Equal(created) {
		t.Errorf("after Set: %+v, want role admin and the original creation time", u)
	}
	if _, err := s.Authenticate("alice", pw); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after Set: %v, want ErrBadCredentials (stale cache?)", err)
	}
	if _, err := s.Authenticate("alice", "another password"); err != nil {
		t.Errorf("new password after Set: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	s := openTemp(t)
	if err := s.Add(User{Role: RoleAgent, MAC: "b8:27:eb:00:00:01", Row: "r1"}, pw); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, password string
		err                  error
	}{
		{"right password", "b827eb000001", pw, nil},
		{"right password again (cached)", "b827eb000001", pw, nil},
		{"wrong password", "b827eb000001", pw + "x", ErrBadCredentials},
		{"empty password", "b827eb000001", "", ErrBadCredentials},
		{"unknown user", "nobody", pw, ErrBadCredentials},
		{"MAC spelled otherwise", "B8:27:EB:00:00:01", pw, ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := s.Authenticate(tc.user, tc.password)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tc.err)
			}
			if err == nil && (u.Role != RoleAgent || u.Row != "r1" || u.MAC != "b827eb000001") {
				t.Errorf("Authenticate returned %+v", u)
			}
		})
	}
}

func TestAuthenticateCache(t *testing.T) {
	s := openTemp(t)
	if err := s.Add(User{Name: "bob", Role: RoleViewer}, pw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("bob", pw); err != nil {
		t.Fatal(err)
	}
	s.cacheMu.Lock()
	e, ok := s.verified["bob"]
	s.cacheMu.Unlock()
	if !ok {
		t.Fatal("a successful Authenticate was not cached")
	}
	s.mu.Lock()
	u := s.users["bob"]
	s.mu.Unlock()
	if e.hash != u.Hash {
		t.Fatal("cache entry not keyed by the current hash")
	}
	if _, err := s.Authenticate("bob", "wrong password"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password with a cached entry: %v", err)
	}
	if err := s.Remove("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("bob", pw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed user: %v, want ErrBadCredentials", err)
	}
	s.cacheMu.Lock()
	_, ok = s.verified["bob"]
	s.cacheMu.Unlock()
	if ok {
		t.Error("Remove left the user in the cache")
	}
}

func TestRemove(t *testing.T) {
	s := openTemp(t)
	if err := s.Remove("nobody"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("Remove(nobody): %v, want ErrNoSuchUser", err)
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Cost = bcrypt.MinCost
	if len(s.List()) != 0 {
		t.Fatal("a missing file is not an empty store")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Open created the file: %v", err)
	}
	for _, name := range []string{"zed", "alice", "mike"} {
		if err := s.Add(User{Name: name, Role: RoleViewer}, pw); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %04o, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), pw) {
		t.Error("the file contains a password")
	}
	var f struct{ V int }
	if err := json.Unmarshal(b, &f); err != nil || f.V != 1 {
		t.Errorf("file version %d, %v; want v 1", f.V, err)
	}

	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range s2.List() {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "alice,mike,zed" {
		t.Errorf("List after reopen = %s, want alice,mike,zed", got)
	}
	if _, err := s2.Authenticate("mike", pw); err != nil {
		t.Errorf("Authenticate after reopen: %v", err)
	}
}

// A plug's row is stored. A plug user without one, written by a pirack that did not bind plugs
// to rows, still loads and authenticates with its row empty: refusing it is the broker's job,
// with a log line saying how to fix it, not a users file that no longer opens.
func TestPlugRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Cost = bcrypt.MinCost
	if err := s.Add(User{Name: "plug-r1", Role: RolePlug, Row: "r1"}, pw); err != nil {
		t.Fatal(err)
	}
	if u, ok := s.Get("plug-r1"); !ok || u.Row != "r1" {
		t.Fatalf("Get(plug-r1) = %+v, %v; want row r1", u, ok)
	}
	u, _ := s.Get("plug-r1")
	u.Name, u.Row = "plug-old", ""
	b, err := json.Marshal(map[string]any{"v": 1, "users": []User{u}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("a users file with a plug user without a row does not open: %v", err)
	}
	if got, err := s2.Authenticate("plug-old", pw); err != nil || got.Role != RolePlug || got.Row != "" {
		t.Errorf("Authenticate(plug-old) = %+v, %v; want the plug user, row empty", got, err)
	}
}

// A server's store sees users added by the `pirack user` command without a restart.
func TestReloadsChangesByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	server, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	server.Cost = bcrypt.MinCost // also the cost of the dummy hash checked for unknown users
	cli, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cli.Cost = bcrypt.MinCost
	if err := cli.Add(User{Role: RoleAgent, MAC: "b827eb000002", Row: "r2"}, pw); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate("b827eb000002", pw); err != nil {
		t.Fatalf("server did not see the new user: %v", err)
	}
	if err := cli.Remove("b827eb000002"); err != nil {
		t.Fatal(err)
	}
	if _, ok := server.Get("b827eb000002"); ok {
		t.Fatal("server did not see the removal")
	}
	if _, err := server.Authenticate("b827eb000002", pw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed user authenticated from the cache: %v", err)
	}
}

func TestOpenRefusesLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(`{"v":1,"users":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	_, err := Open(path)
	if !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("Open of a 0644 file: %v, want ErrInsecureFile", err)
	}
	if !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("error %q does not give the fix", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err != nil {
		t.Fatalf("Open after chmod 600: %v", err)
	}
}

func TestOpenBadFile(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"not json", "users: alice", "damaged"},
		{"future version", `{"v":2,"users":[]}`, "version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestSaveFailureLeavesStoreUnchanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.Cost = bcrypt.MinCost
	if err := os.Remove(dir); err != nil { // nowhere to write the temporary file
		t.Fatal(err)
	}
	err = s.Add(User{Name: "alice", Role: RoleAdmin}, pw)
	if err == nil || !strings.Contains(err.Error(), "create temporary file") {
		t.Fatalf("Add with no directory: %v, want an error saying what failed", err)
	}
	if _, ok := s.Get("alice"); ok {
		t.Error("a failed save still added the user in memory")
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openTemp(t)
	if err := s.Add(User{Name: "alice", Role: RoleAdmin}, pw); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 5 {
				if i%2 == 0 {
					_, _ = s.Authenticate("alice", pw)
					_ = s.List()
				} else {
					_ = s.Set(User{Name: "alice", Role: RoleAdmin}, pw)
				}
			}
		})
	}
	wg.Wait()
	if _, err := s.Authenticate("alice", pw); err != nil {
		t.Fatal(err)
	}
}

func TestGeneratePassword(t *testing.T) {
	a, b := GeneratePassword(), GeneratePassword()
	if len(a) != 20 || a == b {
		t.Fatalf("GeneratePassword gave %q and %q", a, b)
	}
	if err := validatePassword(a); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(a, "+/=") {
		t.Errorf("%q is not URL-safe", a)
	}
}

func TestSetWithCost(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "users.json")) // Cost zero: bcrypt.DefaultCost
	if err != nil {
		t.Fatal(err)
	}
	u := User{Name: "carol", Role: RoleViewer} // an agent's generated secret is not bcrypt
	if err := s.SetWithCost(u, pw, bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("carol")
	if c, err := bcrypt.Cost([]byte(got.Hash)); err != nil || c != bcrypt.MinCost {
		t.Errorf("hash cost %d, %v; want %d", c, err, bcrypt.MinCost)
	}
	if err := s.SetWithCost(u, pw, 99); err == nil {
		t.Error("SetWithCost accepted cost 99")
	}
}

func TestRights(t *testing.T) {
	plugs := PlugTopics{"r1": {Write: []string{"tele/rack-r1/#"}}}
	agent := User{Name: "b827eb3f1a2c", Role: RoleAgent, MAC: "b827eb3f1a2c", Row: "r1"}
	for _, c := range []struct {
		name        string
		u           User
		read, write string
	}{
		{"admin", User{Role: RoleAdmin}, "# $SYS/#", "#"},
		{"viewer", User{Role: RoleViewer}, "rack/#", ""},
		{"automation", User{Role: RoleAutomation}, "rack/#", "rack/+/led"},
		{"agent", agent, "rack/b827eb3f1a2c/led rack/b827eb3f1a2c/system", "rack/r1/b827eb3f1a2c/status rack/r1/b827eb3f1a2c/metrics rack/r1/b827eb3f1a2c/button rack/r1/b827eb3f1a2c/led_state rack/r1/power rack/r1/b827eb3f1a2c/system_result"},
		{"plug", User{Role: RolePlug, Row: "r1"}, "", "tele/rack-r1/#"},
		{"plug of a row without plugs", User{Role: RolePlug, Row: "r2"}, "", ""},
		{"plug without a row", User{Role: RolePlug}, "", ""},
		{"unknown role", User{Role: "root"}, "", ""},
	} {
		r := c.u.Rights(plugs)
		if got := strings.Join(r.Read, " "); got != c.read {
			t.Errorf("%s: read %q, want %q", c.name, got, c.read)
		}
		if got := strings.Join(r.Write, " "); got != c.write {
			t.Errorf("%s: write %q, want %q", c.name, got, c.write)
		}
	}
	r := User{Role: RolePlug, Row: "r1"}.Rights(plugs)
	r.Write[0] = "changed"
	if plugs["r1"].Write[0] != "tele/rack-r1/#" {
		t.Error("Rights hands out the caller's plug filters: a change to them changed the map")
	}
}

// An entry pirack would not have written does not load with rights nobody chose: the file is
// refused, naming the entry.
func TestOpenRefusesEntriesPirackWouldNotWrite(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		u    User
		want string
	}{
		{"unknown role", User{Name: "root", Role: "superuser"}, `"superuser"`},
		{"agent without a MAC", User{Name: "pi", Role: RoleAgent, Row: "r1"}, "MAC"},
		{"agent without a row", User{Name: "b827eb3f1a2c", Role: RoleAgent, MAC: "b827eb3f1a2c"}, "row"},
		{"agent named apart from its MAC", User{Name: "dca6320a0b0c", Role: RoleAgent, MAC: "b827eb3f1a2c", Row: "r1"}, "MAC"},
		{"viewer with a MAC", User{Name: "eve", Role: RoleViewer, MAC: "b827eb3f1a2c"}, "only agents"},
		{"bad name", User{Name: "eve\nadmin", Role: RoleViewer}, "not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.json")
			c.u.Hash = string(hash)
			b, _ := json.Marshal(map[string]any{"v": 1, "users": []User{c.u}})
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want an error naming the file and %s", err, c.want)
			}
		})
	}
	t.Run("twice the same name", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "users.json")
		u := User{Name: "eve", Role: RoleViewer, Hash: string(hash)}
		b, _ := json.Marshal(map[string]any{"v": 1, "users": []User{u, u}})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("Open = %v, want the duplicate named", err)
		}
	})
}
