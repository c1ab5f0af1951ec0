package hoststat

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fixture writes files (path relative to the root: "proc/stat", "sys/class/...") into a fresh
// root and returns it.
func fixture(t *testing.T, files map[string]string) Root {
	t.Helper()
	dir := t.TempDir()
	for rel, body := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if body == "<dir>" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Root{Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys")}
}

// A Pi 4's /proc/stat: busy is all but idle and iowait, per core and in total.
func TestCPU(t *testing.T) {
	r := fixture(t, map[string]string{"proc/stat": `cpu  100 0 50 800 50 0 0 0 0 0
cpu0 25 0 25 150 0 0 0 0 0 0
cpu1 75 0 25 650 50 0 0 0 0 0
intr 123
ctxt 456
`})
	all, cores, err := r.CPU()
	if err != nil {
		t.Fatal(err)
	}
	if all != (CPUTimes{Busy: 150, Total: 1000}) || !reflect.DeepEqual(cores, []CPUTimes{{50, 200}, {100, 800}}) {
		t.Fatalf("all %+v cores %+v", all, cores)
	}
	if p, ok := (CPUTimes{Busy: 250, Total: 1200}).Percent(all); !ok || p != 50 {
		t.Errorf("Percent = %v, %v; want 50", p, ok)
	}
	if _, ok := all.Percent(all); ok {
		t.Error("no time passed, yet a percent")
	}
	if _, _, err := ParseStat([]byte("intr 1\n")); err == nil {
		t.Error("a /proc/stat without cpu lines was accepted")
	}
}

// free's columns from /proc/meminfo: used = total - available; cache = Cached + SReclaimable.
func TestMemory(t *testing.T) {
	for _, c := range []struct {
		name, meminfo string
		want          Memory
	}{
		{"Pi 5", `MemTotal:        8245760 kB
MemFree:         6000000 kB
MemAvailable:    7000000 kB
Buffers:           50000 kB
Cached:           900000 kB
SwapCached:            0 kB
SReclaimable:     100000 kB
SwapTotal:        204796 kB
SwapFree:         200000 kB
`, Memory{Total: 8245760 * 1024, Available: 7000000 * 1024, Used: 1245760 * 1024, Free: 6000000 * 1024, Buffers: 50000 * 1024,
			Cache: 1000000 * 1024, SwapTotal: 204796 * 1024, SwapUsed: 4796 * 1024}},
		{"old kernel without MemAvailable", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n",
			Memory{Total: 1000 * 1024, Available: 310 * 1024, Used: 690 * 1024, Free: 100 * 1024, Buffers: 10 * 1024, Cache: 200 * 1024}},
	} {
		r := fixture(t, map[string]string{"proc/meminfo": c.meminfo})
		m, err := r.Memory()
		if err != nil || m != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, m, err, c.want)
		}
	}
	if _, err := ParseMeminfo([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("no MemTotal, no error")
	}
}

