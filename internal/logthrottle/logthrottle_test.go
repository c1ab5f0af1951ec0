package logthrottle

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(time.Minute)
	t0 := time.Unix(0, 0)
	if ok, _ := l.Allow("a", t0); !ok {
		t.Fatal("first message held back")
	}
	for i := range 5 {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatal("repeat let through within the period")
		}
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Error("other key held back")
	}
	if ok, n := l.Allow("a", t0.Add(time.Minute)); !ok || n != 5 {
		t.Errorf("after the period: %v with %d suppressed, want true with 5", ok, n)
	}
	l.Forget("a")
	if ok, _ := l.Allow("a", t0.Add(time.Minute+time.Second)); !ok {
		t.Error("a forgotten key held back")
	}
}

func TestKeysBounded(t *testing.T) {
	l := New(time.Hour)
	t0 := time.Unix(0, 0)
	for i := range 3 * maxKeys {
		l.Allow(strconv.Itoa(i), t0)
	}
	if n := len(l.seen); n > maxKeys {
		t.Errorf("%d keys kept, want at most %d", n, maxKeys)
	}
}
