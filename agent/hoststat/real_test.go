package hoststat

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/shirou/gopsutil/v4/disk"
	gnet "github.com/shirou/gopsutil/v4/net"
)

// within reports whether a and b differ by at most tol: the machine keeps running between two
// reads.
func within(a, b, tol uint64) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= tol
}

// On this machine, the readers agree with the tools: free's columns, df's sizes, and the
// interface and disk counters as gopsutil (another parser of the same files) reads them.
func TestAgreesWithTheTools(t *testing.T) {
	var r Root // the live /proc and /sys

	out, err := exec.Command("free", "-b").Output()
	if err != nil {
		t.Fatalf("free -b: %v (procps is part of every Debian)", err)
	}
	m, err := r.Memory()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		num := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		const tol = 256 << 20 // other tests run alongside
		switch {
		case len(f) == 7 && f[0] == "Mem:":
			if num(1) != m.Total || !within(num(2), m.Used, tol) || !within(num(5), m.Cache+m.Buffers, tol) || !within(num(6), m.Available, tol) {
				t.Errorf("free says total %d used %d buff/cache %d available %d; read %+v", num(1), num(2), num(5), num(6), m)
			}
		case len(f) == 4 && f[0] == "Swap:":
			if num(1) != m.SwapTotal || !within(num(2), m.SwapUsed, tol) {
				t.Errorf("free says swap %d used %d; read %+v", num(1), num(2), m)
			}
		}
	}

	out, err = exec.Command("df", "-B1", "--output=target,size,used,avail").Output()
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	df := map[string][3]uint64{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		var v [3]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		df[f[0]] = v
	}
	mounts, err := r.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Fatal("no real filesystem found, not even the root")
	}
	for _, mt := range mounts {
		total, used, free, err := Usage(mt.Point)
		if err != nil {
			t.Errorf("%s: %v", mt.Point, err)
			continue
		}
		want, ok := df[mt.Point]
		if !ok {
			t.Errorf("%s (%s %s) is not in df's list", mt.Point, mt.Device, mt.Type)
			continue
		}
		if total != want[0] || !within(used, want[1], 64<<20) || !within(free, want[2], 64<<20) {
			t.Errorf("%s: read size %d used %d avail %d, df says %v", mt.Point, total, used, free, want)
		}
	}

	nets, err := r.Net()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := gnet.IOCountersWithContext(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]gnet.IOCountersStat{}
	for _, c := range theirs {
		byName[c.Name] = c
	}
	for _, n := range nets {
		c, ok := byName[n.Name]
		if !ok || !within(n.RxBytes, c.BytesRecv, 1<<20) || !within(n.TxPackets, c.PacketsSent, 1<<12) || n.RxDrop != c.Dropin || n.TxErrors != c.Errout {
			t.Errorf("%s: read %+v, /proc/net/dev through gopsutil %+v", n.Name, n, c)
		}
	}
	disks, err := r.Disks()
	if err != nil {
		t.Fatal(err)
	}
	dtheirs, err := disk.IOCountersWithContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		c, ok := dtheirs[d.Name]
		if !ok || !within(d.Reads, c.ReadCount, 1<<10) || !within(d.WriteSectors*SectorBytes, c.WriteBytes, 64<<20) {
			t.Errorf("%s: read %+v, /proc/diskstats through gopsutil %+v", d.Name, d, c)
		}
	}
}
