package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/testlog"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rotationFixture is an audit log in a temporary directory with a clock the test moves and
// renames it can make fail.
type rotationFixture struct {
	dir  string
	log  *Log
	logs *testlog.Buffer

	mu      sync.Mutex
	now     time.Time
	failOld string // a rename of this path fails
}

func newRotationFixture(t *testing.T, maxBytes int64, keep int) *rotationFixture {
	t.Helper()
	r := &rotationFixture{dir: t.TempDir(), logs: &testlog.Buffer{}, now: t0}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{
		MaxBytes: maxBytes,
		Keep:     keep,
		Logger:   log,
		Now: func() time.Time {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.now
		},
		rename: func(oldpath, newpath string) error {
			r.mu.Lock()
			fail := oldpath == r.failOld
			r.mu.Unlock()
			if fail {
				return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EACCES}
			}
			return os.Rename(oldpath, newpath)
		},
	}
	a, err := Open(r.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	r.log = a
	return r
}

func (r *rotationFixture) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

func (r *rotationFixture) failRenameOf(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failOld = path
}

// numbered is an entry whose ID is i: entries of the same width give lines of the same length.
func numbered(i int) Entry {
	return Entry{Time: t0, ID: fmt.Sprintf("%016d", i), Action: "clear", Outcome: "allowed", User: "admin", Remote: "192.0.2.1"}
}

// lineLen is the length of numbered's lines in the file.
func lineLen(t *testing.T) int64 {
	t.Helper()
	b, err := json.Marshal(numbered(0))
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b)) + 1
}

func (r *rotationFixture) record(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := r.log.Append(numbered(i)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

// ids returns the IDs in file name (audit.log, audit.log.1, ...), in order, as numbers.
func ids(t *testing.T, dir, name string) []int {
	t.Helper()
	var out []int
	for _, e := range readFile(t, filepath.Join(dir, name)) {
		n, err := strconv.Atoi(e.ID)
		if err != nil {
			t.Fatalf("%s: id %q: %v", name, e.ID, err)
		}
		out = append(out, n)
	}
	return out
}

// readFile decodes every line of one audit file, failing on a line that is not an entry.
func readFile(t *testing.T, path string) []Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Entry
	for l := range strings.Lines(string(b)) {
		if !strings.HasSuffix(l, "\n") {
			t.Fatalf("%s: unterminated line %q", path, l)
		}
		var e Entry
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s: line %q: %v", path, l, err)
		}
		out = append(out, e)
	}
	return out
}

// auditFiles returns the names in dir, sorted.
func auditFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestAuditRotation(t *testing.T) {
	for _, keep := range []int{1, 3} {
		t.Run(fmt.Sprintf("keep %d", keep), func(t *testing.T) {
			L := lineLen(t)
			r := newRotationFixture(t, 3*L, keep)

			r.record(t, 0, 3) // exactly 3*L: full, not over
			if got := auditFiles(t, r.dir); !slices.Equal(got, []string{File}) {
				t.Fatalf("files after filling up to the limit: %v, want audit.log only", got)
			}
			r.record(t, 3, 4) // would cross the limit: rotates first
			if got, want := ids(t, r.dir, File+".1"), seq(0, 3); !slices.Equal(got, want) {
				t.Errorf("audit.log.1 = %v, want %v", got, want)
			}
			if got := ids(t, r.dir, File); !slices.Equal(got, []int{3}) {
				t.Errorf("audit.log = %v, want the entry that crossed the limit, [3]", got)
			}

			total := 3 * (keep + 3)
			r.record(t, 4, total)
			want := []string{File}
			for i := 1; i <= keep; i++ {
				want = append(want, fmt.Sprintf("%s.%d", File, i))
			}
			if got := auditFiles(t, r.dir); !slices.Equal(got, want) {
				t.Fatalf("files = %v, want %v: %d kept, the oldest removed", got, want, keep)
			}
			for i, name := range want { // newest first, 3 entries each
				end := total - 3*i
				if got := ids(t, r.dir, name); !slices.Equal(got, seq(end-3, end)) {
					t.Errorf("%s = %v, want %v", name, got, seq(end-3, end))
				}
				fi, err := os.Stat(filepath.Join(r.dir, name))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v (%v), want 0600", name, fi.Mode(), err)
				}
			}
			if n := strings.Count(r.logs.String(), "msg=\"audit log rotated\""); n != keep+2 {
				t.Errorf("%d rotations logged, want %d:\n%s", n, keep+2, r.logs)
			}
			if r.log.RotateFailures() != 0 {
				t.Errorf("rotateFailures = %d", r.log.RotateFailures())
			}
		})
	}
}

