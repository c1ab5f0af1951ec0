package powersensor

import (
	"errors"
	"math"
	"strings"
	"syscall"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/pirack/pirack/topics"
)

// The register traffic of the two chips, as their datasheets (TI SBOS448 for the INA219,
// SBOS547 for the INA226) describe it. Every 16-bit register is sent big-endian.

func w(reg byte, v ...byte) i2ctest.IO { return i2ctest.IO{Addr: 0x40, W: append([]byte{reg}, v...)} }
func r(reg byte, v uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x40, W: []byte{reg}, R: []byte{byte(v >> 8), byte(v)}}
}
func wr(reg byte, v uint16) i2ctest.IO         { return w(reg, byte(v>>8), byte(v)) }
func at(addr uint16, io i2ctest.IO) i2ctest.IO { io.Addr = addr; return io }

// openINA219 is what New does to an INA219 on its ±320 mV range: configure, calibrate, read
// both back.
func openINA219(cal uint16) []i2ctest.IO { return openINA219Range(0x1fff, cal) }

func openINA219Range(config, cal uint16) []i2ctest.IO {
	return []i2ctest.IO{wr(0x00, config), wr(0x05, cal), r(0x00, config), r(0x05, cal)}
}

// openINA226 is what New does to an INA226: check the ids, then as for the INA219.
func openINA226(cal uint16) []i2ctest.IO {
	return []i2ctest.IO{r(0xfe, 0x5449), r(0xff, 0x2260), wr(0x00, 0x4727), wr(0x05, cal), r(0x00, 0x4727), r(0x05, cal)}
}

// reading is what Read asks: the calibration (to catch a reset), then shunt, bus, current, power.
func reading(cal, shunt, bus, current, power uint16) []i2ctest.IO {
	return []i2ctest.IO{r(0x05, cal), r(0x01, shunt), r(0x02, bus), r(0x04, current), r(0x03, power)}
}

// chipRegisters models a chip measuring volts and amps through a shunt of ohms, calibrated
// with cal: the register values the datasheets' equations give.
func chipRegisters(name string, cal uint16, volts, amps, ohms float64) (shunt, bus, current, power uint16) {
	switch name {
	case INA219:
		s := int16(math.Round(amps * ohms / 10e-6)) // 10 µV per count
		b := uint16(math.Round(volts / 4e-3))       // 4 mV per count, in bits 15-3
		c := int16(int32(s) * int32(cal) / 4096)    // equation 4
		p := uint16(int32(c) * int32(b) / 5000)     // equation 5
		return uint16(s), b<<3 | 0b10, uint16(c), p // 0b10: conversion ready
	default:
		s := int16(math.Round(amps * ohms / 2.5e-6)) // 2.5 µV per count
		b := uint16(math.Round(volts / 1.25e-3))     // 1.25 mV per count
		c := int16(int32(s) * int32(cal) / 2048)     // equation 3
		p := uint16(int32(c) * int32(b) / 20000)     // equation 4
		return uint16(s), b, uint16(c), p
	}
}

// The model reproduces the registers worked out by hand from the datasheets, so the tests
// built on it rest on the datasheets, not on the driver.
func TestChipModel(t *testing.T) {
	// INA219, 0.1 Ω, 3.2 A full scale: current LSB 3.2/32768 = 97.66 µA, calibration
	// trunc(0.04096 / (97.66e-6 × 0.1)) = 4194. 3.0 A makes 300 mV = 30000 counts; 5.10 V is
	// 1275 counts; current 30000 × 4194 / 4096 = 30717; power 30717 × 1275 / 5000 = 7832.
	if s, b, c, p := chipRegisters(INA219, 4194, 5.10, 3.0, 0.1); s != 30000 || b != 1275<<3|2 || c != 30717 || p != 7832 {
		t.Errorf("INA219 model = %d %#x %d %d", s, b, c, p)
	}
	// INA226, 0.02 Ω, 4.096 A full scale: current LSB 125 µA, calibration 0.00512 / (125e-6 ×
	// 0.02) = 2048. 3.0 A makes 60 mV = 24000 counts; 5.10 V is 4080 counts; current 24000;
	// power 24000 × 4080 / 20000 = 4896.
	if s, b, c, p := chipRegisters(INA226, 2048, 5.10, 3.0, 0.02); s != 24000 || b != 4080 || c != 24000 || p != 4896 {
		t.Errorf("INA226 model = %d %d %d %d", s, b, c, p)
	}
}

