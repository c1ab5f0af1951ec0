package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/pirack/pirack/config"
)

// The commands that work on a control center's data from the terminal (user, enroll,
// broker-config) find it where `pirack serve` keeps it: an operator who types `pirack user add
// bob` on a packaged install means /var/lib/pirack, not a new ./pirack-data that serve never
// reads.

// packagedConfigFile is the config file the pirack package installs and its service reads (a
// variable for the tests).
var packagedConfigFile = "/etc/pirack/pirack.toml"

// defaultDataDir is serve's data directory when nothing sets one.
const defaultDataDir = "./pirack-data"

// getenv is the environment the data directory is looked up in (a variable for the tests).
var envLookup = os.Getenv

// dataDirFlag registers --data-dir, whose usage begins with what.
func dataDirFlag(fs *flag.FlagSet, what string) *string {
	return fs.String("data-dir", "", what+"; default: as pirack serve finds it: $PIRACK_DATA_DIR, else the data-dir of the "+
		"config file ($PIRACK_CONFIG, else "+packagedConfigFile+" when it exists), else "+defaultDataDir)
}

// resolveDataDir returns the data directory: given (--data-dir) when set, else as serve finds
// it. When it was not given, it tells stderr which one it took and why, so that an operator
// sees which users file a command changed.
func resolveDataDir(given string, stderr io.Writer) (string, error) {
	if given != "" {
		return given, nil
	}
	dir, from, err := lookupDataDir()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(stderr, "pirack: data directory %s (%s; --data-dir to choose another)\n", dir, from)
	return dir, nil
}

func lookupDataDir() (dir, from string, err error) {
	if v := envLookup(config.EnvName("data-dir")); v != "" {
		return v, "from $" + config.EnvName("data-dir"), nil
	}
	path, from := envLookup(config.EnvName(config.FlagName)), "$"+config.EnvName(config.FlagName)
	if path == "" {
		if _, err := os.Stat(packagedConfigFile); errors.Is(err, fs.ErrNotExist) {
			return defaultDataDir, "the default: no " + packagedConfigFile, nil
		}
		path, from = packagedConfigFile, packagedConfigFile
	}
	// The file is read as serve reads it, so the answer is serve's.
	var cfg serveConfig
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	serve.SetOutput(io.Discard)
	cfg.register(serve)
	if err := config.Apply(serve, path, func(string) string { return "" }, nil); err != nil {
		return "", "", fmt.Errorf("cannot read the data directory from %s (%s): %w; pass --data-dir", path, from, err)
	}
	return cfg.DataDir, "from " + path, nil
}
