package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// Bus is how the dashboard reaches MQTT: the embedded broker in-process today, a network MQTT
// client later.
type Bus interface {
	// Subscribe calls fn for every message matching filter. fn may be called on the publisher's
	// goroutine, so it must not block.
	Subscribe(filter string, fn func(topic string, payload []byte)) error
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Authenticator checks a user name and password. *auth.Users implements it; it returns
// auth.ErrBadCredentials for a wrong name or password, and caches, so calling it on every
// Basic-auth API request is cheap.
type Authenticator interface {
	Authenticate(name, password string) (auth.User, error)
}

var _ Authenticator = (*auth.Users)(nil)

// Config configures a Server. Bus and Auth are required; every other zero value is usable.
type Config struct {
	Addr   string        // HTTP listen address for Run; "" means ":8080"
	Bus    Bus           // required: where telemetry comes from and LED commands go
	Auth   Authenticator // required: checks logins and Basic auth; only admin and viewer may use the dashboard
	Logger *slog.Logger  // nil discards logs
	Now    func() time.Time
	// CommandTTL is the expiry put on LED commands, so a command queued for an offline Pi does
	// not fire long after the operator walked away; 0 means 2 minutes.
	CommandTTL time.Duration
	// SecureCookies marks the session cookie Secure; set it when served behind HTTPS.
	SecureCookies bool
}

// Defaults applied by New.
const (
	DefaultAddr       = ":8080"
	DefaultCommandTTL = 2 * time.Minute
)

// withDefaults fills in the zero values, in one place.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CommandTTL <= 0 {
		c.CommandTTL = DefaultCommandTTL
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
)

// Server is the Control Center. Create it with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	rack     *rack
	hub      *hub
	sessions *sessions
	limiter  *loginLimiter
	pages    *template.Template
	handler  http.Handler

	heartbeat time.Duration

	stats          counters
	lastInvalidLog atomic.Int64 // unix nanoseconds of the last invalid-payload warning
}

// New builds the Control Center and subscribes it to topics.AllFilter on cfg.Bus at once, so that
// the caller can do this before the broker accepts clients and no early event is lost.
func New(cfg Config) (*Server, error) {
	if cfg.Bus == nil {
		return nil, errors.New("dashboard: Config.Bus is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("dashboard: Config.Auth is required")
	}
	cfg = cfg.withDefaults()
	pages, err := parseTemplates()
	if err != nil {
		return nil, fmt.Errorf("dashboard: parse templates: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		rack:      newRack(cfg.Now),
		hub:       newHub(defaultMaxPending),
		sessions:  newSessions(cfg.Now),
		limiter:   newLoginLimiter(cfg.Now),
		pages:     pages,
		heartbeat: heartbeatInterval,
	}
	s.handler = s.routes()
	if err := cfg.Bus.Subscribe(topics.AllFilter, s.ingest); err != nil {
		return nil, fmt.Errorf("dashboard: subscribe to %s: %w", topics.AllFilter, err)
	}
	return s, nil
}

// Handler returns the dashboard's HTTP handler: pages, static assets and the JSON API.
func (s *Server) Handler() http.Handler { return s.handler }

// Nodes returns a snapshot of the rack, sorted by row, then MAC.
func (s *Server) Nodes() []Node { return s.rack.list() }

// Run listens on Config.Addr and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully: live event streams are
// ended, and requests in flight get a few seconds to finish. It returns nil after a shutdown
// caused by ctx. A Server is served once: its live streams stay closed after the shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// No WriteTimeout: it would cut event streams. The SSE handler sets its own deadlines.
	}
	// SSE streams never go idle, so Shutdown would wait for them until its timeout.
	srv.RegisterOnShutdown(s.hub.close)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("dashboard listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("dashboard: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("dashboard: shutdown: %w", err), srv.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("dashboard: serve: %w", serr))
	}
	return err
}

// routes builds the mux. Every route is wrapped in http.CrossOriginProtection, which lets safe
// methods through and refuses cross-origin POSTs (CSRF), so a state-changing route added later
// is protected without anyone remembering to.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("GET /login", s.handleLoginPage)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.HandleFunc("POST /logout", s.handleLogout)
	mux.Handle("GET /{$}", s.requirePage(s.handleRack))

	mux.Handle("GET /api/nodes", s.requireAPI(false, s.handleNodes))
	mux.Handle("GET /api/nodes/{mac}", s.requireAPI(false, s.handleNode))
	mux.Handle("POST /api/nodes/{mac}/blink", s.requireAPI(true, s.handleBlink))
	mux.Handle("POST /api/nodes/{mac}/clear", s.requireAPI(true, s.handleClear))
	mux.Handle("GET /api/events", s.requireAPI(false, s.handleEvents))
	mux.Handle("GET /api/stats", s.requireAPI(false, s.handleStats))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint")
	})

	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// securityHeaders sets headers that make injected content inert: no inline or foreign scripts,
// no framing, no MIME sniffing, no referrer leaking MACs or hostnames.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
