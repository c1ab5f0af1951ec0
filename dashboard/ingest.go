package dashboard

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/topics"
)

// Stats counts what ingestion did with the messages it received, and how the live stream fares.
type Stats struct {
	Received   uint64 `json:"received"`   // every message delivered by the Bus
	Applied    uint64 `json:"applied"`    // changed the rack state
	Ignored    uint64 `json:"ignored"`    // not for the dashboard: LED commands, power, foreign topics
	Invalid    uint64 `json:"invalid"`    // a payload that failed to decode or validate
	Duplicates uint64 `json:"duplicates"` // a button press already seen
	Stale      uint64 `json:"stale"`      // an offline Will from an older session
	SSEClients int    `json:"sse_clients"`
	SSEDropped uint64 `json:"sse_dropped"` // live clients dropped for falling behind
}

type counters struct {
	received, applied, ignored, invalid, duplicates, stale atomic.Uint64
}

// invalidLogEvery bounds warnings about invalid payloads: a broken or hostile publisher can send
// thousands a second, and the log must stay readable. Others go to debug level, and Stats
// counts all of them.
const invalidLogEvery = time.Second

// ingest is the Bus callback for topics.AllFilter. It runs on the publisher's goroutine inside the
// broker, so it must not block, and its input comes from any client that may publish: nothing
// here trusts the topic or the payload.
func (s *Server) ingest(topic string, payload []byte) {
	s.stats.received.Add(1)
	defer func() {
		// A bug here must not take the broker's connection goroutine down with it.
		if v := recover(); v != nil {
			s.stats.invalid.Add(1)
			s.log.Error("dashboard ingest panicked", "topic", clipLog(topic), "panic", v)
		}
	}()

	t, err := topics.Parse(topic)
	if err != nil {
		s.stats.ignored.Add(1)
		s.log.Debug("ignoring topic outside the contract", "topic", clipLog(topic), "err", err)
		return
	}
	changed := false
	switch t.Kind {
	case topics.KindStatus:
		st, err := topics.DecodeStatus(payload)
		if err != nil {
			s.invalid(topic, err)
			return
		}
		if changed = s.rack.setStatus(t.Row, t.MAC, st); !changed {
			s.stats.stale.Add(1)
			s.log.Debug("ignoring offline status from an older session", "topic", topic, "session", st.Session)
		}
	case topics.KindMetrics:
		m, err := topics.DecodeMetrics(payload)
		if err != nil {
			s.invalid(topic, err)
			return
		}
		s.rack.setMetrics(t.Row, t.MAC, m)
		changed = true
	case topics.KindButton:
		ev, err := topics.DecodeButton(payload)
		if err != nil {
			s.invalid(topic, err)
			return
		}
		if changed = s.rack.press(t.Row, t.MAC, ev); !changed {
			s.stats.duplicates.Add(1)
		}
	default:
		// LED commands (our own among them) and row power are not shown yet.
		s.stats.ignored.Add(1)
		return
	}
	if changed {
		s.stats.applied.Add(1)
		s.hub.notify(t.MAC)
	}
}

// invalid counts a bad payload and logs it, at warning level at most once per invalidLogEvery.
func (s *Server) invalid(topic string, err error) {
	s.stats.invalid.Add(1)
	level := slog.LevelDebug
	now := time.Now().UnixNano()
	if last := s.lastInvalidLog.Load(); now-last >= int64(invalidLogEvery) && s.lastInvalidLog.CompareAndSwap(last, now) {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "dropping invalid payload",
		"topic", clipLog(topic), "err", err, "invalid_total", s.stats.invalid.Load())
}

// Stats returns the ingestion and live-stream counters.
func (s *Server) Stats() Stats {
	clients, dropped := s.hub.stats()
	return Stats{
		Received:   s.stats.received.Load(),
		Applied:    s.stats.applied.Load(),
		Ignored:    s.stats.ignored.Load(),
		Invalid:    s.stats.invalid.Load(),
		Duplicates: s.stats.duplicates.Load(),
		Stale:      s.stats.stale.Load(),
		SSEClients: clients,
		SSEDropped: dropped,
	}
}

// clipLog bounds a foreign string before it goes into a log line.
func clipLog(s string) string {
	const max = 160
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
