// Command pirack-agent runs on each Pi of the rack: it reports the Pi's presence and telemetry
// to the broker, publishes its button presses, executes LED commands and, on the Pi wired to
// its row's current sensor, publishes the row's power. It links only the agent, the topic
// contract and the hardware backends, never the broker or the dashboard.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/agent/hoststat"
	"github.com/pirack/pirack/config"
	"github.com/pirack/pirack/hardware/board"
	"github.com/pirack/pirack/hardware/button"
	"github.com/pirack/pirack/hardware/powersensor"
	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/topics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "pirack-agent:", err)
		os.Exit(1)
	}
}

// notInConfig are the flags a config file and the environment do not set.
var notInConfig = config.Skip{"version"}

// passwordEnv is the environment variable that may carry the broker password instead of a file.
const passwordEnv = "PIRACK_PASSWORD"

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "config" {
		return runConfig(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "enroll" {
		return runEnroll(ctx, args[1:], stdout, stderr)
	}
	opts, err := parseFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if opts.version {
		_, err := fmt.Fprintln(stdout, "pirack-agent", buildinfo.Version())
		return err
	}
	hw, err := board.Open(opts.board)
	if err != nil {
		return err
	}
	defer hw.Close()
	cfg := opts.agent
	cfg.LED, cfg.Button = hw.LED, hw.Button
	if system := cfg.System; system != nil {
		cfg.System = func(action string) error {
			halting := action == topics.SystemShutdown
			hw.LeaveLEDLit(halting) // safe to pull once halted
			err := system(action)
			if err != nil {
				hw.LeaveLEDLit(false)
			}
			return err
		}
	}
	if opts.power.Chip != "" {
		p := newPowerSensor(opts.power, cfg.Logger)
		p.start()
		defer p.Close()
		cfg.Power = p
	}
	return agent.Run(ctx, cfg)
}

// options is the command line: the agent's config, the GPIO board's and the power sensor's.
type options struct {
	agent   agent.Config
	board   board.Config
	power   powersensor.Spec // Chip "" when there is none
	version bool
}

// rawFlags are the flags that options holds only once checked or read.
type rawFlags struct {
	passwordFile, power, logLevel string
	tls                           agent.TLSFiles
	allowSystem                   bool
	containers                    string
}

// agentFlags defines every flag, writing into opts and x.
func agentFlags(opts *options, x *rawFlags, stderr io.Writer) *flag.FlagSet {
	cfg, hw := &opts.agent, &opts.board
	fs := flag.NewFlagSet("pirack-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.FlagName, "", "TOML file of these settings, such as /etc/pirack/agent.toml (pirack-agent config example writes one); default: $PIRACK_CONFIG")
	fs.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "broker URL: tcp://host:1883, or ssl://host:8883 for TLS")
	fs.StringVar(&cfg.MAC, "mac", "", "this Pi's MAC address (default: the MAC of the first interface that is up, not loopback, with a hardware address)")
	fs.StringVar(&cfg.Row, "row", "", "rack row this Pi sits in, 1-32 characters of a-z, 0-9, _ or - (required)")
	fs.StringVar(&cfg.Username, "username", "", "broker username (default: the normalised MAC)")
	fs.StringVar(&x.passwordFile, "password-file", "", "file holding the broker password; must not be readable by group or others (chmod 600). Or set "+passwordEnv)
	fs.StringVar(&x.tls.CAFile, "ca-file", "", "ssl:// only: PEM file of the CA(s) that sign the broker's certificate, such as the control host's private CA (default: the system's root CAs)")
	fs.StringVar(&x.tls.CertFile, "cert-file", "", "ssl:// only: PEM client certificate of this Pi, its CN the MAC (b827eb3f1a2c), signed by the broker's --mqtt-client-ca; with it, a password is optional. Needs --key-file")
	fs.StringVar(&x.tls.KeyFile, "key-file", "", "PEM private key of --cert-file; must not be readable by group or others (chmod 600)")
	fs.DurationVar(&cfg.Interval, "interval", agent.DefaultInterval, "telemetry interval")
	fs.StringVar(&hw.Backend, "gpio", board.Auto, "LED and button backend: auto (pick from the board model and /dev), rpio (/dev/gpiomem: Pi 1-4, Zero), cdev (/dev/gpiochipN: Pi 5, any board), sim (in memory) or none (telemetry only)")
	fs.StringVar(&hw.LEDPin, "led-pin", board.DefaultLEDPin, "LED pin: a BCM number (17, bcm17, gpio17), a header pin (pin11), or none")
	fs.StringVar(&hw.ButtonPin, "button-pin", board.DefaultButtonPin, "button pin: a BCM number (15, bcm15, gpio15), a header pin (pin10), or none. The default is the UART's RX line: see docs/hardware.md")
	fs.StringVar(&hw.Chip, "gpio-chip", "", "cdev only: GPIO chip such as gpiochip0 (default: the Raspberry Pi header's chip); pins are then its line offsets")
	fs.DurationVar(&hw.Button.Debounce, "debounce", button.DefaultDebounce, "button debounce time: a level must hold this long to count")
	fs.DurationVar(&hw.Button.LongPress, "long-press", button.DefaultLongPress, "hold the button this long for a long press")
	fs.DurationVar(&hw.Button.DoublePress, "double-press", button.DefaultDoublePress, "longest gap between two presses of a double press; a single press is reported this long after release. Negative turns double presses off")
	fs.StringVar(&x.power, "power", "", "the row's power sensor on this Pi's I2C bus, such as ina219:bus=1,addr=0x40,shunt-ohms=0.1 (or ina226:...; optional max-amps=); empty or none: no sensor. See docs/hardware.md")
	fs.StringVar(&cfg.StoreDir, "store-dir", "", "directory keeping unsent QoS1 messages and the button press counter across restarts, such as /var/lib/pirack-agent (default: memory only)")
	fs.StringVar(&x.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&x.containers, "containers", "auto", "Docker or Podman containers to report, read-only through the engine's API socket: auto (the first of "+strings.Join(hoststat.DefaultSockets, ", ")+" that exists), none, or the socket's path. The agent needs read access to it: docs/deploy.md")
	fs.BoolVar(&x.allowSystem, "allow-system-commands", false, "let the control center shut this Pi down or reboot it (its admins, when the control center allows it; needs the polkit rule the package installs, docs/deploy.md)")
	fs.BoolVar(&opts.version, "version", false, "print the version and exit")
	return fs
}

// parseFlags turns the command line, the environment and the config file into the agent's and
// the board's configs. It reads the password and TLS files, and opens no hardware.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (opts options, err error) {
	var x rawFlags
	fs := agentFlags(&opts, &x, stderr)
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if err := config.Apply(fs, config.Path(fs, getenv, ""), getenv, notInConfig); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	if opts.version {
		return opts, nil
	}
	return opts, checkOptions(&opts, x, stderr, getenv)
}

