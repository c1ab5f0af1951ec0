package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/audit"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// principal is the authenticated user of a request.
type principal struct {
	name string
	role auth.Role
	via  string // how they authenticated: "session" or "basic"
}

func (p principal) canCommand() bool { return p.role == auth.RoleAdmin }

// mayUseDashboard: agents and automations are MQTT identities; only people log in here.
func mayUseDashboard(r auth.Role) bool { return r == auth.RoleAdmin || r == auth.RoleViewer }

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// UserName is the name of the user a Config.Routes handler was called for (AccessUser,
// AccessAdmin), so that it can log who did what; "" on a public route.
func UserName(r *http.Request) string { return principalFrom(r.Context()).name }

const sessionCookie = "pirack_session"

// authFailure says why a request is not authenticated, as an HTTP status and a message.
type authFailure struct {
	status     int
	msg        string
	retryAfter time.Duration // with 429: when to try again
}

// authenticate identifies the user by session cookie or, for scripts, HTTP Basic auth. Basic
// attempts count against the same per-address limit as the login form.
func (s *Server) authenticate(r *http.Request) (principal, *authFailure) {
	if name, pw, ok := r.BasicAuth(); ok {
		u, fail := s.checkLogin(r, "basic", name, pw)
		if fail != nil {
			return principal{}, fail
		}
		return principal{name: u.Name, role: u.Role, via: "basic"}, nil
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sess, ok := s.sessions.get(c.Value); ok {
			return s.checkSession(r, c.Value, sess)
		}
	}
	return principal{}, &authFailure{status: http.StatusUnauthorized, msg: "login required: sign in at /login, or use HTTP Basic auth"}
}

// checkLogin checks a name and password given by the login form or Basic auth (via), within
// the per-address limit: past it the attempt is refused with 429 before any password is
// checked, and only the first refusal of a window is audited, so a flood of guesses cannot
// rotate real entries out of the audit log. Failures are logged and audited.
func (s *Server) checkLogin(r *http.Request, via, name, pw string) (auth.User, *authFailure) {
	ip := remoteIP(r)
	done, refused := s.limiter.begin(ip)
	if done == nil {
		s.loginsLimited.Add(1)
		if refused.first {
			s.log.Warn("login attempts refused: too many failures from this address", "user", clipLog(name), "remote", ip, "via", via,
				"limit_per_minute", s.cfg.LoginLimit)
			s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, User: clipAudit(name), Via: via,
				Reason: "too many failed logins from this address; refused unchecked, and not audited again this minute"})
		}
		return auth.User{}, &authFailure{status: http.StatusTooManyRequests, msg: "too many failed logins; wait a minute", retryAfter: refused.retryAfter}
	}
	u, err := s.cfg.Auth.Authenticate(name, pw)
	if err != nil && !errors.Is(err, auth.ErrBadCredentials) {
		done(true) // not the guesser's failure: the users file could not be read
		s.log.Error("check credentials", "user", clipLog(name), "err", err)
		return auth.User{}, &authFailure{status: http.StatusServiceUnavailable, msg: "could not check credentials; see the server log"}
	}
	done(err == nil)
	if err != nil {
		s.log.Info("login refused", "user", clipLog(name), "remote", ip, "via", via, "err", err)
		s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, User: clipAudit(name), Via: via, Reason: "wrong user name or password"})
		return auth.User{}, &authFailure{status: http.StatusUnauthorized, msg: "wrong user name or password"}
	}
	if !mayUseDashboard(u.Role) {
		s.log.Info("login refused for role", "user", u.Name, "role", u.Role, "remote", ip, "via", via)
		s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, User: u.Name, Role: string(u.Role), Via: via, Reason: "role may not use the Control Center"})
		return auth.User{}, &authFailure{status: http.StatusForbidden, msg: fmt.Sprintf("role %q may not use the Control Center; use an admin or viewer account", u.Role)}
	}
	return u, nil
}

