// Package controlcenter assembles pirack's control center, once, for every caller: `pirack
// serve`, `pirack demo`, `pirack bench` and the end-to-end tests. It owns the MQTT side (the
// embedded broker, or a network client of a foreign broker), the users, history, layout,
// alerts, power bridge and dashboard, wires them in the order that loses nothing, runs them
// with one Run and unwinds whatever was started when a step fails.
//
//	cc, err := controlcenter.New(cfg) // everything opened and subscribed; nothing accepts MQTT yet
//	cc.Bus().Subscribe(filter, h)     // optional: more in-process subscribers, from the first message
//	err = cc.Run(ctx)                 // MQTT up, parts and tasks running until ctx ends; then closed
package controlcenter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/enroll"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/homeassistant"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/notify"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/powerctl"
	"github.com/pirack/pirack/presence"
	"github.com/pirack/pirack/promexport"
)

// Files in Config.DataDir.
const (
	UsersFile   = "users.json"
	HistoryFile = "history.db"
	// AdminPasswordFile keeps the first admin's generated password (mode 0600), so that `pirack
	// demo` can show it on every start.
	AdminPasswordFile = "admin.password"
)

// Part names, as Parts reports them.
const (
	PartBroker      = "broker"       // the embedded MQTT broker
	PartNetworkBus  = "network-bus"  // the client of a foreign broker
	PartHistory     = "history"      // the history writer
	PartPowerBridge = "power-bridge" // smart plugs to row power
	PartDashboard   = "dashboard"    // the rack's runtime: staleness, alert ticks and publishing
	PartHTTP        = "http"         // the Control Center's web server
	PartNotify      = "notify"       // alert notifications, when configured
	// PartHomeAssistant announces the rack to Home Assistant (Config.HomeAssistant).
	PartHomeAssistant = "home-assistant"
)

