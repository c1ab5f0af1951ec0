package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/pirack/pirack/config"
)

// packagedSettings are what the pirack-agent .deb's /etc/pirack/agent.toml sets: where the
// package keeps the agent's state and where enrolment writes its secret.
var packagedSettings = map[string]string{
	"store-dir":     "/var/lib/pirack-agent",
	"password-file": "/etc/pirack/agent.secret",
}

const agentConfigHeader = `pirack-agent: the agent on each Pi of the rack.
Installed as /etc/pirack/agent.toml by the pirack-agent package; pirack-agent --config FILE reads it.
Set at least row and broker (or run pirack-agent enroll), then check it:
pirack-agent config check /etc/pirack/agent.toml`

// runConfig is `pirack-agent config example|check`.
func runConfig(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: pirack-agent config example [--packaged] | check FILE\n\n" +
		"  example  print a commented config file of every pirack-agent setting (--packaged: as the .deb installs it)\n" +
		"  check    check a config file as the agent would at start (syntax, keys, values, the files it names);\n" +
		"           exit 1 with the line and key of each problem\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("config: example or check?")
	}
	switch args[0] {
	case "example":
		fs := flag.NewFlagSet("config example", flag.ContinueOnError)
		fs.SetOutput(stderr)
		packaged := fs.Bool("packaged", false, "the file the pirack-agent package installs")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var values map[string]string
		if *packaged {
			values = packagedSettings
		}
		var opts options
		var x rawFlags
		return config.Example(stdout, agentFlags(&opts, &x, io.Discard), agentConfigHeader, values, notInConfig)
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return errors.New("config check: which file?")
		}
		var opts options
		var x rawFlags
		fs := agentFlags(&opts, &x, io.Discard)
		none := func(string) string { return "" }
		if err := config.Apply(fs, args[1], none, notInConfig); err != nil {
			return err
		}
		if err := checkOptions(&opts, x, io.Discard, none); err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
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