// checkOptions checks the settings and reads the files they name into opts.
func checkOptions(opts *options, x rawFlags, stderr io.Writer, getenv func(string) string) (err error) {
	cfg, hw := &opts.agent, &opts.board
	if x.allowSystem {
		cfg.System = agent.RunSystemctl
	}
	if cfg.Collector == nil {
		hc := new(agent.HostCollector)
		switch x.containers {
		case "none":
		case "auto":
			if s := hoststat.FindEngine(hoststat.DefaultSockets); s != "" {
				hc.Engine = hoststat.NewEngine(s)
			}
		default:
			hc.Engine = hoststat.NewEngine(x.containers)
		}
		cfg.Collector = hc
	}
	if cfg.Row == "" {
		return errors.New(`row is required: the rack row this Pi sits in, such as --row row-1, or row = "row-1" in the config file`)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(x.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", x.logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	hw.Logger = cfg.Logger
	switch hw.Backend {
	case board.Auto, board.RPIO, board.CDev, board.Sim, board.None:
	default:
		return fmt.Errorf("--gpio %q: want auto, rpio, cdev, sim or none", hw.Backend)
	}
	if _, err := hw.Button.WithDefaults(); err != nil {
		return fmt.Errorf("%w (flags --debounce, --long-press, --double-press)", err)
	}
	if opts.power, err = powersensor.Parse(x.power); err != nil {
		return fmt.Errorf("--power: %w", err)
	}

	if x.tls != (agent.TLSFiles{}) {
		// Checked now, so a wrong file stops the agent at start, naming the file.
		if cfg.TLS, err = agent.LoadTLS(cfg.Broker, x.tls, time.Now()); err != nil {
			return fmt.Errorf("TLS flags: %w", err)
		}
	}

	// No password is fine with a client certificate, which authenticates on its own.
	env := getenv(passwordEnv)
	switch {
	case x.passwordFile != "" && env != "":
		return fmt.Errorf("both --password-file and %s are set; use one", passwordEnv)
	case x.passwordFile != "":
		if cfg.Password, err = secretfile.ReadPassword(x.passwordFile, "password file"); err != nil {
			return err
		}
	default:
		cfg.Password = env
	}
	return nil
}
