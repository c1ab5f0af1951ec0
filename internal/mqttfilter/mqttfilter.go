// Package mqttfilter holds MQTT's topic filter rules ("+" one level, "#" the remaining levels,
// "$" topics only for filters that spell their first level), for every pirack package that
// routes or authorises messages itself: the network bus delivers by them, the embedded broker's
// ACLs and in-process subscribers, and the dashboard's test bus.
package mqttfilter

import "strings"

// Match reports whether topic (a topic name, no wildcards) matches filter.
func Match(filter, topic string) bool { return Within(topic, filter) }

// Within reports whether every topic that filter matches is also matched by allowed. A topic
// name is a filter without wildcards, so Within(topic, filter) is Match(filter, topic). "a/#"
// also matches "a"; a wildcard in the first level never matches a "$" level.
func Within(filter, allowed string) bool {
	fl := strings.Split(filter, "/")
	al := strings.Split(allowed, "/")
	for i, a := range al {
		if a == "#" {
			return i > 0 || (len(fl) > 0 && !strings.HasPrefix(fl[0], "$"))
		}
		if i >= len(fl) {
			return false
		}
		f := fl[i]
		switch {
		case f == "#":
			return false
		case a == "+":
			if i == 0 && strings.HasPrefix(f, "$") {
				return false
			}
		case f != a:
			return false
		}
	}
	return len(fl) == len(al)
}

// Valid checks a topic filter: not empty, "+" only as a whole level, "#" only as the whole
// last level.
func Valid(filter string) bool {
	if filter == "" {
		return false
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
	}
	return true
}

// ValidTopic checks a topic name to publish to: not empty and without wildcards.
func ValidTopic(topic string) bool {
	return topic != "" && !strings.ContainsAny(topic, "+#")
}
