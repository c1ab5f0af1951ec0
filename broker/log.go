package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLogHandler is the handler of Mochi's own log records. It keeps secrets out of the log:
// Mochi logs whole packets (a second CONNECT on an open connection, with its password; a bad
// PUBLISH, with its payload) and Wills, so every value that is not a plain one (string,
// number, time, error) is replaced by a summary without the password or payload.
//
// And it lowers one harmless Mochi error to debug: on a fresh broker.db the bolt hook logs
// "failed to get data ... key not found" for the $SYS record, which Mochi then ignores. An
// ERROR line on every first start would send a newcomer looking for a fault that is not there.
type mochiLogHandler struct{ slog.Handler }

func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && r.Message == "failed to get data" && hasErr(r, bolt.ErrKeyNotFound) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		safe[i] = redact(a)
	}
	return mochiLogHandler{h.Handler.WithAttrs(safe)}
}

func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
}

// redact replaces a packet or a Will by a summary without password or payload, and any other
// value that is not plain by its type's name: a type Mochi starts logging in a later version
// must not leak what it carries.
func redact(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	switch a.Value.Kind() {
	case slog.KindGroup:
		g := a.Value.Group()
		safe := make([]slog.Attr, len(g))
		for i, ga := range g {
			safe[i] = redact(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(safe...)}
	case slog.KindAny:
	default:
		return a
	}
	switch v := a.Value.Any().(type) {
	case packets.Packet:
		return slog.Attr{Key: a.Key, Value: packetSummary(v)}
	case *packets.Packet:
		if v != nil {
			return slog.Attr{Key: a.Key, Value: packetSummary(*v)}
		}
	case mqtt.Will:
		return slog.Group(a.Key, "topic", clip(v.TopicName), "qos", v.Qos, "retain", v.Retain, "payload_bytes", len(v.Payload))
	case error:
		return a
	}
	return slog.String(a.Key, fmt.Sprintf("(%T, not logged)", a.Value.Any()))
}

// packetSummary is what a log may show of a packet: its kind and routing, never its
// credentials or payload.
func packetSummary(pk packets.Packet) slog.Value {
	attrs := []slog.Attr{slog.String("type", strings.ToUpper(packets.PacketNames[pk.FixedHeader.Type]))}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		attrs = append(attrs, slog.Int("protocol", int(pk.ProtocolVersion)), slog.String("client", clip(pk.Connect.ClientIdentifier)))
	case packets.Publish:
		attrs = append(attrs, slog.Int("id", int(pk.PacketID)), slog.String("topic", clip(pk.TopicName)),
			slog.Int("qos", int(pk.FixedHeader.Qos)), slog.Int("payload_bytes", len(pk.Payload)))
	default:
		attrs = append(attrs, slog.Int("id", int(pk.PacketID)))
	}
	return slog.GroupValue(attrs...)
}

func hasErr(r slog.Record, target error) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, target) {
			found = true
		}
		return !found
	})
	return found
}