// bearer serves next to a request whose bearer token check admits, and hands a request
// without a bearer token to otherwise (the route's Access). Token guesses share the
// per-address limit of password guesses, and refusals are logged and audited like them.
func (s *Server) bearer(check func(string) bool, next, otherwise http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			otherwise.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		ip := remoteIP(r)
		done, refused := s.limiter.begin(ip)
		if done == nil {
			s.loginsLimited.Add(1)
			if refused.first {
				s.log.Warn("bearer tokens refused: too many failures from this address", "remote", ip, "limit_per_minute", s.cfg.LoginLimit)
				s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, Via: "bearer",
					Reason: "too many failed logins from this address; refused unchecked, and not audited again this minute"})
			}
			setRetryAfter(w, refused.retryAfter)
			writeError(w, http.StatusTooManyRequests, "too many failed logins; wait a minute")
			return
		}
		ok := check(strings.TrimSpace(token))
		done(ok)
		if !ok {
			s.log.Info("bearer token refused", "remote", ip, "path", clipLog(r.URL.Path))
			s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditDenied, Via: "bearer", Reason: "wrong bearer token"})
			writeError(w, http.StatusUnauthorized, "wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkSession looks the session's user up again, so that removing a user or changing its
// role or password (pirack user remove, set, passwd) takes effect on its next request, not
// when the session expires. The users file is reread only when it changed.
func (s *Server) checkSession(r *http.Request, id string, sess session) (principal, *authFailure) {
	if strings.HasPrefix(sess.User, kioskPrefix) {
		return s.checkKiosk(id, sess)
	}
	u, err := s.cfg.Auth.Lookup(sess.User)
	if err != nil && !errors.Is(err, auth.ErrBadCredentials) {
		s.log.Error("look up session user", "user", sess.User, "err", err)
		return principal{}, &authFailure{status: http.StatusServiceUnavailable, msg: "could not check the session's user; see the server log"}
	}
	var why string
	switch {
	case err != nil:
		why = "user removed"
	case pwTag(u.Hash) != sess.Hash:
		why = "password changed, or user made again"
	case !mayUseDashboard(u.Role):
		why = fmt.Sprintf("role is now %s", u.Role)
	}
	if why != "" {
		s.sessions.delete(id)
		s.log.Info("session ended", "user", sess.User, "reason", why, "remote", remoteIP(r))
		s.record(r, AuditEntry{Action: AuditLogout, Outcome: AuditAllowed, User: sess.User, Role: string(sess.Role), Via: "session", Reason: "session ended: " + why})
		return principal{}, &authFailure{status: http.StatusUnauthorized, msg: "your session has ended (" + why + "); sign in again at /login"}
	}
	return principal{name: u.Name, role: u.Role, via: "session"}, nil
}

// stillAuthorized says whether the user a live stream was opened for may still watch it, checked
// at each heartbeat: a user removed, demoted or given a new password stops receiving the rack
// within one heartbeat, not when its stream happens to reconnect.
func (s *Server) stillAuthorized(r *http.Request) bool {
	p := principalFrom(r.Context())
	if p.via == "session" || p.via == "kiosk" {
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			return false
		}
		sess, ok := s.sessions.get(c.Value)
		if !ok {
			return false // ended meanwhile: logged out, or by a request that found the user changed
		}
		_, fail := s.checkSession(r, c.Value, sess)
		return fail == nil
	}
	u, err := s.cfg.Auth.Lookup(p.name)
	return err == nil && mayUseDashboard(u.Role)
}

// requireUser admits authenticated users, answering JSON errors otherwise.
func (s *Server) requireUser(h http.HandlerFunc) http.Handler {
	return s.requireAPI(false, "", h)
}

// requireAdmin admits admins only. A refused attempt at a command (action not "") is audited.
func (s *Server) requireAdmin(action string, h http.HandlerFunc) http.Handler {
	return s.requireAPI(true, action, h)
}

