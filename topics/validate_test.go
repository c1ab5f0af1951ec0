package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name    string
		kind    Kind
		payload string
		ok      bool
	}{
		{"status", KindStatus, `{"v":1,"state":"online","ts":"2026-12-03T07:00:00Z"}`, true},
		{"status word", KindStatus, "offline", true},
		{"status garbage", KindStatus, "up", false},
		{"metrics", KindMetrics, `{"v":1,"ts":"2026-12-03T07:00:00Z","load_1":0.5}`, true},
		{"metrics negative load", KindMetrics, `{"v":1,"ts":"2026-12-03T07:00:00Z","load_1":-1}`, false},
		{"metrics oversized", KindMetrics, `{"v":1,"pad":"` + strings.Repeat("x", MaxPayload) + `"}`, false},
		{"button", KindButton, `{"v":1,"press":"short","seq":1,"ts":"2026-12-03T07:00:00Z"}`, true},
		{"button not JSON", KindButton, "press", false},
		{"led word", KindLED, "blink 2", true},
		{"led oversized", KindLED, `{"action":"blink","by":"` + strings.Repeat("x", MaxPayload) + `"}`, false},
		{"led unknown action", KindLED, "explode", false},
		{"power", KindPower, `{"v":1,"ts":"2026-12-03T07:00:00Z","watts":12.5}`, true},
		{"power negative", KindPower, `{"v":1,"ts":"2026-12-03T07:00:00Z","watts":-3}`, false},
		{"unknown kind", KindUnknown, "{}", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.kind, []byte(c.payload))
			if (err == nil) != c.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPayload) {
				t.Errorf("error %v does not wrap ErrInvalidPayload", err)
			}
		})
	}
}
