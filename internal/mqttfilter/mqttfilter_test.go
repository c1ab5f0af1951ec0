package mqttfilter

import "testing"

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		filter, allowed string
		want            bool
	}{
		{"a/#", "a/#", true},
		{"a", "a/#", true},
		{"a/r1/m1/status", "a/#", true},
		{"a/+/+/status", "a/#", true},
		{"a/+/#", "a/#", true},
		{"#", "a/#", false},
		{"+/r1/x", "a/#", false},
		{"+", "a/#", false},
		{"$SYS/#", "a/#", false},
		{"as/x", "a/#", false},
		{"", "a/#", false},
		{"a/m1/led", "a/m1/led", true},
		{"a/+/led", "a/m1/led", false},
		{"a/m1/#", "a/m1/led", false},
		{"a/m1/led/x", "a/m1/led", false},
		{"a/m1", "a/m1/led", false},
		{"a/x/led", "a/+/led", true},
		{"a/+/led", "a/+/led", true},
		{"a/#", "a/+/led", false},
		{"$SYS/x", "+/x", false},
		{"$SYS/x", "#", false},
		{"$SYS/x", "$SYS/#", true},
		{"a/b", "#", true},
	} {
		if got := Within(tc.filter, tc.allowed); got != tc.want {
			t.Errorf("Within(%q, %q) = %v, want %v", tc.filter, tc.allowed, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/+", "a/b/c", false},
		{"+/+", "a/b", true},
		{"a//c", "a//c", true},
		{"a/+/c", "a//c", true},
		{"#", "$SYS/broker", false},
	} {
		if got := Match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestValid(t *testing.T) {
	for f, want := range map[string]bool{
		"": false, "a": true, "a/+/b": true, "#": true, "a/#": true,
		"a#": false, "a/#/b": false, "a+/b": false, "+": true,
	} {
		if got := Valid(f); got != want {
			t.Errorf("Valid(%q) = %v, want %v", f, got, want)
		}
	}
	for topic, want := range map[string]bool{"": false, "a/b": true, "a/+": false, "a/#": false} {
		if got := ValidTopic(topic); got != want {
			t.Errorf("ValidTopic(%q) = %v, want %v", topic, got, want)
		}
	}
}
