package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/topics"
)

// A data drive's troubles raise alerts as the SD card's do: a real agent reads an NVMe drive
// at its own warning temperature (hwmon temp1_max, in a fixture /sys) and the control center
// raises sensor_hot on MQTT with the drive's figures; a Pi whose USB SSD fills up raises
// disk_full naming the mount, and clears it when space is freed.
func TestDriveAlerts(t *testing.T) {
	t.Parallel()
	r := newRig(t, withAlerts(t, `{"disk_full": {"for": "0s"}, "sensor_hot": {"for": "0s"}}`))
	alerts := r.watchAlerts(t)

	sys := t.TempDir()
	for name, content := range map[string]string{
		"class/thermal/thermal_zone0/type": "cpu-thermal\n",
		"class/thermal/thermal_zone0/temp": "48000\n",
		"class/hwmon/hwmon1/name":          "nvme\n",
		"class/hwmon/hwmon1/temp1_label":   "Composite\n",
		"class/hwmon/hwmon1/temp1_input":   "84250\n",
		"class/hwmon/hwmon1/temp1_max":     "82850\n",
		"class/hwmon/hwmon1/temp1_crit":    "84850\n",
	} {
		path := filepath.Join(sys, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const hot = "b827eb00a1e1"
	r.startPi(t, hot, "r1", r.mqttAddr, func(c *agent.Config) { c.Collector = &agent.HostCollector{SysRoot: sys} })
	al := alerts.await(t, hot, "sensor_hot", topics.AlertRaised)
	if al.Value == nil || *al.Value != 84.25 || al.Threshold == nil || *al.Threshold != 82.85 || al.Unit != topics.UnitCelsius ||
		!strings.HasPrefix(al.Message, "nvme Composite at 84.2 °C, at or over its limit of 82.85 °C") {
		t.Errorf("sensor_hot raised as %+v, want the drive's 84.25 °C against its 82.85 °C", al)
	}

	// A Pi with a USB SSD, published as any agent does: the SSD fills, then is emptied.
	const full = "b827eb00a1e2"
	st, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: time.Now(), Session: "s", Hostname: "pi-ssd"})
	r.publish(t, bus.Message{Topic: topics.StatusTopic("r1", full), Payload: st, QoS: 1, Retained: true})
	send := func(seq uint64, ssdUsedPercent uint64) {
		t.Helper()
		total := uint64(500_000_000_000)
		used := total / 100 * ssdUsedPercent
		m, err := topics.Encode(topics.Metrics{V: 1, Seq: seq, TS: time.Now(), Filesystems: []topics.Filesystem{
			{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: 32 << 30, UsedBytes: 8 << 30, FreeBytes: 22 << 30},
			{Mount: "/mnt/ssd", Device: "/dev/sda1", Type: "ext4", TotalBytes: total, UsedBytes: used, FreeBytes: total - used},
		}})
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, bus.Message{Topic: topics.MetricsTopic("r1", full), Payload: m, QoS: 1})
	}
	send(1, 40)
	send(2, 96)
	al = alerts.await(t, full, "disk_full", topics.AlertRaised)
	if al.Value == nil || *al.Value != 96 || !strings.HasPrefix(al.Message, "disk /mnt/ssd 96.0 % used (18.6 GiB free)") {
		t.Errorf("disk_full raised as %+v, want /mnt/ssd at 96 %%", al)
	}
	send(3, 60)
	if al := alerts.await(t, full, "disk_full", topics.AlertCleared); !strings.Contains(al.Message, "/mnt/ssd 60.0 % used") {
		t.Errorf("disk_full cleared as %+v", al)
	}
}
