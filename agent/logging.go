package agent

import (
	"context"
	"log/slog"
	"time"
)

// logEvery is how often a repeating problem is logged again. A Pi without a temperature sensor
// should not log the same warning every 5 s for months.
const logEvery = 10 * time.Minute

// logLimited logs at most once per logEvery for the same key.
func (a *agent) logLimited(key string, level slog.Level, msg string, args ...any) {
	ok, suppressed := a.limit.Allow(key, a.cfg.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	a.log.Log(context.Background(), level, msg, args...)
}