func TestAuditRotationNever(t *testing.T) {
	r := newRotationFixture(t, -1, Keep)
	r.record(t, 0, 50)
	if got := auditFiles(t, r.dir); !slices.Equal(got, []string{File}) {
		t.Errorf("files = %v, want audit.log only", got)
	}
}

func TestAuditTailAcrossRotation(t *testing.T) {
	L := lineLen(t)
	r := newRotationFixture(t, 3*L, 3)
	tail := func(n int) []int {
		t.Helper()
		entries, err := r.log.Tail(n)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, e := range entries {
			i, err := strconv.Atoi(e.ID)
			if err != nil {
				t.Fatalf("id %q: %v", e.ID, err)
			}
			out = append(out, i)
		}
		return out
	}

	r.record(t, 0, 4) // just rotated: one entry in audit.log, three in audit.log.1
	for n, want := range map[int][]int{1: {3}, 2: {2, 3}, 4: seq(0, 4), 10: seq(0, 4)} {
		if got := tail(n); !slices.Equal(got, want) {
			t.Errorf("just after a rotation, tail(%d) = %v, want %v", n, got, want)
		}
	}
	r.record(t, 4, 17) // audit.log 15-16, .1 12-14, .2 9-11, .3 6-8
	for n, want := range map[int][]int{2: {15, 16}, 3: seq(14, 17), 6: seq(11, 17), 11: seq(6, 17), 100: seq(6, 17)} {
		if got := tail(n); !slices.Equal(got, want) {
			t.Errorf("tail(%d) = %v, want %v", n, got, want)
		}
	}

	// A gap left by a failed rotation is stepped over.
	if err := os.Remove(filepath.Join(r.dir, File+".2")); err != nil {
		t.Fatal(err)
	}
	if got, want := tail(8), []int{6, 7, 8, 12, 13, 14, 15, 16}; !slices.Equal(got, want) {
		t.Errorf("tail(8) with audit.log.2 missing = %v, want %v", got, want)
	}
}