func (s *Server) requireAPI(admin bool, action string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, fail := s.authenticate(r)
		if fail != nil {
			setRetryAfter(w, fail.retryAfter)
			writeError(w, fail.status, fail.msg)
			return
		}
		if admin && !p.canCommand() {
			if action != "" {
				mac, err := topics.NormalizeMAC(r.PathValue("mac"))
				if err != nil {
					mac = clipAudit(r.PathValue("mac"))
				}
				s.record(r, AuditEntry{Action: action, Outcome: AuditDenied, User: p.name, Role: string(p.role), Via: p.via, MAC: mac, Reason: "needs the admin role"})
			}
			writeError(w, http.StatusForbidden, "this needs an admin account; viewers can look but not command")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// record completes an audit entry with the time, a request id and the client address, and
// writes it. A non-nil error means it is not durable: the action must not be carried out.
func (s *Server) record(r *http.Request, e AuditEntry) error {
	if e.ID == "" {
		e.ID = audit.NewID()
	}
	e.Time = s.cfg.Now().UTC()
	e.Remote = remoteIP(r)
	err := s.audit.Append(e)
	if err != nil {
		s.auditErrors.Add(1)
	}
	return err
}

// AuditAction writes an allowed audit entry for an action of a Config.Routes handler by the
// request's user, before it is carried out: issuing an enrolment token. A non-nil error means
// the entry is not durable and the action must not be done (AuditUnavailable says so).
func (s *Server) AuditAction(r *http.Request, action string, params map[string]any) error {
	return s.record(r, commandEntry(r, action, "", params))
}

// AuditUnavailable is the answer to an action that could not be audited, and so was not done.
const AuditUnavailable = auditUnavailable

// commandEntry is the audit entry of a command by the request's principal.
func commandEntry(r *http.Request, action, mac string, params map[string]any) AuditEntry {
	p := principalFrom(r.Context())
	return AuditEntry{ID: audit.NewID(), Action: action, Outcome: AuditAllowed, User: p.name, Role: string(p.role), Via: p.via, MAC: mac, Params: params}
}

// auditUnavailable is the answer to a command that could not be audited, and so was not run.
const auditUnavailable = "not done: the command could not be written to the audit log, and unaudited commands are refused; see the server log (is the disk full?)"

// clipAudit bounds a foreign string, such as a user name typed at a failed login, before it
// goes into the audit log.
func clipAudit(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// handleNode serves GET /api/nodes/{mac}.
func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// lookup resolves the {mac} path value, in any form topics.NormalizeMAC accepts, to a known
// node, writing a 400 or 404 when it cannot.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (Node, bool) {
	mac, err := topics.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v; expected a MAC address such as b827eb3f1a2c or b8:27:eb:3f:1a:2c", err))
		return Node{}, false
	}
	n, ok := s.rack.node(mac)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no Pi with MAC %s has reported to this Control Center", mac))
		return Node{}, false
	}
	return n, true
}

// blinkRequest is the optional body of POST /api/nodes/{mac}/blink; zero fields take the
// defaults of topics.LEDCommand.WithDefaults.
type blinkRequest struct {
	Count    int `json:"count"`
	PeriodMS int `json:"period_ms"`
}

const maxBodyBytes = 4 << 10

// handleBlink serves POST /api/nodes/{mac}/blink: it publishes a blink command, with an expiry,
// on the Pi's LED topic, and answers 202 with the command: accepted, since nothing confirms the
// agent received it.
func (s *Server) handleBlink(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var req blinkRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body must be empty or JSON like {\"count\": 5, \"period_ms\": 500}: %v", err))
		return
	}
	p := principalFrom(r.Context())
	now := s.cfg.Now().UTC()
	cmd := topics.LEDCommand{
		Action:    topics.LEDBlink,
		Count:     req.Count,
		PeriodMS:  req.PeriodMS,
		By:        p.name,
		IssuedAt:  now,
		ExpiresAt: now.Add(s.cfg.CommandTTL),
	}.WithDefaults()
	if err := s.sendLED(r, n, AuditBlink, cmd); err != nil {
		writeError(w, err.status, err.msg)
		return
	}
	writeJSON(w, http.StatusAccepted, cmd)
}

