package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/brokerconfig"
	"github.com/pirack/pirack/powerbridge"
)

const brokerConfigUsage = `usage:
  pirack broker-config mosquitto --out DIR [--data-dir DIR] [--power-bridge FILE]

Writes a Mosquitto 2.0 password file (DIR/passwd, mode 0600) and ACL file (DIR/acl) giving each
pirack user the rights it has on pirack's own broker, for running agents against an external
Mosquitto. Regenerate after every user change and reload Mosquitto (SIGHUP).`

// runBrokerConfig generates access rules for an external broker from pirack's users.
func runBrokerConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, brokerConfigUsage)
		if len(args) == 0 {
			return errors.New("broker-config: no broker given (mosquitto)")
		}
		return flag.ErrHelp
	}
	if args[0] != "mosquitto" {
		fmt.Fprintln(stderr, brokerConfigUsage)
		return fmt.Errorf("broker-config: unknown broker %q (only mosquitto is supported)", args[0])
	}
	fs := flag.NewFlagSet("broker-config mosquitto", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := dataDirFlag(fs, "the control center's data directory; users are read from <data-dir>/"+usersFileName)
	out := fs.String("out", "", "directory to write passwd and acl into, e.g. /etc/mosquitto/pirack (required)")
	bridgeFile := fs.String("power-bridge", "", "JSON file mapping smart plugs to rows, as for serve; empty: <data-dir>/"+powerbridge.FileName+" if it exists")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("broker-config mosquitto takes no arguments, got %q", pos)
	}
	if *out == "" {
		return errors.New("broker-config mosquitto: --out is required: the directory for passwd and acl, e.g. --out /etc/mosquitto/pirack")
	}

	if *dataDir, err = resolveDataDir(*dataDir, stderr); err != nil {
		return err
	}
	usersPath := filepath.Join(*dataDir, usersFileName)
	if _, err := os.Stat(usersPath); err != nil {
		return fmt.Errorf("broker-config mosquitto: %w (wrong --data-dir?)", err)
	}
	users, err := auth.Open(usersPath)
	if err != nil {
		return fmt.Errorf("broker-config mosquitto: %w", err)
	}
	plugs, plugsPath, err := loadPlugs(*dataDir, *bridgeFile)
	if err != nil {
		return fmt.Errorf("broker-config mosquitto: %w", err)
	}
	m, err := brokerconfig.GenerateMosquitto(users.List(), plugs.PlugTopics())
	if err != nil {
		return fmt.Errorf("broker-config mosquitto: %w", err)
	}
	if len(m.Users) == 0 {
		return fmt.Errorf("broker-config mosquitto: no user of %s can be written for Mosquitto (see above or below); nothing written", usersPath)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("broker-config mosquitto: %w", err)
	}
	if err := brokerconfig.WriteMosquitto(*out, m); err != nil {
		return fmt.Errorf("broker-config mosquitto: %w", err)
	}
	absOut, err := filepath.Abs(*out)
	if err != nil {
		absOut = *out
	}
	passwd, acl := filepath.Join(absOut, brokerconfig.PasswdFileName), filepath.Join(absOut, brokerconfig.ACLFileName)

	fmt.Fprintf(stdout, "Wrote %s and %s for %d users: %s.\n", passwd, acl, len(m.Users), strings.Join(m.Users, ", "))
	if plugsPath != "" {
		fmt.Fprintf(stdout, "Plug topics from %s.\n", plugsPath)
	}
	if len(m.NoHash) > 0 {
		fmt.Fprintf(stdout, `
Left out, so they cannot log in to Mosquitto: %s.
They were created before pirack kept a password hash Mosquitto can read, and a bcrypt hash
cannot be converted. Give each a password again (pirack user passwd NAME, with --password to
keep its old one) and run this command again.
`, strings.Join(m.NoHash, ", "))
	}
	for _, s := range m.Skipped {
		fmt.Fprintf(stdout, "\nLeft out %s: %s.\n", s.Name, s.Reason)
	}
	fmt.Fprintf(stdout, `
In mosquitto.conf (Mosquitto 2.0):

  per_listener_settings false
  allow_anonymous false
  password_file %s
  acl_file %s

Mosquitto reads both files as its own user (mosquitto), after dropping root: make the password
file readable by it and no one else (chown mosquitto %s).
Run this again after every change of users (pirack user add/remove/passwd) or of the power bridge file,
then reload Mosquitto: systemctl reload mosquitto, or kill -HUP <its pid>.
`, passwd, acl, passwd)
	return nil
}

// loadPlugs reads the power bridge file: file if given, else <data-dir>/power-bridge.json if it
// exists. No file means no plugs; path is the file read, or "".
func loadPlugs(dataDir, file string) (f powerbridge.File, path string, err error) {
	path = file
	if path == "" {
		path = filepath.Join(dataDir, powerbridge.FileName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return powerbridge.File{}, "", nil
		}
	}
	f, err = powerbridge.LoadFile(path)
	return f, path, err
}
