package powersensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"periph.io/x/conn/v3/i2c"

	"github.com/pirack/pirack/topics"
)

// Why not periph.io/x/devices/v3/ina219: it reads an INA219 correctly (5.100 V, 3 A and
// 15.297 W from the registers of 3.0 A at 5.10 V through 0.1 Ω, like this driver), but
//   - its read errors are fixed strings that drop the I2C error ("failed to read shunt
//     voltage"), and its ADC overflow error reads like them, so a loose wire cannot be told
//     from an over-current;
//   - it cannot notice that the chip lost its calibration (a dip in the sensor's 3.3 V resets
//     it to zero), after which it reports 0 A and 0 W as good readings;
//   - periph has no INA226 driver, and the INA226 has the same registers: one driver, written
//     here over i2c.Dev, serves both chips with the same checks.

// Registers common to both chips; the INA226 adds the id registers.
const (
	regConfig      = 0x00
	regShunt       = 0x01
	regBus         = 0x02
	regPower       = 0x03
	regCurrent     = 0x04
	regCalibration = 0x05
	regMfrID       = 0xfe // INA226 only
	regDieID       = 0xff // INA226 only
)

// INA226 identity: Texas Instruments ("TI"), die 0x226 (the low 4 bits are the revision).
const (
	ina226MfrID = 0x5449
	ina226DieID = 0x2260
)

// chip holds what differs between the INA219 and the INA226.
type chip struct {
	config         uint16  // written at open (the INA219's input range is then chosen: inputRange)
	shuntLSB       float64 // volts per shunt register count
	shuntMaxRaw    int16   // the shunt register's limit on the widest range: the ADC clips there
	shuntFullScale float64 // volts across the shunt at shuntMaxRaw
	busLSB         float64 // volts per bus register count
	busMask        uint16  // the bus register's value bits
	busShift       uint    // the value starts at this bit
	busOverflow    bool    // bit 0 of the bus register is the math overflow flag (INA219)
	calNumerator   float64 // calibration = calNumerator / (current LSB × shunt ohms)
	calMax         uint16
	calMask        uint16  // bits the chip stores; the others read back as 0
	powerFactor    float64 // power LSB = powerFactor × current LSB
}

var chips = map[string]chip{
	// 16 V bus range, ±320 mV shunt range (narrowed by inputRange), 128-sample averaging of
	// both (68 ms each), continuous conversion: 0x1FFF.
	INA219: {
		config: 0x1fff, shuntLSB: 10e-6, shuntMaxRaw: 32000, shuntFullScale: 0.32,
		busLSB: 4e-3, busMask: 0xfff8, busShift: 3, busOverflow: true,
		calNumerator: 0.04096, calMax: 0xfffe, calMask: 0xfffe, powerFactor: 20,
	},
	// Averages of 64 samples, 1.1 ms conversions of bus and shunt (141 ms per reading),
	// continuous conversion: 0x4727 (bit 14 is reserved and reads 1).
	INA226: {
		config: 0x4727, shuntLSB: 2.5e-6, shuntMaxRaw: 32767, shuntFullScale: 0.08192,
		busLSB: 1.25e-3, busMask: 0x7fff, busShift: 0,
		calNumerator: 0.00512, calMax: 0x7fff, calMask: 0x7fff, powerFactor: 25,
	},
}

// inputRange picks the INA219's shunt input range (its PGA: ±40, 80, 160 or 320 mV) for the
// largest expected shunt voltage. Its 12-bit ADC spans the range chosen, so the narrowest that
// fits gives the finest steps: 20 µV instead of 80 µV for 6 A through 0.01 Ω. It returns the
// configuration with the range's PG bits and the shunt register's limit for that range.
func inputRange(config uint16, maxShuntVolts float64) (uint16, int16) {
	pg := 0
	for pg < 3 && maxShuntVolts > 0.04*float64(int(1)<<pg)*(1+1e-9) {
		pg++
	}
	return config&^(0b11<<11) | uint16(pg)<<11, int16(4000 << pg)
}

// backwardsVolts is how far below zero the shunt voltage may read before the current counts as
// flowing backwards: the chips' offset is up to about 100 µV, so no current can read slightly
// negative.
const backwardsVolts = 100e-6

