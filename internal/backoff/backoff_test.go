package backoff

import (
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	b := New(30 * time.Second)
	want := Backoff{ConnectRetry: time.Second, MaxBackoff: 20 * time.Second, BaseJitter: 2 * time.Second, MaxJitter: 10 * time.Second}
	if b != want {
		t.Errorf("New(30s) = %+v, want %+v", b, want)
	}
	if b := New(300 * time.Millisecond); b.ConnectRetry != 200*time.Millisecond {
		t.Errorf("New(300ms).ConnectRetry = %v, want the backoff cap 200ms", b.ConnectRetry)
	}
}

func TestJitterWindow(t *testing.T) {
	b := New(30 * time.Second)
	for _, tc := range []struct {
		name      string
		reconnect bool
		attempt   int
		want      time.Duration
	}{
		{"first attempt", false, 0, 0},
		{"first retry", false, 1, 2 * time.Second},
		{"second retry", false, 2, 4 * time.Second},
		{"first reconnect", true, 0, 2 * time.Second},
		{"capped", true, 3, 10 * time.Second},
		{"large attempt", true, 1000, 10 * time.Second},
	} {
		if got := b.JitterWindow(tc.reconnect, tc.attempt); got != tc.want {
			t.Errorf("%s: JitterWindow(%v, %d) = %v, want %v", tc.name, tc.reconnect, tc.attempt, got, tc.want)
		}
	}
}

func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"no failure", 0, 0},
		{"first", 1, 10 * time.Second},
		{"second", 2, 20 * time.Second},
		{"fourth", 4, 80 * time.Second},
		{"capped", 10, 10 * time.Minute},
		{"huge", 1 << 30, 10 * time.Minute},
	} {
		if got := Delay(10*time.Second, 10*time.Minute, tc.failures); got != tc.want {
			t.Errorf("%s: Delay(10s, 10m, %d) = %v, want %v", tc.name, tc.failures, got, tc.want)
		}
	}
}