func TestReadings(t *testing.T) {
	tests := []struct {
		name         string
		spec         Spec
		config, cal  uint16 // what New must write; config 0 for the chip's usual one
		volts, amps  float64
		wantAmpsPrec float64 // the resolution the setup gives
	}{
		// The example: a row of 8 Pis, 5.10 V, 3.0 A through the breakout's 0.1 Ω.
		{"ina219 0.1 Ω row of 8", Spec{Chip: INA219, Bus: 1}, 0, 4194, 5.10, 3.0, 0.0002},
		{"ina219 idle row", Spec{Chip: INA219, Bus: 1}, 0, 4194, 5.18, 0.45, 0.0002},
		{"ina219 no load", Spec{Chip: INA219, Bus: 1}, 0, 4194, 5.20, 0, 0},
		// 16 Pis through 0.01 Ω: the default full scale is 32 A; max-amps=8 narrows the input to
		// ±80 mV (PG /2, configuration 0x0FFF) and refines the current register (calibration
		// 16777, stored without its void bit 0: 16776).
		{"ina219 0.01 Ω row of 16", Spec{Chip: INA219, Bus: 1, ShuntOhms: 0.01}, 0, 4194, 5.05, 6.0, 0.002},
		{"ina219 0.01 Ω max-amps 8", Spec{Chip: INA219, Bus: 1, ShuntOhms: 0.01, MaxAmps: 8}, 0x0fff, 16776, 5.05, 6.0, 0.001},
		{"ina226 0.02 Ω row of 8", Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.02}, 0, 2048, 5.10, 3.0, 0.0002},
		{"ina226 0.1 Ω small load", Spec{Chip: INA226, Bus: 1}, 0, 2048, 5.10, 0.5, 0.0001},
		{"ina226 0.01 Ω max-amps 6", Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.01, MaxAmps: 6}, 0, 2796, 4.95, 5.5, 0.0005},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := openINA219
			if tt.config != 0 {
				open = func(cal uint16) []i2ctest.IO { return openINA219Range(tt.config, cal) }
			}
			if tt.spec.Chip == INA226 {
				open = openINA226
			}
			ohms := tt.spec.ShuntOhms
			if ohms == 0 {
				ohms = DefaultShuntOhms
			}
			sh, b, c, p := chipRegisters(tt.spec.Chip, tt.cal, tt.volts, tt.amps, ohms)
			bus := &i2ctest.Playback{DontPanic: true, Ops: append(open(tt.cal), reading(tt.cal, sh, b, c, p)...)}
			s, err := New(bus, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Read()
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Close(); err != nil {
				t.Error(err)
			}
			if got.V != topics.Version || got.Source != tt.spec.Chip || !got.TS.IsZero() {
				t.Errorf("reading %+v: want v1, source %q, no timestamp", got, tt.spec.Chip)
			}
			if got.Volts == nil || got.Amps == nil || got.Watts == nil {
				t.Fatalf("reading %+v misses a quantity", got)
			}
			if math.Abs(*got.Volts-tt.volts) > 0.002+1e-9 { // half the INA219's 4 mV step
				t.Errorf("volts = %v, want %v", *got.Volts, tt.volts)
			}
			// The chip truncates, so the current may read a count or two low; no more.
			if d := tt.amps - *got.Amps; d < 0 || d > tt.wantAmpsPrec {
				t.Errorf("amps = %v, want %v (to within %v below)", *got.Amps, tt.amps, tt.wantAmpsPrec)
			}
			if want := tt.volts * tt.amps; math.Abs(*got.Watts-want) > want*0.001+0.003 {
				t.Errorf("watts = %v, want %v within 0.1 %%", *got.Watts, want)
			}
			if _, err := topics.Encode(got); err != nil {
				t.Errorf("reading does not validate: %v", err)
			}
		})
	}
}

