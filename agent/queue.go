package agent

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// Bounds of the press queue. A button press encodes to about 90 bytes, so the count is the
// bound that applies; the byte bound only guards against odd payloads.
const (
	DefaultMaxQueuedPresses = 1000
	maxQueuedBytes          = 256 << 10
	pressQueueFile          = "presses.queue"
)

// A queued item: the caller's id (the press sequence number) and the exact bytes to publish.
// Re-sending the same bytes keeps (mac, seq, ts) identical, which is what the dashboard
// deduplicates on.
type queued struct {
	id      uint64
	payload []byte
}

// pressQueue is the agent's outbox for button presses: a bounded FIFO, kept on disk when it has
// a path, from which the sender publishes the head and removes it only once the broker has
// acknowledged it. When full, the oldest item is dropped.
//
// The file is an append-only log of lines "<crc32c hex> <op> <id>[ <payload>]\n": op "p" adds
// an item, op "r" removes one (acknowledged or dropped). A line cut short by a crash or with a
// wrong checksum is skipped on load and reported; the file is rewritten with the live items at
// load and whenever dead lines outnumber them, so it stays within about twice the bounds.
// An "add" is synced to disk before push returns; a removal is not (losing it only means one
// redelivery, which the dashboard recognises).
type pressQueue struct {
	path     string // "" keeps the queue in memory only
	maxItems int
	maxBytes int

	// File operations, replaced by tests to simulate a full disk.
	openAppend func(path string) (syncWriter, error)
	writeFile  func(path string, data []byte) error

	mu      sync.Mutex
	items   []queued // oldest first
	size    int      // sum of len(payload)
	f       syncWriter
	lines   int  // lines in the file, live or dead
	dirty   bool // the file may not match items: rewrite it before appending again
	dropped uint64
	pushed  chan struct{} // signalled (buffered 1) by push, for the sender
}

type syncWriter interface {
	Write([]byte) (int, error)
	Sync() error
	Close() error
}

// loadReport says what openQueue found on disk.
type loadReport struct {
	Items   int // live items loaded
	Corrupt int // lines skipped: cut short or failing their checksum
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// openQueue loads the queue kept at path ("" for memory only) and opens it for appending.
// Corrupt lines are skipped and counted in the report; only an unreadable or unwritable file is
// an error.
func openQueue(path string, maxItems, maxBytes int) (*pressQueue, loadReport, error) {
	q := &pressQueue{
		path: path, maxItems: maxItems, maxBytes: maxBytes,
		openAppend: openAppendFile, writeFile: writeFileAtomic,
		pushed: make(chan struct{}, 1),
	}
	var rep loadReport
	if path == "" {
		return q, rep, nil
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, rep, fmt.Errorf("read press queue: %w", err)
	}
	q.items, rep.Corrupt = parseQueue(b)
	for _, it := range q.items {
		q.size += len(it.payload)
	}
	q.trimLocked() // the bounds may have shrunk since the file was written
	rep.Items = len(q.items)
	// Rewrite at once: it drops dead and corrupt lines, so appends never follow a torn line.
	if err := q.rewriteLocked(); err != nil {
		return nil, rep, fmt.Errorf("rewrite press queue: %w", err)
	}
	return q, rep, nil
}

// parseQueue replays a queue file. It is pure: the file's bytes in, the live items and the
// number of lines skipped out.
func parseQueue(b []byte) (items []queued, corrupt int) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			corrupt++ // the last line was cut short
			break
		}
		line := b[:i]
		b = b[i+1:]
		op, id, payload, ok := parseLine(line)
		if !ok {
			corrupt++
			continue
		}
		switch op {
		case 'p':
			items = append(items, queued{id: id, payload: bytes.Clone(payload)})
		case 'r':
			// Removals are of the oldest item with that id: the queue is FIFO.
			for j, it := range items {
				if it.id == id {
					items = append(items[:j], items[j+1:]...)
					break
				}
			}
		}
	}
	return items, corrupt
}

func parseLine(line []byte) (op byte, id uint64, payload []byte, ok bool) {
	sum, rest, found := bytes.Cut(line, []byte{' '})
	if !found || len(sum) != 8 {
		return 0, 0, nil, false
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || crc32.Checksum(rest, crcTable) != uint32(want) {
		return 0, 0, nil, false
	}
	fields := bytes.SplitN(rest, []byte{' '}, 3)
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, nil, false
	}
	id, err = strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return 0, 0, nil, false
	}
	switch op = fields[0][0]; op {
	case 'p':
		if len(fields) != 3 {
			return 0, 0, nil, false
		}
		return op, id, fields[2], true
	case 'r':
		return op, id, nil, len(fields) == 2
	}
	return 0, 0, nil, false
}