// ControlCenter is the assembled control center. Create it with New, run it with Run.
type ControlCenter struct {
	cfg     Config
	log     *slog.Logger
	users   *auth.Users
	broker  *broker.Broker // nil on a foreign broker
	net     networkBus     // nil on the embedded broker
	bus     bus.Bus
	history *history.Store
	layout  *layout.Store
	dash    *dashboard.Server
	bridge  *powerbridge.Bridge
	notify  *notify.Notifier         // nil without a notification config
	ha      *homeassistant.Discovery // nil unless Config.HomeAssistant
	httpLn  net.Listener
	hearing *presence.Hearing // nil on the embedded broker, which is never lost

	ready    chan struct{}
	ran      atomic.Bool
	closers  []func() error // in the order things were opened
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// networkBus is a Bus over a connection to a foreign broker.
type networkBus interface {
	bus.Bus
	// Connect returns once connected, or with an error saying why the broker refused.
	Connect(ctx context.Context) error
	Close() error
}

// New opens the data directory, bootstraps an admin on a first run, and builds every part: the
// dashboard and the power bridge subscribe before any MQTT client can connect, so nothing
// published early is missed. It listens for HTTP at once (so an address in use fails here), but
// serves nothing until Run. A failure closes whatever was opened.
func New(cfg Config) (cc *ControlCenter, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("controlcenter: Config.DataDir is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.checkBroker(); err != nil {
		return nil, err
	}
	cc = &ControlCenter{cfg: cfg, log: cfg.Logger, ready: make(chan struct{})}
	built := cc // the returns below set cc to nil
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if cc.users, err = auth.Open(filepath.Join(cfg.DataDir, UsersFile)); err != nil {
		return nil, err
	}
	if err := bootstrapAdmin(cc.users, cfg.DataDir, cfg.Stdout, cfg.Logger); err != nil {
		return nil, err
	}
	alertCfg := alerts.DefaultConfig()
	if cfg.AlertsFile != "" {
		if alertCfg, err = alerts.LoadConfig(cfg.AlertsFile); err != nil {
			return nil, err
		}
	}
	// One presence rule for the tiles and the alerts: a tile is stale exactly when the stale
	// alert's condition holds.
	if cfg.Broker.URL != "" {
		cc.hearing = new(presence.Hearing) // a network bus can lose its broker
	}
	alertCfg.Presence = presence.Rule{StaleAfter: cfg.StaleAfter, Hearing: cc.hearing}
	engine, err := alerts.New(alertCfg)
	if err != nil {
		return nil, err
	}
	// Prometheus's /metrics reads cc's parts at each scrape, once Run serves HTTP.
	metrics, err := promexport.New(promexport.Config{Source: cc, TokenFile: cfg.MetricsTokenFile, Logger: cfg.Logger.With("component", "promexport")})
	if err != nil {
		return nil, err
	}
	plugs, err := loadPowerBridge(cfg, cc.users, cc.log)
	if err != nil {
		return nil, err
	}
	if err := cc.openBus(plugs); err != nil {
		return nil, err
	}
	if cc.bridge, err = powerbridge.New(powerbridge.Config{Bus: cc.bus, File: plugs, Logger: cfg.Logger.With("component", "powerbridge")}); err != nil {
		return nil, err
	}
	var power dashboard.PowerSwitch // nil unless something can be switched
	if slices.ContainsFunc(plugs.Plugs, func(p powerbridge.Plug) bool { return p.Switch }) || len(plugs.Ports) > 0 {
		pc, err := powerctl.New(powerctl.Config{Bus: cc.bus, File: plugs, Logger: cfg.Logger.With("component", "powerctl"),
			// Reports come once the broker runs, after New has set cc.dash.
			OnChange: func(row string) {
				if cc.dash != nil { // nil for a retained report met at subscription, within New
					cc.dash.Rack().NotifyRow(row)
				}
			}})
		if err != nil {
			return nil, err
		}
		power = pc
	}
	if cc.history, err = history.Open(filepath.Join(cfg.DataDir, HistoryFile), history.Options{Logger: cfg.Logger.With("component", "history")}); err != nil {
		return nil, err
	}
	cc.closers = append(cc.closers, cc.history.Close)
	if cc.layout, err = layout.Open(filepath.Join(cfg.DataDir, layout.FileName)); err != nil {
		return nil, err
	}
	routes := slices.Clone(cfg.Routes) // appended to below: never the caller's array
	if cc.notify, err = openNotifier(cc); err != nil {
		return nil, err
	}
	if cc.notify != nil {
		cc.closers = append(cc.closers, cc.notify.Close)
		routes = append(cc.notifyRoutes(cc.notify), routes...)
	}
	tokens := enroll.Open(cfg.DataDir)
	routes = append(routes, dashboard.Route{Pattern: "POST /api/enroll", Access: dashboard.AccessPublic,
		Handler: enroll.Handler(tokens, cc.users, cc.enrolPorts, cfg.Logger.With("component", "enroll"))})
	routes = append(routes, dashboard.Route{Pattern: "POST /api/enroll/tokens", Access: dashboard.AccessAdmin, Audit: dashboard.AuditToken,
		Handler: enroll.TokenHandler(tokens, dashboard.UserName, func(r *http.Request, row string, ttl time.Duration) error {
			return cc.dash.AuditAction(r, dashboard.AuditToken, map[string]any{"row": row, "ttl_s": int(ttl.Seconds())})
		}, dashboard.AuditUnavailable, cfg.Logger.With("component", "enroll"))})
	cc.dash, err = dashboard.New(dashboard.Config{
		Enrolment:       enroll.Approver{Users: cc.users},
		Refusals:        cc.refusals,
		Layout:          cc.layout,
		Bus:             cc.bus,
		Auth:            cc.users,
		Logger:          cfg.Logger.With("component", "dashboard"),
		TLSCertFile:     cfg.WebCert,
		TLSKeyFile:      cfg.WebKey,
		StaleAfter:      cfg.StaleAfter,
		SelectionExpiry: cfg.SelectionExpiry,
		RemoteSystem:    cfg.RemoteSystem,
		Power:           power,
		Hearing:         cc.hearing,
		AuditDir:        cfg.DataDir, // audit.log sits with the users it names
		AuditMaxBytes:   cfg.AuditMaxBytes,
		LoginLimit:      cfg.LoginLimit,
		History:         cc.history,
		Alerts:          engine,
		Routes:          append(routes, metrics.Route()),
	})
	if err != nil {
		return nil, fmt.Errorf("start dashboard: %w", err)
	}
	cc.closers = append(cc.closers, cc.dash.Close)
	if cfg.HomeAssistant {
		cc.ha, err = homeassistant.New(homeassistant.Config{Bus: cc.bus, Rack: cc.dash.Rack(), ID: cfg.Broker.ClientID,
			Logger: cfg.Logger.With("component", "homeassistant")})
		if err != nil {
			return nil, err
		}
	}
	if cc.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen for the Control Center on %s: %w (is another pirack running? pick another address with --http)", cfg.HTTPAddr, err)
	}
	cc.closers = append(cc.closers, cc.closeHTTPListener)
	return cc, nil
}

