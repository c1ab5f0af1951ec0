package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/layout"
	"github.com/pirack/pirack/powerbridge"
)

// serveConfig is what `pirack serve` and `pirack demo` share.
type serveConfig struct {
	DataDir  string // users.json and the broker's store live here
	MQTTAddr string // MQTT TCP listener
	HTTPAddr string // Control Center
	LogLevel string
	// MQTTCert and MQTTKey open the mqtts listener on MQTTTLSAddr; MQTTClientCA turns on
	// per-agent client certificates there.
	MQTTTLSAddr, MQTTCert, MQTTKey, MQTTClientCA string
	// MQTTWSAddr opens the MQTT-over-WebSocket listener ("" = off).
	MQTTWSAddr string
	// MQTTWSSAddr opens MQTT over secure WebSocket with the mqtts certificate ("" = off).
	MQTTWSSAddr string
	// WebCert and WebKey serve the Control Center over HTTPS when both are set.
	WebCert, WebKey string
	// AlertsFile is a JSON alert config laid over the defaults ("" = defaults).
	AlertsFile string
	// StaleAfter overrides the learned 3 telemetry intervals after which a Pi shows stale.
	StaleAfter time.Duration
	// PowerBridgeFile maps smart plugs to rows (package powerbridge); "" means
	// <data-dir>/power-bridge.json if it exists, and no plugs otherwise.
	PowerBridgeFile string
	// AuditMaxSize is dashboard.Config.AuditMaxBytes: 0 = 10 MiB, negative = never rotate.
	AuditMaxSize byteSize
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "./pirack-data", "directory for users, broker state and history")
	fs.StringVar(&c.MQTTAddr, "mqtt", ":1883", "MQTT listen address")
	fs.StringVar(&c.HTTPAddr, "http", ":8080", "Control Center (web) listen address")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.MQTTTLSAddr, "mqtts", ":8883", "MQTT over TLS listen address, used when --mqtt-cert is set")
	fs.StringVar(&c.MQTTCert, "mqtt-cert", "", "TLS certificate (PEM) for the mqtts and --mqtt-wss listeners")
	fs.StringVar(&c.MQTTKey, "mqtt-key", "", "TLS private key (PEM, mode 0600) for the mqtts and --mqtt-wss listeners")
	fs.StringVar(&c.MQTTClientCA, "mqtt-client-ca", "", "CA (PEM) whose client certificates authenticate agents on mqtts (CN = MAC)")
	fs.StringVar(&c.MQTTWSAddr, "mqtt-ws", "", "MQTT over plain WebSocket (ws://, passwords in clear) listen address for browsers and Node-RED (empty: off)")
	fs.StringVar(&c.MQTTWSSAddr, "mqtt-wss", "", "MQTT over secure WebSocket (wss://) listen address, with the --mqtt-cert certificate and --mqtt-client-ca (empty: off)")
	fs.StringVar(&c.WebCert, "web-cert", "", "TLS certificate (PEM) for the Control Center; with --web-key it serves HTTPS only")
	fs.StringVar(&c.WebKey, "web-key", "", "TLS private key (PEM, mode 0600) for the Control Center")
	fs.StringVar(&c.AlertsFile, "alerts", "", "JSON file changing alert thresholds, durations and rules (see docs/alerts.md); empty: defaults")
	fs.DurationVar(&c.StaleAfter, "stale-after", 0, "mark a Pi stale after this long without telemetry (0: 3 of its own intervals)")
	fs.Var(&c.AuditMaxSize, "audit-max-size", "rotate audit.log past this `size`, keeping "+strconv.Itoa(dashboard.AuditKeep)+" old files, such as 512KiB or 10MiB (0: 10MiB, -1: never)")
	fs.StringVar(&c.PowerBridgeFile, "power-bridge", "", "JSON file mapping Tasmota and Shelly smart plugs to rows (docs/topics.md); empty: <data-dir>/"+powerbridge.FileName+" if it exists")
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	cc, err := startControlCenter(cfg, log, stdout)
	if err != nil {
		return err
	}
	return cc.wait(ctx)
}

// controlCenter is the broker and the dashboard in one process.
type controlCenter struct {
	users   *auth.Users
	broker  *broker.Broker
	history *history.Store
	layout  *layout.Store
	dash    *dashboard.Server
	bridge  *powerbridge.Bridge
	httpLn  net.Listener
	log     *slog.Logger
	tls     bool // the Control Center speaks HTTPS
}

