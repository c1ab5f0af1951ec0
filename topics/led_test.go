package topics

import (
	"errors"
	"testing"
	"time"
)

func TestParseLEDCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    LEDCommand
		wantErr bool
	}{
		{"word blink", "blink", LEDCommand{V: 1, Action: LEDBlink, Count: 5, PeriodMS: 500}, false},
		{"word blink count", "blink 3", LEDCommand{V: 1, Action: LEDBlink, Count: 3, PeriodMS: 500}, false},
		{"word upper with newline", "BLINK\n", LEDCommand{V: 1, Action: LEDBlink, Count: 5, PeriodMS: 500}, false},
		{"word on", "on", LEDCommand{V: 1, Action: LEDOn}, false},
		{"word off", "off", LEDCommand{V: 1, Action: LEDOff}, false},
		{"word identify", "identify", LEDCommand{V: 1, Action: LEDIdentify, PeriodMS: 500, TimeoutS: 15}, false},
		{"word identify timeout", "identify 30", LEDCommand{V: 1, Action: LEDIdentify, PeriodMS: 500, TimeoutS: 30}, false},
		{"json without v", `{"action":"blink","count":2}`, LEDCommand{V: 1, Action: LEDBlink, Count: 2, PeriodMS: 500}, false},
		{"json full", `{"v":1,"action":"blink","count":3,"period_ms":200,"by":"nodered"}`,
			LEDCommand{V: 1, Action: LEDBlink, Count: 3, PeriodMS: 200, By: "nodered"}, false},
		{"json on", `{"v":1,"action":"on"}`, LEDCommand{V: 1, Action: LEDOn}, false},
		{"unknown word", "reboot", LEDCommand{}, true},
		{"word with junk", "blink fast", LEDCommand{}, true},
		{"on with argument", "on 5", LEDCommand{}, true},
		{"count too big", "blink 1000", LEDCommand{}, true},
		{"negative count", `{"action":"blink","count":-1}`, LEDCommand{}, true},
		{"period too fast", `{"action":"blink","period_ms":1}`, LEDCommand{}, true},
		{"identify too long", "identify 99999", LEDCommand{}, true},
		{"wrong version", `{"v":2,"action":"on"}`, LEDCommand{}, true},
		{"wrong type", `{"action":"blink","count":"3"}`, LEDCommand{}, true},
		{"broken json", `{"action":`, LEDCommand{}, true},
		{"empty", ``, LEDCommand{}, true},
		{"expires before issued", `{"action":"on","issued_at":"2026-11-24T07:30:00Z","expires_at":"2026-11-24T07:00:00Z"}`, LEDCommand{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLEDCommand([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("ParseLEDCommand(%q) = %+v, %v; want ErrInvalidPayload", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLEDCommand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseLEDCommand(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLEDCommandExpiryAndDuration(t *testing.T) {
	c := LEDCommand{Action: LEDBlink, IssuedAt: ts, ExpiresAt: ts.Add(time.Minute)}.WithDefaults()
	if c.Expired(ts.Add(59 * time.Second)) {
		t.Fatal("command expired before its expires_at")
	}
	if !c.Expired(ts.Add(61 * time.Second)) {
		t.Fatal("command still valid after its expires_at")
	}
	if (LEDCommand{Action: LEDOn}).Expired(ts.Add(1000 * time.Hour)) {
		t.Fatal("a command without expires_at must never expire")
	}
	if got := c.Duration(); got != 2500*time.Millisecond {
		t.Fatalf("blink 5 x 500ms lasts %v, want 2.5s", got)
	}
	if got := (LEDCommand{Action: LEDIdentify}).WithDefaults().Duration(); got != 15*time.Second {
		t.Fatalf("identify lasts %v, want 15s", got)
	}
}
