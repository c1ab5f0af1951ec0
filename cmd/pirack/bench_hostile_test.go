package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchHostileSmall runs every hostile scenario for a second or two, the SIGKILL loop on
// this test binary as `pirack serve`, and checks the summary's invariants, so that the
// benchmark cannot rot unnoticed: nothing lost or duplicated, every legitimate connect in,
// slow viewers cut off while the reading one got its messages, sessions and filters capped.
func TestBenchHostileSmall(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hostileServe.argv, hostileServe.env = []string{exe, "serve"}, []string{runMainEnv + "=1"}
	t.Cleanup(func() { hostileServe.argv, hostileServe.env = nil, nil })

	// --retain=false: under -race, Mochi's unlocked read of retained messages at a wildcard
	// SUBSCRIBE (mochi-mqtt/server#200) is reported when a slow viewer reconnects while
	// retained metrics arrive.
	var out, errs bytes.Buffer
	err = run(t.Context(), []string{"bench", "hostile",
		"--slow-viewers", "2", "--publishers", "4", "--publish-rate", "200", "--payload", "16000", "--slow-for", "3s", "--write-timeout", "500ms", "--retain=false",
		"--flood-rate", "100", "--legit-agents", "5", "--flood-for", "1s",
		"--sessions", "20", "--filters", "110",
		"--kills", "2", "--press-agents", "4", "--up-min", "400ms", "--up-max", "600ms"}, &out, &errs)
	t.Log(out.String())
	if err != nil {
		t.Fatalf("bench hostile: %v\n%s", err, errs.String())
	}
	nums := func(re string) []int {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("summary lacks %q", re)
		}
		var n []int
		for _, s := range m[1:] {
			v, _ := strconv.Atoi(s)
			n = append(n, v)
		}
		return n
	}
	if n := nums(`(\d+) presses acknowledged: (\d+) lost, (\d+) duplicated`); n[0] == 0 || n[1] != 0 || n[2] != 0 {
		t.Errorf("SIGKILL loop: %d acknowledged, %d lost, %d duplicated; want some, 0, 0", n[0], n[1], n[2])
	}
	if n := nums(`legitimate connects: (\d+) succeeded, (\d+) failed`); n[0] == 0 || n[1] != 0 {
		t.Errorf("flood: %d legitimate connects succeeded, %d failed; want all in", n[0], n[1])
	}
	if n := nums(`(\d+) cut off as slow, \d+ messages dropped at full queues; reading viewer got (\d+) of (\d+)`); n[0] == 0 || n[1]*100 < n[2]*95 {
		t.Errorf("slow consumers: %d cut off, reading viewer got %d of %d; want some cut off and 95%% received", n[0], n[1], n[2])
	}
	// Concurrent CONNECTs may pass the count together: at most 16 over the cap from one address.
	if n := nums(`sessions (\d+) accepted, (\d+) refused; filters (\d+) granted, (\d+) refused`); n[0] == 0 || n[0] > 32 || n[1] == 0 || n[3] == 0 {
		t.Errorf("session flood: sessions %d accepted, %d refused, filters %d granted, %d refused; want capped", n[0], n[1], n[2], n[3])
	}
}
