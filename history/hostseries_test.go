package history

import (
	"errors"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// A Pi's host figures are stored as series of their own, per device, with the same tiers: each
// core, sensor, interface, disk, filesystem and container, and the scalars; a rate absent from
// a first sample is no point. They move to a replacement board with the rest. Names outside
// the known metrics are refused.
func TestHostSeriesStored(t *testing.T) {
	clock := &fakeClock{now: t0}
	s := openStore(t, "", clock, true, nil)
	m := hostPi()
	m.V, m.TS = topics.Version, t0
	m.Net[1].RxBytesPerS = nil // wlan0's first sample: no rate yet
	m.Containers = []topics.Container{{ID: "4f66ad9a0b2e", Name: "grafana", State: "running", CPUPercent: f64(7.5), MemBytes: u64(120 << 20)}}
	s.Add(mac, m)
	flush(t, s)
	for _, c := range []struct {
		metric string
		want   float64
	}{
		{MetricCPUFreq, 2400},
		{MetricMemCached, 2 << 30},
		{MetricSwapTotal, 200 << 20},
		{PerDevice(MetricCoreCPU, "3"), 12},
		{PerDevice(MetricTemp, "nvme Composite"), 39},
		{PerDevice(MetricNetRx, "eth0"), 1500},
		{PerDevice(MetricDiskBusy, "nvme0n1"), 1},
		{PerDevice(MetricFSUsed, "/mnt/ssd"), 100 << 30},
		{PerDevice(MetricFSFree, "/boot/firmware"), 450 << 20},
		{PerDevice(MetricContainerCPU, "grafana"), 7.5},
		{PerDevice(MetricContainerMem, "grafana"), 120 << 20},
	} {
		pts, err := s.Series(t.Context(), mac, c.metric, t0.Add(-time.Minute), t0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 1 || pts[0].Avg != c.want {
			t.Errorf("%s = %v, want one point of %v", c.metric, pts, c.want)
		}
	}
	if pts, err := s.Series(t.Context(), mac, PerDevice(MetricNetRx, "wlan0"), t0.Add(-time.Minute), t0, 10); err != nil || len(pts) != 0 {
		t.Errorf("wlan0's absent rate: %v %v, want no point", pts, err)
	}
	for _, bad := range []string{"net_rx_bytes_per_s@", "net_rx_bytes_per_s", "bogus@eth0", "temp_c@a\nb", PerDevice(MetricTemp, string(make([]byte, 300)))} {
		if _, err := s.Series(t.Context(), mac, bad, t0, t0, 1); !errors.Is(err, ErrUnknownMetric) {
			t.Errorf("%q: %v, want ErrUnknownMetric", bad, err)
		}
	}
	const next = "b827eb3f1a2d"
	if err := s.Move(t.Context(), mac, next); err != nil {
		t.Fatal(err)
	}
	if pts, err := s.Series(t.Context(), next, PerDevice(MetricTemp, "cpu-thermal"), t0.Add(-time.Minute), t0, 10); err != nil || len(pts) != 1 {
		t.Errorf("after Move: %v %v, want the old board's point", pts, err)
	}
}