// Errors of New, Open and Read, returned wrapped in one that names the sensor.
var (
	// ErrWrongChip: the chip at the address does not answer as the one the Spec names.
	ErrWrongChip = errors.New("not the chip the power sensor spec names")
	// ErrOverRange: the current is beyond what the sensor can measure as set up (the shunt
	// voltage at the chip's limit, or the current above MaxAmps); Read skips the reading.
	ErrOverRange = errors.New("current beyond the measuring range")
	// ErrClosed: Read after Close.
	ErrClosed = errors.New("power sensor closed")
)

// Sensor is an open INA219 or INA226. It is safe for concurrent use.
type Sensor struct {
	spec   Spec // defaults applied
	chip   chip
	config uint16  // configuration written
	limit  int16   // the shunt register's limit with that configuration
	cal    uint16  // calibration written, as the chip reads it back
	lsb    float64 // amperes per current register count, from cal
	closer io.Closer

	mu     sync.Mutex
	dev    i2c.Dev
	closed bool
}

// New configures and calibrates the sensor spec describes on bus, and checks that it answers
// as that chip: an INA226 by its id registers, an INA219 (which has none) by holding the
// configuration written to it. Closing the Sensor does not close bus.
func New(bus i2c.Bus, spec Spec) (*Sensor, error) {
	if spec.Chip == "" {
		return nil, fmt.Errorf("power sensor: no chip given; want %s", form)
	}
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("power sensor %s: %w", spec.Chip, err)
	}
	c := chips[spec.Chip]
	nominalLSB := spec.MaxAmps / 32768
	// The 1e-9 absorbs float error in calibrations that come out whole (2048 for an INA226 at
	// full scale), which would otherwise truncate one count low.
	cal := uint16(min(math.Floor(c.calNumerator/(nominalLSB*spec.ShuntOhms)+1e-9), float64(c.calMax))) & c.calMask
	config, limit := c.config, c.shuntMaxRaw
	if spec.Chip == INA219 {
		config, limit = inputRange(config, spec.MaxAmps*spec.ShuntOhms)
	}
	s := &Sensor{
		spec:   spec,
		chip:   c,
		config: config,
		limit:  limit,
		cal:    cal,
		// From the calibration actually written, not the nominal LSB: no rounding error.
		lsb: c.calNumerator / (float64(cal) * spec.ShuntOhms),
		dev: i2c.Dev{Bus: bus, Addr: spec.Addr},
	}
	if spec.Chip == INA226 {
		mfr, err := s.read(regMfrID, "manufacturer id")
		if err != nil {
			return nil, err
		}
		die, err := s.read(regDieID, "die id")
		if err != nil {
			return nil, err
		}
		if mfr != ina226MfrID || die>>4 != ina226DieID>>4 {
			return nil, fmt.Errorf("%s: %w: it reads manufacturer id %#04x and die id %#04x where an INA226 has %#04x and %#04x. An INA219 has no id registers: if the breakout says INA219, use the spec %s:bus=%d,addr=%#02x",
				s, ErrWrongChip, mfr, die, ina226MfrID, ina226DieID, INA219, spec.Bus, spec.Addr)
		}
	}
	if err := s.configure(); err != nil {
		return nil, err
	}
	configRead, err := s.read(regConfig, "configuration")
	if err != nil {
		return nil, err
	}
	calRead, err := s.read(regCalibration, "calibration")
	if err != nil {
		return nil, err
	}
	if configRead != s.config || calRead != s.cal {
		return nil, fmt.Errorf("%s: %w: it does not keep its settings like an %s (wrote configuration %#04x and calibration %#04x, read back %#04x and %#04x); check the chip's marking and the address",
			s, ErrWrongChip, spec.Chip, s.config, s.cal, configRead, calRead)
	}
	return s, nil
}

