// Command pirack is the control center (broker + dashboard) and the operator's tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "pirack:", err)
		os.Exit(exitStatus(err))
	}
}

// command is one subcommand: it parses its own flags from args and runs.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the control center: MQTT broker and web dashboard", runServe},
		{"demo", "run the control center with a simulated 24-Pi rack", runDemo},
		{"nodes", "list the Pis: state, load, temperature, last report (over MQTT)", runNodes},
		{"watch", "the rack live in the terminal, row by row and slot by slot (over MQTT)", runWatch},
		{"locate", "flash a Pi's LED until someone presses its button at the rack", runLocate},
		{"blink", "make the LED of Pis blink, and wait for each to report it", runBlink},
		{"remove", "take a Pi out of the rack safely: press at the rack, shutdown, SAFE TO PULL, replacement (over HTTP)", runRemove},
		{"user", "manage MQTT and dashboard users (add, list, remove)", runUser},
		{"enroll", "issue a one-use token that enrols a new Pi (pirack-agent enroll on the Pi)", runEnroll},
		{"config", "write a commented config file for serve, or check one", runConfig},
		{"broker-config", "write an external broker's users and ACL from pirack's (mosquitto)", runBrokerConfig},
		{"bench", "soak and reconnect benchmarks with simulated agents (not for production hosts)", runBench},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pirack <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'pirack <command> -h' for a command's flags.")
}
