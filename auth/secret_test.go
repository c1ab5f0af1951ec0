package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSecretFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"owner read-write", 0o600, true},
		{"owner read-only", 0o400, true},
		{"group readable", 0o640, false},
		{"world readable", 0o644, false},
		{"group writable", 0o620, false},
		{"world writable only", 0o602, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".key")
			if err := os.WriteFile(path, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // not narrowed by the umask
				t.Fatal(err)
			}
			err := CheckSecretFile(path, "MQTT TLS key")
			if tc.ok {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", tc.mode, err)
				}
				return
			}
			if !errors.Is(err, ErrInsecureFile) {
				t.Fatalf("mode %04o: %v, want ErrInsecureFile", tc.mode, err)
			}
			for _, want := range []string{"MQTT TLS key", "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	if err := CheckSecretFile(filepath.Join(dir, "missing.key"), "MQTT TLS key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestLookup(t *testing.T) {
	s := openTemp(t)
	if err := s.Add(User{Role: RoleAgent, MAC: "b8:27:eb:00:00:01", Row: "r1"}, "password-1"); err != nil {
		t.Fatal(err)
	}
	u, err := s.Lookup("b827eb000001")
	if err != nil || u.Role != RoleAgent || u.Row != "r1" {
		t.Fatalf("Lookup: %+v, %v", u, err)
	}
	if _, err := s.Lookup("b827eb000002"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Lookup of an unknown user: %v, want ErrBadCredentials", err)
	}
	// An unreadable store is an error, not an unknown user: the broker must refuse and log it.
	if err := os.Chmod(s.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(), []byte(`{"v":1,"users":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup("b827eb000001"); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("Lookup with a 0644 users file: %v, want ErrInsecureFile", err)
	}
}
