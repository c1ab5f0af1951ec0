package dashboard

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/pirack/pirack/topics"
)

// web holds the page templates and the static assets; the binary serves them from memory.
//
//go:embed web/templates/*.html web/static
var web embed.FS

func parseTemplates() (*template.Template, error) {
	return template.New("").Funcs(template.FuncMap{
		"displayMAC":     displayMAC,
		"fmtTime":        fmtTime,
		"isoTime":        isoTime,
		"switchText":     switchText,
		"ledText":        ledText,
		"locateText":     locateText,
		"locating":       func(l *Locate) bool { return l.running() },
		"removalTitle":   removalTitle,
		"removalRunning": func(x *Removal) bool { return x != nil && !x.done() },
		"alertFor":       func(since time.Time) string { return alertFor(since, time.Now()) },
		"worstAlert":     worstAlert,
		"tile":           func(n *Node, canCommand bool) tileView { return tileView{*n, canCommand} },
		"slot":           func(sl RowSlot, canCommand bool) slotView { return slotView{sl, canCommand} },
		"rowhead":        func(r Row, canCommand bool) rowHeadView { return rowHeadView{r, canCommand} },
	}).ParseFS(web, "web/templates/*.html")
}

// staticHandler serves the files of web/static under /static/, and nothing else: no directory
// listings, and nothing beside web/static. Rooted at web/, it served the templates' sources and
// listings through /static/%2e%2e/, which ServeMux does not clean.
func staticHandler() http.Handler {
	sub, err := fs.Sub(web, "web/static")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	fsh := http.FileServerFS(sub)
	return http.StripPrefix("/static", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The name FileServer will open: rooted, so ".." cannot climb out of sub.
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if fi, err := fs.Stat(sub, name); err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		// Revalidate, so a new binary's assets are picked up at once.
		w.Header().Set("Cache-Control", "no-cache")
		fsh.ServeHTTP(w, r)
	}))
}

// requirePage admits users with a session (or Basic auth) and sends the others to /login.
func (s *Server) requirePage(h func(http.ResponseWriter, *http.Request, principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, fail := s.authenticate(r)
		if fail != nil {
			if fail.status == http.StatusUnauthorized {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			setRetryAfter(w, fail.retryAfter)
			http.Error(w, fail.msg, fail.status)
			return
		}
		h(w, r, p)
	})
}

// rowView is one row of the rack page: its slots in order, then the Pis in no slot.
type rowView struct {
	Row
	Cells []cellView
}

// cellView is one place on a shelf: a Pi (Node set), or an empty slot.
type cellView struct {
	Node *Node
	RowSlot
}

// tileView is what the "tile" template renders: one Pi, and whether to offer commands.
type tileView struct {
	Node
	CanCommand bool
}

// slotView is what the "slot" template renders: an empty slot.
type slotView struct {
	RowSlot
	CanCommand bool
}

// rowHeadView is what the "rowhead" template renders.
type rowHeadView struct {
	Row
	CanCommand bool
}

type rackPage struct {
	User       string
	Role       string
	CanCommand bool
	// RemoteSystem offers Shut down… on the tiles (Config.RemoteSystem).
	RemoteSystem bool
	Rows         []rowView
	Alerts       []topics.Alert
	Online       int
	Total        int
	Blank        *Node // rendered into a <template> the script clones for Pis that appear later
	BlankSlot    RowSlot
	BlankRow     Row
	BlankAlert   topics.Alert
}

// handleRack serves GET /: the rack, one tile per Pi, grouped by row. The script then keeps it
// live from /api/events; the page is complete without it.
func (s *Server) handleRack(w http.ResponseWriter, r *http.Request, p principal) {
	page := rackPage{User: p.name, Role: string(p.role), CanCommand: p.canCommand(), RemoteSystem: s.cfg.RemoteSystem && p.canCommand()}
	byRow := make(map[string][]Node)
	for _, n := range s.rack.Nodes() {
		byRow[n.Row] = append(byRow[n.Row], n)
		page.Total++
		if n.Online() {
			page.Online++
		}
	}
	for _, r := range s.rack.Rows() {
		page.Rows = append(page.Rows, rowView{Row: r, Cells: cells(r, byRow[r.Name])})
	}
	page.Alerts = s.rack.Alerts()
	page.Blank = &Node{State: StateUnknown}
	s.render(w, http.StatusOK, "rack.html", page)
}

// cells lays out a row: each slot with its Pi or empty, then the Pis in no slot. nodes are the
// row's, in Nodes order (placed by slot, then unplaced).
func cells(r Row, nodes []Node) []cellView {
	out := make([]cellView, 0, len(r.Slots)+len(nodes))
	bySlot := make(map[int]*Node)
	for i := range nodes {
		if nodes[i].Slot > 0 {
			bySlot[nodes[i].Slot] = &nodes[i]
		}
	}
	for _, sl := range r.Slots {
		out = append(out, cellView{Node: bySlot[sl.Slot], RowSlot: sl})
	}
	for i := range nodes {
		if nodes[i].Slot == 0 || nodes[i].Slot > len(r.Slots) {
			out = append(out, cellView{Node: &nodes[i]})
		}
	}
	return out
}

