package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/pirack/pirack/broker"
)

// The broker limit flags reach the control center's broker config, and are refused with
// --broker, which switches the embedded broker off.
func TestServeBrokerLimitFlags(t *testing.T) {
	parse := func(args ...string) (serveConfig, *flag.FlagSet) {
		var c serveConfig
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c, fs
	}
	c, fs := parse("--mqtt-max-clients=20000", "--mqtt-max-pending-per-source=3", "--mqtt-max-queued=64", "--mqtt-write-timeout=2s",
		"--mqtt-max-sessions=4", "--mqtt-max-sessions-admin=5", "--mqtt-max-subscriptions=6")
	if err := checkBrokerFlags(fs, c); err != nil {
		t.Fatal(err)
	}
	want := broker.Limits{MaxPendingPerSource: 3, MaxWritesPending: 64, WriteTimeout: 2 * time.Second,
		MaxSessionsPerUser: 4, MaxSessionsPerAdmin: 5, MaxSubscriptions: 6}
	if got := c.controlCenter(nil, io.Discard).BrokerLimits; got != want {
		t.Errorf("BrokerLimits %+v, want %+v", got, want)
	}
	if got := c.controlCenter(nil, io.Discard).MaxClients; got != 20000 {
		t.Errorf("MaxClients %d, want 20000", got)
	}
	c, fs = parse("--broker=mqtt://example:1883", "--mqtt-max-sessions=4")
	if err := checkBrokerFlags(fs, c); err == nil {
		t.Error("--mqtt-max-sessions with --broker accepted")
	}
}
