// Package testlog holds the log sinks pirack's tests share: a buffer a logger and a test can
// use at once, and a writer that sends logs to t.Log without panicking when a goroutine logs
// after its test has ended.
package testlog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Buffer is a bytes.Buffer safe for a logger's concurrent writes and a test's reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Writer sends each write to t.Log until the test ends; later writes (a server still closing)
// are dropped instead of panicking the test binary.
type Writer struct {
	t    testing.TB
	done *atomic.Bool
}

// NewWriter returns a Writer for t. Call it before starting what logs: its cleanup must run
// after theirs.
func NewWriter(t testing.TB) Writer {
	w := Writer{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w Writer) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// Tap passes log records on to a handler and sends each record's message to a channel, never
// blocking, so a test can wait for code to have done something with no other visible effect.
type Tap struct {
	slog.Handler
	Msgs chan string
}

func (h Tap) Handle(ctx context.Context, r slog.Record) error {
	select {
	case h.Msgs <- r.Message:
	default:
	}
	return h.Handler.Handle(ctx, r)
}

func (h Tap) WithAttrs(as []slog.Attr) slog.Handler { return Tap{h.Handler.WithAttrs(as), h.Msgs} }

func (h Tap) WithGroup(g string) slog.Handler { return Tap{h.Handler.WithGroup(g), h.Msgs} }
