package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// procMem is a process's resident memory, from /proc/<pid>/status.
type procMem struct {
	RSS  uint64 // VmRSS, bytes
	Peak uint64 // VmHWM, bytes: the highest RSS since start, or since resetPeakRSS
}

// parseStatus reads VmRSS and VmHWM out of the text of /proc/<pid>/status.
func parseStatus(b []byte) (procMem, error) {
	var m procMem
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return m, fmt.Errorf("%s: unexpected %q", name, rest)
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", name, err)
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("no VmRSS and VmHWM lines")
	}
	return m, nil
}

// readProcMem reads /proc/<pid>/status; pid "self" is this process.
func readProcMem(pid string) (procMem, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procMem{}, fmt.Errorf("read memory of process %s (needs Linux /proc): %w", pid, err)
	}
	return parseStatus(b)
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0 and later), so that a scenario's
// peak is its own and not an earlier one's.
func resetPeakRSS(pid string) error {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0)
}

// memPeak follows a process's memory while a scenario runs: its peak RSS, and for this
// process (in-process control centers) its peak heap in use.
type memPeak struct {
	pid      string // "self" or a pid
	heap     bool   // sample this process's heap too
	resetOK  bool   // VmHWM was reset at start, so it is this scenario's peak
	baseHeap uint64
	baseRSS  uint64

	mu       sync.Mutex
	peakHeap uint64
	peakRSS  uint64
}

// startMemPeak takes the baseline (after a GC, and returning freed memory to the system, when
// this process is measured), and samples every interval until ctx is done; wait returns once
// the sampler stopped.
func startMemPeak(ctx context.Context, pid string, every time.Duration) (m *memPeak, wait func()) {
	m = &memPeak{pid: pid, heap: pid == "self"}
	if m.heap {
		debug.FreeOSMemory()
		m.baseHeap = heapInuse()
		m.peakHeap = m.baseHeap
	}
	// A subprocess started for the scenario: its own VmHWM is the scenario's peak.
	m.resetOK = !m.heap || resetPeakRSS(pid) == nil
	if pm, err := readProcMem(pid); err == nil {
		m.baseRSS, m.peakRSS = pm.RSS, pm.RSS
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return m, wg.Wait
}

func (m *memPeak) sample() {
	var h uint64
	if m.heap {
		h = heapInuse()
	}
	pm, err := readProcMem(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peakHeap = max(m.peakHeap, h)
	if err == nil {
		m.peakRSS = max(m.peakRSS, pm.RSS)
		if m.resetOK {
			m.peakRSS = max(m.peakRSS, pm.Peak)
		}
	}
}

// peaks returns the peak heap in use and the peak RSS seen so far.
func (m *memPeak) peaks() (heap, rss uint64) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peakHeap, m.peakRSS
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// processCPU is the user and system CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
