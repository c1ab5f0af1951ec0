// Command pirack-agent runs on each Pi of the rack: it reports the Pi's presence and telemetry
// to the broker, publishes its button presses and executes LED commands. It links only the
// agent, the topic contract and the hardware backends, never the broker or the dashboard.
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

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/internal/buildinfo"
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

// passwordEnv is the environment variable that may carry the broker password instead of a file.
const passwordEnv = "PIRACK_PASSWORD"

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, version, err := parseFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if version {
		_, err := fmt.Fprintln(stdout, "pirack-agent", buildinfo.Version())
		return err
	}
	return agent.Run(ctx, cfg)
}

// parseFlags turns the command line into an agent.Config.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (cfg agent.Config, version bool, err error) {
	fs := flag.NewFlagSet("pirack-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "broker URL: tcp://host:1883, or ssl://host:8883 for TLS")
	fs.StringVar(&cfg.MAC, "mac", "", "this Pi's MAC address (default: the MAC of the first interface that is up, not loopback, with a hardware address)")
	fs.StringVar(&cfg.Row, "row", "", "rack row this Pi sits in, 1-32 characters of a-z, 0-9, _ or - (required)")
	fs.StringVar(&cfg.Username, "username", "", "broker username (default: the normalised MAC)")
	passwordFile := fs.String("password-file", "", "file holding the broker password; must not be readable by group or others (chmod 600). Or set "+passwordEnv)
	fs.DurationVar(&cfg.Interval, "interval", agent.DefaultInterval, "telemetry interval")
	gpio := fs.String("gpio", "none", "LED and button backend: none, or sim (simulated, for trying the agent out; real GPIO backends are not there yet)")
	fs.StringVar(&cfg.StoreDir, "store-dir", "", "directory keeping unsent QoS1 messages and the button press counter across restarts, such as /var/lib/pirack-agent (default: memory only)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	if version {
		return cfg, true, nil
	}
	if cfg.Row == "" {
		return cfg, false, errors.New("--row is required: the rack row this Pi sits in, such as --row=row-1")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, false, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	switch *gpio {
	case "none":
	case "sim":
		cfg.LED, cfg.Button = new(sim.LED), new(sim.Button)
	default:
		return cfg, false, fmt.Errorf("--gpio %q: want none or sim", *gpio)
	}

	env := getenv(passwordEnv)
	switch {
	case *passwordFile != "" && env != "":
		return cfg, false, fmt.Errorf("both --password-file and %s are set; use one", passwordEnv)
	case *passwordFile != "":
		if cfg.Password, err = readPasswordFile(*passwordFile); err != nil {
			return cfg, false, err
		}
	default:
		cfg.Password = env
	}
	return cfg, false, nil
}

// readPasswordFile reads a password file, refusing one others can read: a password on a Pi's
// SD card is only as secret as the file's mode.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("password file %s is readable by group or others (mode %v); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}
