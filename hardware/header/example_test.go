package header_test

import (
	"fmt"

	"github.com/pirack/pirack/hardware/header"
)

// Pins are given as BCM numbers or, with a prefix, as physical header pins.
func ExampleLayout_Parse() {
	for _, s := range []string{"17", "gpio17", "pin10", "pin6"} {
		p, err := header.Header40.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(s, "is", p)
	}
	// Output:
	// 17 is BCM 17 (header pin 11)
	// gpio17 is BCM 17 (header pin 11)
	// pin10 is BCM 15 (header pin 10, UART RX)
	// header pin 6 is ground: power or ground pin; pick a GPIO pin such as pin11 (BCM 17)
}

// The first Model B wired three header pins differently.
func ExampleLayout_Lookup() {
	for _, l := range []header.Layout{header.Header40, header.Header26Rev1} {
		p, _ := l.Lookup(13)
		fmt.Printf("%v: pin 13 is BCM %d\n", l, p.BCM)
	}
	// Output:
	// 40-pin header: pin 13 is BCM 27
	// 26-pin header (rev 1): pin 13 is BCM 21
}