// sendLED audits cmd for n, then publishes it and records it on the rack. A failure says what
// to answer.
func (s *Server) sendLED(r *http.Request, n Node, action string, cmd topics.LEDCommand) *authFailure {
	payload, err := topics.Encode(cmd)
	if err != nil {
		return &authFailure{status: http.StatusBadRequest, msg: err.Error()}
	}
	entry := commandEntry(r, action, n.MAC, map[string]any{
		"action": cmd.Action, "count": cmd.Count, "period_ms": cmd.PeriodMS, "timeout_s": cmd.TimeoutS,
		"issued_at": cmd.IssuedAt, "expires_at": cmd.ExpiresAt,
	})
	if err := s.record(r, entry); err != nil {
		return &authFailure{status: http.StatusServiceUnavailable, msg: auditUnavailable}
	}
	if err := s.rack.locate(r.Context(), n, cmd, payload); err != nil {
		entry.Outcome, entry.Reason = AuditFailed, clipLog("publish: "+err.Error())
		s.record(r, entry)
		return &authFailure{status: http.StatusBadGateway, msg: "could not publish the LED command to the broker; try again"}
	}
	return nil
}

// locateRequest is the optional body of the locate endpoints.
type locateRequest struct {
	// ForS is how long the LED flashes if nobody presses the Pi's button: 1 to 3600 s, 0 for
	// "until found" (3600 s, the most an agent takes).
	ForS int `json:"for_s"`
}

// locateCommand reads a locate request and makes the identify command of the signed-in user.
func (s *Server) locateCommand(w http.ResponseWriter, r *http.Request) (topics.LEDCommand, bool) {
	var req locateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body must be empty or JSON like {\"for_s\": 600}: %v", err))
		return topics.LEDCommand{}, false
	}
	if req.ForS < 0 || req.ForS > maxLocateS {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("for_s %d: want 1 to %d seconds, or 0 for until found", req.ForS, maxLocateS))
		return topics.LEDCommand{}, false
	}
	if req.ForS == 0 {
		req.ForS = maxLocateS
	}
	now := s.cfg.Now().UTC()
	return topics.LEDCommand{Action: topics.LEDIdentify, TimeoutS: req.ForS, By: principalFrom(r.Context()).name,
		IssuedAt: now, ExpiresAt: now.Add(s.cfg.CommandTTL)}.WithDefaults(), true
}

// maxLocateS is the longest locate, the most an agent's identify runs (topics.LEDCommand).
const maxLocateS = 3600

// handleLocate serves POST /api/nodes/{mac}/locate: the Pi's LED flashes until someone presses
// its button at the rack, or for_s runs out.
func (s *Server) handleLocate(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	cmd, ok := s.locateCommand(w, r)
	if !ok {
		return
	}
	if fail := s.sendLED(r, n, AuditLocate, cmd); fail != nil {
		writeError(w, fail.status, fail.msg)
		return
	}
	writeJSON(w, http.StatusAccepted, cmd)
}

// handleLocateStop serves POST /api/nodes/{mac}/locate/stop: the LED goes off, the note goes.
func (s *Server) handleLocateStop(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	now := s.cfg.Now().UTC()
	cmd := topics.LEDCommand{Action: topics.LEDOff, By: principalFrom(r.Context()).name, IssuedAt: now,
		ExpiresAt: now.Add(s.cfg.CommandTTL)}.WithDefaults()
	if fail := s.sendLED(r, n, AuditLocate, cmd); fail != nil {
		writeError(w, fail.status, fail.msg)
		return
	}
	writeJSON(w, http.StatusAccepted, cmd)
}

