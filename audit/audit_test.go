package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pirack/pirack/internal/testlog"
)

// readEntries decodes every line of the audit file, failing on a line that is not an entry.
func readEntries(t *testing.T, dir string) []Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func entry(id string) Entry {
	return Entry{Time: t0, ID: id, Action: "blink", Outcome: "allowed", User: "admin", Role: "admin", Via: "basic",
		Remote: "192.0.2.1", MAC: "b827eb3f1a2c", Params: map[string]any{"count": 3}}
}

// TestAppendWritesAndLogs: an entry is a JSON line in the file and a structured log line.
func TestAppendWritesAndLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	logs := &testlog.Buffer{}
	a, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Append(entry("1")); err != nil {
		t.Fatal(err)
	}
	got := readEntries(t, dir)
	if len(got) != 1 || got[0].ID != "1" || got[0].MAC != "b827eb3f1a2c" || got[0].Params["count"] != 3.0 {
		t.Errorf("file = %+v", got)
	}
	if !strings.Contains(logs.String(), "msg=audit id=1 action=blink outcome=allowed user=admin") || !strings.Contains(logs.String(), "params.count=3") {
		t.Errorf("log line:\n%s", logs)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v, want mode 0700", fi.Mode(), err)
	}
	if a.Path() != filepath.Join(dir, File) {
		t.Errorf("Path = %q", a.Path())
	}
}

// TestNoDirectory: without a directory entries go to the log only, and Tail has nothing.
func TestNoDirectory(t *testing.T) {
	logs := &testlog.Buffer{}
	a, err := Open("", Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(entry("1")); err != nil || !strings.Contains(logs.String(), "msg=audit") || a.Path() != "" {
		t.Errorf("Append = %v, Path %q, log:\n%s", err, a.Path(), logs)
	}
	if err := a.Close(); err != nil {
		t.Error(err)
	}
}

func TestFileIsAppendOnlyAndPrivate(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		a, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Append(entry(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		a.Close()
		if n := len(readEntries(t, dir)); n != i+1 {
			t.Errorf("after open %d: %d entries, want %d (appended, not truncated)", i+1, n, i+1)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, File)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if err := os.Chmod(filepath.Join(dir, File), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Open of a world-readable audit log: %v, want a refusal naming chmod 600", err)
	}
}

func TestClosed(t *testing.T) {
	a, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := a.Append(entry("1")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := a.Tail(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Tail after Close = %v, want ErrClosed", err)
	}
}

// failingSink fails like a full disk: every write after writing half of it, or, with
// failSync, every sync after a whole write (the data never reached the disk).
type failingSink struct {
	failSync    bool
	truncatedTo []int64
}

func (s *failingSink) Write(p []byte) (int, error) {
	if s.failSync {
		return len(p), nil
	}
	return len(p) / 2, syscall.ENOSPC
}

func (s *failingSink) Sync() error {
	if s.failSync {
		return syscall.EIO
	}
	return nil
}

func (s *failingSink) Close() error           { return nil }
func (s *failingSink) Truncate(n int64) error { s.truncatedTo = append(s.truncatedTo, n); return nil }

// TestAppendFailure: an entry that cannot be made durable is an error, logged, and a partial
// write is cut off so that the file holds whole entries only.
func TestAppendFailure(t *testing.T) {
	sinks := map[string]func(t *testing.T) sink{
		"fake ENOSPC":       func(t *testing.T) sink { return &failingSink{} },
		"fake sync failure": func(t *testing.T) sink { return &failingSink{failSync: true} },
		"/dev/full": func(t *testing.T) sink {
			f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Skipf("no /dev/full: %v", err)
			}
			return f
		},
	}
	for name, newSink := range sinks {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			logs := &testlog.Buffer{}
			a, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Append(entry("good")); err != nil {
				t.Fatal(err)
			}
			good := a.sink
			a.sink = newSink(t)
			t.Cleanup(func() { good.Close() })
			for i := range 3 {
				if err := a.Append(entry(fmt.Sprint(i))); err == nil {
					t.Fatalf("Append %d on a failing disk succeeded", i)
				}
			}
			if !strings.Contains(logs.String(), "audit log write failed") {
				t.Errorf("no error logged:\n%s", logs)
			}
			if fs, ok := a.sink.(*failingSink); ok {
				if len(fs.truncatedTo) != 3 {
					t.Errorf("partial entries cut %d times, want 3", len(fs.truncatedTo))
				}
				for _, n := range fs.truncatedTo {
					if n != a.size {
						t.Errorf("partial entry cut back to %d, want %d", n, a.size)
					}
				}
			}
			if got := readEntries(t, dir); len(got) != 1 {
				t.Errorf("audit file has %d entries, want the 1 written before the failure", len(got))
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	var file bytes.Buffer
	var all []string
	for i := range 3000 { // about 150 KiB: several 64 KiB chunks
		line := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%40))
		all = append(all, line)
		file.WriteString(line + "\n")
	}
	r := bytes.NewReader(file.Bytes())
	for _, n := range []int{1, 2, 999, 1000, 3000, 5000} {
		got, err := lastLines(r, int64(file.Len()), n)
		if err != nil {
			t.Fatal(err)
		}
		want := all[max(len(all)-n, 0):]
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d lines, want %d", n, len(got), len(want))
		}
		for i := range want {
			if string(got[i]) != want[i] {
				t.Fatalf("n=%d: line %d = %q, want %q", n, i, got[i], want[i])
			}
		}
	}
	if got, err := lastLines(bytes.NewReader(nil), 0, 10); err != nil || len(got) != 0 {
		t.Errorf("empty file: %q, %v", got, err)
	}
}