// TestAuditRotationFailure: a rotation that fails costs no entry: it goes into the current file,
// the failure is counted and logged once, and rotation is tried again later.
func TestAuditRotationFailure(t *testing.T) {
	cases := []struct {
		name        string
		break_, fix func(t *testing.T, r *rotationFixture)
	}{
		{
			name:   "audit.log cannot be renamed",
			break_: func(t *testing.T, r *rotationFixture) { r.failRenameOf(filepath.Join(r.dir, File)) },
			fix:    func(t *testing.T, r *rotationFixture) { r.failRenameOf("") },
		},
		{
			name:   "the fresh file cannot be put in place",
			break_: func(t *testing.T, r *rotationFixture) { r.failRenameOf(filepath.Join(r.dir, File+".new")) },
			fix:    func(t *testing.T, r *rotationFixture) { r.failRenameOf("") },
		},
		{
			// A real failure, even as root: a directory that cannot be removed where the
			// fresh file is created.
			name: "the fresh file cannot be created",
			break_: func(t *testing.T, r *rotationFixture) {
				if err := os.MkdirAll(filepath.Join(r.dir, File+".new", "x"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			fix: func(t *testing.T, r *rotationFixture) {
				if err := os.RemoveAll(filepath.Join(r.dir, File+".new")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			L := lineLen(t)
			r := newRotationFixture(t, 3*L, 3)
			r.record(t, 0, 8) // rotated twice: audit.log.2 0-2, audit.log.1 3-5, audit.log 6-7
			c.break_(t, r)

			r.record(t, 8, 12) // crosses the limit at 9: the rotation fails
			if got := r.log.RotateFailures(); got != 1 {
				t.Errorf("rotateFailures = %d, want 1 (no retry before %v)", got, rotateRetry)
			}
			if got, want := ids(t, r.dir, File), seq(6, 12); !slices.Equal(got, want) {
				t.Errorf("audit.log = %v, want %v: entries go on into the current file", got, want)
			}

			for i := range 2 { // tried again, fails again: counted, not shifted, not logged as an error again
				r.advance(rotateRetry)
				r.record(t, 12+i, 13+i)
			}
			if got := r.log.RotateFailures(); got != 3 {
				t.Errorf("rotateFailures after two retries = %d, want 3", got)
			}
			all := map[int]int{}
			for _, name := range auditFiles(t, r.dir) {
				if name == File+".new" {
					continue
				}
				for _, id := range ids(t, r.dir, name) {
					all[id]++
				}
			}
			for _, id := range seq(0, 14) { // a retry must not shift, and so drop, again
				if all[id] != 1 {
					t.Errorf("after failed rotations, entry %d is in %d files, want 1: %v", id, all[id], auditFiles(t, r.dir))
				}
			}
			logs := r.logs.String()
			if n := strings.Count(logs, `level=ERROR msg="audit log rotation failed`); n != 1 {
				t.Errorf("rotation failure logged as an error %d times, want once:\n%s", n, logs)
			}
			if !strings.Contains(logs, `level=DEBUG msg="audit log rotation failed`) || !strings.Contains(logs, "failures=3") {
				t.Errorf("later failures are not logged at debug level with their count:\n%s", logs)
			}

			c.fix(t, r)
			r.record(t, 14, 15) // within rotateRetry of the last failure: not tried yet
			r.advance(rotateRetry)
			r.record(t, 15, 16)
			for name, want := range map[string][]int{File: {15}, File + ".1": seq(6, 15), File + ".2": seq(3, 6), File + ".3": seq(0, 3)} {
				if got := ids(t, r.dir, name); !slices.Equal(got, want) {
					t.Errorf("%s after recovery = %v, want %v", name, got, want)
				}
			}
			if got, want := auditFiles(t, r.dir), []string{File, File + ".1", File + ".2", File + ".3"}; !slices.Equal(got, want) {
				t.Errorf("files after recovery = %v, want %v", got, want)
			}
			if !strings.Contains(r.logs.String(), "failures_before=3") {
				t.Errorf("recovery not logged with the failures before it:\n%s", r.logs)
			}
		})
	}
}

// TestAuditRotationConcurrent: many writers and a reader while the log rotates: no entry is
// lost, split or written twice, and no file passes the limit.
func TestAuditRotationConcurrent(t *testing.T) {
	const (
		writers  = 8
		each     = 150
		maxBytes = 4 << 10
	)
	r := newRotationFixture(t, maxBytes, 1000) // keep everything, to count it
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := r.log.Append(numbered(w*each + i)); err != nil {
					t.Errorf("record: %v", err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var tails sync.WaitGroup
	tails.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			entries, err := r.log.Tail(40)
			if err != nil {
				t.Errorf("tail during rotations: %v", err)
				return
			}
			for _, e := range entries {
				if len(e.ID) != 16 {
					t.Errorf("tail during rotations: a broken entry %+v", e)
					return
				}
			}
		}
	})
	wg.Wait()
	close(done)
	tails.Wait()

	seen := make(map[string]int)
	files := auditFiles(t, r.dir)
	for _, name := range files {
		path := filepath.Join(r.dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxBytes || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %v; want at most %d, 0600", name, fi.Size(), fi.Mode(), maxBytes)
		}
		for _, e := range readFile(t, path) {
			seen[e.ID]++
		}
	}
	if len(files) < 10 {
		t.Errorf("only %d files: too few rotations to test anything", len(files))
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct entries across %d files, want %d", len(seen), len(files), writers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("entry %s written %d times", id, n)
		}
	}
	entries, err := r.log.Tail(1000)
	if err != nil || len(entries) != 1000 {
		t.Errorf("tail(%d) after the writers: %d entries (%v)", 1000, len(entries), err)
	}
}
