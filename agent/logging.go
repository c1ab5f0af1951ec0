package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is how often a repeating problem is logged again. A Pi without a temperature sensor
// should not log the same warning every 5 s for months.
const logEvery = 10 * time.Minute

// limiter lets a message with a given key through once per period, counting what it held back.
type limiter struct {
	every time.Duration
	mu    sync.Mutex
	seen  map[string]*limited
}

type limited struct {
	last       time.Time
	suppressed int
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, seen: make(map[string]*limited)}
}

// allow reports whether the message keyed key may be logged at now, and how many were held
// back since it was last let through.
func (l *limiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.seen[key]
	if !ok {
		if len(l.seen) > 1000 { // keys include error texts: bound the memory they can take
			clear(l.seen)
		}
		l.seen[key] = &limited{last: now}
		return true, 0
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// forget lets the next message keyed key through at once.
func (l *limiter) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, key)
}

// logLimited logs at most once per logEvery for the same key.
func (a *agent) logLimited(key string, level slog.Level, msg string, args ...any) {
	ok, suppressed := a.limit.allow(key, a.cfg.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	a.log.Log(context.Background(), level, msg, args...)
}
