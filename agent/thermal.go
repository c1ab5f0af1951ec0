package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// thermalZone is one /sys/class/thermal/thermal_zone* directory, as read from disk.
type thermalZone struct {
	name string // thermal_zone0
	typ  string // contents of type, such as "cpu-thermal"
	temp string // contents of temp, in millidegrees Celsius
	err  error  // reading temp failed (some zones fail with EIO or ENODATA)
}

// readThermalZones reads every thermal zone under sysRoot. No zones at all is not an error: a
// board without a sensor simply has no temperature to report.
func readThermalZones(sysRoot string) ([]thermalZone, error) {
	dirs, err := filepath.Glob(filepath.Join(sysRoot, "class", "thermal", "thermal_zone*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dirs)
	var zones []thermalZone
	for _, d := range dirs {
		z := thermalZone{name: filepath.Base(d)}
		if b, err := os.ReadFile(filepath.Join(d, "type")); err == nil {
			z.typ = string(b)
		}
		b, err := os.ReadFile(filepath.Join(d, "temp"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		z.temp, z.err = string(b), err
		zones = append(zones, z)
	}
	return zones, nil
}

// cpuZoneTypes are the thermal zone types that measure the CPU or the SoC it is part of: the
// Raspberry Pi's, other ARM boards' and x86's.
var cpuZoneTypes = []string{"cpu-thermal", "cpu_thermal", "soc-thermal", "soc_thermal", "x86_pkg_temp", "cpu"}

// parseCPUTemp picks the CPU's zone (by type, else the first zone) and returns its temperature
// in °C; ok is false when there are no zones.
func parseCPUTemp(zones []thermalZone) (c float64, ok bool, err error) {
	if len(zones) == 0 {
		return 0, false, nil
	}
	pick := zones[0]
find:
	for _, want := range cpuZoneTypes {
		for _, z := range zones {
			if strings.TrimSpace(z.typ) == want {
				pick = z
				break find
			}
		}
	}
	if pick.err != nil {
		return 0, false, fmt.Errorf("%s: %w", pick.name, pick.err)
	}
	milli, err := strconv.ParseInt(strings.TrimSpace(pick.temp), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: temp %q is not a number of millidegrees", pick.name, strings.TrimSpace(pick.temp))
	}
	c = float64(milli) / 1000
	if c < -60 || c > 200 {
		return 0, false, fmt.Errorf("%s: %.1f °C is not a plausible temperature", pick.name, c)
	}
	return c, true, nil
}
