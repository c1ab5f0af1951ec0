package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAndRead(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode fs.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o620, false}} {
		path := filepath.Join(dir, "secret")
		if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		checkErr := Check(path, "test secret")
		b, readErr := Read(path, "test secret", 3)
		for _, err := range []error{checkErr, readErr} {
			if tc.ok && err != nil {
				t.Errorf("mode %04o: %v", tc.mode, err)
			}
			if !tc.ok && (!errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "run chmod 600 "+path)) {
				t.Errorf("mode %04o: %v, want ErrInsecure naming the chmod", tc.mode, err)
			}
		}
		if tc.ok && string(b) != "s3c" {
			t.Errorf("mode %04o: Read = %q, want the first 3 bytes", tc.mode, b)
		}
	}
	if err := Check(filepath.Join(dir, "missing"), "test secret"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), "test secret", 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