// handleLocateMany serves POST /api/rows/{row}/locate (every Pi of the row) and POST
// /api/locate/selected (every selected Pi): each online Pi's LED flashes until found. It
// answers with the Pis it was sent to; offline ones are skipped, and listed.
func (s *Server) handleLocateMany(w http.ResponseWriter, r *http.Request) {
	row := r.PathValue("row")
	cmd, ok := s.locateCommand(w, r)
	if !ok {
		return
	}
	var sent, skipped []string
	for _, n := range s.rack.Nodes() {
		if (row != "" && n.Row != row) || (row == "" && !n.Selected) {
			continue
		}
		if n.State == StateOffline {
			skipped = append(skipped, n.MAC)
			continue
		}
		if fail := s.sendLED(r, n, AuditLocate, cmd); fail != nil {
			writeError(w, fail.status, fail.msg)
			return
		}
		sent = append(sent, n.MAC)
	}
	if len(sent) == 0 && len(skipped) == 0 {
		what := "no Pi is selected"
		if row != "" {
			what = "row " + clipLog(row) + " has no Pi"
		}
		writeError(w, http.StatusNotFound, what)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Sent    []string `json:"sent"`
		Offline []string `json:"offline,omitempty"`
	}{sent, skipped})
}

// handleClear serves POST /api/nodes/{mac}/clear: the operator has dealt with the selected Pi.
func (s *Server) handleClear(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if err := s.record(r, commandEntry(r, AuditClear, n.MAC, nil)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, s.rack.clearSelection(n.MAC, principalFrom(r.Context()).name))
}

// handleSelect serves POST /api/nodes/{mac}/select: an operator picked the Pi on the page, as
// a press of its button would.
func (s *Server) handleSelect(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if err := s.record(r, commandEntry(r, AuditSelect, n.MAC, nil)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, s.rack.selectNode(n.MAC, principalFrom(r.Context()).name))
}

// handleApprove serves POST /api/nodes/{mac}/approve: an enrolled Pi waiting for approval is
// approved and takes its row's next free slot (409 if it is not waiting).
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if !s.rack.pending(n.MAC) {
		writeError(w, http.StatusConflict, displayMAC(n.MAC)+" is not waiting for approval")
		return
	}
	if err := s.record(r, commandEntry(r, AuditApprove, n.MAC, nil)); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	slot, err := s.rack.approve(n.Row, n.MAC, "approved on the page", principalFrom(r.Context()).name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		MAC  string `json:"mac"`
		Row  string `json:"row"`
		Slot int    `json:"slot"`
	}{n.MAC, n.Row, slot})
}

// passwordChange is the body of POST /api/me/password.
type passwordChange struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

// handlePassword serves POST /api/me/password: the signed-in user changes their own password,
// giving the current one (checked within the login limit, as a login is). The session that
// changed it stays signed in; the user's other sessions end (a stolen cookie dies with the old
// password).
func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request) {
	changer, ok := s.cfg.Auth.(PasswordChanger)
	if !ok {
		writeError(w, http.StatusNotImplemented, "passwords are not managed here")
		return
	}
	var req passwordChange
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "want {\"current\": ..., \"new\": ...}: "+err.Error())
		return
	}
	p := principalFrom(r.Context())
	if _, fail := s.checkLogin(r, "password change", p.name, req.Current); fail != nil {
		if fail.status == http.StatusUnauthorized {
			fail.msg = "the current password is wrong"
		}
		if fail.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(fail.retryAfter.Seconds()+1)))
		}
		writeError(w, fail.status, fail.msg)
		return
	}
	if req.New == req.Current {
		writeError(w, http.StatusBadRequest, "the new password is the current one")
		return
	}
	if err := changer.SetPassword(p.name, req.New); err != nil {
		if errors.Is(err, auth.ErrInvalidPassword) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the new password must be %d to %d bytes long", auth.MinPasswordLen, auth.MaxPasswordLen))
			return
		}
		s.log.Error("change password", "user", p.name, "err", err)
		writeError(w, http.StatusInternalServerError, "the password could not be saved: "+err.Error())
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil && p.via == "session" {
		if u, err := s.cfg.Auth.Lookup(p.name); err == nil {
			s.sessions.keep(c.Value, u.Hash)
		}
	}
	s.record(r, AuditEntry{Action: AuditPassword, Outcome: AuditAllowed, User: p.name, Role: string(p.role), Via: p.via})
	s.log.Info("password changed", "user", p.name, "remote", remoteIP(r))
	writeJSON(w, http.StatusOK, struct {
		Changed bool `json:"changed"`
	}{true})
}

