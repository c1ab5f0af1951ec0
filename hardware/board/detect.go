package board

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pirack/pirack/hardware/header"
)

// Backend names, as --gpio takes them.
const (
	Auto = "auto"
	RPIO = "rpio"
	CDev = "cdev"
	Sim  = "sim"
	None = "none"
)

// Probe is what the machine says about its GPIO, as read by ReadProbe.
type Probe struct {
	// Model is /proc/device-tree/model ("Raspberry Pi 4 Model B Rev 1.4"), "" when absent
	// (x86, or an ARM board booted without a device tree).
	Model string
	// Revision is the Raspberry Pi revision code from the device tree or /proc/cpuinfo; 0 when
	// unknown. It tells the Model B revisions apart.
	Revision uint32
	// GPIOMem says /dev/gpiomem exists: the register window go-rpio maps.
	GPIOMem bool
	// Chips are the GPIO character devices in /dev (gpiochip0, ...), in numeric order.
	Chips []string
}

// ReadProbe reads the probe from the filesystem under root ("/" on a real machine; tests use
// trees in testdata). Missing files leave fields empty: absence is information, not an error.
func ReadProbe(root string) Probe {
	var p Probe
	if b, err := os.ReadFile(filepath.Join(root, "proc/device-tree/model")); err == nil {
		p.Model = parseModel(b)
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/device-tree/system/linux,revision")); err == nil {
		p.Revision, _ = parseDTRevision(b)
	}
	if p.Revision == 0 {
		if b, err := os.ReadFile(filepath.Join(root, "proc/cpuinfo")); err == nil {
			p.Revision, _ = parseCPUInfoRevision(b)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(root, "dev")); err == nil {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		p.GPIOMem, p.Chips = parseDev(names)
	}
	return p
}

// parseModel trims the NUL terminator device-tree strings carry.
func parseModel(b []byte) string {
	return strings.TrimSpace(string(bytes.TrimRight(b, "\x00\n")))
}

// parseDTRevision decodes /proc/device-tree/system/linux,revision: one big-endian 32-bit cell.
func parseDTRevision(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("linux,revision: %d bytes, want 4", len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// parseCPUInfoRevision finds "Revision : 000e" in /proc/cpuinfo (hex).
func parseCPUInfoRevision(b []byte) (uint32, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "Revision" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 32)
		if err != nil {
			return 0, fmt.Errorf("cpuinfo revision %q: %w", strings.TrimSpace(v), err)
		}
		return uint32(n), nil
	}
	return 0, fmt.Errorf("cpuinfo: no Revision line")
}

var chipName = regexp.MustCompile(`^gpiochip[0-9]+$`)

// parseDev picks the GPIO devices out of /dev's names.
func parseDev(names []string) (gpiomem bool, chips []string) {
	for _, n := range names {
		switch {
		case n == "gpiomem":
			gpiomem = true
		case chipName.MatchString(n):
			chips = append(chips, n)
		}
	}
	slices.SortFunc(chips, func(a, b string) int {
		x, _ := strconv.Atoi(strings.TrimPrefix(a, "gpiochip"))
		y, _ := strconv.Atoi(strings.TrimPrefix(b, "gpiochip"))
		return x - y
	})
	return gpiomem, chips
}

// generation returns the Raspberry Pi generation a model string names: 1 for the Model A, B,
// A+, B+, Zero and Compute Module 1; 2, 3, 4, 5 for the numbered boards, their keyboards (400,
// 500) and Compute Modules; 3 for the Zero 2 W (a BCM2710). -1 means not a Raspberry Pi.
func generation(model string) int {
	m, ok := strings.CutPrefix(model, "Raspberry Pi ")
	if !ok {
		return -1
	}
	m = strings.TrimPrefix(m, "Compute Module ")
	if z, ok := strings.CutPrefix(m, "Zero "); ok {
		if strings.HasPrefix(z, "2") {
			return 3
		}
		return 1
	}
	digits := m[:len(m)-len(strings.TrimLeft(m, "0123456789"))]
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 1 // "Model B Rev 2", "Compute Module Rev 1.0", "Zero Rev 1.3"
	}
	for n >= 10 {
		n /= 10 // 400 -> 4, 500 -> 5
	}
	return n
}

// Layout returns the header layout of the board the probe describes: the 26-pin header of the
// Model A and B (revision 1 or 2), else the 40-pin header.
func (p Probe) Layout() header.Layout {
	if p.Revision&(1<<23) != 0 { // new-style code: board type in bits 4-11
		if t := (p.Revision >> 4) & 0xff; t <= 1 { // 0 = A, 1 = B
			return header.Header26Rev2
		}
		return header.Header40
	}
	switch p.Revision & 0xffff { // old style; bit 24 only says the board was over-volted
	case 0x2, 0x3:
		return header.Header26Rev1
	case 0x4, 0x5, 0x6, 0x7, 0x8, 0x9, 0xd, 0xe, 0xf:
		return header.Header26Rev2
	case 0:
		// Unknown revision: fall back on the model string.
		switch {
		case strings.HasPrefix(p.Model, "Raspberry Pi Model B Rev 1"):
			return header.Header26Rev1
		case p.Model == "Raspberry Pi Model A" || p.Model == "Raspberry Pi Model B" ||
			strings.HasPrefix(p.Model, "Raspberry Pi Model A Rev") || strings.HasPrefix(p.Model, "Raspberry Pi Model B Rev"):
			return header.Header26Rev2
		}
	}
	return header.Header40
}

// Choice is the backend Choose picked and why, in words for the log.
type Choice struct {
	Backend string
	Reason  string
}

// Choose picks the GPIO backend for a machine: go-rpio on a Pi 1-4 or Zero with /dev/gpiomem,
// the character device on a Pi 5 (or a Pi 1-4 without /dev/gpiomem), and none on anything
// else, because on a board that is not a Pi the header pin numbers would be guesses.
func Choose(p Probe) Choice {
	gen := generation(p.Model)
	chips := len(p.Chips) > 0
	switch {
	case gen < 0 && p.Model == "" && !chips:
		return Choice{None, "no device-tree model and no /dev/gpiochip*: this machine has no GPIO"}
	case gen < 0 && !chips:
		return Choice{None, fmt.Sprintf("%q has no /dev/gpiochip*: no GPIO to drive", p.Model)}
	case gen < 0:
		return Choice{None, fmt.Sprintf("%s is not a Raspberry Pi, so its pins cannot be numbered safely; "+
			"to drive it anyway, use --gpio=cdev --gpio-chip=%s with line offsets as pins", describe(p.Model), p.Chips[0])}
	case gen >= 5 && chips:
		return Choice{CDev, fmt.Sprintf("%s: its GPIO sit behind the RP1 chip, reachable only through the GPIO character device", p.Model)}
	case gen >= 5:
		return Choice{None, fmt.Sprintf("%s but no /dev/gpiochip*: the kernel is too old or GPIO is disabled", p.Model)}
	case p.GPIOMem:
		return Choice{RPIO, fmt.Sprintf("%s with /dev/gpiomem: memory-mapped GPIO registers", p.Model)}
	case chips:
		return Choice{CDev, fmt.Sprintf("%s without /dev/gpiomem (newer kernels name it /dev/gpiomem0): using the GPIO character device", p.Model)}
	}
	return Choice{None, fmt.Sprintf("%s but neither /dev/gpiomem nor /dev/gpiochip*: GPIO is unavailable (a container without the devices?)", p.Model)}
}

func describe(model string) string {
	if model == "" {
		return "this machine (no device-tree model)"
	}
	return strconv.Quote(model)
}
