// Package pihealth reads a Raspberry Pi's firmware health and identity: the throttling and
// under-voltage flags, and the board model and serial from the device tree. Files are read
// through an injectable root, and parsed by pure functions tested on real boards' formats.
package pihealth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pirack/pirack/topics"
)

// ErrNotAPi is returned (wrapped) when the firmware files do not exist: not a Raspberry Pi, or a
// kernel without the firmware driver. Callers leave the values out rather than report zeros.
var ErrNotAPi = errors.New("no Raspberry Pi firmware interface")

// Paths of the files read, relative to Reader.Root.
const (
	modelPath  = "proc/device-tree/model"
	serialPath = "proc/device-tree/serial-number"
)

// throttledGlobs find the firmware's get_throttled file: its directory is named after the SoC's
// bus address on newer kernels (soc@107c000000 on a Pi 5).
var throttledGlobs = []string{
	"sys/devices/platform/soc/soc:firmware/get_throttled",
	"sys/devices/platform/soc*/soc*:firmware/get_throttled",
}

// Reader reads health files under Root. The zero value reads the live system ("/").
type Reader struct {
	Root string
}

func (r Reader) path(rel string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, rel)
}

// Throttled returns the throttling flags active now and those seen since boot.
func (r Reader) Throttled() (now, sinceBoot []string, err error) {
	for _, g := range throttledGlobs {
		matches, _ := filepath.Glob(r.path(g))
		if len(matches) == 0 {
			continue
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			return nil, nil, fmt.Errorf("read throttling flags: %w", err)
		}
		bits, err := ParseThrottled(b)
		if err != nil {
			return nil, nil, fmt.Errorf("read throttling flags from %s: %w", matches[0], err)
		}
		now, sinceBoot = Flags(bits)
		return now, sinceBoot, nil
	}
	return nil, nil, fmt.Errorf("read throttling flags: %w (no get_throttled under %s)", ErrNotAPi, r.path("sys/devices/platform"))
}

// Board returns the model and serial number from the device tree. A missing serial is "".
func (r Reader) Board() (model, serial string, err error) {
	b, err := os.ReadFile(r.path(modelPath))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read board model: %w (no %s)", ErrNotAPi, modelPath)
	}
	if err != nil {
		return "", "", fmt.Errorf("read board model: %w", err)
	}
	model = ParseDeviceTreeString(b)
	if b, err := os.ReadFile(r.path(serialPath)); err == nil {
		serial = ParseDeviceTreeString(b)
	}
	return model, serial, nil
}

// ParseThrottled parses the firmware's throttling bitmask, as the kernel's get_throttled file
// prints it ("50005") or as `vcgencmd get_throttled` does ("throttled=0x50005").
func ParseThrottled(b []byte) (uint32, error) {
	s := strings.TrimSpace(string(b))
	s = strings.TrimPrefix(s, "throttled=")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("throttling bitmask %q is not hex such as 0x50005", clip(string(b)))
	}
	return uint32(v), nil
}

// Bits of the firmware's throttling mask: the low nibble is "now", bits 16-19 "since boot".
var flagBits = []struct {
	bit  uint
	flag string
}{
	{0, topics.ThrottleUnderVoltage},
	{1, topics.ThrottleFreqCapped},
	{2, topics.ThrottleThrottled},
	{3, topics.ThrottleSoftTempLimit},
}

// Flags decodes the bitmask into the contract's flag names. Both lists are non-nil: an empty
// list means "read, and clear".
func Flags(bits uint32) (now, sinceBoot []string) {
	now, sinceBoot = []string{}, []string{}
	for _, f := range flagBits {
		if bits&(1<<f.bit) != 0 {
			now = append(now, f.flag)
		}
		if bits&(1<<(f.bit+16)) != 0 {
			sinceBoot = append(sinceBoot, f.flag)
		}
	}
	return now, sinceBoot
}

// ParseDeviceTreeString trims a device-tree string property: NUL-terminated, sometimes with
// trailing whitespace.
func ParseDeviceTreeString(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
