// Package header maps a Raspberry Pi's GPIO header: physical pin numbers to BCM GPIO numbers and
// what each pin carries. It parses the pin names operators type (`17`, `bcm17`, `gpio17`,
// `pin10`) and refuses power and ground pins, so that a typo cannot ask the agent to drive 5 V.
//
// Three layouts exist: the 40-pin header of every Pi since the Model B+ (2014), and the 26-pin
// header of the original Model A and B, whose first revision wired three pins differently.
package header

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Layout is a header layout. The zero value is Header40.
type Layout int

const (
	// Header40 is the 40-pin header of the A+, B+, Zero and every Pi from the Pi 2 on.
	Header40 Layout = iota
	// Header26Rev2 is the 26-pin header of the Model A and the Model B revision 2.
	Header26Rev2
	// Header26Rev1 is the 26-pin header of the Model B revision 1 (2012): pins 3, 5 and 13 carry
	// BCM 0, 1 and 21 instead of BCM 2, 3 and 27.
	Header26Rev1
)

func (l Layout) String() string {
	switch l {
	case Header40:
		return "40-pin header"
	case Header26Rev2:
		return "26-pin header (rev 2)"
	case Header26Rev1:
		return "26-pin header (rev 1)"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// Size is the number of pins on the header.
func (l Layout) Size() int {
	if l == Header40 {
		return 40
	}
	return 26
}

// Pin is one GPIO line, as BCM number and, when it is on the header, physical pin number.
type Pin struct {
	// BCM is the GPIO number of the SoC (BCM283x, BCM2711, and RP1 on the Pi 5, which kept the
	// numbering), the number the GPIO backends use.
	BCM int
	// Header is the physical pin number on the header, 1-40 (1-26 on old boards), or 0 for a
	// line of a GPIO chip that is not a Raspberry Pi header (see LineOffset).
	Header int
	// Function names what else the pin is commonly used for ("UART RX", "I2C SDA"), or "".
	Function string
}

func (p Pin) String() string {
	if p.Header == 0 {
		return fmt.Sprintf("line %d", p.BCM)
	}
	s := fmt.Sprintf("BCM %d (header pin %d", p.BCM, p.Header)
	if p.Function != "" {
		s += ", " + p.Function
	}
	return s + ")"
}

// ErrPowerPin is returned (wrapped) by Parse and Lookup for a header pin that carries power or
// ground: no GPIO can be driven there.
var ErrPowerPin = errors.New("power or ground pin")

// ErrNoSuchPin is returned (wrapped) by Parse for a pin that is not on the board's header.
var ErrNoSuchPin = errors.New("no such pin")

// Fixed pin roles; gpio entries hold a BCM number instead.
const (
	p3v3 = -1
	p5v  = -2
	gnd  = -3
)

// pins40 is the 40-pin header, index = header pin - 1: a BCM number, or one of the roles above.
var pins40 = [40]int{
	p3v3, p5v, // 1, 2
	2, p5v, //    3, 4
	3, gnd, //    5, 6
	4, 14, //     7, 8
	gnd, 15, //   9, 10
	17, 18, //    11, 12
	27, gnd, //   13, 14
	22, 23, //    15, 16
	p3v3, 24, //  17, 18
	10, gnd, //   19, 20
	9, 25, //     21, 22
	11, 8, //     23, 24
	gnd, 7, //    25, 26
	0, 1, //      27, 28
	5, gnd, //    29, 30
	6, 12, //     31, 32
	13, gnd, //   33, 34
	19, 16, //    35, 36
	26, 20, //    37, 38
	gnd, 21, //   39, 40
}

// functions are the alternate functions worth knowing about when choosing a pin, by BCM number
// on the 40-pin header (and the rev 2 26-pin header, which is its first 26 pins).
var functions = map[int]string{
	0: "HAT ID EEPROM SDA, keep free", 1: "HAT ID EEPROM SCL, keep free",
	2: "I2C SDA, has a 1.8 kΩ pull-up", 3: "I2C SCL, has a 1.8 kΩ pull-up",
	4: "GPCLK0, 1-Wire", 14: "UART TX", 15: "UART RX",
	18: "PCM CLK / PWM0", 12: "PWM0", 13: "PWM1", 19: "PCM FS / SPI1 MISO",
	20: "PCM DIN / SPI1 MOSI", 21: "PCM DOUT / SPI1 SCLK", 16: "SPI1 CE2",
	10: "SPI0 MOSI", 9: "SPI0 MISO", 11: "SPI0 SCLK", 8: "SPI0 CE0", 7: "SPI0 CE1",
}

// rev1Functions are the functions that differ on the rev 1 26-pin header.
var rev1Functions = map[int]string{0: "I2C SDA, has a 1.8 kΩ pull-up", 1: "I2C SCL, has a 1.8 kΩ pull-up"}

// role returns what header pin n (1-based) carries on layout l: a BCM number >= 0, or a role.
func (l Layout) role(n int) int {
	r := pins40[n-1]
	if l == Header26Rev1 {
		switch n {
		case 3:
			return 0
		case 5:
			return 1
		case 13:
			return 21
		}
	}
	return r
}

func (l Layout) function(bcm int) string {
	if l == Header26Rev1 {
		if f, ok := rev1Functions[bcm]; ok {
			return f
		}
	}
	if l != Header40 && (bcm == 0 || bcm == 1 || bcm == 21) {
		return "" // the ID EEPROM and PCM/SPI1 came with the 40-pin header
	}
	return functions[bcm]
}

// Pins lists the header's pins in physical order: GPIO pins as Pin values, power and ground pins
// with BCM -1 and Function naming them ("3.3 V", "5 V", "ground").
func (l Layout) Pins() []Pin {
	out := make([]Pin, 0, l.Size())
	for n := 1; n <= l.Size(); n++ {
		r := l.role(n)
		if r < 0 {
			out = append(out, Pin{BCM: -1, Header: n, Function: roleName(r)})
			continue
		}
		out = append(out, Pin{BCM: r, Header: n, Function: l.function(r)})
	}
	return out
}

func roleName(r int) string {
	switch r {
	case p3v3:
		return "3.3 V"
	case p5v:
		return "5 V"
	}
	return "ground"
}

// Lookup returns the GPIO on physical header pin n, or an error wrapping ErrPowerPin or
// ErrNoSuchPin.
func (l Layout) Lookup(n int) (Pin, error) {
	if n < 1 || n > l.Size() {
		return Pin{}, fmt.Errorf("header pin %d: %w: the %s has pins 1-%d", n, ErrNoSuchPin, l, l.Size())
	}
	r := l.role(n)
	if r < 0 {
		return Pin{}, fmt.Errorf("header pin %d is %s: %w; pick a GPIO pin such as pin11 (BCM 17)", n, roleName(r), ErrPowerPin)
	}
	return Pin{BCM: r, Header: n, Function: l.function(r)}, nil
}

// BCM returns the pin for a BCM GPIO number, or an error wrapping ErrNoSuchPin if that GPIO is
// not on this header.
func (l Layout) BCM(bcm int) (Pin, error) {
	for n := 1; n <= l.Size(); n++ {
		if l.role(n) == bcm {
			return Pin{BCM: bcm, Header: n, Function: l.function(bcm)}, nil
		}
	}
	return Pin{}, fmt.Errorf("BCM %d: %w on the %s", bcm, ErrNoSuchPin, l)
}

// LineOffset reads a bare line number ("40", "gpio40", "bcm40") for a GPIO chip that is not a Pi
// header. Header pins ("pin10") are not line numbers.
func LineOffset(s string) (int, bool) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"bcm", "gpio"} {
		t = strings.TrimPrefix(t, p)
	}
	n, err := strconv.Atoi(t)
	return n, err == nil && n >= 0 && t != "" && t[0] != '+'
}

// Parse reads a pin as operators write it: a BCM number ("17", "bcm17", "gpio17", any case), or
// a physical header pin with a prefix ("pin10"). A bare number is always a BCM number, never a
// header pin, because that is how Pi GPIO libraries count.
func (l Layout) Parse(s string) (Pin, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	var prefix string
	for _, p := range []string{"bcm", "gpio", "pin"} {
		if rest, ok := strings.CutPrefix(t, p); ok {
			prefix, t = p, strings.TrimLeft(rest, " _-")
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || t == "" || t[0] == '+' {
		return Pin{}, fmt.Errorf("pin %q: want a BCM number (17, bcm17, gpio17) or a header pin (pin11)", s)
	}
	if prefix == "pin" {
		return l.Lookup(n)
	}
	return l.BCM(n)
}
