package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pirack/pirack/enroll"
	"github.com/pirack/pirack/topics"
)

// runEnroll is `pirack enroll`: a one-use token for a new Pi of a row, and the command to run on it.
func runEnroll(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := dataDirFlag(fs, "the control center's data directory (run as its user: sudo -u pirack pirack enroll ...)")
	row := fs.String("row", "", "the row the new Pi sits in (required)")
	ttl := fs.Duration("ttl", enroll.DefaultTTL, "how long the token may be used (1m to 24h); it works once")
	host, _ := os.Hostname()
	url := fs.String("url", "http://"+host+":8080", "the Control Center's address as the Pi reaches it, for the printed command")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack enroll --row ROW [flags]\n\nIssues a one-use enrolment token for a new Pi of ROW and prints the command that enrols\nit. The Pi then waits for approval: press its button, or Approve on the page.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *row == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("enroll: --row is required, and nothing else")
	}
	if err := topics.ValidateRow(*row); err != nil {
		return fmt.Errorf("--row %q: %w", *row, err)
	}
	dir, err := resolveDataDir(*dataDir, stderr)
	if err != nil {
		return err
	}
	*dataDir = dir
	if _, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("data directory: %w (give the control center's, with --data-dir)", err)
	}
	token, exp, err := enroll.Open(*dataDir).Issue(*row, *ttl, "cli")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, `Enrolment token for one Pi of row %s, valid until %s:

  %s

On the Pi, with the pirack-agent package installed:

  sudo pirack-agent enroll %s %s

It then shows on the Control Center as waiting for approval: press its button at the rack (or
Approve on its tile), and it takes the next free slot of row %s.
`, *row, exp.Local().Format(time.DateTime), token, *url, token, *row)
	return err
}
