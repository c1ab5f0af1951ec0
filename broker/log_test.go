package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

func TestMochiLogHandlerLowersOnlyTheFreshStoreError(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(mochiLogHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("hook", "bolt-db")

	log.Error("failed to get data", "error", bolt.ErrKeyNotFound, "key", "SYS")
	if buf.Len() != 0 {
		t.Fatalf("harmless fresh-store error was logged at info level: %s", buf.String())
	}
	log.Error("failed to get data", "error", errors.New("disk I/O error"), "key", "SYS")
	log.Error("failed to delete data", "error", bolt.ErrKeyNotFound)
	if got := strings.Count(buf.String(), "level=ERROR"); got != 2 {
		t.Fatalf("real errors must stay errors; got %d ERROR lines:\n%s", got, buf.String())
	}
}
