package broker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// mochiLogHandler lowers one harmless Mochi error to debug: on a fresh broker.db the bolt hook
// logs "failed to get data ... key not found" for the $SYS record, which Mochi then ignores.
// An ERROR line on every first start would send a newcomer looking for a fault that is not there.
type mochiLogHandler struct{ slog.Handler }

func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && r.Message == "failed to get data" && hasErr(r, bolt.ErrKeyNotFound) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mochiLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
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
