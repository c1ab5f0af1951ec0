package controlcenter

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
)

// Config configures a control center. DataDir is required; every other zero value is usable.
type Config struct {
	// DataDir holds users.json, the broker's store, history, layout, audit log and the power
	// bridge file. It is created (mode 0700) if missing.
	DataDir string
	// Logger receives every part's logs, each with a "component" attribute. nil discards.
	Logger *slog.Logger
	// Stdout is where the first admin's generated password is announced on a first run. nil
	// discards (the password is still saved in DataDir/AdminPasswordFile).
	Stdout io.Writer

	// Broker, when Broker.URL is set, runs the control center as one client of that MQTT
	// broker, and the embedded broker is switched off: the MQTT* listener fields must then be
	// empty. Its zero value means the embedded broker.
	Broker ExternalBroker

	// MQTTAddr is the embedded broker's plain TCP listener; "" means DefaultMQTTAddr.
	MQTTAddr string
	// MQTTCert and MQTTKey open the mqtts listener on MQTTTLSAddr ("" means
	// DefaultMQTTTLSAddr); MQTTClientCA turns on per-agent client certificates there.
	MQTTTLSAddr, MQTTCert, MQTTKey, MQTTClientCA string
	// MQTTWSAddr opens MQTT over plain WebSocket; "" means off.
	MQTTWSAddr string
	// MQTTWSSAddr opens MQTT over secure WebSocket with the mqtts certificate; "" means off.
	MQTTWSSAddr string
	// MaxClients bounds the embedded broker's connected clients; 0 means the broker's default.
	MaxClients int
	// BrokerLimits are the embedded broker's per-source, per-client and per-user limits; zero
	// fields take the broker's defaults (broker.Limits).
	BrokerLimits broker.Limits

	// HTTPAddr is the Control Center's web listener; "" means DefaultHTTPAddr.
	HTTPAddr string
	// WebCert and WebKey serve the Control Center over HTTPS when both are set.
	WebCert, WebKey string
	// AuditMaxBytes is dashboard.Config.AuditMaxBytes: 0 means 10 MiB, negative never rotates.
	AuditMaxBytes int64
	// LoginLimit is dashboard.Config.LoginLimit: failed (or in-flight) logins per minute per
	// address before 429; 0 means 5.
	LoginLimit int
	// Routes are extra HTTP routes mounted beside the dashboard's (integrations).
	Routes []dashboard.Route
	// HomeAssistant announces every Pi to Home Assistant by MQTT discovery (package
	// homeassistant), with Broker.ClientID naming the control center's device; false, the
	// zero value, announces nothing.
	HomeAssistant bool
	// MetricsTokenFile holds the read-only bearer token Prometheus may scrape /metrics with
	// (package promexport), in a file readable by its owner only; "" means /metrics is for
	// the dashboard's users only, by HTTP Basic auth.
	MetricsTokenFile string

	// AlertsFile is a JSON alert config laid over the defaults; "" means the defaults.
	AlertsFile string
	// StaleAfter is how long a Pi may go without telemetry before it is stale; 0 means 3 of
	// its own learned intervals (dashboard.Config.StaleAfter).
	StaleAfter time.Duration
	// RemoteSystem lets admins shut Pis down and reboot them from the page
	// (dashboard.Config.RemoteSystem); off by default.
	RemoteSystem bool
	// SelectionExpiry clears a Pi's selection this long after its press
	// (dashboard.Config.SelectionExpiry: 0 means an hour, negative never).
	SelectionExpiry time.Duration
	// PowerBridgeFile maps smart plugs to rows (package powerbridge); "" means
	// DataDir/power-bridge.json if it exists, and no plugs otherwise.
	PowerBridgeFile string
	// NotifyFile configures alert notifications (package notify, docs/notifications.md); ""
	// means DataDir/notify.json if it exists, and no notifications otherwise.
	NotifyFile string

	// Tasks run beside the control center once MQTT is up: the demo's simulated Pis, a
	// benchmark's load. At shutdown they are cancelled first and joined before any part
	// closes, so simulated Pis say goodbye to a broker that is still there.
	Tasks []Task
}

// ExternalBroker is how the control center reaches a broker that is not its own.
type ExternalBroker struct {
	// URL is mqtt://, mqtts://, ws:// or wss:// with host and port; "" means the embedded
	// broker.
	URL string
	// Username and PasswordFile are the control center's credentials there. The file holds
	// the password on its first line and must be readable by its owner only.
	Username, PasswordFile string
	// CAFile verifies the broker's certificate (mqtts, wss); "" means the system's roots.
	// CertFile and KeyFile are a client certificate, when the broker asks for one.
	CAFile, CertFile, KeyFile string
	// ClientID is the control center's fixed MQTT client id, its persistent session's name;
	// "" means DefaultClientID. Two control centers on one broker need two ids.
	ClientID string
	// MaxReconnectDelay caps the wait between two connection attempts after the broker is
	// lost; 0 means mqttbus.DefaultMaxReconnectDelay (30 s).
	MaxReconnectDelay time.Duration
}

// Task is work that runs beside the control center (see Config.Tasks). It returns when ctx is
// done; an error it returns before that stops the control center.
type Task func(ctx context.Context, cc *ControlCenter) error

// Defaults applied by New.
const (
	DefaultMQTTAddr    = ":1883"
	DefaultMQTTTLSAddr = ":8883"
	DefaultHTTPAddr    = ":8080"
	DefaultClientID    = "pirack-control-center"
)

// withDefaults fills in the zero values, in one place.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Broker.URL == "" {
		if c.MQTTAddr == "" {
			c.MQTTAddr = DefaultMQTTAddr
		}
		if c.MQTTTLSAddr == "" {
			c.MQTTTLSAddr = DefaultMQTTTLSAddr
		}
	}
	if c.Broker.ClientID == "" {
		c.Broker.ClientID = DefaultClientID
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	return c
}
