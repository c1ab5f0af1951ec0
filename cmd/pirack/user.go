package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/powerbridge"
	"github.com/pirack/pirack/topics"
)

// usersFileName is the users file inside --data-dir; `pirack serve` opens the same file.
const usersFileName = "users.json"

// agentSecretPath is where `pirack user add --role agent` tells the operator to put the
// agent's password on the Pi.
const agentSecretPath = "/etc/pirack/agent.secret"

const userUsage = `usage:
  pirack user add NAME --role admin|viewer|automation|homeassistant [--password P] [--data-dir DIR]
  pirack user add NAME --role plug --row ROW [--password P] [--data-dir DIR]
  pirack user add --role agent --mac MAC --row ROW [--password P] [--data-dir DIR] [--broker URL]
  pirack user list [--data-dir DIR]
  pirack user remove NAME [--data-dir DIR]
  pirack user passwd NAME [--password P] [--data-dir DIR]

Without --data-dir, the data directory is the one pirack serve uses: $PIRACK_DATA_DIR, else the
data-dir of its config file ($PIRACK_CONFIG, else /etc/pirack/pirack.toml on a packaged install),
else ./pirack-data; the command says which it took. A running 'pirack serve' on the same data
directory picks up changes at the next connection.`

// runUser manages the users file: add, list, remove.
func runUser(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, userUsage)
		if len(args) == 0 {
			return errors.New("user: no subcommand given (add, list, remove or passwd)")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "add":
		return runUserAdd(args[1:], stdout, stderr)
	case "list", "ls":
		return runUserList(args[1:], stdout, stderr)
	case "remove", "rm":
		return runUserRemove(args[1:], stdout, stderr)
	case "passwd":
		return runUserPasswd(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, userUsage)
	return fmt.Errorf("user: unknown subcommand %q (want add, list, remove or passwd)", args[0])
}

// parseInterspersed parses flags that may come before or after the positional arguments
// (`user add alice --role viewer`), which flag.FlagSet alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newUserFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("user "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := dataDirFlag(fs, "the control center's data directory; users are kept in <data-dir>/"+usersFileName)
	return fs, dataDir
}

// parseUserFlags parses a user command's flags and positional arguments, and resolves its
// data directory (see resolveDataDir).
func parseUserFlags(fs *flag.FlagSet, dataDir *string, args []string, stderr io.Writer) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	*dataDir, err = resolveDataDir(*dataDir, stderr)
	return pos, err
}

func runUserAdd(args []string, stdout, stderr io.Writer) error {
	fs, dataDir := newUserFlagSet("add", stderr)
	role := fs.String("role", "", "admin, viewer, automation, homeassistant, agent, or plug for a Tasmota or Shelly smart plug (required)")
	mac := fs.String("mac", "", "agent only: the Pi's MAC address, e.g. b8:27:eb:3f:1a:2c")
	row := fs.String("row", "", "agent and plug (required): the Pi's row, or the row the plug measures, e.g. r1")
	password := fs.String("password", "", "password (8-72 bytes); default: a generated one. A password given here stays in the shell history")
	brokerURL := fs.String("broker", "", "agent only: broker URL to print for the agent; default tcp://<this host>:1883")
	pos, err := parseUserFlags(fs, dataDir, args, stderr)
	if err != nil {
		return err
	}
	if *role == "" {
		return errors.New("user add: --role is required (admin, viewer, automation, homeassistant, agent or plug)")
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	if r == auth.RolePlug && *row == "" {
		// The broker lets a plug publish only for its own row, so a plug user without one
		// could publish nothing.
		return errors.New("user add: a plug user needs --row, the row its plug measures, e.g. pirack user add plug-r1 --role plug --row r1")
	}
	u := auth.User{Role: r, MAC: *mac, Row: *row}
	switch {
	case len(pos) > 1:
		return fmt.Errorf("user add: one name expected, got %q", pos)
	case len(pos) == 1:
		u.Name = pos[0]
	case r != auth.RoleAgent:
		return errors.New("user add: give the user's name, e.g. pirack user add alice --role viewer")
	}

	generated := *password == ""
	secret := *password
	if generated {
		secret = auth.GeneratePassword()
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("user add: create data directory: %w", err)
	}
	users, err := auth.Open(filepath.Join(*dataDir, usersFileName))
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	if err := users.Add(u, secret); err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	// Add normalised the name (an agent's is its MAC, in topic form): report what was stored.
	name := u.Name
	if r == auth.RoleAgent {
		name, _ = topics.NormalizeMAC(*mac) // Add succeeded, so the MAC is valid
	}
	if stored, ok := users.Get(name); ok {
		u = stored
	}

	if r != auth.RoleAgent {
		if r == auth.RolePlug {
			fmt.Fprintf(stdout, "Added user %s with role %s, for row %s.\n", name, r, u.Row)
		} else {
			fmt.Fprintf(stdout, "Added user %s with role %s.\n", name, r)
		}
		if generated {
			fmt.Fprintf(stdout, "Password (shown only now; pirack keeps only a hash):\n\n  %s\n", secret)
		}
		if r == auth.RolePlug {
			fmt.Fprintf(stdout, `
Give the plug this user and password in its MQTT settings (Tasmota: Configuration > MQTT, or
the MqttUser and MqttPassword commands; Shelly: Settings > MQTT), and map it to row %s in
%s (docs/hardware.md). The plug may publish only to the
topics that file maps to row %s, so restart pirack serve after editing it.
`, u.Row, filepath.Join(*dataDir, powerbridge.FileName), u.Row)
		}
		return nil
	}
	broker := *brokerURL
	if broker == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "<this-host>"
		}
		broker = "tcp://" + host + ":1883"
	}
	// The secret is typed (pasted) at a prompt that does not echo, not written into the
	// command: a command line ends up in the shell's history file, and in ps while it runs.
	fmt.Fprintf(stdout, `Added agent %s for row %s. Its password is shown only now (pirack keeps only a hash):

  %s

On that Pi, store it readable by root only (systemd hands it to the agent). Paste it at the
prompt, which does not echo it; it stays out of the shell's history:

  sudo install -d -m 700 %s
  read -rs -p 'agent password: ' s && printf '%%s\n' "$s" | sudo install -m 600 /dev/stdin %s; unset s

then set broker = "%s" and row = "%s" in /etc/pirack/agent.toml (the pirack-agent package
installs it), check and start it (docs/deploy.md, step by step):

  sudo pirack-agent config check /etc/pirack/agent.toml && sudo systemctl start pirack-agent

The agent runs unprivileged; to try it by hand first, as a user in the gpio group:

  pirack-agent --broker %s --mac %s --row %s --username %s --password-file <a copy of the secret, mode 600>
`, name, u.Row, secret, filepath.Dir(agentSecretPath), agentSecretPath,
		broker, u.Row, broker, u.MAC, u.Row, name)
	return nil
}