type loginPage struct {
	Error string
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, fail := s.authenticate(r); fail == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login.html", loginPage{})
}

// handleLogin serves POST /login. Attempts are counted per remote address as they start; past
// the limit every attempt, right or wrong, gets 429 until the window passes.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "login.html", loginPage{Error: "The form could not be read; reload the page and try again."})
		return
	}
	name, pw := r.PostForm.Get("user"), r.PostForm.Get("password")
	u, fail := s.checkLogin(r, "form", name, pw)
	if fail != nil {
		page := loginPage{Error: "Wrong user name or password."}
		switch fail.status {
		case http.StatusTooManyRequests:
			setRetryAfter(w, fail.retryAfter)
			page.Error = "Too many failed logins. Wait a minute and try again."
		case http.StatusServiceUnavailable:
			page.Error = "Credentials could not be checked; see the server log."
		case http.StatusForbidden:
			page.Error = "This account is for MQTT clients; sign in with an admin or viewer account."
		}
		s.render(w, fail.status, "login.html", page)
		return
	}
	// A session that cannot be audited is not opened.
	if err := s.record(r, AuditEntry{Action: AuditLogin, Outcome: AuditAllowed, User: u.Name, Role: string(u.Role), Via: "form"}); err != nil {
		s.render(w, http.StatusServiceUnavailable, "login.html", loginPage{Error: "Sign-in could not be written to the audit log, so it is refused; see the server log."})
		return
	}
	// A fresh id on every login, so a session id planted before login is worthless.
	id, exp := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		Expires:  exp,
		HttpOnly: true,
		Secure:   s.secureCookies,
		SameSite: http.SameSiteLaxMode,
	})
	s.log.Info("login", "user", u.Name, "role", u.Role, "remote", remoteIP(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// handleLogout serves POST /logout: a POST, so another site cannot log the user out with an
// image tag.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sess, ok := s.sessions.get(c.Value); ok {
			// Logging out is always allowed: a failed audit write is logged and counted only.
			s.record(r, AuditEntry{Action: AuditLogout, Outcome: AuditAllowed, User: sess.User, Role: string(sess.Role), Via: "session"})
		}
		s.sessions.delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// render executes a page into memory first, so a template error becomes a clean 500 rather
// than half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := s.pages.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// The sentences below (not numbers: those are written by web/static/fmt.js alone) have twins
// in web/static/app.js, which re-renders tiles live; keep them in step.

// displayMAC is topics.DisplayMAC, named for the templates.
var displayMAC = topics.DisplayMAC

const dash = "–"

// ledText says what the LED does in words, so that the blinking is not shown by animation
// alone: "LED blinking (blink by admin)".
// locateText says who is looking for the Pi and, once found, how long it took.
func locateText(l *Locate) string {
	switch {
	case l == nil:
		return ""
	case !l.FoundAt.IsZero():
		return "Found at the rack " + fmtDuration(time.Duration(l.FoundAfterS*float64(time.Second))) + " after " + l.By + "'s Locate"
	case !l.EndedAt.IsZero() && l.EndedBy != "":
		return l.By + "'s Locate stopped by " + l.EndedBy + ", not found"
	case !l.EndedAt.IsZero():
		return l.By + "'s Locate ran out after " + fmtDuration(l.EndedAt.Sub(l.At)) + ", not found"
	case l.Action == topics.LEDIdentify:
		return "Locating for " + l.By + ": press its button when found"
	}
	return "Blinking for " + l.By
}

// worstAlert is the severity a tile's stripe shows: critical, warning, or "" (twin in app.js).
func worstAlert(alerts []topics.Alert) string {
	worst := ""
	for _, a := range alerts {
		if a.Severity == topics.SeverityCritical {
			return topics.SeverityCritical
		}
		worst = topics.SeverityWarning
	}
	return worst
}

// alertFor is how long an alert's condition has lasted, for the banner: "for 3 min 12 s". Twin
// of alertFor in app.js, which keeps it running.
func alertFor(since, now time.Time) string {
	if since.IsZero() {
		return ""
	}
	return "for " + fmtDuration(max(0, now.Sub(since)))
}

// fmtDuration writes d for people: "42 s", "3 min 12 s", "1 h 5 min". Twin of fmtDuration in
// app.js: first render and live updates must say the same.
func fmtDuration(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		if s%60 == 0 {
			return fmt.Sprintf("%d min", s/60)
		}
		return fmt.Sprintf("%d min %d s", s/60, s%60)
	}
	if s/60%60 == 0 {
		return fmt.Sprintf("%d h", s/3600)
	}
	return fmt.Sprintf("%d h %d min", s/3600, s/60%60)
}

// foundText describes a found press for the event log.
func foundText(r *model, mac string) string {
	if n, ok := r.node(mac); ok && n.Locate != nil && !n.Locate.FoundAt.IsZero() {
		return locateText(n.Locate)
	}
	return "found (a press while its LED blinked)"
}

func ledText(l *LED) string {
	if l == nil {
		return ""
	}
	t := "LED " + l.State
	switch {
	case l.Action != "" && l.By != "":
		t += " (" + l.Action + " by " + l.By + ")"
	case l.Action != "":
		t += " (" + l.Action + ")"
	}
	return t
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("2006-01-02 15:04:05")
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
