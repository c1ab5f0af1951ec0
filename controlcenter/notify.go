package controlcenter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/notify"
	"github.com/pirack/pirack/topics"
)

// openNotifier builds the notifier from Config.NotifyFile, or else <data-dir>/notify.json if
// there is one. No file means no notifications (nil, nil).
func openNotifier(cc *ControlCenter) (*notify.Notifier, error) {
	cfg := cc.cfg
	path := cfg.NotifyFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, notify.FileName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	f, err := notify.LoadFile(path)
	if err != nil {
		return nil, err
	}
	n, err := notify.New(notify.Config{
		Bus: cc.bus, DataDir: cfg.DataDir, File: f, Logger: cfg.Logger.With("component", "notify"),
		// The dashboard holds what operators decided; it is built after the notifier.
		Held: func(a topics.Alert) bool { return cc.dash != nil && cc.dash.Rack().Held(a) },
		// Read when a notification is built, once the listener (made after the dashboard) is open.
		DashboardURL: func() string {
			if cc.httpLn == nil {
				return ""
			}
			return cc.HTTPURL()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("notifications (%s): %w", path, err)
	}
	cc.log.Info("notifications configured", "file", path, "targets", len(f.Targets))
	return n, nil
}

// notifyRoutes mounts the notifier's status for every signed-in user and its test-send for
// admins (audited), behind the dashboard's authentication and cross-origin protection.
func (cc *ControlCenter) notifyRoutes(n *notify.Notifier) []dashboard.Route {
	return []dashboard.Route{
		{Pattern: "GET /api/notify", Handler: n.StatusHandler(), Access: dashboard.AccessUser},
		{Pattern: "POST /api/notify/test", Handler: cc.audited(dashboard.AuditNotifyTest, n.TestHandler(dashboard.UserName)),
			Access: dashboard.AccessAdmin, Audit: dashboard.AuditNotifyTest},
	}
}

// audited writes an allowed audit entry of action before h runs, as the dashboard does for its
// own commands, and refuses the request (503) when the audit log cannot be written.
func (cc *ControlCenter) audited(action string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cc.dash.AuditAction(r, action, nil); err != nil {
			cc.log.Error("not done: the audit log cannot be written", "action", action, "user", dashboard.UserName(r), "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": dashboard.AuditUnavailable})
			return
		}
		h.ServeHTTP(w, r)
	})
}
