// Package powersensor reads a rack row's supply through an INA219 or INA226 current sensor on
// an I2C bus, for the agent of the Pi that has the row's sensor wired. A sensor is described by
// a Spec, written on the command line as "ina219:bus=1,addr=0x40,shunt-ohms=0.1"; Open opens
// /dev/i2c-<bus> (the only file importing periph.io's host drivers), and New drives a sensor on
// any periph i2c.Bus, such as the i2ctest doubles. Readings come as topics.Power payloads.
//
// Both chips share one register layout (configuration, shunt voltage, bus voltage, power,
// current, calibration), so one small driver serves both; see sensor.go for why periph's own
// ina219 driver is not used.
package powersensor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Chips a Spec may name.
const (
	INA219 = "ina219"
	INA226 = "ina226"
)

// Defaults Parse fills in for keys the spec leaves out: the first I2C bus of the Pi's header
// (pins 3 and 5), both address jumpers open, and the 0.1 Ω shunt most breakouts carry.
const (
	DefaultBus       = 1
	DefaultAddr      = 0x40
	DefaultShuntOhms = 0.1
)

// form is the accepted syntax, quoted by every parse error.
const form = "ina219 or ina226, optionally followed by :bus=1,addr=0x40,shunt-ohms=0.1,max-amps=3.2 (any of these keys, comma separated), or none"

// Spec says which sensor to read and how it is wired.
type Spec struct {
	// Chip is INA219 or INA226; "" means no sensor (Parse returns it for "" and "none").
	Chip string
	// Bus is the I2C bus number: the sensor is on /dev/i2c-<Bus>. The zero value is bus 0,
	// a real bus (the HAT EEPROM's on a Pi); Parse fills in DefaultBus when the key is absent.
	Bus int
	// Addr is the sensor's 7-bit address, 0x40 to 0x4F depending on its A0/A1 jumpers. 0 means
	// DefaultAddr.
	Addr uint16
	// ShuntOhms is the shunt resistor's value in ohms. 0 means DefaultShuntOhms.
	ShuntOhms float64
	// MaxAmps is the largest current expected; the current register's step is MaxAmps/32768,
	// and on an INA219 it picks the narrowest input range (±40, 80, 160 or 320 mV) that holds
	// MaxAmps × ShuntOhms, for finer readings. 0 means the most the chip can measure across
	// the shunt: 0.32 V / ShuntOhms on an INA219 (3.2 A with 0.1 Ω), 0.08192 V / ShuntOhms on
	// an INA226 (0.82 A with 0.1 Ω).
	MaxAmps float64
}

// Parse reads a sensor spec such as "ina219:bus=1,addr=0x40,shunt-ohms=0.1". Keys may come in
// any order; absent ones get their defaults (MaxAmps stays 0, meaning the shunt's full scale).
// "" and "none" give the zero Spec: no sensor. The address is read as Go reads integers, so
// write it in hex as i2cdetect prints it: "addr=0x41".
func Parse(spec string) (Spec, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.EqualFold(spec, "none") {
		return Spec{}, nil
	}
	chip, params, hasParams := strings.Cut(spec, ":")
	s := Spec{Chip: strings.ToLower(strings.TrimSpace(chip)), Bus: DefaultBus}
	if s.Chip != INA219 && s.Chip != INA226 {
		return Spec{}, fmt.Errorf("power sensor %q: unknown chip %q; want %s", spec, chip, form)
	}
	seen := map[string]bool{}
	if hasParams && strings.TrimSpace(params) != "" {
		for kv := range strings.SplitSeq(params, ",") {
			key, val, ok := strings.Cut(kv, "=")
			key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
			if !ok || key == "" || val == "" {
				return Spec{}, fmt.Errorf("power sensor %q: %q is not key=value; want %s", spec, kv, form)
			}
			if seen[key] {
				return Spec{}, fmt.Errorf("power sensor %q: key %q given twice", spec, key)
			}
			seen[key] = true
			if err := s.set(key, val); err != nil {
				return Spec{}, fmt.Errorf("power sensor %q: %w", spec, err)
			}
		}
	}
	if _, err := s.withDefaults(); err != nil {
		return Spec{}, fmt.Errorf("power sensor %q: %w", spec, err)
	}
	return s, nil
}

