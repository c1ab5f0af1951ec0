package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/config"
	"github.com/pirack/pirack/controlcenter"
	"github.com/pirack/pirack/dashboard"
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
	// NotifyFile configures alert notifications; "" means <data-dir>/notify.json if it exists.
	NotifyFile string
	// StaleAfter overrides the learned 3 telemetry intervals after which a Pi shows stale.
	StaleAfter time.Duration
	// SelectionExpiry clears a selection this long after its press (0: an hour; negative: never).
	SelectionExpiry time.Duration
	// RemoteSystem lets admins shut Pis down and reboot them from the page.
	RemoteSystem bool
	// PowerBridgeFile maps smart plugs to rows (package powerbridge); "" means
	// <data-dir>/power-bridge.json if it exists, and no plugs otherwise.
	PowerBridgeFile string
	// AuditMaxSize is dashboard.Config.AuditMaxBytes: 0 = 10 MiB, negative = never rotate.
	AuditMaxSize byteSize
	// LoginLimit is dashboard.Config.LoginLimit (0 = 5).
	LoginLimit int
	// Broker is a foreign MQTT broker to run on instead of the embedded one.
	Broker controlcenter.ExternalBroker
	// MaxClients bounds the embedded broker's connected clients (0: broker.DefaultMaxClients).
	MaxClients int
	// BrokerLimits are the embedded broker's limits (0: its defaults, docs/security.md).
	BrokerLimits broker.Limits
	// HomeAssistant announces the Pis to Home Assistant by MQTT discovery.
	HomeAssistant bool
	// MetricsTokenFile holds Prometheus's bearer token for /metrics ("" = Basic auth only).
	MetricsTokenFile string
	// DebugAddr serves Go's pprof profiles on a loopback address ("" = off).
	DebugAddr string
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.String(config.FlagName, "", "TOML file of these settings, such as /etc/pirack/pirack.toml (pirack config example writes one); default: $PIRACK_CONFIG")
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
	fs.StringVar(&c.NotifyFile, "notify", "", "JSON file sending alerts to webhooks, ntfy and e-mail (see docs/notifications.md); empty: <data-dir>/notify.json if it exists")
	fs.DurationVar(&c.StaleAfter, "stale-after", 0, "mark a Pi stale after this long without telemetry (0: 3 of its own intervals)")
	fs.BoolVar(&c.RemoteSystem, "remote-system", false, "let admins shut Pis down and reboot them from the page (each Pi's agent must allow it too: --allow-system-commands)")
	fs.DurationVar(&c.SelectionExpiry, "selection-expiry", 0, "clear a Pi's selection this long after its button press (0: 1h; -1s: never)")
	fs.Var(&c.AuditMaxSize, "audit-max-size", "rotate audit.log past this `size`, keeping "+strconv.Itoa(dashboard.AuditKeep)+" old files, such as 512KiB or 10MiB (0: 10MiB, -1: never)")
	fs.IntVar(&c.LoginLimit, "login-limit", 0, "failed Control Center logins (form or HTTP Basic) one address may make per minute before it gets 429 (0: "+strconv.Itoa(dashboard.DefaultLoginLimit)+")")
	fs.StringVar(&c.Broker.URL, "broker", "", "run on this MQTT broker instead of the embedded one: mqtt://host:1883, mqtts://host:8883, ws://host/mqtt or wss://... (docs/scale.md)")
	fs.StringVar(&c.Broker.Username, "broker-user", "", "the control center's user name on --broker")
	fs.StringVar(&c.Broker.PasswordFile, "broker-password-file", "", "file holding the control center's password on --broker (mode 0600)")
	fs.StringVar(&c.Broker.CAFile, "broker-ca", "", "CA (PEM) that signed --broker's certificate (mqtts, wss); empty: the system's roots")
	fs.StringVar(&c.Broker.CertFile, "broker-cert", "", "client certificate (PEM) for --broker, when it asks for one")
	fs.StringVar(&c.Broker.KeyFile, "broker-key", "", "client certificate's private key (PEM, mode 0600) for --broker")
	fs.StringVar(&c.Broker.ClientID, "broker-client-id", controlcenter.DefaultClientID, "the control center's MQTT client id on --broker: its persistent session (one per control center)")
	fs.IntVar(&c.MaxClients, "mqtt-max-clients", 0, "MQTT clients connected at once, agents included; beyond it a CONNECT gets \"server unavailable\" (0: "+strconv.Itoa(broker.DefaultMaxClients)+")")
	fs.IntVar(&c.BrokerLimits.MaxPendingPerSource, "mqtt-max-pending-per-source", 0, "sockets one address (IPv6: one /64) may have waiting for their CONNECT (0: "+strconv.Itoa(broker.DefaultMaxPendingPerSource)+"; agents behind one NAT share it)")
	fs.IntVar(&c.BrokerLimits.MaxWritesPending, "mqtt-max-queued", 0, "packets queued for one MQTT client before messages to it are dropped (0: "+strconv.Itoa(broker.DefaultMaxWritesPending)+")")
	fs.DurationVar(&c.BrokerLimits.WriteTimeout, "mqtt-write-timeout", 0, "disconnect an MQTT client whose socket takes nothing for this long (0: "+broker.DefaultWriteTimeout.String()+")")
	fs.IntVar(&c.BrokerLimits.MaxSessionsPerUser, "mqtt-max-sessions", 0, "MQTT sessions, connected or persistent, one viewer, automation or plug user may hold (0: "+strconv.Itoa(broker.DefaultMaxSessionsPerUser)+")")
	fs.IntVar(&c.BrokerLimits.MaxSessionsPerAdmin, "mqtt-max-sessions-admin", 0, "the same for an admin user (0: "+strconv.Itoa(broker.DefaultMaxSessionsPerAdmin)+")")
	fs.IntVar(&c.BrokerLimits.MaxQueuedLED, "mqtt-max-queued-led", 0, "LED commands queued for one offline Pi; later ones are dropped (0: "+strconv.Itoa(broker.DefaultMaxQueuedLED)+")")
	fs.DurationVar(&c.BrokerLimits.ViewerSessionExpiry, "mqtt-viewer-session-expiry", 0, "how long a viewer's or plug's disconnected persistent MQTT session is kept (0: "+broker.DefaultViewerSessionExpiry.String()+"; agents', automations' and admins' are kept 7 days)")
	fs.IntVar(&c.BrokerLimits.MaxSubscriptions, "mqtt-max-subscriptions", 0, "topic filters one MQTT session may subscribe to (0: "+strconv.Itoa(broker.DefaultMaxSubscriptions)+")")
	fs.BoolVar(&c.HomeAssistant, "home-assistant", false, "announce every Pi to Home Assistant by MQTT discovery (docs/home-assistant.md)")
	fs.StringVar(&c.MetricsTokenFile, "metrics-token-file", "", "file (mode 0600) holding the bearer token Prometheus scrapes /metrics with (docs/prometheus.md); empty: dashboard users by Basic auth only")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go's pprof profiles on this loopback address, such as 127.0.0.1:6060 (empty: off; docs/benchmarks.md)")
	fs.StringVar(&c.PowerBridgeFile, "power-bridge", "", "JSON file mapping Tasmota and Shelly smart plugs to rows (docs/topics.md); empty: <data-dir>/"+powerbridge.FileName+" if it exists")
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	if err := parseSettings(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if err := checkBrokerFlags(fs, cfg); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	cc, err := controlcenter.New(cfg.controlCenter(log, stdout))
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		if err := serveDebug(ctx, cfg.DebugAddr, log); err != nil {
			return err
		}
	}
	return cc.Run(ctx)
}

