// Package logthrottle keeps a repeating log line from flooding the journal: a line with a
// given key is let through once per period, and the next one says how many were held back.
package logthrottle

import (
	"sync"
	"time"
)

// maxKeys bounds the memory keys can take (they may include error texts or addresses chosen
// by a client): past it, keys quiet for a period are forgotten, and if that is not enough (a
// flood from more sources than that), every key is.
const maxKeys = 4096

// Limiter lets a message with a given key through once per period, counting what it held
// back. The zero value is not usable; make one with New. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	mu    sync.Mutex
	seen  map[string]*limited
}

type limited struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter that lets each key through once per every.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, seen: make(map[string]*limited)}
}

// Allow reports whether the message keyed key may be logged at now, and how many were held
// back since it was last let through.
func (l *Limiter) Allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.seen[key]
	if !ok {
		if len(l.seen) >= maxKeys {
			for k, e := range l.seen {
				if now.Sub(e.last) >= l.every {
					delete(l.seen, k)
				}
			}
			if len(l.seen) >= maxKeys {
				clear(l.seen)
			}
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

// Forget lets the next message keyed key through at once.
func (l *Limiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, key)
}