// set parses one key of a spec.
func (s *Spec) set(key, val string) error {
	switch key {
	case "bus":
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("bus %q: want the number N of /dev/i2c-N, such as bus=1", val)
		}
		s.Bus = int(n)
	case "addr":
		n, err := strconv.ParseUint(val, 0, 16)
		if err != nil {
			return fmt.Errorf("addr %q: want a hex address such as addr=0x40", val)
		}
		if n < 0x40 || n > 0x4f {
			return fmt.Errorf("addr %s (%#02x) is not 0x40 to 0x4f, the addresses of an INA219 or INA226; write it in hex as i2cdetect shows it, such as addr=0x40", val, n)
		}
		s.Addr = uint16(n)
	case "shunt-ohms":
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("shunt-ohms %q: want the shunt's resistance in ohms, such as shunt-ohms=0.1", val)
		}
		s.ShuntOhms = v
	case "max-amps":
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("max-amps %q: want the largest expected current in amperes, such as max-amps=3.2", val)
		}
		s.MaxAmps = v
	default:
		return fmt.Errorf("unknown key %q; want %s", key, form)
	}
	return nil
}

// String is the spec in the form Parse reads, with the defaults spelled out.
func (s Spec) String() string {
	if s.Chip == "" {
		return "none"
	}
	d, err := s.withDefaults()
	if err != nil {
		d = s
	}
	out := fmt.Sprintf("%s:bus=%d,addr=%#02x,shunt-ohms=%s", d.Chip, d.Bus, d.Addr, strconv.FormatFloat(d.ShuntOhms, 'g', -1, 64))
	if s.MaxAmps != 0 {
		out += ",max-amps=" + strconv.FormatFloat(s.MaxAmps, 'g', -1, 64)
	}
	return out
}

// withDefaults fills in the zero fields and checks that the chip can be calibrated for the
// shunt and the current: the one place defaults are applied.
func (s Spec) withDefaults() (Spec, error) {
	c, ok := chips[s.Chip]
	if !ok {
		return s, fmt.Errorf("unknown chip %q; want %s or %s", s.Chip, INA219, INA226)
	}
	if s.Bus < 0 {
		return s, fmt.Errorf("bus %d: want the number N of /dev/i2c-N", s.Bus)
	}
	if s.Addr == 0 {
		s.Addr = DefaultAddr
	}
	if s.Addr < 0x40 || s.Addr > 0x4f {
		return s, fmt.Errorf("addr %#02x is not 0x40 to 0x4f, the addresses of an INA219 or INA226", s.Addr)
	}
	if s.ShuntOhms == 0 {
		s.ShuntOhms = DefaultShuntOhms
	}
	if !(s.ShuntOhms > 0) || s.ShuntOhms > 100 {
		return s, fmt.Errorf("shunt-ohms %g: want the shunt's resistance, such as 0.1", s.ShuntOhms)
	}
	fullScale := c.shuntFullScale / s.ShuntOhms
	if s.MaxAmps == 0 {
		s.MaxAmps = fullScale
	}
	if !(s.MaxAmps > 0) || s.MaxAmps > fullScale*(1+1e-9) {
		return s, fmt.Errorf("max-amps %g: an %s measures at most %g A through a %g Ω shunt (%g mV across it); use a smaller shunt for more current (see docs/hardware.md)",
			s.MaxAmps, s.Chip, round(fullScale, 4), s.ShuntOhms, c.shuntFullScale*1000)
	}
	// The finer the current's resolution, the larger the calibration value; it has 15 bits.
	if minAmps := c.calNumerator * 32768 / (float64(c.calMax) * s.ShuntOhms); s.MaxAmps < minAmps {
		return s, fmt.Errorf("max-amps %g: too small for an %s with a %g Ω shunt, which calibrates down to %.3g A; leave max-amps out or use a larger shunt",
			s.MaxAmps, s.Chip, s.ShuntOhms, minAmps)
	}
	return s, nil
}
