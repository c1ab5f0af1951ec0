// Package hardwaretest provides fakes of the hardware interfaces for tests, in the way
// net/http/httptest serves net/http. They record what was done to them and can be told to fail.
// Nothing here belongs in a production build; the runtime simulator is package sim.
package hardwaretest

import (
	"context"
	"sync"
	"time"

	"github.com/pirack/pirack/hardware"
)

var (
	_ hardware.LED    = (*LED)(nil)
	_ hardware.Button = (*Button)(nil)
)

// Set is one recorded call of LED.Set.
type Set struct {
	On bool
	At time.Time // time.Now() at the call; inside a testing/synctest bubble, the fake clock
}

// LED records every call of Set. The zero value is ready to use.
type LED struct {
	mu   sync.Mutex
	sets []Set
	err  error
}

// Set records the call and returns the error given to Fail, if any.
func (l *LED) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets = append(l.sets, Set{On: on, At: time.Now()})
	return l.err
}

// Fail makes every later Set return err (nil restores success). Calls are still recorded.
func (l *LED) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

// Sets returns a copy of the calls recorded so far.
func (l *LED) Sets() []Set {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Set(nil), l.sets...)
}

// Button is a button whose Run fails with Err at once, or, when Err is nil, delivers the kinds in
// Presses in order and then waits for its context. It is for testing how a consumer copes with a
// fixed script or a broken button; package sim injects presses at any time.
type Button struct {
	Presses []string
	Err     error
}

// Run implements hardware.Button.
func (b *Button) Run(ctx context.Context, press func(kind string)) error {
	if b.Err != nil {
		return b.Err
	}
	for _, k := range b.Presses {
		if ctx.Err() != nil {
			return nil
		}
		press(k)
	}
	<-ctx.Done()
	return nil
}
