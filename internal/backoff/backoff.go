// Package backoff is the reconnection timing pirack's MQTT clients (the agent and the control
// center's network bus) give paho: paho's own exponential backoff, capped, plus a random
// jitter that paho lacks. Without jitter every client that lost the broker retries in
// lockstep when it comes back.
package backoff

import "time"

// Backoff is the reconnection timing derived from a maximum delay.
type Backoff struct {
	// ConnectRetry is paho's fixed interval between attempts of the first connection
	// (SetConnectRetryInterval); jitter is added to it.
	ConnectRetry time.Duration
	// MaxBackoff caps paho's doubling reconnect interval (SetMaxReconnectInterval).
	MaxBackoff time.Duration
	// BaseJitter is the jitter window of the first retry; it doubles per failed attempt up to
	// MaxJitter.
	BaseJitter time.Duration
	MaxJitter  time.Duration
}

// New splits max between paho's backoff (two thirds) and jitter (a third). With 30 s: retries
// every 1 s, backoff up to 20 s, jitter from 2 s up to 10 s.
func New(max time.Duration) Backoff {
	b := Backoff{MaxBackoff: max * 2 / 3, MaxJitter: max / 3}
	b.ConnectRetry = min(time.Second, b.MaxBackoff)
	b.BaseJitter = b.MaxJitter / 5
	return b
}

// JitterWindow is the range of the random delay before a connection attempt, as paho numbers
// them in mqtt.ConnectionNotificationConnecting. The very first attempt is not delayed; later
// ones get a window doubling from BaseJitter up to MaxJitter.
func (b Backoff) JitterWindow(isReconnect bool, attempt int) time.Duration {
	n := attempt
	if !isReconnect {
		if attempt == 0 {
			return 0
		}
		n--
	}
	if n > 8 {
		n = 8 // avoid overflow; the cap applies long before
	}
	return min(b.BaseJitter<<n, b.MaxJitter)
}

// Delay is an exponential backoff for retrying work that failed, such as a notification:
// base after the first failure (failures = 1), doubling with each further one, at most max.
func Delay(base, max time.Duration, failures int) time.Duration {
	if failures < 1 {
		return 0
	}
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
