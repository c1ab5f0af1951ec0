package proctest

import (
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func spec(log *Log, ready string) Spec {
	return Spec{Name: "sh", Out: io.Discard, Log: log, InUse: "port taken", Timeout: 5 * time.Second,
		Ready: func(l string) bool { return strings.Contains(l, ready) }}
}

func TestStartReadyLogAndStop(t *testing.T) {
	var log Log
	p, err := Start(exec.Command("sh", "-c", "echo starting; echo ready; sleep 60 & wait"), spec(&log, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	if !log.Wait("starting", time.Second) || !strings.Contains(log.String(), "ready") {
		t.Errorf("log = %q", log.String())
	}
	p.Stop() // the group: sh and its sleep
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the program exited")
	}
	p.Stop() // again: nothing
}

func TestStartTellsPortInUse(t *testing.T) {
	var log Log
	if _, err := Start(exec.Command("sh", "-c", "echo port taken; exit 1"), spec(&log, "ready")); !errors.Is(err, ErrPortInUse) {
		t.Errorf("err = %v, want ErrPortInUse", err)
	}
	if _, err := Start(exec.Command("sh", "-c", "echo broken; exit 1"), spec(&log, "ready")); err == nil || errors.Is(err, ErrPortInUse) {
		t.Errorf("err = %v, want an exit error", err)
	}
}

func TestStartTimesOut(t *testing.T) {
	var log Log
	s := spec(&log, "never")
	s.Timeout = 200 * time.Millisecond
	if _, err := Start(exec.Command("sh", "-c", "sleep 60"), s); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("err = %v, want not ready", err)
	}
	if log.Wait("anything", 50*time.Millisecond) {
		t.Error("Wait found a line never logged")
	}
}
