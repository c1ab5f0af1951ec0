package powersensor_test

import (
	"fmt"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/pirack/pirack/hardware/powersensor"
)

// The agent's --power flag takes a spec; keys left out take their defaults.
func ExampleParse() {
	spec, err := powersensor.Parse("ina226:addr=0x41,shunt-ohms=0.02")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec)
	_, err = powersensor.Parse("ina219:adress=0x41")
	fmt.Println(err)
	// Output:
	// ina226:bus=1,addr=0x41,shunt-ohms=0.02
	// power sensor "ina219:adress=0x41": unknown key "adress"; want ina219 or ina226, optionally followed by :bus=1,addr=0x40,shunt-ohms=0.1,max-amps=3.2 (any of these keys, comma separated), or none
}

// New drives a sensor on any periph I2C bus; here the test double replays what an INA219 with
// a 0.1 Ω shunt answers while a row draws 3.0 A at 5.10 V. On a Pi, Open opens /dev/i2c-1.
func ExampleNew() {
	reg := func(r byte, v uint16) i2ctest.IO {
		return i2ctest.IO{Addr: 0x40, W: []byte{r}, R: []byte{byte(v >> 8), byte(v)}}
	}
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x00, 0x1f, 0xff}}, // configuration: 16 V, ±320 mV, averaging
		{Addr: 0x40, W: []byte{0x05, 0x10, 0x62}}, // calibration 4194: 3.2 A full scale
		reg(0x00, 0x1fff), reg(0x05, 0x1062),      // read back
		reg(0x05, 0x1062), // Read: still calibrated?
		reg(0x01, 30000),  // shunt: 300 mV
		reg(0x02, 0x27da), // bus: 5.10 V
		reg(0x04, 30717),  // current
		reg(0x03, 7832),   // power
	}}
	sensor, err := powersensor.New(bus, powersensor.Spec{Chip: powersensor.INA219, Bus: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sensor.Close()
	p, err := sensor.Read()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %.2f V, %.3f A, %.2f W\n", sensor, *p.Volts, *p.Amps, *p.Watts)
	// Output: ina219 at 0x40 on /dev/i2c-1: 5.10 V, 3.000 A, 15.30 W
}
