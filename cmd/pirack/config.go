package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/pirack/pirack/config"
)

// packagedSettings are what the pirack .deb's /etc/pirack/pirack.toml sets: the data where
// Debian keeps a service's state.
var packagedSettings = map[string]string{"data-dir": "/var/lib/pirack"}

const serveConfigHeader = `pirack serve: the control center (MQTT broker and web dashboard) on the control host.
Installed as /etc/pirack/pirack.toml by the pirack package; pirack serve --config FILE reads it.
Check it after editing: pirack config check /etc/pirack/pirack.toml`

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: pirack config example [--packaged] | check FILE\n\n" +
		"  example  print a commented config file of every pirack serve setting (--packaged: as the .deb installs it)\n" +
		"  check    check a config file: syntax, unknown keys, each value; exit 1 with the line and key of each problem\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("config: example or check?")
	}
	switch args[0] {
	case "example":
		fs := flag.NewFlagSet("config example", flag.ContinueOnError)
		fs.SetOutput(stderr)
		packaged := fs.Bool("packaged", false, "the file the pirack package installs (data in /var/lib/pirack)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var values map[string]string
		if *packaged {
			values = packagedSettings
		}
		var cfg serveConfig
		serve := flag.NewFlagSet("serve", flag.ContinueOnError)
		cfg.register(serve)
		return config.Example(stdout, serve, serveConfigHeader, values, nil)
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return errors.New("config check: which file?")
		}
		if err := checkServeConfig(args[1]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return err
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("config: unknown command %q", args[0])
}

// checkServeConfig reads path as pirack serve would at start, with no flags and no
// environment, and checks what can be checked without starting.
func checkServeConfig(path string) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.register(fs)
	if err := config.Apply(fs, path, func(string) string { return "" }, nil); err != nil {
		return err
	}
	if err := checkBrokerFlags(fs, cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := newLogger(io.Discard, cfg.LogLevel); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
