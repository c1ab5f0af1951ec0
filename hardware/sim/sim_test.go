package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestLEDTransitionsCountOffToOn(t *testing.T) {
	var l LED
	for _, on := range []bool{true, true, false, false, true, false} {
		l.Set(on)
	}
	if got := l.Transitions(); got != 2 {
		t.Errorf("Transitions() = %d, want 2", got)
	}
	if l.On() {
		t.Error("On() = true after Set(false)")
	}
}

func TestLEDSlowWatcherNeverBlocks(t *testing.T) {
	var l LED
	changes, stop := l.Watch()
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 * WatchBuffer {
			l.Set(i%2 == 0)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Set blocked on a watcher that does not read")
	}
	if n := len(changes); n != WatchBuffer {
		t.Errorf("watcher holds %d changes, want the first %d", n, WatchBuffer)
	}
	if got := <-changes; got != true {
		t.Errorf("first change = %v, want true", got)
	}
}

func TestLEDWatchStopClosesAndIsIdempotent(t *testing.T) {
	var l LED
	changes, stop := l.Watch()
	other, stopOther := l.Watch()
	defer stopOther()
	stop()
	stop()
	l.Set(true)
	if _, ok := <-changes; ok {
		t.Error("stopped watcher received a change")
	}
	if got := <-other; !got {
		t.Error("remaining watcher did not get the change")
	}
}

func TestLEDConcurrentUse(t *testing.T) {
	var l LED
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ch, stop := l.Watch()
			defer stop()
			for j := range 100 {
				l.Set((i+j)%2 == 0)
				_ = l.On()
				select {
				case <-ch:
				default:
				}
			}
		})
	}
	wg.Wait()
}

func TestButtonPressBounded(t *testing.T) {
	var b Button
	for i := range PressBuffer {
		if !b.Press(topics.PressShort) {
			t.Fatalf("press %d dropped with room in the buffer", i)
		}
	}
	if b.Press(topics.PressLong) {
		t.Error("Press on a full buffer reported success; it must drop")
	}

	ctx, cancel := context.WithCancel(t.Context())
	got := 0
	err := b.Run(ctx, func(kind string) {
		if kind != topics.PressShort {
			t.Errorf("kind = %q, want %q", kind, topics.PressShort)
		}
		if got++; got == PressBuffer {
			cancel()
		}
	})
	if err != nil || got != PressBuffer {
		t.Errorf("Run = %v after %d presses, want nil after %d", err, got, PressBuffer)
	}
}