// checkBroker refuses embedded-broker settings next to a foreign broker, and TLS settings the
// embedded broker cannot use.
func (c Config) checkBroker() error {
	if c.Broker.URL != "" {
		for _, s := range []struct{ flag, v string }{
			{"--mqtt-cert", c.MQTTCert}, {"--mqtt-key", c.MQTTKey}, {"--mqtt-client-ca", c.MQTTClientCA},
			{"--mqtt-ws", c.MQTTWSAddr}, {"--mqtt-wss", c.MQTTWSSAddr},
		} {
			if s.v != "" {
				return fmt.Errorf("%s configures the embedded broker, which --broker %s switches off: configure listeners on that broker instead", s.flag, c.Broker.URL)
			}
		}
		return nil
	}
	switch {
	case c.MQTTCert == "" && c.MQTTKey == "" && c.MQTTClientCA != "":
		return errors.New("--mqtt-client-ca needs the mqtts listener: set --mqtt-cert and --mqtt-key too")
	case c.MQTTCert == "" && c.MQTTKey == "" && c.MQTTWSSAddr != "":
		return errors.New("--mqtt-wss serves the mqtts certificate: set --mqtt-cert and --mqtt-key too")
	}
	return nil
}

// openBus opens the embedded broker, or the client of a foreign one.
func (cc *ControlCenter) openBus(plugs powerbridge.File) error {
	cfg := cc.cfg
	if cfg.Broker.URL != "" {
		nb, err := openNetworkBus(cfg, cc.hearing)
		if err != nil {
			return err
		}
		cc.net, cc.bus = nb, nb
		cc.closers = append(cc.closers, nb.Close)
		return nil
	}
	bcfg := broker.Config{Addr: cfg.MQTTAddr, WSAddr: cfg.MQTTWSAddr, WSSAddr: cfg.MQTTWSSAddr, DataDir: cfg.DataDir,
		Users: cc.users, MaxClients: cfg.MaxClients, Logger: cfg.Logger.With("component", "broker"), PlugTopics: plugs.PlugTopics(),
		Limits: cfg.BrokerLimits,
		// Set in New before Run starts the listeners, so never nil when a client is refused.
		CommandRefused: func(c broker.RefusedCommand) { cc.dash.AuditRefusedCommand(dashboard.RefusedCommand(c)) }}
	if cfg.MQTTCert != "" || cfg.MQTTKey != "" {
		bcfg.TLS = &broker.TLSConfig{Addr: cfg.MQTTTLSAddr, CertFile: cfg.MQTTCert, KeyFile: cfg.MQTTKey, ClientCAFile: cfg.MQTTClientCA}
	}
	b, err := broker.New(bcfg)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	cc.broker, cc.bus = b, b
	cc.closers = append(cc.closers, b.Close)
	return nil
}