// parseSettings parses the command line, then sets every flag it left out from the environment
// or the config file (package config: flag > PIRACK_... > file > default).
func parseSettings(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return config.Apply(fs, config.Path(fs, getenv, ""), getenv, nil)
}

// controlCenter turns the flags into the control center's Config. With --broker, the embedded
// broker's default listener addresses are dropped.
func (c serveConfig) controlCenter(log *slog.Logger, stdout io.Writer) controlcenter.Config {
	cfg := controlcenter.Config{
		DataDir: c.DataDir, Logger: log, Stdout: stdout,
		MQTTAddr: c.MQTTAddr, MQTTTLSAddr: c.MQTTTLSAddr, MQTTCert: c.MQTTCert, MQTTKey: c.MQTTKey, MQTTClientCA: c.MQTTClientCA,
		MQTTWSAddr: c.MQTTWSAddr, MQTTWSSAddr: c.MQTTWSSAddr,
		HTTPAddr: c.HTTPAddr, WebCert: c.WebCert, WebKey: c.WebKey, AuditMaxBytes: int64(c.AuditMaxSize),
		LoginLimit: c.LoginLimit,
		AlertsFile: c.AlertsFile, StaleAfter: c.StaleAfter, SelectionExpiry: c.SelectionExpiry, RemoteSystem: c.RemoteSystem, PowerBridgeFile: c.PowerBridgeFile, NotifyFile: c.NotifyFile,
		Broker: c.Broker, MaxClients: c.MaxClients, BrokerLimits: c.BrokerLimits, HomeAssistant: c.HomeAssistant,
		MetricsTokenFile: c.MetricsTokenFile,
	}
	if c.Broker.URL != "" {
		cfg.MQTTAddr, cfg.MQTTTLSAddr = "", ""
	}
	return cfg
}

// checkBrokerFlags refuses --mqtt, --mqtts and the embedded broker's limits given with --broker:
// they would be ignored.
func checkBrokerFlags(fs *flag.FlagSet, c serveConfig) error {
	if c.Broker.URL == "" {
		return nil
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "mqtt" || f.Name == "mqtts" || strings.HasPrefix(f.Name, "mqtt-max-") || f.Name == "mqtt-write-timeout" {
			err = fmt.Errorf("--%s configures the embedded broker, which --broker switches off", f.Name)
		}
	})
	return err
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
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