// Read takes one reading: bus voltage, current and power, with V and Source set and TS left
// for the publisher to set. It fails on an I2C error, when the current is beyond the range
// the sensor was set up for, when it flows backwards through the shunt, and once after the
// chip lost its calibration (which Read then restores).
func (s *Sensor) Read() (topics.Power, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return topics.Power{}, ErrClosed
	}
	cal, err := s.read(regCalibration, "calibration")
	if err != nil {
		return topics.Power{}, err
	}
	if cal != s.cal {
		// A reset (power-on, or a dip in the sensor's supply) zeroes the calibration, and the
		// chip then reports 0 A as if nothing drew current.
		if err := s.configure(); err != nil {
			return topics.Power{}, err
		}
		return topics.Power{}, fmt.Errorf("%s had lost its calibration (read %#04x, want %#04x): was it reset by a dip in its 3.3 V supply? Restored it; readings resume at the next interval", s, cal, s.cal)
	}
	var raw [4]uint16
	for i, r := range []struct {
		reg  byte
		what string
	}{{regShunt, "shunt voltage"}, {regBus, "bus voltage"}, {regCurrent, "current"}, {regPower, "power"}} {
		if raw[i], err = s.read(r.reg, r.what); err != nil {
			return topics.Power{}, err
		}
	}
	return s.convert(raw[0], raw[1], raw[2], raw[3])
}

// convert turns the register values into a reading, rejecting out-of-range ones.
func (s *Sensor) convert(shuntRaw, busRaw, currentRaw, powerRaw uint16) (topics.Power, error) {
	c, spec := s.chip, s.spec
	shunt := int16(shuntRaw)
	shuntVolts := float64(shunt) * c.shuntLSB
	if shunt >= s.limit || shunt <= -s.limit || (c.busOverflow && busRaw&1 != 0) ||
		shuntVolts/spec.ShuntOhms > spec.MaxAmps*1.001 {
		return topics.Power{}, fmt.Errorf("%s: %w: more than max-amps=%g (%.1f mV across the %g Ω shunt); use a smaller shunt, or a larger max-amps if the shunt allows it (see docs/hardware.md)",
			s, ErrOverRange, round(spec.MaxAmps, 4), shuntVolts*1000, spec.ShuntOhms)
	}
	if shuntVolts < -backwardsVolts {
		return topics.Power{}, fmt.Errorf("%s: the current flows backwards through the shunt (%.1f mV): swap the wires on VIN+ and VIN-; VIN+ goes to the supply's +", s, shuntVolts*1000)
	}
	volts := float64((busRaw&c.busMask)>>c.busShift) * c.busLSB
	amps := float64(int16(currentRaw)) * s.lsb
	watts := float64(powerRaw) * s.lsb * c.powerFactor
	if amps < 0 { // offset noise around 0 A
		amps, watts = 0, 0
	}
	return topics.Power{
		V:      topics.Version,
		Volts:  ptr(round(volts, 3)),
		Amps:   ptr(round(amps, 4)),
		Watts:  ptr(round(watts, 3)),
		Source: spec.Chip,
	}, nil
}

// Close stops using the sensor and closes the bus if Open opened it. It may be called more
// than once.
func (s *Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// Spec is the sensor's spec, with the defaults filled in.
func (s *Sensor) Spec() Spec { return s.spec }

// String names the sensor for logs and errors: "ina219 at 0x40 on /dev/i2c-1".
func (s *Sensor) String() string {
	return fmt.Sprintf("%s at %#02x on /dev/i2c-%d", s.spec.Chip, s.spec.Addr, s.spec.Bus)
}

// configure writes the configuration and the calibration.
func (s *Sensor) configure() error {
	if err := s.write(regConfig, s.config, "configuration"); err != nil {
		return err
	}
	return s.write(regCalibration, s.cal, "calibration")
}

// read reads a 16-bit register (both chips are big-endian).
func (s *Sensor) read(reg byte, what string) (uint16, error) {
	var b [2]byte
	if err := s.dev.Tx([]byte{reg}, b[:]); err != nil {
		return 0, s.busError("read the "+what, err)
	}
	return binary.BigEndian.Uint16(b[:]), nil
}

func (s *Sensor) write(reg byte, v uint16, what string) error {
	if err := s.dev.Tx([]byte{reg, byte(v >> 8), byte(v)}, nil); err != nil {
		return s.busError("write the "+what, err)
	}
	return nil
}

// busError says which chip failed and what to check. "remote I/O error" means that nothing
// acknowledged the address.
func (s *Sensor) busError(what string, err error) error {
	return fmt.Errorf("%s: %s: %w; check the sensor's wiring and 3.3 V supply, and that `i2cdetect -y %d` shows it at %02x",
		s, what, err, s.spec.Bus, s.spec.Addr)
}

func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

func ptr[T any](v T) *T { return &v }