// startControlCenter opens the data directory, bootstraps an admin on first run, and starts the
// broker and the dashboard. The dashboard subscribes before the broker listens, so nothing an
// agent publishes right after connecting can slip past it.
func startControlCenter(cfg serveConfig, log *slog.Logger, stdout io.Writer) (*controlCenter, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	users, err := auth.Open(filepath.Join(cfg.DataDir, "users.json"))
	if err != nil {
		return nil, err
	}
	if err := bootstrapAdmin(users, cfg.DataDir, stdout); err != nil {
		return nil, err
	}
	alertCfg := alerts.DefaultConfig()
	if cfg.AlertsFile != "" {
		if alertCfg, err = alerts.LoadConfig(cfg.AlertsFile); err != nil {
			return nil, err
		}
	}
	engine, err := alerts.New(alertCfg)
	if err != nil {
		return nil, err
	}
	plugs, err := loadPowerBridge(cfg, users, log)
	if err != nil {
		return nil, err
	}
	bcfg := broker.Config{Addr: cfg.MQTTAddr, WSAddr: cfg.MQTTWSAddr, WSSAddr: cfg.MQTTWSSAddr, DataDir: cfg.DataDir, Users: users, Logger: log.With("component", "broker"),
		PlugTopics: plugs.PublishFilters()}
	if cfg.MQTTCert != "" || cfg.MQTTKey != "" {
		bcfg.TLS = &broker.TLSConfig{Addr: cfg.MQTTTLSAddr, CertFile: cfg.MQTTCert, KeyFile: cfg.MQTTKey, ClientCAFile: cfg.MQTTClientCA}
	} else if cfg.MQTTClientCA != "" {
		return nil, errors.New("--mqtt-client-ca needs the mqtts listener: set --mqtt-cert and --mqtt-key too")
	} else if cfg.MQTTWSSAddr != "" {
		return nil, errors.New("--mqtt-wss serves the mqtts certificate: set --mqtt-cert and --mqtt-key too")
	}
	b, err := broker.New(bcfg)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	// The bridge subscribes before the broker listens, like the dashboard.
	bridge, err := powerbridge.New(powerbridge.Config{Bus: b, File: plugs, Logger: log.With("component", "powerbridge")})
	if err != nil {
		b.Close()
		return nil, err
	}
	store, err := history.Open(filepath.Join(cfg.DataDir, historyFile), history.Options{Logger: log.With("component", "history")})
	if err != nil {
		b.Close()
		return nil, err
	}
	lay, err := layout.Open(filepath.Join(cfg.DataDir, layout.FileName))
	if err != nil {
		store.Close()
		b.Close()
		return nil, err
	}
	dash, err := dashboard.New(dashboard.Config{
		Layout:        lay,
		Bus:           b,
		Auth:          users,
		Logger:        log.With("component", "dashboard"),
		TLSCertFile:   cfg.WebCert,
		TLSKeyFile:    cfg.WebKey,
		StaleAfter:    cfg.StaleAfter,
		AuditDir:      cfg.DataDir, // audit.log sits with the users it names
		AuditMaxBytes: int64(cfg.AuditMaxSize),
		History:       store,
		Alerts:        engine,
	})
	if err != nil {
		store.Close()
		b.Close()
		return nil, fmt.Errorf("start dashboard: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		store.Close()
		b.Close()
		return nil, fmt.Errorf("listen for the Control Center on %s: %w (is another pirack running? pick another address with --http)", cfg.HTTPAddr, err)
	}
	if err := b.Start(); err != nil {
		ln.Close()
		store.Close()
		b.Close()
		return nil, fmt.Errorf("start MQTT listeners: %w (is another broker running? pick other addresses with --mqtt, --mqtts, --mqtt-ws or --mqtt-wss)", err)
	}
	log.Info("control center running", "mqtt", b.Addr(), "mqtts", b.TLSAddr(), "mqtt_ws", b.WSAddr(), "mqtt_wss", b.WSSAddr(), "http", ln.Addr().String(), "data_dir", cfg.DataDir)
	return &controlCenter{users: users, broker: b, history: store, layout: lay, dash: dash, bridge: bridge, httpLn: ln, log: log, tls: cfg.WebCert != ""}, nil
}

// wait serves the dashboard until ctx is done, then closes the broker.
func (cc *controlCenter) wait(ctx context.Context) error {
	err := cc.serve(ctx)
	if cerr := cc.close(); err == nil {
		err = cerr
	}
	return err
}

// serve runs the dashboard, the history writer and the power bridge until ctx is done.
func (cc *controlCenter) serve(ctx context.Context) error {
	histDone := make(chan error, 1)
	go func() { histDone <- cc.history.Run(ctx) }()
	bridgeDone := make(chan struct{})
	go func() { cc.bridge.Run(ctx); close(bridgeDone) }()
	defer func() { <-bridgeDone }() // it publishes into the broker, which closes after serve
	dashDone := make(chan struct{})
	go func() { cc.dash.Run(ctx); close(dashDone) }()
	err := cc.dash.Serve(ctx, cc.httpLn)
	<-dashDone
	err = errors.Join(err, cc.dash.Close())
	if herr := <-histDone; err == nil && !errors.Is(herr, context.Canceled) {
		err = herr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// close stops the broker: connected clients are disconnected and the store is closed. The web
// server stops first, so no request publishes into a closed broker.
func (cc *controlCenter) close() error {
	if err := cc.history.Close(); err != nil {
		cc.log.Error("close history", "err", err)
	}
	if err := cc.broker.Close(); err != nil {
		return fmt.Errorf("close broker: %w", err)
	}
	cc.log.Info("control center stopped")
	return nil
}

// httpURL is the address a person on this host types into a browser.
func (cc *controlCenter) httpURL() string {
	_, port, _ := net.SplitHostPort(cc.httpLn.Addr().String())
	scheme := "http"
	if cc.tls {
		scheme = "https"
	}
	return scheme + "://localhost:" + port
}

// historyFile is the telemetry and event database inside the data directory.
const historyFile = "history.db"

// adminPasswordFile keeps the first admin password so `pirack demo` can show it on every start.
const adminPasswordFile = "admin.password"

// bootstrapAdmin creates the "admin" user on first run, with a generated password written to
// <data-dir>/admin.password (0600) and printed once.
func bootstrapAdmin(users *auth.Users, dataDir string, stdout io.Writer) error {
	for _, u := range users.List() {
		if u.Role == auth.RoleAdmin {
			return nil
		}
	}
	password := auth.GeneratePassword()
	if err := users.Add(auth.User{Name: "admin", Role: auth.RoleAdmin}, password); err != nil {
		return fmt.Errorf("create the first admin user: %w", err)
	}
	path := filepath.Join(dataDir, adminPasswordFile)
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("save the admin password to %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "Created the dashboard user \"admin\" with password %s (saved in %s; delete that file once you have it stored elsewhere).\n", password, path)
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// loadPowerBridge reads the power bridge file: --power-bridge, or else
// <data-dir>/power-bridge.json if there is one. No file means no plugs.
func loadPowerBridge(cfg serveConfig, users *auth.Users, log *slog.Logger) (powerbridge.File, error) {
	path := cfg.PowerBridgeFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, powerbridge.FileName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			checkPlugUsers(powerbridge.File{}, path, users.List(), log)
			return powerbridge.File{}, nil
		}
	}
	f, err := powerbridge.LoadFile(path)
	if err != nil && cfg.PowerBridgeFile == "" {
		err = fmt.Errorf("%w (fix it, or move it out of the data directory to run without smart plugs)", err)
	}
	if err != nil {
		return f, err
	}
	log.Info("power bridge file loaded", "file", path, "plugs", len(f.Plugs))
	checkPlugUsers(f, path, users.List(), log)
	return f, nil
}

// checkPlugUsers warns of what keeps a plug from reporting, or a plug user from doing anything,
// since the broker binds each plug user to its row: a plug user without a row (made by an
// earlier pirack), which the broker refuses; a plug user whose row has no plug in the file,
// which may publish nothing; and a row of the file whose plug no plug user may publish for.
func checkPlugUsers(f powerbridge.File, path string, users []auth.User, log *slog.Logger) {
	filters := f.PublishFilters()
	covered := map[string]bool{} // plug folders some plug user may publish to
	for _, u := range users {
		if u.Role != auth.RolePlug {
			continue
		}
		rowFilters, ok := filters[u.Row]
		switch {
		case u.Row == "":
			log.Warn("power bridge: plug user "+u.Name+" has no row (made by an earlier pirack), so the broker refuses it: re-create it with "+
				"pirack user remove "+u.Name+" and pirack user add "+u.Name+" --role plug --row ROW", "user", u.Name)
		case !ok:
			log.Warn("power bridge: plug user "+u.Name+" is for row "+u.Row+", which has no plug in "+filepath.Base(path)+", so it may publish nothing",
				"user", u.Name, "row", u.Row, "file", path)
		default:
			for _, fl := range rowFilters {
				covered[fl] = true
			}
		}
	}
	for _, row := range slices.Sorted(maps.Keys(filters)) {
		if !slices.ContainsFunc(filters[row], func(fl string) bool { return !covered[fl] }) {
			continue
		}
		log.Warn("power bridge: no plug user for row "+row+", so its plug cannot connect: add one with pirack user add plug-"+row+" --role plug --row "+row,
			"row", row)
	}
}

// byteSize is a flag value in bytes, written plain or with a KiB, MiB or GiB suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	n, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(n, u.suffix); ok {
			n, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v > math.MaxInt64/mult || v < math.MinInt64/mult {
		return fmt.Errorf("size %q: want a number of bytes, optionally followed by KiB, MiB or GiB", s)
	}
	*b = byteSize(v * mult)
	return nil
}
