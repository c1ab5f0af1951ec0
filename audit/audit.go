// Package audit is the Control Center's audit log: who did what, when and from where, one JSON
// line per entry in an owner-only file, synced before Append returns, so that a caller can
// refuse an action that could not be audited. The file is rotated by size, keeping a few old
// files, and Tail reads the last entries back across rotations.
package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// File is the name of the audit log in its directory. When it would grow past
// Options.MaxBytes it is renamed File+".1" (the previous ".1" becoming ".2", and so on up to
// Options.Keep, the oldest being deleted) and a fresh File is started.
const File = "audit.log"

// Rotation defaults.
const (
	DefaultMaxBytes = 10 << 20 // Options.MaxBytes when zero
	Keep            = 5        // Options.Keep when zero: audit.log.1 (newest) to audit.log.5

	rotateRetry    = time.Minute // after a failed rotation, entries go on into the current file this long before the next try
	rotateLogEvery = time.Hour   // a rotation that keeps failing is logged as an error at most this often
)

// Entry is one line of the audit log: who did what, when, and from where. Its strings are
// written and logged as given: the caller bounds foreign ones (a user name typed at a failed
// login).
type Entry struct {
	Time time.Time `json:"time"`
	// ID is unique per request; an allowed command that then fails has a second entry with
	// the same ID.
	ID      string `json:"id"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	User    string `json:"user,omitempty"` // as typed, for a failed login
	Role    string `json:"role,omitempty"`
	Via     string `json:"via,omitempty"` // how the user authenticated: form, session or basic
	Remote  string `json:"remote"`        // client IP address
	MAC     string `json:"mac,omitempty"`
	// Params are the command's parameters, such as count, period_ms and expires_at of a blink.
	Params map[string]any `json:"params,omitempty"`
	Reason string         `json:"reason,omitempty"`
}

// ErrClosed is returned by Append and Tail after Close.
var ErrClosed = errors.New("audit log is closed")

// sink is what the audit log writes to: an *os.File, or a failing fake in tests.
type sink interface {
	io.WriteCloser
	Sync() error
	Truncate(size int64) error
}

var _ sink = (*os.File)(nil)

// Options configure a Log. Every zero value is usable.
type Options struct {
	// MaxBytes is the size past which the file is rotated, before the entry that would cross
	// it. 0 means DefaultMaxBytes; negative never rotates.
	MaxBytes int64
	// Keep is how many rotated files are kept; 0 means Keep.
	Keep int
	// Logger receives every entry as a structured line, and rotation trouble; nil discards.
	Logger *slog.Logger
	// Now is the clock that paces retries of a failed rotation; nil means time.Now.
	Now func() time.Time

	rename func(oldpath, newpath string) error // os.Rename; tests make it fail
}

// withDefaults fills in the zero values, in one place.
func (o Options) withDefaults() Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Keep <= 0 {
		o.Keep = Keep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.rename == nil {
		o.rename = os.Rename
	}
	return o
}

// Log writes every entry as a structured log line and, with a directory, appends it as a JSON
// line to <dir>/audit.log, synced before Append returns: an entry that is not on disk is
// reported as an error, so that the action is not carried out unaudited. It is safe for
// concurrent use.
type Log struct {
	log  *slog.Logger
	path string // "" means log lines only
	opts Options

	mu     sync.Mutex
	sink   sink
	size   int64 // bytes of whole entries in the file
	closed bool

	// A failed rotation never costs an entry: it goes on into the current file, and rotation
	// is tried again after rotateRetry.
	rotateErrors  uint64    // failed rotations, ever
	failStreak    uint64    // failed rotations since the last success
	nextRotate    time.Time // no rotation before this, after a failure
	lastRotateLog time.Time // when a failed rotation was last logged as an error
}

// Open opens (creating it 0600, and its directory 0700) the audit log in dir. An existing file
// readable by others is refused: it names who did what, from where. dir "" makes a Log that
// writes log lines only, with no file.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	a := &Log{log: opts.Logger, opts: opts}
	if dir == "" {
		return a, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit directory: %w", err)
	}
	a.path = filepath.Join(dir, File)
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", a.path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("audit log %s has mode %04o; it must be readable by its owner only: chmod 600 %s", a.path, perm, a.path)
	}
	a.sink, a.size = f, fi.Size()
	return a, nil
}

// NewID returns a random request id for Entry.ID.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Append writes e. It returns an error when the entry could not be made durable (ErrClosed
// after Close); the caller must then not carry out the action.
func (a *Log) Append(e Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	if err := a.append(append(line, '\n')); err != nil {
		a.log.Error("audit log write failed; the action is refused", "err", err, "entry", string(line))
		return err
	}
	attrs := []slog.Attr{
		slog.String("id", e.ID), slog.String("action", e.Action), slog.String("outcome", e.Outcome),
		slog.String("user", e.User), slog.String("role", e.Role), slog.String("via", e.Via),
		slog.String("remote", e.Remote),
	}
	if e.MAC != "" {
		attrs = append(attrs, slog.String("mac", e.MAC))
	}
	if len(e.Params) > 0 {
		params := make([]any, 0, len(e.Params))
		for _, k := range slices.Sorted(maps.Keys(e.Params)) {
			params = append(params, slog.Any(k, e.Params[k]))
		}
		attrs = append(attrs, slog.Group("params", params...))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "audit", attrs...)
	return nil
}

func (a *Log) append(line []byte) error {
	if a.path == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.opts.MaxBytes > 0 && a.size > 0 && a.size+int64(len(line)) > a.opts.MaxBytes {
		a.maybeRotate()
	}
	_, err := a.sink.Write(line)
	if err == nil {
		err = a.sink.Sync()
	}
	if err != nil {
		// Cut a partial line off, so the next entry starts on a line of its own.
		_ = a.sink.Truncate(a.size)
		return fmt.Errorf("write audit log %s: %w", a.path, err)
	}
	a.size += int64(len(line))
	return nil
}

// Path is the audit file's path, "" when the Log writes log lines only.
func (a *Log) Path() string { return a.path }

// Tail returns the last n entries, oldest first, from audit.log and, when it holds fewer, the
// rotated files before it. Lines that do not decode (an entry cut by a crash) are skipped.
func (a *Log) Tail(n int) ([]Entry, error) {
	files, sizes, err := a.openForTail()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var lines [][]byte // newest file first, each file's lines oldest first
	for i, f := range files {
		got, err := lastLines(f, sizes[i], n-len(lines))
		if err != nil {
			return nil, fmt.Errorf("read audit log %s: %w", f.Name(), err)
		}
		lines = append(got, lines...)
		if len(lines) >= n {
			break
		}
	}
	out := make([]Entry, 0, len(lines))
	for _, l := range lines {
		var e Entry
		if json.Unmarshal(l, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// openForTail opens audit.log and the rotated files that exist, newest first, with the size to
// read of each. It holds the lock only to open them: an open file is what it was when opened
// whatever later rotations rename, and audit.log is only appended to past the size taken here.
func (a *Log) openForTail() ([]*os.File, []int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, nil, ErrClosed
	}
	var files []*os.File
	var sizes []int64
	fail := func(err error) ([]*os.File, []int64, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, fmt.Errorf("read audit log: %w", err)
	}
	f, err := os.Open(a.path)
	if err != nil {
		return fail(err)
	}
	files, sizes = append(files, f), append(sizes, a.size)
	for i := 1; i <= a.opts.Keep; i++ {
		f, err := os.Open(a.rotatedPath(i))
		if errors.Is(err, fs.ErrNotExist) {
			continue // not rotated that often yet, or a gap left by a failed rotation
		}
		if err != nil {
			return fail(err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fail(err)
		}
		files, sizes = append(files, f), append(sizes, fi.Size())
	}
	return files, sizes, nil
}

// lastLines reads r backwards from size, a chunk at a time, until it has n whole lines.
func lastLines(r io.ReaderAt, size int64, n int) ([][]byte, error) {
	const chunk = 64 << 10
	var buf []byte
	end := size
	for end > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		start := max(end-chunk, 0)
		b := make([]byte, end-start)
		if _, err := r.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		buf = append(b, buf...)
		end = start
	}
	lines := bytes.Split(bytes.TrimSuffix(buf, []byte{'\n'}), []byte{'\n'})
	if end > 0 && len(lines) > 0 {
		lines = lines[1:] // may be the end of an earlier line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && len(lines[0]) == 0 {
		return nil, nil
	}
	return lines, nil
}

// rotatedPath is the name of the i-th newest rotated file: audit.log.1 is the newest.
func (a *Log) rotatedPath(i int) string { return fmt.Sprintf("%s.%d", a.path, i) }

// maybeRotate rotates the audit log unless a recent rotation failed. A failure is counted and
// logged, at most once per rotateLogEvery as an error, and the entry goes on into the current
// file. a.mu is held.
func (a *Log) maybeRotate() {
	now := a.opts.Now()
	if now.Before(a.nextRotate) {
		return
	}
	size := a.size
	err := a.rotate()
	if err == nil {
		a.log.Info("audit log rotated", "file", a.rotatedPath(1), "bytes", size, "kept", a.opts.Keep, "failures_before", a.failStreak)
		a.failStreak, a.nextRotate, a.lastRotateLog = 0, time.Time{}, time.Time{}
		return
	}
	a.rotateErrors++
	a.failStreak++
	a.nextRotate = now.Add(rotateRetry)
	level := slog.LevelDebug
	if a.lastRotateLog.IsZero() || now.Sub(a.lastRotateLog) >= rotateLogEvery {
		level, a.lastRotateLog = slog.LevelError, now
	}
	a.log.Log(context.Background(), level, "audit log rotation failed; entries go on into the current file, and rotation is retried",
		"err", err, "file", a.path, "bytes", size, "failures", a.failStreak, "retry_in", rotateRetry)
}

// rotate renames audit.log to audit.log.1 (shifting the older files up, the oldest dropped),
// starts a fresh audit.log and syncs the directory. The fresh file is created first under a
// temporary name, so that the likeliest failures (no space, no permission) change nothing, and
// audit.log is only missing between two renames, under a.mu. An error means nothing was
// rotated and the current file is still audit.log. a.mu is held.
func (a *Log) rotate() error {
	tmp := a.path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the leftover %s: %w", tmp, err)
	}
	fresh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create a fresh audit log: %w", err)
	}
	abandon := func(err error) error {
		fresh.Close()
		os.Remove(tmp)
		return err
	}
	if err := a.freeFirst(); err != nil {
		return abandon(err)
	}
	if err := a.opts.rename(a.path, a.rotatedPath(1)); err != nil {
		return abandon(fmt.Errorf("rotate the audit log: %w", err))
	}
	if err := a.opts.rename(tmp, a.path); err != nil {
		// Put the current file back, so that its name stays audit.log.
		if back := a.opts.rename(a.rotatedPath(1), a.path); back != nil {
			err = errors.Join(err, fmt.Errorf("and could not rename %s back: %w", a.rotatedPath(1), back))
		}
		return abandon(fmt.Errorf("put the fresh audit log in place: %w", err))
	}
	// The renames are done: from here on the fresh file is audit.log, whatever fails.
	old := a.sink
	a.sink, a.size = fresh, 0
	if err := old.Close(); err != nil {
		a.log.Warn("close the rotated audit log", "file", a.rotatedPath(1), "err", err)
	}
	if err := syncDir(filepath.Dir(a.path)); err != nil {
		// Not undone: the entries are synced, only the new names might not survive a crash.
		a.rotateErrors++
		a.log.Error("audit log rotated, but its directory could not be synced; is the disk failing?", "dir", filepath.Dir(a.path), "err", err)
	}
	return nil
}

// freeFirst makes room for audit.log.1 by shifting the rotated files up to the first gap; with
// no gap, audit.log.<keep> is replaced, and so the oldest goes. A rotation that failed after
// this left audit.log.1 free, so that retrying it does not shift, and drop, again. a.mu is held.
func (a *Log) freeFirst() error {
	free := a.opts.Keep
	for i := 1; i < a.opts.Keep; i++ {
		if _, err := os.Lstat(a.rotatedPath(i)); errors.Is(err, fs.ErrNotExist) {
			free = i
			break
		}
	}
	for i := free - 1; i >= 1; i-- {
		if err := a.opts.rename(a.rotatedPath(i), a.rotatedPath(i+1)); err != nil {
			return fmt.Errorf("shift rotated audit logs: %w", err)
		}
	}
	return nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// RotateFailures returns how many rotations have failed, or could not sync the directory.
func (a *Log) RotateFailures() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rotateErrors
}

// Close closes the file; later entries fail with ErrClosed. It is safe to call twice.
func (a *Log) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.sink == nil {
		a.closed = true
		return nil
	}
	a.closed = true
	return a.sink.Close()
}
