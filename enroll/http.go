package enroll

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/enroll/enrollapi"
	"github.com/pirack/pirack/topics"
)

// Approver is the dashboard's view of pending Pis (dashboard.Enrolment), over the users file.
type Approver struct{ Users *auth.Users }

// Pending is whether mac's agent account waits for approval.
func (a Approver) Pending(mac string) bool {
	u, ok := a.Users.Get(mac)
	return ok && u.Role == auth.RoleAgent && u.Pending
}

// Agents are every agent account.
func (a Approver) Agents() []auth.User {
	var out []auth.User
	for _, u := range a.Users.List() {
		if u.Role == auth.RoleAgent {
			out = append(out, u)
		}
	}
	return out
}

// Approve lets mac's agent account into the rack.
func (a Approver) Approve(mac string) error {
	return a.Users.Update(mac, func(u *auth.User) { u.Pending = false })
}

// Ports says where the embedded broker listens, for the answer; ok false means the control
// center runs on a foreign broker, where enrolment cannot create accounts.
type Ports func() (mqtt, mqtts int, ok bool)

// Handler serves POST /api/enroll, open to anyone: the token is the credential. An address gets
// 10 failed attempts per 10 minutes, so tokens cannot be guessed (80 bits, and short-lived).
func Handler(store *Store, users *auth.Users, ports Ports, log *slog.Logger) http.Handler {
	lim := &failures{m: map[string]*failWindow{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		if !lim.allowed(ip, time.Now()) {
			w.Header().Set("Retry-After", "600")
			writeError(w, http.StatusTooManyRequests, "too many failed enrolments from this address; wait 10 minutes")
			return
		}
		mqttPort, mqttsPort, ok := ports()
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "this control center runs on a foreign broker: add the Pi's account with pirack user add and the broker's own tools (docs/scale.md)")
			return
		}
		var req enrollapi.Request
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			lim.fail(ip, time.Now())
			writeError(w, http.StatusBadRequest, "the body must be a JSON enrolment request: "+err.Error())
			return
		}
		mac, err := topics.NormalizeMAC(req.MAC)
		if err != nil {
			lim.fail(ip, time.Now())
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		// A token enrols a new board, never takes over a registered one: that would give its
		// holder the Pi's identity and lock the real board out.
		if u, ok := users.Get(mac); ok && !u.Pending {
			lim.fail(ip, time.Now())
			log.Warn("enrolment refused: the MAC is registered", "mac", mac, "remote", r.RemoteAddr)
			writeError(w, http.StatusConflict, "a Pi with MAC "+mac+" is registered already; to enrol this board again, remove its account first (pirack user remove "+mac+")")
			return
		}
		row, err := store.Redeem(req.Token, mac)
		if err != nil {
			lim.fail(ip, time.Now())
			status := http.StatusForbidden
			if !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrUsed) {
				status = http.StatusInternalServerError
			}
			log.Warn("enrolment refused", "mac", mac, "remote", r.RemoteAddr, "err", err)
			writeError(w, status, err.Error())
			return
		}
		password := auth.GeneratePassword()
		// A board that enrolled but was not approved yet may enrol again (a new SD card): a new
		// secret, still waiting for approval.
		if err := users.Set(auth.User{Role: auth.RoleAgent, MAC: mac, Row: row, Pending: true}, password); err != nil {
			log.Error("enrolment: cannot save the agent's account", "mac", mac, "err", err)
			writeError(w, http.StatusInternalServerError, "the token is used, but the account could not be saved ("+err.Error()+"); issue a new token once fixed")
			return
		}
		log.Info("Pi enrolled; waiting for approval", "mac", mac, "row", row, "hostname", clip(req.Hostname), "model", clip(req.Model), "remote", r.RemoteAddr)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, enrollapi.Response{Username: mac, Password: password, Row: row, MQTTPort: mqttPort, MQTTSPort: mqttsPort})
	})
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// failures counts failed enrolments per address in 10-minute windows.
type failures struct {
	mu sync.Mutex
	m  map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

const (
	failLimit  = 10
	failPeriod = 10 * time.Minute
	maxWindows = 4096
)

func (f *failures) allowed(ip string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[ip]
	return w == nil || now.Sub(w.start) >= failPeriod || w.n < failLimit
}

func (f *failures) fail(ip string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[ip]
	if w == nil || now.Sub(w.start) >= failPeriod {
		if len(f.m) >= maxWindows {
			for k, old := range f.m {
				if now.Sub(old.start) >= failPeriod {
					delete(f.m, k)
				}
			}
			if len(f.m) >= maxWindows {
				return // bounded: under a flood from many addresses, stop counting new ones
			}
		}
		w = &failWindow{start: now}
		f.m[ip] = w
	}
	w.n++
}

// tokenRequest is the body of POST /api/enroll/tokens.
type tokenRequest struct {
	Row  string `json:"row"`
	TTLS int    `json:"ttl_s"` // 0: DefaultTTL
}

// TokenHandler serves POST /api/enroll/tokens for admins (the dashboard checks): {"row": "r1"}
// issues a token as `pirack enroll` does and answers it with the command to run on the Pi.
// audit records the issue before it is made (a token lets a Pi join the rack): when it fails,
// no token is issued and the answer is 503 with unaudited as its message.
func TokenHandler(store *Store, by func(*http.Request) string, audit func(r *http.Request, row string, ttl time.Duration) error,
	unaudited string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req tokenRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `want {"row": "r1"} (and "ttl_s", 60 to 86400)`)
			return
		}
		if err := topics.ValidateRow(req.Row); err != nil {
			writeError(w, http.StatusBadRequest, "row: "+err.Error())
			return
		}
		ttl := time.Duration(req.TTLS) * time.Second
		if ttl == 0 {
			ttl = DefaultTTL
		}
		if err := checkTTL(ttl); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := audit(r, req.Row, ttl); err != nil {
			log.Error("enrolment token not issued: the audit log cannot be written", "row", req.Row, "by", by(r), "err", err)
			writeError(w, http.StatusServiceUnavailable, unaudited)
			return
		}
		token, exp, err := store.Issue(req.Row, ttl, by(r))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		log.Info("enrolment token issued", "row", req.Row, "by", by(r), "expires", exp)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, struct {
			Token   string    `json:"token"`
			Row     string    `json:"row"`
			Expires time.Time `json:"expires"`
			Command string    `json:"command"`
		}{token, req.Row, exp, "sudo pirack-agent enroll " + scheme + "://" + r.Host + " " + token})
	})
}