// handleClearAll serves POST /api/selection/clear: every selection is cleared at once.
func (s *Server) handleClearAll(w http.ResponseWriter, r *http.Request) {
	macs := s.rack.state.selectedBefore(time.Time{})
	if err := s.record(r, commandEntry(r, AuditClear, "", map[string]any{"all": true, "count": len(macs)})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	by := principalFrom(r.Context()).name
	for _, mac := range macs {
		s.rack.clearSelection(mac, by)
	}
	writeJSON(w, http.StatusOK, struct {
		Cleared int `json:"cleared"`
	}{len(macs)})
}

// ackRequest is the body of POST /api/alerts/ack.
type ackRequest struct {
	Row  string `json:"row"`
	MAC  string `json:"mac"` // "" for a row's own alert
	Rule string `json:"rule"`
	Note string `json:"note"`
	// ForS silences the alert for that long (seconds); 0 acknowledges it until it clears.
	ForS int `json:"for_s"`
	// Undo takes the acknowledgement back.
	Undo bool `json:"undo"`
}

// handleAck serves POST /api/alerts/ack: someone is on it (a note says what), or it is
// silenced for for_s; either way it stops counting and notifying until it clears (or the
// silence ends).
func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	var req ackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"row": "r1", "mac": "...", "rule": "temp_high", "note": "...", "for_s": 0}: `+err.Error())
		return
	}
	if req.ForS < 0 || req.ForS > 7*24*3600 || len(req.Note) > 200 {
		writeError(w, http.StatusBadRequest, "for_s is 0 (until it clears) to 604800 (a week); a note is at most 200 bytes")
		return
	}
	raised := false
	for _, a := range s.rack.Alerts() {
		if a.Row == req.Row && a.MAC == req.MAC && a.Rule == req.Rule {
			raised = true
		}
	}
	if !raised && !req.Undo {
		writeError(w, http.StatusNotFound, "no such alert is raised (it may have cleared)")
		return
	}
	if err := s.record(r, commandEntry(r, AuditAck, req.MAC, map[string]any{"row": req.Row, "rule": req.Rule, "note": req.Note, "for_s": req.ForS, "undo": req.Undo})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	key := alertKey(req.Row, req.MAC, req.Rule)
	if req.Undo {
		s.rack.holds.unack(key)
	} else {
		now := s.cfg.Now().UTC()
		ack := Ack{By: principalFrom(r.Context()).name, Note: req.Note, At: now}
		if req.ForS > 0 {
			ack.Until = now.Add(time.Duration(req.ForS) * time.Second)
		}
		s.rack.holds.ack(key, ack)
	}
	s.rack.holdChanged(req.Row, req.MAC)
	writeJSON(w, http.StatusOK, struct {
		Held bool `json:"held"`
	}{!req.Undo})
}

// maintenanceRequest is the body of the maintenance endpoints.
type maintenanceRequest struct {
	On   bool   `json:"on"`
	Note string `json:"note"`
}

// handleMaintenance serves POST /api/nodes/{mac}/maintenance and POST
// /api/rows/{row}/maintenance: {"on": true, "note": "..."} holds back every alert of the Pi or
// row (shown as such, not counted, not notified) until {"on": false}.
func (s *Server) handleMaintenance(w http.ResponseWriter, r *http.Request) {
	var req maintenanceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Note) > 200 {
		writeError(w, http.StatusBadRequest, `want {"on": true, "note": "..."} (a note of at most 200 bytes)`)
		return
	}
	var key, row, mac string
	if name := r.PathValue("row"); name != "" {
		if _, ok := s.rack.row(name); !ok {
			writeError(w, http.StatusNotFound, "no row "+clipLog(name))
			return
		}
		key, row = rowKey(name), name
	} else {
		n, ok := s.lookup(w, r)
		if !ok {
			return
		}
		key, row, mac = n.MAC, n.Row, n.MAC
	}
	if err := s.record(r, commandEntry(r, AuditMaintenance, mac, map[string]any{"row": row, "on": req.On, "note": req.Note})); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	var m *Maintenance
	if req.On {
		m = &Maintenance{By: principalFrom(r.Context()).name, Note: req.Note, At: s.cfg.Now().UTC()}
	}
	s.rack.holds.setMaintenance(key, m)
	s.rack.holdChanged(row, mac)
	writeJSON(w, http.StatusOK, struct {
		Maintenance *Maintenance `json:"maintenance"`
	}{m})
}

// systemRequest is the body of POST /api/nodes/{mac}/system.
type systemRequest struct {
	Action string `json:"action"` // topics.SystemShutdown or SystemReboot
	// Confirm must repeat the Pi's hostname (or its MAC when it has none): a shutdown is not
	// something to send to the wrong tile by a slip.
	Confirm string `json:"confirm"`
}

// systemTTL is how long a shutdown or reboot may wait for its Pi.
const systemTTL = time.Minute

// handleSystem serves POST /api/nodes/{mac}/system: {"action": "shutdown", "confirm":
// "<hostname>"} shuts the Pi down (or reboots it), through its agent, when this control center
// allows it. Every attempt is audited, refusals included.
func (s *Server) handleSystem(w http.ResponseWriter, r *http.Request) {
	n, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var req systemRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"action": "shutdown" or "reboot", "confirm": "<the Pi's hostname>"}`)
		return
	}
	entry := commandEntry(r, AuditSystem, n.MAC, map[string]any{"action": clipAudit(req.Action)})
	deny := func(status int, why string) {
		entry.Outcome, entry.Reason = AuditDenied, why
		s.record(r, entry)
		writeError(w, status, why)
	}
	name := n.Hostname
	if name == "" {
		name = n.MAC
	}
	switch {
	case !s.cfg.RemoteSystem:
		deny(http.StatusForbidden, "remote shutdown and reboot are off on this control center (pirack serve --remote-system, docs/control-center.md)")
		return
	case req.Action != topics.SystemShutdown && req.Action != topics.SystemReboot:
		deny(http.StatusBadRequest, "action "+strconv.Quote(clipLog(req.Action))+": want shutdown or reboot")
		return
	case req.Confirm != name:
		deny(http.StatusBadRequest, "confirm must repeat the Pi's name, "+strconv.Quote(name)+", to shut down or reboot it")
		return
	case n.State == StateOffline:
		deny(http.StatusConflict, displayMAC(n.MAC)+" is offline: there is nothing to shut down")
		return
	}
	if err := s.record(r, entry); err != nil {
		writeError(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	cmd, err := s.rack.sendSystem(r.Context(), n.MAC, n.Row, req.Action, principalFrom(r.Context()).name)
	if err != nil {
		entry.Outcome, entry.Reason = AuditFailed, clipLog("publish: "+err.Error())
		s.record(r, entry)
		writeError(w, http.StatusBadGateway, "could not publish the command to the broker; try again")
		return
	}
	writeJSON(w, http.StatusAccepted, cmd)
}

// Limits of GET /api/audit?limit=N.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// handleAudit serves GET /api/audit?limit=N, admins only: the last N audit entries, oldest
// first.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	limit := defaultAuditLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", clipLog(v), maxAuditLimit))
			return
		}
		limit = n
	}
	if s.audit.Path() == "" {
		writeError(w, http.StatusNotFound, "no audit file: the Control Center runs without an audit directory, so audit entries are in its log only")
		return
	}
	entries, err := s.audit.Tail(limit)
	if err != nil {
		s.log.Error("read audit log", "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the audit log; see the server log")
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

// handleEvents serves GET /api/events, a Server-Sent Events stream: a "snapshot" event with
// every node in rack order and a "rows" event with every row, then a "node" event per changed
// node, a "gone" event ({"mac": ...}) per forgotten node and a "row" event per changed row (its
// power, alerts, slots or assign mode), and a comment line every heartbeat so proxies keep the
// connection open. A client that falls behind is dropped; its EventSource reconnects and gets
// a fresh snapshot.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c, err := s.rack.hub.subscribe()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.rack.hub.unsubscribe(c)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// send writes one batch under a deadline, so a client that stopped reading cannot hold the
	// handler for ever. ErrNotSupported (for example a recorder in tests) is fine.
	send := func(write func() error) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		if err := write(); err != nil {
			s.log.Debug("live client gone", "remote", r.RemoteAddr, "err", err)
			return false
		}
		return rc.Flush() == nil
	}

	if !send(func() error {
		if _, err := io.WriteString(w, "retry: 3000\n"); err != nil {
			return err
		}
		if err := writeEvent(w, "snapshot", s.rack.Nodes()); err != nil {
			return err
		}
		if err := writeEvent(w, brokerKey, s.rack.brokerState()); err != nil {
			return err
		}
		return writeEvent(w, "rows", s.rack.Rows())
	}) {
		return
	}

	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	// batch fires when a batch of metrics-only changes has gathered (hub.go, metricsCoalesce).
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	defer batch.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-c.wake:
		case <-batch.C:
		case <-tick.C:
			if !s.stillAuthorized(r) {
				return // the page's EventSource reconnects, is refused and goes to the login page
			}
			if !send(func() error { _, err := io.WriteString(w, ": ping\n\n"); return err }) {
				return
			}
			continue
		}
		if wait := c.due(time.Now()); wait > 0 {
			batch.Reset(wait)
			continue
		}
		if !send(func() error { return s.writePending(w, c.take()) }) {
			return
		}
	}
}

