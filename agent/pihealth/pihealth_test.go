package pihealth

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseThrottled(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint32
		ok   bool
	}{
		{"sysfs clear", "0\n", 0, true},
		{"sysfs under-voltage now and since boot", "50005\n", 0x50005, true},
		{"vcgencmd", "throttled=0x50000\n", 0x50000, true},
		{"vcgencmd clear", "throttled=0x0", 0, true},
		{"garbage", "throttled=maybe", 0, false},
		{"empty", "", 0, false},
		{"too wide", "1ffffffff", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseThrottled([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseThrottled(%q) = %#x, %v; want %#x ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name           string
		bits           uint32
		now, sinceBoot []string
	}{
		{"clear", 0, []string{}, []string{}},
		{"under-voltage now and before", 0x50005, []string{"under_voltage", "throttled"}, []string{"under_voltage", "throttled"}},
		{"was hot, is fine", 0x80000, []string{}, []string{"soft_temp_limit"}},
		{"capped now", 0x2, []string{"freq_capped"}, []string{}},
		{"unknown bits ignored", 0xf0f0, []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now, since := Flags(tt.bits)
			if !reflect.DeepEqual(now, tt.now) || !reflect.DeepEqual(since, tt.sinceBoot) {
				t.Fatalf("Flags(%#x) = %q, %q; want %q, %q", tt.bits, now, since, tt.now, tt.sinceBoot)
			}
		})
	}
}

func TestReaderOnBoards(t *testing.T) {
	tests := []struct {
		board          string
		model, serial  string
		now, sinceBoot []string
	}{
		{"pi4", "Raspberry Pi 4 Model B Rev 1.4", "10000000a1b2c3d4", []string{"under_voltage", "throttled"}, []string{"under_voltage", "throttled"}},
		{"pi5", "Raspberry Pi 5 Model B Rev 1.0", "2c3e5f8a9b1d7e60", []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.board, func(t *testing.T) {
			r := Reader{Root: "testdata/" + tt.board}
			model, serial, err := r.Board()
			if err != nil || model != tt.model || serial != tt.serial {
				t.Fatalf("Board() = %q, %q, %v; want %q, %q", model, serial, err, tt.model, tt.serial)
			}
			now, since, err := r.Throttled()
			if err != nil || !reflect.DeepEqual(now, tt.now) || !reflect.DeepEqual(since, tt.sinceBoot) {
				t.Fatalf("Throttled() = %q, %q, %v; want %q, %q", now, since, err, tt.now, tt.sinceBoot)
			}
		})
	}
}

func TestReaderOnANonPi(t *testing.T) {
	r := Reader{Root: "testdata/x86"}
	if _, _, err := r.Board(); !errors.Is(err, ErrNotAPi) {
		t.Fatalf("Board() on x86 = %v, want ErrNotAPi", err)
	}
	now, since, err := r.Throttled()
	if !errors.Is(err, ErrNotAPi) || now != nil || since != nil {
		t.Fatalf("Throttled() on x86 = %q, %q, %v; want nil lists and ErrNotAPi", now, since, err)
	}
}

func FuzzParseThrottled(f *testing.F) {
	for _, s := range []string{"0", "50005\n", "throttled=0x50000", "0x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bits, err := ParseThrottled(b)
		if err != nil {
			return
		}
		now, since := Flags(bits)
		if now == nil || since == nil || len(now) > 4 || len(since) > 4 {
			t.Fatalf("Flags(%#x) = %q, %q", bits, now, since)
		}
	})
}
