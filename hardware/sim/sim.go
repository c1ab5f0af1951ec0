// Package sim is a simulated Pi board: an LED whose state can be watched and a button whose
// presses are injected. It is a real hardware backend, used at runtime by `pirack demo` and by
// end-to-end tests, not a test fake; it is safe for concurrent use and its zero values work.
package sim

import (
	"context"
	"sync"

	"github.com/pirack/pirack/hardware"
)

var (
	_ hardware.LED    = (*LED)(nil)
	_ hardware.Button = (*Button)(nil)
)

// WatchBuffer is how many state changes a watcher's channel holds. A watcher that falls further
// behind misses changes rather than slowing the LED down.
const WatchBuffer = 64

// LED is a simulated LED. The zero value is an LED that is off.
type LED struct {
	mu          sync.Mutex
	on          bool
	transitions uint64
	watchers    map[int]chan bool
	nextWatch   int
}

// Set switches the LED. It never blocks: watchers that are not keeping up miss changes.
func (l *LED) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on == l.on {
		return nil
	}
	l.on = on
	if on {
		l.transitions++
	}
	for _, w := range l.watchers {
		select {
		case w <- on:
		default:
		}
	}
	return nil
}

// On reports whether the LED is lit.
func (l *LED) On() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on
}

// Transitions counts how many times the LED went from off to on: a blink of n flashes adds n.
func (l *LED) Transitions() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.transitions
}

// Watch returns a channel that receives the LED's new state on every change, and a function that
// stops the watch and closes the channel. The channel holds WatchBuffer changes; a watcher that
// falls behind misses changes. The stop function may be called more than once.
func (l *LED) Watch() (<-chan bool, func()) {
	ch := make(chan bool, WatchBuffer)
	l.mu.Lock()
	if l.watchers == nil {
		l.watchers = make(map[int]chan bool)
	}
	id := l.nextWatch
	l.nextWatch++
	l.watchers[id] = ch
	l.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.watchers, id)
			l.mu.Unlock()
			close(ch) // safe: sends happen only under l.mu and ch is no longer registered
		})
	}
}

// PressBuffer is how many injected presses a Button holds before Press starts dropping them.
const PressBuffer = 16

// Button is a simulated push button. The zero value is ready to use.
type Button struct {
	once    sync.Once
	presses chan string
}

func (b *Button) init() { b.once.Do(func() { b.presses = make(chan string, PressBuffer) }) }

// Press injects a press of the given kind (topics.PressShort, PressLong or PressDouble; the
// kind is passed through unchecked, as a miswired real button could). It never blocks: it
// reports false, dropping the press, when PressBuffer presses are already waiting for Run.
func (b *Button) Press(kind string) bool {
	b.init()
	select {
	case b.presses <- kind:
		return true
	default:
		return false
	}
}

// Run delivers injected presses to press until ctx is done, then returns nil.
func (b *Button) Run(ctx context.Context, press func(kind string)) error {
	b.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case kind := <-b.presses:
			press(kind)
		}
	}
}
