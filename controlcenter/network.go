package controlcenter

import (
	"path/filepath"
	"time"

	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/mqttbus"
	"github.com/pirack/pirack/presence"
)

// mqttbusStoreDir is where the network bus keeps QoS 1 messages (LED commands, alerts) the
// foreign broker has not acknowledged, so a restart of the control center still sends them.
const mqttbusStoreDir = "mqttbus"

// openNetworkBus builds the client of the foreign broker in cfg.Broker. It does not connect:
// Run does.
func openNetworkBus(cfg Config, hearing *presence.Hearing) (networkBus, error) {
	b := cfg.Broker
	var password string
	if b.PasswordFile != "" {
		var err error
		if password, err = secretfile.ReadPassword(b.PasswordFile, "--broker-password-file"); err != nil {
			return nil, err
		}
	}
	return mqttbus.New(mqttbus.Config{
		URL: b.URL, Username: b.Username, Password: password, ClientID: b.ClientID,
		CAFile: b.CAFile, CertFile: b.CertFile, KeyFile: b.KeyFile, MaxReconnectDelay: b.MaxReconnectDelay,
		StoreDir: filepath.Join(cfg.DataDir, mqttbusStoreDir),
		Logger:   cfg.Logger.With("component", "mqttbus"),
		OnConnectionChange: func(connected bool) {
			if connected {
				hearing.Back(time.Now())
			} else {
				hearing.Lost(time.Now())
			}
		},
	})
}

var _ networkBus = (*mqttbus.Bus)(nil)
