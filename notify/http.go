package notify

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Status is the body of the status route: every target's status, and whether quiet hours
// hold back warnings now.
type Status struct {
	Targets []TargetStatus `json:"targets"`
	Quiet   bool           `json:"quiet"`
}

// StatusHandler answers GET with Status as JSON. Mount it for signed-in users (the Control
// Center mounts it at GET /api/notify): it shows no URL and no secret.
func (n *Notifier) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Status{Targets: n.Status(), Quiet: n.QuietNow()})
	})
}

// TestRequest is the optional body of the test route.
type TestRequest struct {
	Target string `json:"target"` // "" sends to every target
}

// TestHandler answers POST with a test-send (SendTest) to the target the body names, or to all:
// 200 when every target took it, 502 when one failed, 404 for an unknown target; the body lists
// each target's answer. Mount it for admins only (the Control Center mounts it at
// POST /api/notify/test, behind its cross-origin protection); who is the signed-in user's name,
// for the message and the log.
func (n *Notifier) TestHandler(who func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req TestRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want a JSON body such as {"target": "phone"}, or none to test every target`})
			return
		}
		name := ""
		if who != nil {
			name = who(r)
		}
		results, err := n.SendTest(r.Context(), req.Target, name)
		if errors.Is(err, ErrUnknownTarget) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		status := http.StatusOK
		for _, res := range results {
			if !res.OK {
				status = http.StatusBadGateway
			}
		}
		writeJSON(w, status, map[string]any{"results": results})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing useful to do about it
}
