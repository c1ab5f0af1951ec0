package loadtest

import (
	"bytes"
	"testing"
)

func TestParseStatus(t *testing.T) {
	const status = "Name:\tpirack\nVmPeak:\t 1265000 kB\nVmHWM:\t   48120 kB\nVmRSS:\t   30004 kB\nThreads:\t9\n"
	got, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procMem{RSS: 30004 << 10, Peak: 48120 << 10}); got != want {
		t.Errorf("parseStatus = %+v, want %+v", got, want)
	}
	for name, bad := range map[string]string{
		"missing": "Name:\tpirack\nVmRSS:\t 1 kB\n",
		"unit":    "VmHWM:\t1 MB\nVmRSS:\t1 kB\n",
		"number":  "VmHWM:\tx kB\nVmRSS:\t1 kB\n",
	} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("%s: parseStatus(%q) accepted", name, bad)
		}
	}
}

// TestPacketLength: the remaining length takes 1 to 3 bytes at its boundaries, and
// readPacket reads back what packet framed.
func TestPacketLength(t *testing.T) {
	for _, tc := range []struct {
		n      int
		header int
	}{{0, 2}, {127, 2}, {128, 3}, {16383, 3}, {16384, 4}} {
		body := bytes.Repeat([]byte{7}, tc.n)
		p := packet(0x30, body)
		if got := len(p) - tc.n; got != tc.header {
			t.Errorf("%d-byte body: header of %d bytes, want %d", tc.n, got, tc.header)
		}
		typ, got, err := readPacket(bytes.NewReader(p))
		if err != nil || typ != 3 || !bytes.Equal(got, body) {
			t.Errorf("%d-byte body read back as type %d, %d bytes, %v", tc.n, typ, len(got), err)
		}
	}
}

func TestMetricsPadding(t *testing.T) {
	for _, size := range []int{400, 12 << 10, 16 << 10} {
		pad, err := metricsPadding(size)
		if err != nil {
			t.Fatalf("%d: %v", size, err)
		}
		if p, _ := metricsPayload(99999, pad); len(p) != size {
			t.Errorf("%d: payload of %d bytes", size, len(p))
		}
	}
	if _, err := metricsPadding(10); err == nil {
		t.Error("a 10-byte metrics payload accepted")
	}
}