// writePending writes the live events of the changed keys, each with its current state.
func (s *Server) writePending(w io.Writer, keys []string) error {
	for _, key := range keys {
		if key == brokerKey {
			if err := writeEvent(w, brokerKey, s.rack.brokerState()); err != nil {
				return err
			}
			continue
		}
		if name, ok := strings.CutPrefix(key, "row/"); ok {
			if row, ok := s.rack.row(name); ok {
				if err := writeEvent(w, "row", row); err != nil {
					return err
				}
			}
			continue
		}
		n, ok := s.rack.node(key)
		if !ok {
			// Forgotten: the page drops its tile.
			if err := writeEvent(w, "gone", struct {
				MAC string `json:"mac"`
			}{key}); err != nil {
				return err
			}
			continue
		}
		if err := writeEvent(w, "node", n); err != nil {
			return err
		}
	}
	return nil
}

// writeEvent writes one SSE event. JSON never contains a raw newline, so one data line suffices.
func writeEvent(w io.Writer, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do about it
}

// apiError is the body of every JSON error.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// setRetryAfter tells a refused client when to try again, in whole seconds rounded up; d <= 0
// sets nothing.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d <= 0 {
		return
	}
	w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
}

// remoteIP is the client address the login limit is kept by. X-Forwarded-For is not trusted:
// anyone could send it to dodge the limit.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
