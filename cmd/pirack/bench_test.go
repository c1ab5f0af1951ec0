package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchSoakSmall runs the soak briefly, without broker restarts: with restarts and LED
// commands queued across them, agents hit the broker's inflight packet-id bug (see
// docs/reliability.md) and the soak reports presses lost.
func TestBenchSoakSmall(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(t.Context(), []string{"bench", "soak", "--agents", "5", "--duration", "1500ms", "--press-every", "100ms",
		"--command-every", "100ms", "--interval", "200ms", "--max-reconnect-delay", "300ms", "--wait", "15s"}, &out, &errs)
	t.Log(out.String())
	if err != nil {
		t.Fatalf("bench soak: %v\n%s", err, errs.String())
	}
	for _, want := range []string{"0 lost", "latency:", "commands:", "memory:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestBenchReconnectSmall(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(t.Context(), []string{"bench", "reconnect", "--agents", "10", "--restarts", "1", "--max-reconnect-delay", "300ms", "--wait", "15s"}, &out, &errs)
	t.Log(out.String())
	if err != nil {
		t.Fatalf("bench reconnect: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "restart 1: all back after") {
		t.Errorf("report lacks the restart line")
	}
}

func TestBenchRejectsUnknown(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(t.Context(), []string{"bench", "nope"}, &out, &errs); err == nil {
		t.Error("unknown benchmark accepted")
	}
}
