package powerbridge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata reads a payload from testdata/<dir>/<name>.
func testdata(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is an expected reading; absent marks a quantity that must not be there.
type want struct{ watts, volts, amps float64 }

const absent = -1

func checkReading(t *testing.T, got Reading, w want) {
	t.Helper()
	for _, q := range []struct {
		name string
		got  *float64
		want float64
	}{{"watts", got.Watts, w.watts}, {"volts", got.Volts, w.volts}, {"amps", got.Amps, w.amps}} {
		switch {
		case q.want == absent && q.got != nil:
			t.Errorf("%s = %v, want absent", q.name, *q.got)
		case q.want != absent && q.got == nil:
			t.Errorf("%s absent, want %v", q.name, q.want)
		case q.want != absent && *q.got != q.want:
			t.Errorf("%s = %v, want %v", q.name, *q.got, q.want)
		}
	}
}

func TestParseTasmotaSensor(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    want
		wantErr string // in the error; "" means none
	}{
		{file: "pow-r2.json", want: want{17, 231, 0.125}},
		{file: "relay-off.json", want: want{0, 0, 0}},
		{file: "dual-channel.json", want: want{14.7, 229, 0.113}}, // channels summed
		{file: "us-plug.json", want: want{18.4, 121, 0.258}},
		{file: "no-energy.json", wantErr: "no ENERGY object"},
		{file: "power-string.json", wantErr: `ENERGY.Power: want a number, got "17"`},
		{file: "no-power.json", wantErr: "ENERGY has no Power"},
		{file: "negative-power.json", wantErr: "ENERGY.Power[0] -35.2 is negative"},
		{file: "truncated.json", wantErr: "not a Tasmota SENSOR message"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseTasmotaSensor(testdata(t, "tasmota", tc.file))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrMalformed saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkReading(t, got, tc.want)
		})
	}
}

func TestParseShellyGen2Status(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    want
		wantErr string
	}{
		{file: "plus-plug-s.json", want: want{16.9, 230.4, 0.118}},
		{file: "pm-mini-gen3.json", want: want{17.6, 119.8, 0.152}},
		{file: "plus1-no-metering.json", wantErr: "no apower"},
		{file: "apower-null.json", wantErr: "no apower"},
		{file: "apower-string.json", wantErr: "not a Shelly status"},
		{file: "rpc-notify-partial.json", wantErr: "no apower"}, // an event on the status topic
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseShellyGen2Status(testdata(t, "shelly-gen2", tc.file))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrMalformed saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkReading(t, got, tc.want)
		})
	}
}

func TestParseShellyGen2Event(t *testing.T) {
	for _, tc := range []struct {
		file      string
		component string
		want      want
		ok        bool
		wantErr   string
	}{
		{file: "rpc-notify-partial.json", component: "switch:0", want: want{18.2, absent, 0.127}, ok: true},
		{file: "rpc-notify-voltage.json", component: "switch:0", want: want{absent, 231.2, absent}, ok: true},
		{file: "rpc-notify-aenergy.json", component: "switch:0", want: want{absent, absent, absent}, ok: true},
		{file: "rpc-notify-full-status.json", component: "switch:0", want: want{16.5, 230.9, 0.116}, ok: true},
		{file: "rpc-notify-other-switch.json", component: "switch:0", want: want{absent, absent, absent}},
		{file: "rpc-notify-other-switch.json", component: "switch:1", want: want{41, absent, 0.21}, ok: true},
		{file: "rpc-notify-event.json", component: "switch:0", want: want{absent, absent, absent}},
		{file: "rpc-notify-bad-apower.json", component: "switch:0", wantErr: `params["switch:0"]`},
		{file: "plus-plug-s.json", component: "switch:0", want: want{absent, absent, absent}}, // a status, not an event
	} {
		t.Run(tc.file+"/"+tc.component, func(t *testing.T) {
			got, ok, err := ParseShellyGen2Event(testdata(t, "shelly-gen2", tc.file), tc.component)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrMalformed saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			checkReading(t, got, tc.want)
		})
	}
}

func TestParseShellyGen1Value(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    float64
		wantErr string
	}{
		{file: "relay-power.txt", want: 16.93},
		{file: "relay-off.txt", want: 0},
		{file: "emeter-voltage.txt", want: 231.42},
		{file: "relay-state-word.txt", wantErr: `"on" is not a number`},
		{file: "empty.txt", wantErr: "empty message"},
		{file: "negative.txt", wantErr: "-12.5 is negative"},
		{file: "nan.txt", wantErr: "value is NaN"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseShellyGen1Value(testdata(t, "shelly-gen1", tc.file))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want ErrMalformed saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// A partial notification updates only what it carries.
func TestReadingMerge(t *testing.T) {
	full, err := ParseShellyGen2Status(testdata(t, "shelly-gen2", "plus-plug-s.json"))
	if err != nil {
		t.Fatal(err)
	}
	partial, _, err := ParseShellyGen2Event(testdata(t, "shelly-gen2", "rpc-notify-partial.json"), "switch:0")
	if err != nil {
		t.Fatal(err)
	}
	checkReading(t, full.merge(partial), want{18.2, 230.4, 0.127})
	checkReading(t, Reading{}.merge(partial), want{18.2, absent, 0.127})
}