// appendLine formats one record.
func appendLine(dst []byte, op byte, id uint64, payload []byte) []byte {
	rest := []byte{op, ' '}
	rest = strconv.AppendUint(rest, id, 10)
	if op == 'p' {
		rest = append(rest, ' ')
		rest = append(rest, payload...)
	}
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(rest, crcTable))
	dst = append(dst, rest...)
	return append(dst, '\n')
}

// push adds an item at the tail, dropping the oldest ones if the queue is then over its bounds,
// and returns their ids. The item is queued even when err is not nil: err says it could not
// be saved to disk, so it will be lost if the agent stops before delivering it.
func (q *pressQueue) push(id uint64, payload []byte) (dropped []uint64, err error) {
	if bytes.IndexByte(payload, '\n') >= 0 {
		// JSON from encoding/json never holds a raw newline; the file format relies on it.
		return nil, fmt.Errorf("press queue: payload holds a newline")
	}
	q.mu.Lock()
	defer func() {
		q.mu.Unlock()
		select {
		case q.pushed <- struct{}{}:
		default:
		}
	}()
	q.items = append(q.items, queued{id: id, payload: bytes.Clone(payload)})
	q.size += len(payload)
	dropped = q.trimLocked()
	q.dropped += uint64(len(dropped))
	if q.path == "" {
		return dropped, nil
	}
	var line []byte
	for _, d := range dropped {
		line = appendLine(line, 'r', d, nil)
	}
	line = appendLine(line, 'p', id, payload)
	if err := q.persistLocked(line, true); err != nil {
		return dropped, fmt.Errorf("save press to %s (kept in memory only; lost if the agent stops before delivering it): %w", q.path, err)
	}
	return dropped, nil
}

// trimLocked drops the oldest items until the queue is within its bounds, keeping at least the
// newest one.
func (q *pressQueue) trimLocked() (dropped []uint64) {
	for len(q.items) > 1 && (len(q.items) > q.maxItems || q.size > q.maxBytes) {
		dropped = append(dropped, q.items[0].id)
		q.size -= len(q.items[0].payload)
		q.items = q.items[1:]
	}
	return dropped
}

// head returns the oldest item without removing it.
func (q *pressQueue) head() (queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return queued{}, false
	}
	return q.items[0], true
}

// remove takes the head off the queue if its id is id (it may have been dropped meanwhile).
func (q *pressQueue) remove(id uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 || q.items[0].id != id {
		return nil
	}
	q.size -= len(q.items[0].payload)
	q.items[0] = queued{}
	q.items = q.items[1:]
	if q.path == "" {
		return nil
	}
	if err := q.persistLocked(appendLine(nil, 'r', id, nil), false); err != nil {
		return fmt.Errorf("record delivered press in %s (it may be sent again after a restart): %w", q.path, err)
	}
	return nil
}

// len is the number of items queued.
func (q *pressQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// maxID is the largest id queued, 0 when empty.
func (q *pressQueue) maxID() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	var m uint64
	for _, it := range q.items {
		m = max(m, it.id)
	}
	return m
}

// droppedTotal counts the items dropped because the queue was full, since it was opened.
func (q *pressQueue) droppedTotal() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// persistLocked appends lines to the file, or rewrites the file when it holds too many dead
// lines or may be torn by an earlier failed write.
func (q *pressQueue) persistLocked(lines []byte, sync bool) error {
	q.lines += bytes.Count(lines, []byte{'\n'})
	if q.dirty || q.f == nil || q.lines > 2*len(q.items)+64 {
		return q.rewriteLocked()
	}
	_, err := q.f.Write(lines)
	if err == nil && sync {
		err = q.f.Sync()
	}
	if err != nil {
		// The file may end in half a line now; never append after it.
		q.dirty = true
	}
	return err
}

// rewriteLocked replaces the file by one holding the live items, then reopens it for appending.
func (q *pressQueue) rewriteLocked() error {
	if q.f != nil {
		q.f.Close()
		q.f = nil
	}
	q.dirty = true
	var buf []byte
	for _, it := range q.items {
		buf = appendLine(buf, 'p', it.id, it.payload)
	}
	if err := q.writeFile(q.path, buf); err != nil {
		return err
	}
	f, err := q.openAppend(q.path)
	if err != nil {
		return err
	}
	q.f, q.lines, q.dirty = f, len(q.items), false
	return nil
}

// close releases the file; the queue's items stay on disk for the next open.
func (q *pressQueue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	return err
}

func openAppendFile(path string) (syncWriter, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
