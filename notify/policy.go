package notify

import (
	"time"

	"github.com/pirack/pirack/topics"
)

// record is what the notifier keeps of one alert, by its topic: the alert's last state and
// whether people were told. It is how a retained alert replayed after a restart is told from a
// new one, and how reminders and held-back messages are found on each tick.
type record struct {
	Alert topics.Alert `json:"alert"`
	// Notified says a raised message was queued for at least one target.
	Notified bool `json:"notified"`
	// LastSent is when the last raised message or reminder was queued.
	LastSent time.Time `json:"last_sent"`
}

// policy is the part of File that decides when to send: quiet hours, reminders, resolved
// messages.
type policy struct {
	quiet    *QuietHours
	loc      *time.Location // local time, for quiet hours without a time zone
	repeat   time.Duration  // 0: no reminders
	resolved bool
}

// decide says what to send for rec at now: an event ("" for nothing) and whether the record
// is done with (dropped after a resolved message, or a clear nobody was told of the raise of).
// routed says some target takes this alert. It is pure: the tests' table runs on it.
func (p policy) decide(rec record, routed bool, now time.Time) (event string, done bool) {
	held := p.quiet.Holds(rec.Alert.Severity, now, p.loc)
	if rec.Alert.State == topics.AlertCleared {
		switch {
		case !rec.Notified || !p.resolved || !routed:
			return "", true
		case held:
			return "", false // sent when the quiet hours end
		}
		return EventResolved, true
	}
	switch {
	case held || !routed:
		return "", false
	case !rec.Notified:
		return EventRaised, false
	case p.repeat > 0 && now.Sub(rec.LastSent) >= p.repeat:
		return EventReminder, false
	}
	return "", false
}
