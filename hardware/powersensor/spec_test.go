package powersensor

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     Spec
	}{
		{"empty is no sensor", "", Spec{}},
		{"none is no sensor", " None ", Spec{}},
		{"chip alone takes the defaults", "ina219", Spec{Chip: INA219, Bus: 1}},
		{"chip with a colon and nothing", "ina226:", Spec{Chip: INA226, Bus: 1}},
		{"documented form", "ina219:bus=1,addr=0x40,shunt-ohms=0.1", Spec{Chip: INA219, Bus: 1, Addr: 0x40, ShuntOhms: 0.1}},
		{"any order, spaces, case", " INA226 : shunt-ohms=0.01 , ADDR=0x45,bus=0 ", Spec{Chip: INA226, Bus: 0, Addr: 0x45, ShuntOhms: 0.01}},
		{"decimal address", "ina219:addr=65", Spec{Chip: INA219, Bus: 1, Addr: 0x41}},
		{"max-amps", "ina219:shunt-ohms=0.01,max-amps=8", Spec{Chip: INA219, Bus: 1, ShuntOhms: 0.01, MaxAmps: 8}},
		{"max-amps at full scale", "ina219:max-amps=3.2", Spec{Chip: INA219, Bus: 1, MaxAmps: 3.2}},
		{"ina226 full scale", "ina226:shunt-ohms=0.1,max-amps=0.8192", Spec{Chip: INA226, Bus: 1, ShuntOhms: 0.1, MaxAmps: 0.8192}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			// String writes what Parse reads.
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(%q) (its String): %v", got.String(), err)
			}
			want := got
			if got.Chip != "" {
				want, _ = got.withDefaults()
				want.MaxAmps = got.MaxAmps // spelled out only when given
			}
			if again != want {
				t.Errorf("Parse(%q) = %+v, want %+v", got.String(), again, want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in string
		mention  []string // the error must name what is wrong and show the accepted form
	}{
		{"unknown chip", "ina260:bus=1", []string{`unknown chip "ina260"`, "ina219 or ina226"}},
		{"unknown key", "ina219:bus=1,adress=0x40", []string{`unknown key "adress"`, "addr=0x40"}},
		{"not key=value", "ina219:bus", []string{`"bus" is not key=value`, "shunt-ohms=0.1"}},
		{"empty value", "ina219:addr=", []string{`"addr=" is not key=value`}},
		{"trailing comma", "ina219:bus=1,", []string{`"" is not key=value`}},
		{"duplicate key", "ina219:bus=1,bus=2", []string{`key "bus" given twice`}},
		{"bus not a number", "ina219:bus=i2c-1", []string{`bus "i2c-1"`, "/dev/i2c-N"}},
		{"negative bus", "ina219:bus=-1", []string{`bus "-1"`}},
		{"address in decimal by mistake", "ina219:addr=40", []string{"addr 40 (0x28) is not 0x40 to 0x4f", "addr=0x40"}},
		{"address out of range", "ina226:addr=0x50", []string{"addr 0x50 (0x50)"}},
		{"address not a number", "ina226:addr=forty", []string{`addr "forty"`}},
		{"zero shunt", "ina219:shunt-ohms=0", []string{`shunt-ohms "0"`}},
		{"negative shunt", "ina219:shunt-ohms=-0.1", []string{`shunt-ohms "-0.1"`}},
		{"shunt with unit", "ina219:shunt-ohms=100mΩ", []string{`shunt-ohms "100mΩ"`, "in ohms"}},
		{"huge shunt", "ina219:shunt-ohms=1000", []string{"shunt-ohms 1000"}},
		{"max-amps NaN", "ina219:max-amps=NaN", []string{`max-amps "NaN"`}},
		{"more than the shunt allows", "ina219:shunt-ohms=0.1,max-amps=5", []string{"max-amps 5", "at most 3.2 A", "smaller shunt"}},
		{"ina226 with a 0.1 Ω shunt and a row's current", "ina226:max-amps=3", []string{"max-amps 3", "at most 0.8192 A", "81.92 mV"}},
		{"too fine a resolution", "ina219:shunt-ohms=0.1,max-amps=0.1", []string{"max-amps 0.1", "too small"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.in) && !strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("error %q does not quote the spec %q", err, tt.in)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestSpecString(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{}, "none"},
		{Spec{Chip: INA219}, "ina219:bus=0,addr=0x40,shunt-ohms=0.1"},
		{Spec{Chip: INA226, Bus: 1, Addr: 0x4f, ShuntOhms: 0.015, MaxAmps: 5}, "ina226:bus=1,addr=0x4f,shunt-ohms=0.015,max-amps=5"},
	} {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.spec, got, tt.want)
		}
	}
}
