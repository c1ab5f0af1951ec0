package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func payload(id uint64) []byte { return fmt.Appendf(nil, `{"v":1,"press":"short","seq":%d}`, id) }

// ids lists the queue's items, oldest first, checking each payload is the one pushed.
func ids(t *testing.T, q *pressQueue) []uint64 {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []uint64
	for _, it := range q.items {
		if string(it.payload) != string(payload(it.id)) {
			t.Errorf("item %d holds %q", it.id, it.payload)
		}
		out = append(out, it.id)
	}
	return out
}

func mustOpen(t *testing.T, path string, maxItems, maxBytes int) (*pressQueue, loadReport) {
	t.Helper()
	q, rep, err := openQueue(path, maxItems, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.close() })
	return q, rep
}

func push(t *testing.T, q *pressQueue, from, to uint64) (dropped []uint64) {
	t.Helper()
	for id := from; id <= to; id++ {
		d, err := q.push(id, payload(id))
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, d...)
	}
	return dropped
}

func TestQueueKeepsOrderAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), pressQueueFile)
	q, _ := mustOpen(t, path, 100, 1<<20)
	push(t, q, 1, 5)
	if it, ok := q.head(); !ok || it.id != 1 {
		t.Fatalf("head = %v, %v; want 1", it.id, ok)
	}
	if err := q.remove(1); err != nil {
		t.Fatal(err)
	}
	if err := q.remove(3); err != nil { // not the head: ignored
		t.Fatal(err)
	}
	q.close()

	again, rep := mustOpen(t, path, 100, 1<<20)
	if got, want := ids(t, again), []uint64{2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("after reopen: %v, want %v", got, want)
	}
	if rep.Items != 4 || rep.Corrupt != 0 {
		t.Errorf("report = %+v, want 4 items and nothing corrupt", rep)
	}
	if m := again.maxID(); m != 5 {
		t.Errorf("maxID = %d, want 5", m)
	}
}

func TestQueueDropsOldestWhenFull(t *testing.T) {
	for _, tc := range []struct {
		name               string
		maxItems, maxBytes int
		want               []uint64
	}{
		{"count bound", 3, 1 << 20, []uint64{5, 6, 7}},
		{"byte bound", 100, 2*len(payload(1)) + 1, []uint64{6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), pressQueueFile)
			q, _ := mustOpen(t, path, tc.maxItems, tc.maxBytes)
			dropped := push(t, q, 1, 7)
			if got := ids(t, q); !slices.Equal(got, tc.want) {
				t.Errorf("queue = %v, want %v", got, tc.want)
			}
			if want := 7 - uint64(len(tc.want)); uint64(len(dropped)) != want || q.droppedTotal() != want || dropped[0] != 1 {
				t.Errorf("dropped %v (total %d), want the %d oldest", dropped, q.droppedTotal(), want)
			}
			q.close()
			again, _ := mustOpen(t, path, tc.maxItems, tc.maxBytes)
			if got := ids(t, again); !slices.Equal(got, tc.want) {
				t.Errorf("after reopen: %v, want %v (drops must reach the disk)", got, tc.want)
			}
		})
	}
}

func TestQueueShrunkBoundAppliesAtLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), pressQueueFile)
	q, _ := mustOpen(t, path, 10, 1<<20)
	push(t, q, 1, 6)
	q.close()
	again, _ := mustOpen(t, path, 2, 1<<20)
	if got := ids(t, again); !slices.Equal(got, []uint64{5, 6}) {
		t.Errorf("queue = %v, want the 2 newest", got)
	}
}

func TestQueueFileStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), pressQueueFile)
	q, _ := mustOpen(t, path, 1000, 1<<20)
	var largest int64
	for id := uint64(1); id <= 3000; id++ {
		push(t, q, id, id)
		if id%2 == 0 { // deliver two at a time, leaving a backlog of 0 or 1
			q.remove(id - 1)
			q.remove(id)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, fi.Size())
	}
	// Dead lines are compacted away once they outnumber the live ones by 64.
	if limit := int64(70 * (len(payload(3000)) + 20)); largest > limit {
		t.Errorf("queue file grew to %d bytes for a backlog of at most 1, want under %d", largest, limit)
	}
}