// For the INA219 the check against periph's driver: the same registers, 0.1 Ω, 3.2 A.
// periph.io/x/devices/v3/ina219 reads them as 5.100 V, 3 A (2.99970), 15.297 W.
func TestINA219AgreesWithPeriph(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: append(openINA219(0x1062),
		reading(0x1062, 0x7530, 0x27da, 0x77fd, 0x1e98)...)}
	s, err := New(bus, Spec{Chip: INA219, Bus: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if *got.Volts != 5.1 || math.Abs(*got.Amps-2.9997) > 0.0005 || math.Abs(*got.Watts-15.297) > 0.002 {
		t.Errorf("reading %v V %v A %v W; periph reads 5.100 V 2.9997 A 15.297 W", *got.Volts, *got.Amps, *got.Watts)
	}
}

func TestInputRange(t *testing.T) {
	for _, tt := range []struct {
		volts  float64
		config uint16
		limit  int16
	}{
		{0.32, 0x1fff, 32000}, // 3.2 A through 0.1 Ω: the default
		{0.3, 0x1fff, 32000},
		{0.16, 0x17ff, 16000},
		{0.08, 0x0fff, 8000}, // 8 A through 0.01 Ω
		{0.0801, 0x17ff, 16000},
		{0.04, 0x07ff, 4000},
		{0.005, 0x07ff, 4000},
	} {
		if config, limit := inputRange(0x1fff, tt.volts); config != tt.config || limit != tt.limit {
			t.Errorf("inputRange(%v V) = %#04x, %d; want %#04x, %d", tt.volts, config, limit, tt.config, tt.limit)
		}
	}
}

func TestNewChecksTheChip(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		ops     []i2ctest.IO
		mention []string
	}{
		{"an INA219 where an INA226 was named", Spec{Chip: INA226, Bus: 1},
			// An INA219 has no register 0xFE: what it answers is not TI's id.
			[]i2ctest.IO{r(0xfe, 0x0000), r(0xff, 0x0000)},
			[]string{"ina226 at 0x40 on /dev/i2c-1", "manufacturer id 0x0000", "0x5449", "ina219:bus=1,addr=0x40"}},
		{"another TI chip", Spec{Chip: INA226, Bus: 1},
			[]i2ctest.IO{r(0xfe, 0x5449), r(0xff, 0x2270)}, // an INA260, say
			[]string{"die id 0x2270", "0x2260"}},
		{"INA219 that does not keep its settings", Spec{Chip: INA219, Bus: 1},
			[]i2ctest.IO{wr(0x00, 0x1fff), wr(0x05, 0x1062), r(0x00, 0x399f), r(0x05, 0x0000)},
			[]string{"does not keep its settings like an ina219", "read back 0x399f and 0x0000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := &i2ctest.Playback{DontPanic: true, Ops: tt.ops}
			_, err := New(bus, tt.spec)
			if !errors.Is(err, ErrWrongChip) {
				t.Fatalf("New = %v, want ErrWrongChip", err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if err := bus.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	// A later INA226 revision (low 4 bits of the die id) is still an INA226.
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{r(0xfe, 0x5449), r(0xff, 0x2261), wr(0x00, 0x4727), wr(0x05, 0x0800), r(0x00, 0x4727), r(0x05, 0x0800)}}
	if _, err := New(bus, Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.02}); err != nil {
		t.Errorf("INA226 revision 1 refused: %v", err)
	}
}

// failBus fails every transfer after the first ok ones, as a sensor whose wire came loose.
type failBus struct {
	i2ctest.Playback
	ok  int
	err error
}

func (b *failBus) Tx(addr uint16, w, r []byte) error {
	if b.ok == 0 {
		return b.err
	}
	b.ok--
	return b.Playback.Tx(addr, w, r)
}

func TestI2CErrors(t *testing.T) {
	// Nothing answers at the address: the kernel reports EREMOTEIO.
	nothing := &failBus{err: syscall.EREMOTEIO}
	_, err := New(nothing, Spec{Chip: INA219, Bus: 1, Addr: 0x41})
	if !errors.Is(err, syscall.EREMOTEIO) {
		t.Errorf("New = %v, want the I2C error wrapped", err)
	}
	for _, m := range []string{"ina219 at 0x41 on /dev/i2c-1", "write the configuration", "remote I/O error", "i2cdetect -y 1", "at 41"} {
		if err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("New error %q does not mention %q", err, m)
		}
	}

	// The wire comes loose after the sensor was opened: Read fails, naming the sensor, and
	// works again once the bus does.
	loose := &failBus{ok: 6 + 5, err: syscall.EIO, Playback: i2ctest.Playback{DontPanic: true, Ops: append(append(openINA226(0x0800),
		reading(0x0800, 24000, 4080, 24000, 4896)...),
		reading(0x0800, 24000, 4080, 24000, 4896)...)}}
	s, err := New(loose, Spec{Chip: INA226, Bus: 3, ShuntOhms: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(); err != nil {
		t.Fatalf("first Read: %v", err)
	}
	_, err = s.Read()
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "ina226 at 0x40 on /dev/i2c-3: read the calibration") || !strings.Contains(err.Error(), "i2cdetect -y 3") {
		t.Errorf("Read on a failing bus = %v", err)
	}
	loose.ok = 5
	if p, err := s.Read(); err != nil || *p.Amps != 3 {
		t.Errorf("Read after the bus recovered = %+v, %v", p, err)
	}
}

func TestReadRestoresLostCalibration(t *testing.T) {
	ops := openINA219(0x1062)
	ops = append(ops, r(0x05, 0x0000), wr(0x00, 0x1fff), wr(0x05, 0x1062)) // reset: calibration 0, restored
	ops = append(ops, reading(0x1062, 30000, 1275<<3|2, 30717, 7832)...)
	bus := &i2ctest.Playback{DontPanic: true, Ops: ops}
	s, err := New(bus, Spec{Chip: INA219, Bus: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read()
	if err == nil || !strings.Contains(err.Error(), "lost its calibration") || !strings.Contains(err.Error(), "Restored") {
		t.Fatalf("Read after a reset = %v, want the lost calibration reported", err)
	}
	p, err := s.Read()
	if err != nil || math.Abs(*p.Amps-3) > 0.001 {
		t.Fatalf("Read after the calibration was restored = %+v, %v", p, err)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestReadRejects(t *testing.T) {
	ina219 := Spec{Chip: INA219, Bus: 1}
	ina226 := Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.02}
	tests := []struct {
		name                       string
		spec                       Spec
		cal                        uint16
		shunt, bus, current, power uint16
		is                         error
		mention                    string
	}{
		{"ina219 math overflow flag", ina219, 0x1062, 31000, 1275<<3 | 0b11, 32000, 8000, ErrOverRange, "more than max-amps=3.2"},
		{"ina219 shunt at its limit", ina219, 0x1062, 32000, 1275 << 3, 32767, 8000, ErrOverRange, "320.0 mV across the 0.1 Ω shunt"},
		{"ina226 shunt clipped", ina226, 0x0800, 0x7fff, 4080, 0x7fff, 6500, ErrOverRange, "smaller shunt"},
		{"ina226 negative clip", ina226, 0x0800, 0x8001, 4080, 0x8001, 6500, ErrOverRange, ""},
		{"ina226 over max-amps", Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.02, MaxAmps: 2}, 4194, 24000, 4080, 0x7fff, 4896, ErrOverRange, "more than max-amps=2"},
		{"ina219 narrowed range clipped", Spec{Chip: INA219, Bus: 1, ShuntOhms: 0.01, MaxAmps: 8}, 16776, 8000, 1263 << 3, 32767, 8000, ErrOverRange, "80.0 mV across the 0.01 Ω shunt"},
		{"backwards", ina219, 0x1062, uint16(0x10000 - 30000), 1275 << 3, uint16(0x10000 - 30717), 7832, nil, "swap the wires on VIN+ and VIN-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := openINA219
			if tt.spec.MaxAmps == 8 {
				open = func(cal uint16) []i2ctest.IO { return openINA219Range(0x0fff, cal) }
			}
			if tt.spec.Chip == INA226 {
				open = openINA226
			}
			bus := &i2ctest.Playback{DontPanic: true, Ops: append(open(tt.cal), reading(tt.cal, tt.shunt, tt.bus, tt.current, tt.power)...)}
			s, err := New(bus, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Read()
			if err == nil {
				t.Fatalf("Read = %+v, want an error", p)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Read = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.Contains(err.Error(), s.String()) {
				t.Errorf("error %q does not mention %q and the sensor", err, tt.mention)
			}
		})
	}
}

// Around 0 A the offset can make the current read a few counts below zero: that is no load,
// not a reversed shunt.
func TestOffsetAroundZero(t *testing.T) {
	neg := func(v uint16) uint16 { return uint16(0x10000 - int(v)) }
	bus := &i2ctest.Playback{DontPanic: true, Ops: append(openINA219(0x1062), reading(0x1062, neg(3), 1300<<3|2, neg(3), 4)...)}
	s, err := New(bus, Spec{Chip: INA219, Bus: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if *p.Amps != 0 || *p.Watts != 0 || *p.Volts != 5.2 {
		t.Errorf("reading %v V %v A %v W, want 5.2 V 0 A 0 W", *p.Volts, *p.Amps, *p.Watts)
	}
}

type countCloser struct{ n int }

func (c *countCloser) Close() error { c.n++; return nil }

func TestClose(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: openINA219(0x1062)}
	s, err := New(bus, Spec{Chip: INA219, Bus: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := new(countCloser)
	s.closer = c // as Open does with the bus it opened
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || c.n != 1 {
		t.Errorf("second Close = %v with the bus closed %d times, want nil and once", err, c.n)
	}
	if _, err := s.Read(); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := bus.Close(); err != nil { // no traffic after Close
		t.Error(err)
	}
}

func TestNewRejectsBadSpec(t *testing.T) {
	for name, spec := range map[string]Spec{
		"no chip":         {},
		"unknown chip":    {Chip: "ina260"},
		"bad address":     {Chip: INA219, Addr: 0x20},
		"over full scale": {Chip: INA226, MaxAmps: 1},
	} {
		if _, err := New(&i2ctest.Playback{DontPanic: true}, spec); err == nil {
			t.Errorf("%s: New accepted %+v", name, spec)
		}
		if _, err := Open(spec); err == nil {
			t.Errorf("%s: Open accepted %+v", name, spec)
		}
	}
}

func TestBusOpenError(t *testing.T) {
	tests := []struct {
		err     error
		mention []string
	}{
		{syscall.ENOENT, []string{"no /dev/i2c-1", "raspi-config nonint do_i2c 0", "dtparam=i2c_arm=on"}},
		{syscall.EACCES, []string{"permission denied", "i2c group", "SupplementaryGroups=i2c"}},
		{syscall.EPERM, []string{"operation not permitted", "DeviceAllow=char-i2c rw"}}, // systemd's device policy
		{syscall.EBUSY, []string{"open I2C bus 1", "busy"}},
	}
	for _, tt := range tests {
		err := busOpenError("/dev/i2c-1", 1, tt.err)
		for _, m := range tt.mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("busOpenError(%v) = %q, does not mention %q", tt.err, err, m)
			}
		}
	}
	// A bus that does not exist here, through the real Open.
	_, err := Open(Spec{Chip: INA219, Bus: 99})
	if err == nil || !strings.Contains(err.Error(), "/dev/i2c-99") {
		t.Errorf("Open on a missing bus = %v", err)
	}
}