func (cc *ControlCenter) closeHTTPListener() error {
	if err := cc.httpLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Run brings MQTT up (the embedded broker's listeners, or the connection to the foreign
// broker), runs every part and Config.Tasks until ctx is done or one of them fails, and closes
// the control center. On a foreign broker the Control Center serves its page while it
// connects, showing the broker lost until it is reached; a broker that refuses the login stops
// Run with what to fix. Tasks start once MQTT is up (Ready) and stop first; the parts then stop
// and flush; the broker closes last. It returns nil after a shutdown caused by ctx. Run is
// called once.
func (cc *ControlCenter) Run(ctx context.Context) (err error) {
	if !cc.ran.CompareAndSwap(false, true) {
		return errors.New("controlcenter: Run called twice")
	}
	defer func() { err = errors.Join(err, cc.Close()) }()
	if b := cc.broker; b != nil {
		if err := b.Start(); err != nil {
			return fmt.Errorf("start MQTT listeners: %w (is another broker running? pick other addresses with --mqtt, --mqtts, --mqtt-ws or --mqtt-wss)", err)
		}
		cc.log.Info("control center running", "mqtt", b.Addr(), "mqtts", b.TLSAddr(), "mqtt_ws", b.WSAddr(), "mqtt_wss", b.WSSAddr(),
			"http", cc.HTTPAddr(), "data_dir", cc.cfg.DataDir)
		close(cc.ready)
	} else {
		cc.hearing.Lost(time.Now()) // nothing heard until the first connection
		cc.log.Info("control center running; connecting to the broker", "broker", cc.cfg.Broker.URL, "http", cc.HTTPAddr(), "data_dir", cc.cfg.DataDir)
	}

	partsCtx, stopParts := context.WithCancel(ctx)
	defer stopParts()
	var failed error
	var failOnce sync.Once
	fail := func(what string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			failOnce.Do(func() { failed = fmt.Errorf("%s: %w", what, err); stopParts() })
		}
	}
	var parts sync.WaitGroup
	parts.Go(func() { fail(PartHistory, cc.history.Run(partsCtx)) })
	parts.Go(func() { fail(PartPowerBridge, cc.bridge.Run(partsCtx)) })
	parts.Go(func() { fail(PartDashboard, cc.dash.Rack().Run(partsCtx)) })
	parts.Go(func() { fail(PartHTTP, cc.dash.Serve(partsCtx, cc.httpLn)) })
	if cc.notify != nil {
		parts.Go(func() { fail(PartNotify, cc.notify.Run(partsCtx)) })
	}
	if cc.ha != nil {
		parts.Go(func() {
			select { // announcements are retained: nothing is lost by waiting for the broker
			case <-cc.ready:
				fail(PartHomeAssistant, cc.ha.Run(partsCtx))
			case <-partsCtx.Done():
			}
		})
	}
	if cc.net != nil {
		parts.Go(func() {
			if err := cc.net.Connect(partsCtx); err != nil {
				if partsCtx.Err() == nil {
					fail(PartNetworkBus, err) // refused: retrying will not help
				}
				return
			}
			close(cc.ready)
		})
	}

	// Tasks stop before the parts: they publish into the broker and read the dashboard.
	tasksCtx, stopTasks := context.WithCancel(partsCtx)
	var tasks sync.WaitGroup
	for i, t := range cc.cfg.Tasks {
		tasks.Go(func() {
			select {
			case <-cc.ready:
			case <-tasksCtx.Done():
			}
			select {
			case <-cc.ready: // a task started runs to its end, even if stopped at once
				fail(fmt.Sprintf("task %d", i+1), t(tasksCtx, cc))
			default: // MQTT never came up
			}
		})
	}
	<-partsCtx.Done()
	stopTasks()
	tasks.Wait()
	stopParts()
	parts.Wait()
	return failed
}

// Close closes every part that New opened, the broker last but one and the HTTP listener
// last. Run calls it; call it yourself only when Run was never called. It is idempotent.
func (cc *ControlCenter) Close() error {
	cc.closeMu.Lock()
	defer cc.closeMu.Unlock()
	if cc.closed {
		return cc.closeErr
	}
	cc.closed = true
	// history, dashboard and HTTP first (in reverse order of opening), then the MQTT side,
	// whose closing publishes the Wills of connected clients.
	var errs []error
	for i := len(cc.closers) - 1; i >= 0; i-- {
		if err := cc.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	cc.closeErr = errors.Join(errs...)
	if cc.closeErr != nil {
		cc.log.Error("control center closed with errors", "err", cc.closeErr)
	} else {
		cc.log.Info("control center stopped")
	}
	return cc.closeErr
}

// Ready is closed once MQTT is up: the embedded broker accepts clients, or the foreign broker
// accepted the control center. It is never closed if Run fails first.
func (cc *ControlCenter) Ready() <-chan struct{} { return cc.ready }

// Bus is the control center's MQTT connection. Subscribe on it between New and Run to see
// every message from the first.
func (cc *ControlCenter) Bus() bus.Bus { return cc.bus }

var _ promexport.Source = (*ControlCenter)(nil)

// Broker is the embedded broker; nil when the control center runs on a foreign broker.
func (cc *ControlCenter) Broker() *broker.Broker { return cc.broker }

// Users are the users file: dashboard logins and, on the embedded broker, MQTT clients.
func (cc *ControlCenter) Users() *auth.Users { return cc.users }

// Rack is the rack's state, as ingestion keeps it from the bus: what integrations read.
func (cc *ControlCenter) Rack() *dashboard.Rack { return cc.dash.Rack() }

// History is the telemetry and event store.
func (cc *ControlCenter) History() *history.Store { return cc.history }

// Layout is where rows and slots are kept.
func (cc *ControlCenter) Layout() *layout.Store { return cc.layout }

// PowerBridge republishes smart plugs as row power.
func (cc *ControlCenter) PowerBridge() *powerbridge.Bridge { return cc.bridge }

// Parts names what this control center runs, in the order Run starts it.
func (cc *ControlCenter) Parts() []string {
	first := PartBroker
	if cc.broker == nil {
		first = PartNetworkBus
	}
	parts := []string{first, PartHistory, PartPowerBridge, PartDashboard, PartHTTP}
	if cc.notify != nil {
		parts = append(parts, PartNotify)
	}
	if cc.ha != nil {
		parts = append(parts, PartHomeAssistant)
	}
	return parts
}

// Notifier sends alert notifications; nil when none are configured.
func (cc *ControlCenter) Notifier() *notify.Notifier { return cc.notify }

// MQTTAddr is the address agents dial: the embedded broker's TCP listener (known once Ready is
// closed), or the foreign broker's URL.
func (cc *ControlCenter) MQTTAddr() string {
	if cc.broker != nil {
		return dialable(cc.broker.Addr())
	}
	return cc.cfg.Broker.URL
}

// refusals are the embedded broker's refused CONNECTs, for the page; none on a foreign broker.
func (cc *ControlCenter) refusals() []dashboard.Refused {
	if cc.broker == nil {
		return nil
	}
	var out []dashboard.Refused
	for _, r := range cc.broker.Refusals() {
		out = append(out, dashboard.Refused(r))
	}
	return out
}

// enrolPorts is where an enrolled agent connects: the embedded broker's ports.
func (cc *ControlCenter) enrolPorts() (mqtt, mqtts int, ok bool) {
	if cc.broker == nil {
		return 0, 0, false
	}
	port := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	mqtt = port(cc.broker.Addr())
	if cc.cfg.MQTTCert != "" {
		mqtts = port(cc.broker.TLSAddr())
	}
	return mqtt, mqtts, mqtt != 0
}

// HTTPAddr is the address the Control Center serves on.
func (cc *ControlCenter) HTTPAddr() string { return cc.httpLn.Addr().String() }

// HTTPURL is the address a person on this host types into a browser.
func (cc *ControlCenter) HTTPURL() string {
	scheme := "http"
	if cc.cfg.WebCert != "" {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(cc.HTTPAddr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// dialable turns a listen address such as "[::]:1883" into one a client on this host can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// DataDir is the data directory the control center keeps its files in.
func (cc *ControlCenter) DataDir() string { return cc.cfg.DataDir }