func TestQueueSkipsDamagedLines(t *testing.T) {
	good := func(id uint64) string { return string(appendLine(nil, 'p', id, payload(id))) }
	flipped := []byte(good(2))
	flipped[len(flipped)-3] ^= 0x20 // one bit of the payload: the checksum no longer matches
	torn := good(4)
	torn = torn[:len(torn)/2] // a power cut in the middle of the write

	for name, file := range map[string]string{
		"torn last line":  good(1) + good(3) + torn,
		"bad checksum":    good(1) + string(flipped) + good(3),
		"garbage line":    good(1) + "hello world\n" + good(3),
		"torn, then more": good(1) + torn + "\n" + good(3),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), pressQueueFile)
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			q, rep := mustOpen(t, path, 100, 1<<20)
			if got := ids(t, q); !slices.Equal(got, []uint64{1, 3}) {
				t.Errorf("loaded %v, want the intact presses 1 and 3", got)
			}
			if rep.Corrupt != 1 || rep.Items != 2 {
				t.Errorf("report = %+v, want 1 damaged line and 2 items", rep)
			}
			// What follows must not be glued to the damaged line.
			push(t, q, 5, 5)
			q.close()
			again, rep := mustOpen(t, path, 100, 1<<20)
			if got := ids(t, again); !slices.Equal(got, []uint64{1, 3, 5}) || rep.Corrupt != 0 {
				t.Errorf("after a push and reopen: %v, %+v; want [1 3 5] and a clean file", got, rep)
			}
		})
	}
}

// fullDisk fails every write the way a full SD card does.
type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, syscall.ENOSPC }
func (fullDisk) Sync() error               { return syscall.ENOSPC }
func (fullDisk) Close() error              { return nil }

func TestQueueFullDiskKeepsPressInMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), pressQueueFile)
	q, _ := mustOpen(t, path, 100, 1<<20)
	push(t, q, 1, 1)

	// The disk fills up.
	q.mu.Lock()
	q.f.Close()
	q.f = fullDisk{}
	q.writeFile = func(string, []byte) error { return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC} }
	q.mu.Unlock()
	_, err := q.push(2, payload(2))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("push on a full disk = %v, want ENOSPC", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "kept in memory only") || !strings.Contains(msg, "no space left on device") {
		t.Errorf("error %q does not say which file, what happened to the press and why", msg)
	}
	if got := ids(t, q); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("queue = %v, want the press kept in memory", got)
	}
	if _, err := q.push(3, payload(3)); err == nil {
		t.Error("second push on a full disk succeeded")
	}

	// Space comes back: the next write saves everything, not just the newest press.
	q.mu.Lock()
	q.writeFile = writeFileAtomic
	q.mu.Unlock()
	push(t, q, 4, 4)
	q.close()
	again, rep := mustOpen(t, path, 100, 1<<20)
	if got := ids(t, again); !slices.Equal(got, []uint64{1, 2, 3, 4}) || rep.Corrupt != 0 {
		t.Errorf("after the disk recovered: %v, %+v; want [1 2 3 4] intact", got, rep)
	}
}

func TestQueueInMemory(t *testing.T) {
	q, _ := mustOpen(t, "", 2, 1<<20)
	dropped := push(t, q, 1, 3)
	if got := ids(t, q); !slices.Equal(got, []uint64{2, 3}) || !slices.Equal(dropped, []uint64{1}) {
		t.Errorf("queue = %v, dropped %v; want [2 3] and [1]", got, dropped)
	}
	select {
	case <-q.pushed:
	default:
		t.Error("push did not signal the sender")
	}
}

func TestQueueRejectsNewlineInPayload(t *testing.T) {
	q, _ := mustOpen(t, filepath.Join(t.TempDir(), pressQueueFile), 10, 1<<20)
	if _, err := q.push(1, []byte("a\nb")); err == nil {
		t.Error("payload with a newline accepted; it would split its line in the file")
	}
}
