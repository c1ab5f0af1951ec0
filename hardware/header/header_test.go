package header

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout Layout
		in     string
		bcm    int
		pin    int
		err    error  // wrapped sentinel, if any
		errHas string // text the error must carry
	}{
		{name: "bare BCM", in: "17", bcm: 17, pin: 11},
		{name: "bcm prefix", in: "bcm17", bcm: 17, pin: 11},
		{name: "gpio prefix upper case", in: "GPIO17", bcm: 17, pin: 11},
		{name: "header pin of the button", in: "pin10", bcm: 15, pin: 10},
		{name: "header pin 40", in: "pin40", bcm: 21, pin: 40},
		{name: "ID EEPROM pin", in: "pin27", bcm: 0, pin: 27},
		{name: "bare number is BCM not header", in: "10", bcm: 10, pin: 19},
		{name: "3.3 V", in: "pin1", err: ErrPowerPin, errHas: "3.3 V"},
		{name: "5 V", in: "pin2", err: ErrPowerPin, errHas: "5 V"},
		{name: "ground", in: "pin39", err: ErrPowerPin, errHas: "ground"},
		{name: "pin 0", in: "pin0", err: ErrNoSuchPin},
		{name: "pin 41", in: "pin41", err: ErrNoSuchPin, errHas: "1-40"},
		{name: "BCM off the header", in: "bcm28", err: ErrNoSuchPin},
		{name: "garbage", in: "led", errHas: "want a BCM number"},
		{name: "negative", in: "-3", errHas: "want a BCM number"},
		{name: "empty", in: "", errHas: "want a BCM number"},
		{name: "prefix only", in: "pin", errHas: "want a BCM number"},

		{name: "rev2 pin 3", layout: Header26Rev2, in: "pin3", bcm: 2, pin: 3},
		{name: "rev2 pin 13", layout: Header26Rev2, in: "pin13", bcm: 27, pin: 13},
		{name: "rev1 pin 3", layout: Header26Rev1, in: "pin3", bcm: 0, pin: 3},
		{name: "rev1 pin 5", layout: Header26Rev1, in: "pin5", bcm: 1, pin: 5},
		{name: "rev1 pin 13", layout: Header26Rev1, in: "pin13", bcm: 21, pin: 13},
		{name: "rev1 has no BCM 27", layout: Header26Rev1, in: "27", err: ErrNoSuchPin},
		{name: "rev2 has no BCM 21", layout: Header26Rev2, in: "21", err: ErrNoSuchPin},
		{name: "26-pin has no pin 27", layout: Header26Rev2, in: "pin27", err: ErrNoSuchPin, errHas: "1-26"},
		{name: "old boards keep the defaults: LED", layout: Header26Rev1, in: "17", bcm: 17, pin: 11},
		{name: "old boards keep the defaults: button", layout: Header26Rev1, in: "pin10", bcm: 15, pin: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.layout.Parse(tc.in)
			if tc.err != nil || tc.errHas != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, p)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Errorf("error %q does not wrap %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not mention %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if p.BCM != tc.bcm || p.Header != tc.pin {
				t.Errorf("Parse(%q) = BCM %d pin %d, want BCM %d pin %d", tc.in, p.BCM, p.Header, tc.bcm, tc.pin)
			}
		})
	}
}

// The 40-pin header carries each of BCM 0-27 exactly once, with 8 grounds, two 3.3 V and two 5 V.
func TestHeader40Complete(t *testing.T) {
	seen := map[int]int{}
	roles := map[string]int{}
	for _, p := range Header40.Pins() {
		if p.BCM < 0 {
			roles[p.Function]++
			continue
		}
		seen[p.BCM] = p.Header
	}
	for bcm := range 28 {
		if _, ok := seen[bcm]; !ok {
			t.Errorf("BCM %d missing", bcm)
		}
	}
	if len(seen) != 28 || roles["ground"] != 8 || roles["3.3 V"] != 2 || roles["5 V"] != 2 {
		t.Errorf("gpio %d, roles %v", len(seen), roles)
	}
}

func TestFunctions(t *testing.T) {
	p, _ := Header40.Parse("pin10")
	if p.Function != "UART RX" || p.String() != "BCM 15 (header pin 10, UART RX)" {
		t.Errorf("pin10 = %q", p)
	}
	if p, _ := Header26Rev1.Parse("0"); !strings.Contains(p.Function, "I2C SDA") {
		t.Errorf("rev1 BCM 0 = %q, want I2C SDA", p.Function)
	}
	if p, _ := Header26Rev1.Parse("pin13"); p.Function != "" {
		t.Errorf("rev1 BCM 21 = %q, want a plain GPIO", p.Function)
	}
	if p, _ := Header40.Parse("17"); p.Function != "" {
		t.Errorf("BCM 17 = %q, want a plain GPIO", p.Function)
	}
}