func runUserList(args []string, stdout, stderr io.Writer) error {
	fs, dataDir := newUserFlagSet("list", stderr)
	pos, err := parseUserFlags(fs, dataDir, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("user list takes no arguments, got %q", pos)
	}
	users, err := auth.Open(filepath.Join(*dataDir, usersFileName))
	if err != nil {
		return fmt.Errorf("user list: %w", err)
	}
	list := users.List()
	if len(list) == 0 {
		fmt.Fprintf(stdout, "No users in %s.\n", users.Path())
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tMAC\tROW\tCREATED")
	for _, u := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, dash(u.MAC), dash(u.Row), u.Created.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func runUserRemove(args []string, stdout, stderr io.Writer) error {
	fs, dataDir := newUserFlagSet("remove", stderr)
	pos, err := parseUserFlags(fs, dataDir, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("user remove: give exactly one user name (see pirack user list)")
	}
	users, err := auth.Open(filepath.Join(*dataDir, usersFileName))
	if err != nil {
		return fmt.Errorf("user remove: %w", err)
	}
	if err := users.Remove(pos[0]); err != nil {
		return fmt.Errorf("user remove: %w", err)
	}
	fmt.Fprintf(stdout, "Removed user %s. A connection it already has stays open until it reconnects; restart pirack serve to end it now.\n", pos[0])
	return nil
}

// runUserPasswd gives a user a new password, keeping its role, MAC and row. It also brings a
// user made before pirack stored Mosquitto hashes into `pirack broker-config mosquitto`.
func runUserPasswd(args []string, stdout, stderr io.Writer) error {
	fs, dataDir := newUserFlagSet("passwd", stderr)
	password := fs.String("password", "", "the new password (8-72 bytes); default: a generated one. A password given here stays in the shell history")
	pos, err := parseUserFlags(fs, dataDir, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("user passwd: give exactly one user name (see pirack user list)")
	}
	users, err := auth.Open(filepath.Join(*dataDir, usersFileName))
	if err != nil {
		return fmt.Errorf("user passwd: %w", err)
	}
	u, ok := users.Get(pos[0])
	if !ok {
		return fmt.Errorf("user passwd: no user %q in %s (see pirack user list)", pos[0], users.Path())
	}
	secret := *password
	if secret == "" {
		secret = auth.GeneratePassword()
	}
	if err := users.Set(u, secret); err != nil {
		return fmt.Errorf("user passwd: %w", err)
	}
	fmt.Fprintf(stdout, "New password for %s. Clients logged in with the old one stay connected until they reconnect.\n", u.Name)
	if *password == "" {
		fmt.Fprintf(stdout, "Password (shown only now; pirack keeps only a hash):\n\n  %s\n", secret)
	}
	fmt.Fprintln(stdout, "On a foreign broker, run pirack broker-config mosquitto again and reload it.")
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
