// Package promexport serves the control center's state to Prometheus on /metrics: each Pi's
// telemetry and presence labelled by row, slot, MAC and name, each row's power, the raised
// alerts, and the health counters of the broker, ingestion, history and live stream.
//
// Everything is read from the rack at scrape time by one prometheus.Collector: no goroutine
// keeps gauges up to date, so a scrape shows exactly what the Control Center shows, and a
// forgotten Pi disappears from the next scrape. Metric names follow Prometheus's conventions:
// the pirack_ prefix, base units (seconds, bytes, celsius, watts, volts, amperes, ratios) in
// the name, and _total on counters. docs/prometheus.md lists them.
//
// The route is protected like the JSON API: a dashboard user (admin or viewer) by HTTP Basic
// auth, or a read-only bearer token kept in a file (Config.TokenFile), which is all a
// Prometheus server needs to know.
package promexport

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/internal/secretfile"
)

// Path is where the metrics are served.
const Path = "/metrics"

// MinTokenLength is the shortest bearer token New accepts: a token is checked on every scrape
// and guesses are only rate-limited per address, so it must be too long to guess.
const MinTokenLength = 16

// maxScrapes bounds concurrent scrapes: each walks the whole rack.
const maxScrapes = 4

// Source is what a scrape reads. *controlcenter.ControlCenter is one; its methods are called
// at each scrape, not before, so a Source may be handed over before its parts are built.
type Source interface {
	// Rack is the rack's state; it must not be nil once scrapes arrive.
	Rack() *dashboard.Rack
	// Broker is the embedded broker; nil on a foreign broker, whose counters are its own.
	Broker() *broker.Broker
	// History is the history store; nil exports no history counters.
	History() *history.Store
}

// Config configures New. Source is required; every other zero value is usable.
type Config struct {
	Source Source
	// TokenFile holds the read-only bearer token Prometheus sends, on its first line, in a
	// file readable by its owner only; at least MinTokenLength characters. It is read once,
	// by New. "" means no token: only dashboard users by Basic auth (or session) may scrape.
	TokenFile string
	// Logger receives errors met while serving a scrape. nil discards.
	Logger *slog.Logger
}

// Exporter serves the metrics. Create it with New and mount Route on the dashboard.
type Exporter struct {
	tokenSum *[sha256.Size]byte // nil: no token
	registry *prometheus.Registry
	handler  http.Handler
}

// New builds the exporter: pirack's collector, plus the Go runtime's and the process's
// standard metrics, on a registry of its own. It fails when the token file is unreadable,
// open to others, or too short.
func New(cfg Config) (*Exporter, error) {
	if cfg.Source == nil {
		return nil, errors.New("promexport: Config.Source is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{registry: prometheus.NewRegistry()}
	if cfg.TokenFile != "" {
		tok, err := secretfile.ReadPassword(cfg.TokenFile, "metrics token file")
		if err != nil {
			return nil, fmt.Errorf("promexport: %w", err)
		}
		if len(tok) < MinTokenLength {
			return nil, fmt.Errorf("promexport: the token in %s has %d characters, want at least %d: make one with: openssl rand -hex 32 > %s",
				cfg.TokenFile, len(tok), MinTokenLength, cfg.TokenFile)
		}
		sum := sha256.Sum256([]byte(tok))
		e.tokenSum = &sum
	}
	for _, c := range []prometheus.Collector{
		NewCollector(cfg.Source),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := e.registry.Register(c); err != nil {
			return nil, fmt.Errorf("promexport: register collector: %w", err)
		}
	}
	e.handler = promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError, // what could be gathered beats a 500
		MaxRequestsInFlight: maxScrapes,
	})
	return e, nil
}

// Route is the dashboard route serving the metrics: GET /metrics for dashboard users and, when
// Config.TokenFile is set, for the bearer token.
func (e *Exporter) Route() dashboard.Route {
	r := dashboard.Route{Pattern: http.MethodGet + " " + Path, Handler: e.handler, Access: dashboard.AccessUser}
	if e.tokenSum != nil {
		r.Token = e.checkToken
	}
	return r
}

// Handler serves the metrics without any authentication: mount Route instead, unless
// something in front of it authenticates.
func (e *Exporter) Handler() http.Handler { return e.handler }

// Gatherer is the exporter's registry, for tests and for tools that format metrics themselves.
func (e *Exporter) Gatherer() prometheus.Gatherer { return e.registry }

// checkToken compares in constant time; hashing first makes the time independent of the
// token's length too.
func (e *Exporter) checkToken(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], e.tokenSum[:]) == 1
}