func TestNet(t *testing.T) {
	r := fixture(t, map[string]string{"proc/net/dev": `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0
  eth0: 123456 789 1 2 0 0 0 5 65432 321 3 4 0 0 0 0
 wlan0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`})
	got, err := r.Net()
	if err != nil {
		t.Fatal(err)
	}
	want := []NetCounters{
		{Name: "eth0", RxBytes: 123456, RxPackets: 789, RxErrors: 1, RxDrop: 2, TxBytes: 65432, TxPackets: 321, TxErrors: 3, TxDrop: 4},
		{Name: "wlan0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// Whole devices only: the SD card and an NVMe drive, not their partitions, loop or zram.
func TestDisks(t *testing.T) {
	r := fixture(t, map[string]string{
		"proc/diskstats": `   7       0 loop0 10 0 20 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 179       0 mmcblk0 4000 100 300000 900 2000 50 160000 700 0 1500 1600 0 0 0 0 0 0
 179       2 mmcblk0p2 3900 100 299000 890 2000 50 160000 700 0 1490 1590 0 0 0 0 0 0
 259       0 nvme0n1 10 0 80 1 0 0 0 0 0 2 2 0 0 0 0
 254       0 zram0 5 0 40 0 0 0 0 0 0 0 0
`,
		"sys/block/loop0": "<dir>", "sys/block/mmcblk0": "<dir>", "sys/block/nvme0n1": "<dir>", "sys/block/zram0": "<dir>",
	})
	got, err := r.Disks()
	if err != nil {
		t.Fatal(err)
	}
	want := []DiskCounters{
		{Name: "mmcblk0", Reads: 4000, ReadSectors: 300000, Writes: 2000, WriteSectors: 160000, IOTick: 1500},
		{Name: "nvme0n1", Reads: 10, ReadSectors: 80, IOTick: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// Real filesystems once each, escapes undone; no tmpfs, overlay, squashfs, proc.
func TestMounts(t *testing.T) {
	r := fixture(t, map[string]string{"proc/self/mounts": `/dev/mmcblk0p2 / ext4 rw,noatime 0 0
devtmpfs /dev devtmpfs rw 0 0
proc /proc proc rw 0 0
/dev/mmcblk0p1 /boot/firmware vfat rw 0 0
tmpfs /run tmpfs rw 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
/dev/loop0 /snap/core/1 squashfs ro 0 0
/dev/sda1 /mnt/usb\040ssd ext4 rw 0 0
/dev/sda1 /srv/bind ext4 rw 0 0
/dev/nvme0n1p1 /data btrfs rw 0 0
`})
	got, err := r.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{"/", "/dev/mmcblk0p2", "ext4"}, {"/boot/firmware", "/dev/mmcblk0p1", "vfat"}, {"/mnt/usb ssd", "/dev/sda1", "ext4"}, {"/data", "/dev/nvme0n1p1", "btrfs"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// Every sensor: the Pi's thermal zone (and not its hwmon twin), an NVMe drive's labelled
// inputs, the RP1's ADC; one that cannot be read is skipped. A limit is temp*_max, else
// temp*_crit, and none when the drive reports 0xffff kelvin (no limit set), as real NVMe
// drives do for their extra sensors. A second drive's sensors of the same name are told apart.
func TestTemps(t *testing.T) {
	r := fixture(t, map[string]string{
		"sys/class/thermal/thermal_zone0/type":  "cpu-thermal\n",
		"sys/class/thermal/thermal_zone0/temp":  "51250\n",
		"sys/class/hwmon/hwmon0/name":           "cpu_thermal\n",
		"sys/class/hwmon/hwmon0/temp1_input":    "51250\n",
		"sys/class/hwmon/hwmon1/name":           "nvme\n",
		"sys/class/hwmon/hwmon1/temp1_input":    "38850\n",
		"sys/class/hwmon/hwmon1/temp1_label":    "Composite\n",
		"sys/class/hwmon/hwmon1/temp1_max":      "82850\n",
		"sys/class/hwmon/hwmon1/temp1_crit":     "84850\n",
		"sys/class/hwmon/hwmon1/temp2_max":      "65261850\n",
		"sys/class/hwmon/hwmon1/temp2_input":    "41850\n",
		"sys/class/hwmon/hwmon1/temp2_label":    "Sensor 1\n",
		"sys/class/hwmon/hwmon2/name":           "rp1_adc\n",
		"sys/class/hwmon/hwmon2/temp1_input":    "55000\n",
		"sys/class/hwmon/hwmon2/temp1_crit":     "85000\n",
		"sys/class/hwmon/hwmon4/name":           "nvme\n", // a second drive
		"sys/class/hwmon/hwmon4/temp1_input":    "36000\n",
		"sys/class/hwmon/hwmon4/temp1_label":    "Composite\n",
		"sys/class/hwmon/hwmon3/name":           "drivetemp\n",
		"sys/class/hwmon/hwmon3/temp1_input":    "", // asleep
		"sys/devices/system/cpu/cpu0/cpufreq/x": "",
	})
	got, err := r.Temps()
	if err != nil {
		t.Fatal(err)
	}
	want := []Temp{{"cpu-thermal", 51.25, 0}, {"nvme Composite", 38.85, 82.85}, {"nvme Sensor 1", 41.85, 0}, {"rp1_adc", 55, 85}, {"nvme Composite #2", 36, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestCPUFreqAndProcs(t *testing.T) {
	r := fixture(t, map[string]string{
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1800000\n",
		"proc/1/stat": "", "proc/42/stat": "", "proc/self/x": "", "proc/net/dev": "",
	})
	if mhz, ok, err := r.CPUFreqMHz(); err != nil || !ok || mhz != 1800 {
		t.Errorf("CPUFreqMHz = %v, %v, %v", mhz, ok, err)
	}
	if n, err := r.Procs(); err != nil || n != 2 {
		t.Errorf("Procs = %d, %v; want 2", n, err)
	}
	if _, ok, err := fixture(t, map[string]string{"sys/x": ""}).CPUFreqMHz(); ok || err != nil {
		t.Errorf("no cpufreq: ok %v err %v, want neither", ok, err)
	}
}
