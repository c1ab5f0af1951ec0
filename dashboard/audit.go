package dashboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// AuditFile is the name of the audit log in Config.AuditDir.
const AuditFile = "audit.log"

// Audit actions and outcomes.
const (
	AuditLogin  = "login"
	AuditLogout = "logout"
	AuditBlink  = "blink" // an LED command
	AuditClear  = "clear" // a selection cleared

	AuditAllowed = "allowed" // authorised; recorded before the action is carried out
	AuditDenied  = "denied"  // refused: bad credentials, rate limit, or a role without the right
	AuditFailed  = "failed"  // allowed, then failed (the broker refused the command)
)

// AuditEntry is one line of the audit log: who did what, when, and from where.
type AuditEntry struct {
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

// errAuditClosed is returned by auditLog.record after Close.
var errAuditClosed = errors.New("audit log is closed")

// auditSink is what the audit log writes to: an *os.File, or a failing fake in tests.
type auditSink interface {
	io.WriteCloser
	Sync() error
	Truncate(size int64) error
}

var _ auditSink = (*os.File)(nil)

// auditLog writes every entry as a structured log line and, with a directory, appends it as a
// JSON line to <dir>/audit.log, synced before record returns: an entry that is not on disk is
// reported as an error, so that the action is not carried out unaudited.
type auditLog struct {
	log  *slog.Logger
	path string // "" means log lines only

	mu     sync.Mutex
	sink   auditSink
	size   int64 // bytes of whole entries in the file
	closed bool
}

// openAudit opens (creating it 0600, and its directory 0700) the audit log in dir. An existing
// file readable by others is refused: it names who did what, from where.
func openAudit(dir string, log *slog.Logger) (*auditLog, error) {
	a := &auditLog{log: log}
	if dir == "" {
		return a, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit directory: %w", err)
	}
	a.path = filepath.Join(dir, AuditFile)
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

// newAuditID returns a random request id for AuditEntry.ID.
func newAuditID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// record writes e. It returns an error when the entry could not be made durable; the caller
// must then not carry out the action.
func (a *auditLog) record(e AuditEntry) error {
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
		slog.String("user", clipLog(e.User)), slog.String("role", e.Role), slog.String("via", e.Via),
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

func (a *auditLog) append(line []byte) error {
	if a.path == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errAuditClosed
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

// tail returns the last n entries, oldest first. Lines that do not decode (an entry cut by a
// crash) are skipped.
func (a *auditLog) tail(n int) ([]AuditEntry, error) {
	a.mu.Lock()
	size, closed := a.size, a.closed
	a.mu.Unlock()
	if closed {
		return nil, errAuditClosed
	}
	f, err := os.Open(a.path)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	lines, err := lastLines(f, size, n)
	if err != nil {
		return nil, fmt.Errorf("read audit log %s: %w", a.path, err)
	}
	out := make([]AuditEntry, 0, len(lines))
	for _, l := range lines {
		var e AuditEntry
		if json.Unmarshal(l, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
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

// Close closes the file; later entries fail with errAuditClosed. It is safe to call twice.
func (a *auditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.sink == nil {
		a.closed = true
		return nil
	}
	a.closed = true
	return a.sink.Close()
}
