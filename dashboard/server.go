package dashboard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/audit"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/topics"
)

// Authenticator checks a user name and password, and looks a signed-in user up again.
// *auth.Users implements it; it returns auth.ErrBadCredentials for a wrong name or password
// and for an unknown user, and caches, so calling Authenticate on every Basic-auth API request
// and Lookup on every request with a session is cheap.
type Authenticator interface {
	Authenticate(name, password string) (auth.User, error)
	Lookup(name string) (auth.User, error)
}

var _ Authenticator = (*auth.Users)(nil)

// Enrolment knows the Pis that enrolled themselves and wait for an operator's approval
// (package enroll implements it over the users file).
type Enrolment interface {
	Pending(mac string) bool
	Approve(mac string) error
	// Agents are every agent account, for the Pis registered but never seen.
	Agents() []auth.User
}

// PasswordChanger sets a user's password; *auth.Users implements it. When Config.Auth does, a
// signed-in user may change their own password (POST /api/me/password).
type PasswordChanger interface {
	SetPassword(name, password string) error
}

var _ PasswordChanger = (*auth.Users)(nil)

// Refused is a client the broker refused at CONNECT (broker.Refusal), for the page.
type Refused struct {
	Username string    `json:"username"`
	ClientID string    `json:"client_id"`
	Address  string    `json:"address"`
	Reason   string    `json:"reason"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Count    int       `json:"count"`
}

// Config configures New: the Rack and the Server on top of it. Bus and Auth are required; every
// other zero value is usable.
type Config struct {
	Bus    bus.Bus       // required: where telemetry comes from and LED commands go
	Auth   Authenticator // required: checks logins and Basic auth; only admin and viewer may use the dashboard
	Logger *slog.Logger  // nil discards logs
	Now    func() time.Time
	// CommandTTL is the expiry put on LED commands, so a command queued for an offline Pi does
	// not fire long after the operator walked away; 0 means 2 minutes.
	CommandTTL time.Duration
	// SecureCookies marks the session cookie Secure; set it when served behind an HTTPS proxy.
	// It is implied by TLSCertFile.
	SecureCookies bool
	// TLSCertFile and TLSKeyFile, both set, make Serve speak HTTPS only, with Secure
	// cookies and HSTS. The key file must have mode 0600 (or 0400): New refuses a key others
	// can read. Both "" means plain HTTP.
	TLSCertFile string
	TLSKeyFile  string
	// StaleAfter is how long a Pi that is not offline may go without metrics (or, before the
	// first, since its birth) before it is shown stale. 0 means 3 times the Pi's own telemetry
	// interval, learned from its consecutive metrics (ts difference over seq difference,
	// clamped to 1 s - 10 min), and 3 x DefaultTelemetryInterval until learned. It is
	// presence.Rule.StaleAfter: when Alerts is set, its engine must have been given the same
	// (alerts.Config.Presence), or New fails, so that a tile and its stale alert never disagree.
	StaleAfter time.Duration
	// Enrolment, when set, holds enrolled Pis until approved: their tiles say "pending", and
	// a press of such a Pi's button (or the page's Approve) approves it and puts it into its
	// row's next free slot.
	Enrolment Enrolment
	// RemoteSystem lets admins shut Pis down and reboot them from the page and the API
	// (POST /api/nodes/{mac}/system). Off by default; the Pi's agent must allow it too.
	RemoteSystem bool
	// Power, when set, lets admins switch rows' smart plugs and Pis' hub ports (POST
	// /api/rows/{row}/power, /api/nodes/{mac}/power); nil: nothing can be switched.
	Power PowerSwitch
	// SelectionExpiry clears a selection this long after its press; 0 means
	// DefaultSelectionExpiry, negative never.
	SelectionExpiry time.Duration
	// Refusals, when set, lists the broker's latest refused CONNECTs (a Pi with an unknown MAC
	// or a wrong secret, say), the latest first.
	Refusals func() []Refused
	// Hearing, when set, says when the control center could not hear the Pis (its broker
	// lost, on a network bus): that silence turns no Pi stale (presence.Rule.Hearing), and the
	// page says the broker is lost. It must be the alert engine's too. nil: always hearing.
	Hearing *presence.Hearing
	// AuditDir is where the audit log, AuditFile, is appended to: one JSON line per login,
	// logout and command, synced before the command is carried out. "" means audit entries
	// go to Logger only. Login sessions are kept there too (SessionsFile), so that a restart
	// signs nobody out; "" keeps them in memory.
	AuditDir string
	// AuditMaxBytes is the size past which the audit log is rotated, before the entry that
	// would cross it: audit.log becomes audit.log.1, and AuditKeep rotated files are kept.
	// 0 means DefaultAuditMaxBytes (10 MiB); negative never rotates.
	AuditMaxBytes int64
	// History, when set, receives every new metrics sample, row power reading and event
	// (button presses, selections and clears, online and offline, Locate commands with who
	// sent them, alerts raised and cleared), and answers the Pi detail page's charts and
	// event log. *history.Store implements it; the caller opens it, runs its Run and closes
	// it after Rack.Run and Serve return. nil turns history off: no detail charts, no event log.
	History History
	// PressSaveTimeout bounds how long a button press published at QoS 1 waits for its event
	// to be committed to History before the broker acknowledges it. A press not saved by then
	// (the disk is full, or too slow) is refused: the embedded broker does not acknowledge it
	// and disconnects its agent, which sends it again when it reconnects. The publishing
	// agent's connection waits meanwhile, so keep it well under the agents' keepalive.
	// 0 means DefaultPressSaveTimeout (5 s).
	PressSaveTimeout time.Duration
	// Layout is where the rack's rows, slots and slot names are kept; nil keeps them in
	// memory only, lost at a restart.
	Layout *layout.Store
	// Alerts, when set, is fed what ingestion applies and ticked every second by Rack.Run; its
	// transitions are shown on the rack page and published retained, QoS 1, on
	// topics.AlertTopic. nil turns alerts off.
	Alerts *alerts.Engine
	// LoginLimit is how many login attempts (form or HTTP Basic) one address (an IPv4
	// address, an IPv6 /64) may have failed, or have in progress, in a minute; past it,
	// attempts are refused with 429 before any password is checked. 0 means
	// DefaultLoginLimit (5).
	LoginLimit int
	// Routes are mounted beside the dashboard's own routes, behind the same authentication,
	// security headers and cross-origin protection: an integration's endpoint, such as
	// Prometheus's /metrics. A pattern that clashes with the dashboard's makes New fail.
	Routes []Route
}

// Route is an extra HTTP route for Config.Routes.
type Route struct {
	Pattern string       // an http.ServeMux pattern with its method, such as "GET /metrics"
	Handler http.Handler // called once Access admits the request
	Access  Access
	// Token, when set, also admits a request carrying "Authorization: Bearer <token>" for
	// which it returns true, whatever Access asks: a scraper's read-only token, such as
	// Prometheus's. A refused token gets 401 and counts, as a failed login of its address,
	// against Config.LoginLimit; a request without a bearer token goes through Access.
	Token func(token string) bool
	// Audit, on an AccessAdmin route, is the audit action a refused call (not an admin) is
	// recorded under; the handler records what it allows (Server.AuditAction).
	Audit string
}

// Access says who may call a Route.
type Access int

// Accesses. The zero value asks for a signed-in user, so that a route is never public by
// omission.
const (
	// AccessUser admits the dashboard's users (admin and viewer), by session cookie or HTTP
	// Basic auth; others get a JSON 401 or 403.
	AccessUser Access = iota
	// AccessAdmin admits admins only.
	AccessAdmin
	// AccessPublic admits anyone.
	AccessPublic
)

// Defaults applied by New.
const (
	DefaultSelectionExpiry  = time.Hour
	DefaultCommandTTL       = 2 * time.Minute
	DefaultPressSaveTimeout = 5 * time.Second
)

// withDefaults fills in the zero values, in one place.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SelectionExpiry == 0 {
		c.SelectionExpiry = DefaultSelectionExpiry
	}
	if c.CommandTTL <= 0 {
		c.CommandTTL = DefaultCommandTTL
	}
	if c.LoginLimit <= 0 {
		c.LoginLimit = DefaultLoginLimit
	}
	if c.PressSaveTimeout <= 0 {
		c.PressSaveTimeout = DefaultPressSaveTimeout
	}
	return c
}

// HTTP server limits.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
	heartbeatInterval = 15 * time.Second
	sseWriteTimeout   = 10 * time.Second // a live client that cannot take an event this fast is dropped
	// bodyReadTimeout bounds the time from a request's start to the end of its body: a client
	// sending a body byte by byte would otherwise hold a connection and a goroutine for ever.
	// (http.Server.ReadTimeout would do it too, but it also cancels live streams.)
	bodyReadTimeout = 10 * time.Second
)

// Server is the Control Center's HTTP layer on top of its Rack: routes, pages, the JSON API,
// the live stream, sessions, the login limiter, the audit of commands and TLS. Its handlers
// parse a request, call the Rack and write the answer. Create it with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	rack     *Rack
	sessions *sessions
	kiosks   *kiosks // read-only links for wall displays
	limiter  *loginLimiter
	audit    auditor
	tls      *tls.Config // nil: plain HTTP
	pages    *template.Template
	handler  http.Handler

	secureCookies bool

	heartbeat   time.Duration
	bodyTimeout time.Duration

	auditErrors   atomic.Uint64 // audit entries that could not be written
	loginsLimited atomic.Uint64 // login attempts refused by the limiter, passwords unchecked
}

// New builds the Control Center, its Rack and the Server on top, and subscribes the Rack's
// ingestion to topics.AllFilter on cfg.Bus at once, so that the caller can do this before the
// broker accepts clients and no early event is lost.
func New(cfg Config) (*Server, error) {
	if cfg.Bus == nil {
		return nil, errors.New("dashboard: Config.Bus is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("dashboard: Config.Auth is required")
	}
	if cfg.LoginLimit < 0 {
		return nil, fmt.Errorf("dashboard: Config.LoginLimit %d: want 0 (the default, %d) or more failed logins a minute", cfg.LoginLimit, DefaultLoginLimit)
	}
	cfg = cfg.withDefaults()
	rule := presence.Rule{StaleAfter: cfg.StaleAfter, Hearing: cfg.Hearing}
	if err := rule.Validate(); err != nil {
		return nil, fmt.Errorf("dashboard: Config.StaleAfter: %w", err)
	}
	if cfg.Alerts != nil && cfg.Alerts.Presence() != rule {
		return nil, fmt.Errorf("dashboard: Config.StaleAfter %v and Hearing differ from the alert engine's presence rule (alerts.Config.Presence: stale after %v); "+
			"give both the same presence rule, so that a tile and its stale alert agree", cfg.StaleAfter, cfg.Alerts.Presence().StaleAfter)
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, fmt.Errorf("dashboard: parse templates: %w", err)
	}
	tlsConfig, err := loadTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	alog, err := audit.Open(cfg.AuditDir, audit.Options{MaxBytes: cfg.AuditMaxBytes, Now: cfg.Now, Logger: cfg.Logger.With("component", "audit")})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	lay := cfg.Layout
	if lay == nil {
		lay, _ = layout.Open("") // in memory: cannot fail
	}
	rk := &Rack{
		cfg:        cfg,
		log:        cfg.Logger,
		state:      newModel(cfg.Now, rule),
		hub:        newHub(defaultMaxPending),
		alerts:     newAlertState(cfg.Alerts),
		layout:     lay,
		assign:     assigner{rows: make(map[string]*Assign)},
		removals:   openRemovals(removalsPath(cfg.AuditDir), cfg.Logger.With("component", "removal")),
		sentSystem: sentSystem{m: make(map[string][]time.Time)},
		holds:      openHolds(holdsPath(cfg.AuditDir), cfg.Logger.With("component", "holds")),
		started:    cfg.Now(),
	}
	s := &Server{
		cfg:           cfg,
		log:           cfg.Logger,
		rack:          rk,
		sessions:      newSessions(cfg.Now, sessionsPath(cfg.AuditDir), cfg.Logger.With("component", "sessions")),
		kiosks:        openKiosks(kioskPath(cfg.AuditDir), cfg.Logger.With("component", "kiosk")),
		limiter:       newLoginLimiter(cfg.Now, cfg.LoginLimit),
		audit:         alog,
		tls:           tlsConfig,
		pages:         pages,
		heartbeat:     heartbeatInterval,
		bodyTimeout:   bodyReadTimeout,
		secureCookies: cfg.SecureCookies || tlsConfig != nil,
	}
	rk.audit = func(e AuditEntry) error {
		e.ID, e.Time = audit.NewID(), cfg.Now().UTC()
		err := alog.Append(e)
		if err != nil {
			s.auditErrors.Add(1)
		}
		return err
	}
	rk.httpStats = func(st *Stats) {
		st.AuditErrors, st.AuditRotateErrors = s.auditErrors.Load(), s.audit.RotateFailures()
		st.LoginsRateLimited = s.loginsLimited.Load()
	}
	if s.handler, err = s.routes(); err != nil {
		alog.Close()
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if err := rk.subscribe(cfg.Bus); err != nil {
		alog.Close()
		return nil, fmt.Errorf("dashboard: subscribe to %s: %w", topics.AllFilter, err)
	}
	return s, nil
}

// subscribe subscribes ingestion to every pirack topic. On a bus that can withhold a
// publisher's acknowledgement (the embedded broker), presses are saved before it and refused
// when they cannot be. A network bus's broker has acknowledged already, and its handlers must
// not block: presses are queued like every other event there.
func (rk *Rack) subscribe(b bus.Bus) error {
	if cb, ok := b.(bus.CheckedSubscriber); ok {
		rk.savePresses = true
		return cb.SubscribeChecked(topics.AllFilter, rk.ingest)
	}
	return b.Subscribe(topics.AllFilter, func(m bus.Message) { _ = rk.ingest(m) })
}

// sessionsPath is where sessions are kept: beside the audit log, in the data directory; "" (no
// directory) keeps them in memory.
func sessionsPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, SessionsFile)
}

// Close closes the audit log; commands are refused afterwards when Config.AuditDir is set.
// Call it after Rack().Run and Serve have returned. It is safe to call more than once.
func (s *Server) Close() error {
	if err := s.audit.Close(); err != nil {
		return fmt.Errorf("dashboard: close audit log: %w", err)
	}
	return nil
}

// Rack returns the rack the Server shows: its state, read API and Run.
func (s *Server) Rack() *Rack { return s.rack }

// Handler returns the dashboard's HTTP handler: pages, static assets, the JSON API and
// Config.Routes. It can be mounted on any server; the rack it shows is kept live by Rack().Run.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves Handler over HTTP (HTTPS when Config.TLSCertFile is set) on ln until ctx is
// done, then shuts down gracefully: live event streams are ended, and requests in flight get a
// few seconds to finish. It returns nil after a shutdown caused by ctx. Serve is called once:
// live streams stay closed after the shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) (err error) {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// No WriteTimeout: it would cut event streams. The SSE handler sets its own deadlines.
	}
	// SSE streams never go idle, so Shutdown would wait for them until its timeout.
	srv.RegisterOnShutdown(s.rack.hub.close)

	errc := make(chan error, 1)
	if s.tls != nil {
		srv.TLSConfig = s.tls.Clone()
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	s.log.Info("dashboard listening", "addr", ln.Addr().String(), "https", s.tls != nil)

	select {
	case err := <-errc:
		return fmt.Errorf("dashboard: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("dashboard: shutdown: %w", err), srv.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("dashboard: serve: %w", serr))
	}
	return err
}

// route is one entry of the route table.
type route struct {
	pattern string // an http.ServeMux pattern, with its method
	handler http.Handler
}

// routeTable lists every route. routes registers exactly these, and a test walks them to
// prove that each state-changing one refuses cross-origin requests.
func (s *Server) routeTable() []route {
	table := []route{
		{"GET /static/", staticHandler()},
		{"GET /login", http.HandlerFunc(s.handleLoginPage)},
		{"POST /login", http.HandlerFunc(s.handleLogin)},
		{"POST /logout", http.HandlerFunc(s.handleLogout)},
		{"GET /{$}", s.requirePage(s.handleRack)},
		{"GET /kiosk/{token}", http.HandlerFunc(s.handleKioskOpen)},
		{"GET /nodes/{mac}", s.requirePage(s.handleNodePage)},
		{"GET /events", s.requirePage(s.handleEventLogPage)},
		{"GET /fleet", s.requirePage(s.handleFleetPage)},
		{"GET /compare", s.requirePage(s.handleComparePage)},

		{"GET /api/log", s.requireUser(s.handleLog)},
		{"GET /api/sparklines", s.requireUser(s.handleSparklines)},
		{"GET /api/nodes", s.requireUser(serveJSON(s.rack.Nodes))}, // every node, in rack order
		{"GET /api/nodes/{mac}", s.requireUser(s.handleNode)},
		{"GET /api/nodes/{mac}/series", s.requireUser(s.handleSeries)},
		{"GET /api/nodes/{mac}/events", s.requireUser(s.handleNodeEvents)},
		{"GET /api/rows", s.requireUser(serveJSON(s.rack.Rows))},     // every row with its slots, power and alerts
		{"GET /api/alerts", s.requireUser(serveJSON(s.rack.Alerts))}, // the raised alerts, by row, MAC and rule
		{"POST /api/nodes/{mac}/blink", s.requireAdmin(AuditBlink, s.handleBlink)},
		{"POST /api/nodes/{mac}/locate", s.requireAdmin(AuditLocate, s.handleLocate)},
		{"POST /api/nodes/{mac}/locate/stop", s.requireAdmin(AuditLocate, s.handleLocateStop)},
		{"POST /api/rows/{row}/locate", s.requireAdmin(AuditLocate, s.handleLocateMany)},
		{"POST /api/locate/selected", s.requireAdmin(AuditLocate, s.handleLocateMany)},
		{"POST /api/nodes/{mac}/select", s.requireAdmin(AuditSelect, s.handleSelect)},
		{"POST /api/nodes/{mac}/clear", s.requireAdmin(AuditClear, s.handleClear)},
		{"POST /api/selection/clear", s.requireAdmin(AuditClear, s.handleClearAll)},
		{"POST /api/alerts/ack", s.requireAdmin(AuditAck, s.handleAck)},
		{"POST /api/nodes/{mac}/maintenance", s.requireAdmin(AuditMaintenance, s.handleMaintenance)},
		{"POST /api/rows/{row}/maintenance", s.requireAdmin(AuditMaintenance, s.handleMaintenance)},
		{"POST /api/nodes/{mac}/approve", s.requireAdmin(AuditApprove, s.handleApprove)},
		{"POST /api/nodes/{mac}/system", s.requireAdmin(AuditSystem, s.handleSystem)},
		{"POST /api/nodes/{mac}/removal", s.requireAdmin(AuditRemoval, s.handleRemoval)},
		{"POST /api/nodes/{mac}/power", s.requireAdmin(AuditPower, s.handleNodePower)},
		{"POST /api/rows/{row}/power", s.requireAdmin(AuditPower, s.handleRowPower)},
		{"POST /api/nodes/{mac}/removal/off", s.requireAdmin(AuditRemoval, s.handleRemovalStep("off"))},
		{"POST /api/nodes/{mac}/removal/cancel", s.requireAdmin(AuditRemoval, s.handleRemovalStep("cancel"))},
		{"GET /api/enrolment", s.requireUser(serveJSON(s.rack.enrolment))},
		{"POST /api/me/password", s.requireUser(s.handlePassword)},
		{"POST /api/kiosk", s.requireAdmin(AuditKiosk, s.handleKiosk)},
		{"GET /api/kiosk", s.requireAdmin("", serveJSON(s.kiosks.list))},
		{"POST /api/nodes/{mac}/unplace", s.requireAdmin(AuditPlace, s.handleUnplace)},
		{"POST /api/nodes/{mac}/forget", s.requireAdmin(AuditForget, s.handleForget)},
		{"GET /api/layout", s.requireUser(serveJSON(s.rack.layout.Layout))}, // the rows in rack order with their slots
		{"POST /api/rows/{row}/slots/{slot}", s.requireAdmin(AuditPlace, s.handleSlot)},
		{"POST /api/rows/{row}/slots/{slot}/previous", s.requireAdmin(AuditInherit, s.handlePrevious)},
		{"POST /api/rows/{row}/shelf", s.requireAdmin(AuditShelf, s.handleShelf)},
		{"POST /api/rows/{row}/assign", s.requireAdmin(AuditAssign, s.handleAssignStart)},
		{"POST /api/rows/{row}/assign/stop", s.requireAdmin(AuditAssign, s.handleAssignStop)},
		{"GET /api/events", s.requireUser(s.handleEvents)},
		{"GET /api/stats", s.requireUser(serveJSON(s.rack.Stats))},
		{"GET /api/audit", s.requireAdmin("", s.handleAudit)},
		{"/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such API endpoint")
		})},
	}
	for _, x := range s.cfg.Routes {
		h := x.Handler
		switch x.Access {
		case AccessUser:
			h = s.requireUser(h.ServeHTTP)
		case AccessAdmin:
			h = s.requireAdmin(x.Audit, h.ServeHTTP)
		}
		if x.Token != nil {
			h = s.bearer(x.Token, x.Handler, h)
		}
		table = append(table, route{x.Pattern, h})
	}
	return table
}

// serveJSON answers a GET with what get returns, as JSON.
func serveJSON[T any](get func() T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, get()) }
}

// csrfRefused is the message of the 403 http.CrossOriginProtection answers.
const csrfRefused = "cross-origin request refused: commands are accepted only from the Control Center's own pages"

// routes builds the mux. Every route is wrapped in http.CrossOriginProtection, which lets safe
// methods through and refuses cross-origin POSTs (CSRF), so a state-changing route added later
// is protected without anyone remembering to.
func (s *Server) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		if err := handle(mux, rt); err != nil {
			return nil, err
		}
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("cross-origin request refused", "method", r.Method, "path", clipLog(r.URL.Path),
			"origin", clipLog(r.Header.Get("Origin")), "remote", remoteIP(r))
		writeError(w, http.StatusForbidden, csrfRefused)
	}))
	return s.bodyDeadline(securityHeaders(cop.Handler(mux))), nil
}

// bodyDeadline gives a request with a body s.bodyTimeout to deliver all of it; a body still
// arriving then fails to read, and the connection is closed. The deadline is lifted once the
// body has been read, so a handler may take its time afterwards (past the deadline, the server
// would cancel the request's context). Requests without a body, such as the live stream, get
// none.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			// ErrNotSupported (a handler mounted on something that is not an http.Server)
			// leaves the body unbounded in time, as it was.
			if err := rc.SetReadDeadline(time.Now().Add(s.bodyTimeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body is read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// handle registers rt, turning ServeMux's panic on a bad or clashing pattern (an extra route's)
// into an error.
func handle(mux *http.ServeMux, rt route) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("route %q: %v", rt.pattern, v)
		}
	}()
	mux.Handle(rt.pattern, rt.handler)
	return nil
}

// securityHeaders sets headers that make injected content inert: no inline or foreign scripts,
// no framing, no MIME sniffing, no referrer leaking MACs or hostnames; and, over HTTPS, HSTS.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", hstsHeader)
		}
		next.ServeHTTP(w, r)
	})
}
