package topics

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets check that no input panics, that every rejection wraps one of the package's
// sentinel errors, and that whatever is accepted round-trips.

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"rack/r1/b827eb3f1a2c/status", "rack/b827eb3f1a2c/led", "rack/r1/power",
		"rack/+/#", "rack/r1/b827eb3f1a2c/status/x", "rack//", "rack/\x00/power",
		"rack/r1/b827eb3f1a2c/alert/temp_high", "rack/r1/alert/power_band", "rack/r1/alert/", "rack/r1/alert/a/b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := Parse(topic)
		if err != nil {
			if !errors.Is(err, ErrUnknownTopic) && !errors.Is(err, ErrInvalidMAC) && !errors.Is(err, ErrInvalidRow) {
				t.Fatalf("Parse(%q) error %v wraps no sentinel", topic, err)
			}
			return
		}
		if got.String() != topic {
			t.Fatalf("Parse(%q).String() = %q", topic, got.String())
		}
	})
}

func FuzzNormalizeMAC(f *testing.F) {
	for _, s := range []string{"B8:27:EB:3F:1A:2C", "b8-27-eb-3f-1a-2c", "b827eb3f1a2c", "b827.eb3f.1a2c", "::::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		mac, err := NormalizeMAC(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidMAC) {
				t.Fatalf("NormalizeMAC(%q) error %v does not wrap ErrInvalidMAC", in, err)
			}
			return
		}
		if !IsMAC(mac) {
			t.Fatalf("NormalizeMAC(%q) = %q, not 12 lowercase hex digits", in, mac)
		}
		if again, err := NormalizeMAC(mac); err != nil || again != mac {
			t.Fatalf("NormalizeMAC not idempotent on %q: %q, %v", mac, again, err)
		}
	})
}

func addGoldenSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("blink 3"))
	f.Add([]byte("offline"))
	f.Add([]byte(`{"v":1,"load_1":1e309}`))
}

// FuzzDecoders feeds the same bytes to every payload decoder.
func FuzzDecoders(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(name string, v Validator, err error) {
			if err != nil {
				if !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("%s(%q) error %v does not wrap ErrInvalidPayload", name, b, err)
				}
				return
			}
			if verr := v.Validate(); verr != nil {
				t.Fatalf("%s accepted %q but Validate says %v", name, b, verr)
			}
			if _, err := Encode(v); err != nil {
				t.Fatalf("%s accepted %q but it does not re-encode: %v", name, b, err)
			}
		}
		s, err := DecodeStatus(b)
		check("DecodeStatus", s, err)
		m, err := DecodeMetrics(b)
		check("DecodeMetrics", m, err)
		e, err := DecodeButton(b)
		check("DecodeButton", e, err)
		p, err := DecodePower(b)
		check("DecodePower", p, err)
		c, err := ParseLEDCommand(b)
		check("ParseLEDCommand", c, err)
		l, err := DecodeLEDState(b)
		check("DecodeLEDState", l, err)
		a, err := DecodeAlert(b)
		check("DecodeAlert", a, err)
	})
}
