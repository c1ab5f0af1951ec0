package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pirack/pirack/config"
	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/rackclient"
	"github.com/pirack/pirack/topics"
)

// The terminal tools (nodes, blink, locate) talk MQTT to the broker with a user's account, as
// any MQTT client does; package rackclient does the work. Their exit status tells failures
// apart, for scripts (docs/control-center.md#terminal-tools).
const (
	exitCannotConnect = 3
	exitWrongLogin    = 4
	exitUnknownPi     = 5
	exitOffline       = 6
	exitNotExecuted   = 7
	exitNotFound      = 8
)

// exitStatus is the process's exit status for err.
func exitStatus(err error) int {
	switch rackclient.KindOf(err) {
	case rackclient.CannotConnect:
		return exitCannotConnect
	case rackclient.WrongLogin:
		return exitWrongLogin
	case rackclient.UnknownPi:
		return exitUnknownPi
	case rackclient.Offline:
		return exitOffline
	case rackclient.NotExecuted:
		return exitNotExecuted
	case rackclient.NotFound:
		return exitNotFound
	}
	return 1
}

// clientFlags are the connection flags every terminal tool takes.
type clientFlags struct {
	broker, username, passwordFile string
	timeout                        time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet, defaultUser string) {
	fs.StringVar(&c.broker, "broker", "tcp://127.0.0.1:1883", "the control center's MQTT broker: tcp://host:1883, or ssl://host:8883")
	fs.StringVar(&c.username, "username", defaultUser, "MQTT user: a viewer reads, an admin or automation also sends LED commands")
	fs.StringVar(&c.passwordFile, "password-file", "", "file holding the password, readable by you only (else $PIRACK_PASSWORD)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the broker")
}

// parseTool parses a tool's flags, then the PIRACK_... environment for those not given
// (PIRACK_BROKER, PIRACK_USERNAME, PIRACK_PASSWORD_FILE...).
func parseTool(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return config.Apply(fs, "", os.Getenv, nil)
}

func (c *clientFlags) dial(ctx context.Context) (*rackclient.Client, error) {
	password, err := toolPassword(c.passwordFile)
	if err != nil {
		return nil, err
	}
	return rackclient.Dial(ctx, rackclient.Options{Broker: c.broker, Username: c.username, Password: password, Timeout: c.timeout})
}

// toolPassword is a terminal tool's password: from file when given, else $PIRACK_PASSWORD.
func toolPassword(file string) (string, error) {
	if file != "" {
		return secretfile.ReadPassword(file, "password file")
	}
	if p := os.Getenv("PIRACK_PASSWORD"); p != "" {
		return p, nil
	}
	return "", errors.New("no password: pass --password-file or set PIRACK_PASSWORD")
}

// snapshotQuiet is how long after the last retained message a snapshot ends.
const snapshotQuiet = 300 * time.Millisecond

func runNodes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, "viewer")
	asJSON := fs.Bool("json", false, "print the Pis as JSON, with every field of their status and metrics")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack nodes [flags] [PI|ROW ...]\n\nLists the Pis with their state, load, temperature and last report, from the broker's\nretained messages. PI is a MAC, a slot (r1/3), a hostname or a slot's name; ROW a row's name.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseTool(fs, args); err != nil {
		return err
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rack, err := c.Snapshot(ctx, snapshotQuiet)
	if err != nil {
		return err
	}
	pis := rack.Pis
	if fs.NArg() > 0 {
		var picked []*rackclient.Pi
		for _, arg := range fs.Args() {
			got, err := rackclient.Resolve(pis, arg)
			if err != nil {
				return err
			}
			picked = append(picked, got...)
		}
		pis = picked
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if pis == nil {
			pis = []*rackclient.Pi{}
		}
		return enc.Encode(pis)
	}
	if len(pis) == 0 {
		_, err := fmt.Fprintln(stdout, "no Pi has reported to this broker yet")
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ROW\tSLOT\tMAC\tNAME\tSTATE\tLOAD\tTEMP\tMEM\tDISK\tLAST SEEN\tAGENT")
	for _, p := range pis {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Row, slotText(p), p.MAC, p.Name(), state(p, now),
			metric(p, func(m *topics.Metrics) string { return num(m.Load1, 2, "") }),
			metric(p, func(m *topics.Metrics) string { return num(m.CPUTempC, 1, " °C") }),
			metric(p, func(m *topics.Metrics) string { return used(m.MemTotalBytes, m.MemAvailableBytes) }),
			metric(p, func(m *topics.Metrics) string {
				if pct, ok := m.DiskUsedPercent(); ok {
					return strconv.Itoa(int(pct+0.5)) + " %"
				}
				return "-"
			}),
			ago(p.LastSeen, now), orDash(p.Status.AgentVersion))
	}
	return w.Flush()
}

// staleAfter is how old a Pi's last report may be while it is online before it shows stale:
// three of the default 5 s intervals, as the Control Center judges by default.
const staleAfter = 15 * time.Second

func state(p *rackclient.Pi, now time.Time) string {
	switch {
	case !p.Online:
		return "offline"
	case now.Sub(p.LastSeen) > staleAfter:
		return "stale"
	}
	return "online"
}

func slotText(p *rackclient.Pi) string {
	if p.Slot == 0 {
		return "-"
	}
	if p.SlotName != "" {
		return strconv.Itoa(p.Slot) + " " + p.SlotName
	}
	return strconv.Itoa(p.Slot)
}

func metric(p *rackclient.Pi, f func(*topics.Metrics) string) string {
	if p.Metrics == nil {
		return "-"
	}
	return f(p.Metrics)
}

func num(v *float64, prec int, unit string) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', prec, 64) + unit
}

func used(total, free *uint64) string {
	if total == nil || free == nil || *total == 0 {
		return "-"
	}
	return strconv.Itoa(int(100*(1-float64(*free)/float64(*total))+0.5)) + " %"
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sendToTargets is blink's and locate's shared part: it connects, finds the Pis targets name,
// sends each its command, waits for its report and hands it to each. With several Pis, a
// failure is printed and the others still get theirs; the first failure is returned.
func sendToTargets(ctx context.Context, cf clientFlags, targets []string, cmd func(by string) topics.LEDCommand,
	each func(c *rackclient.Client, s rackclient.Sent) error, wait time.Duration, stderr io.Writer) error {
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rack, err := c.Snapshot(ctx, snapshotQuiet)
	if err != nil {
		return err
	}
	var picked []*rackclient.Pi
	for _, arg := range targets {
		got, err := rackclient.Resolve(rack.Pis, arg)
		if err != nil {
			return err
		}
		picked = append(picked, got...)
	}
	var firstErr error
	for _, p := range picked {
		s, err := c.Command(ctx, p, cmd(cf.username), wait)
		if err == nil {
			err = each(c, s)
		}
		if err != nil {
			if len(picked) == 1 {
				return err
			}
			fmt.Fprintln(stderr, "pirack:", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func runBlink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("blink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, "admin")
	count := fs.Int("count", topics.DefaultBlinkCount, "number of flashes")
	period := fs.Duration("period", topics.DefaultBlinkPeriodMS*time.Millisecond, "one on+off cycle")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the Pi to report its LED blinking")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack blink [flags] PI|ROW ...\n\nMakes the LED of each Pi blink so it can be found in the rack, and waits for each Pi to\nreport that it does. PI is a MAC, a slot (r1/3), a hostname or a slot's name; ROW a row's\nname (every Pi of it).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseTool(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("blink: which Pi?")
	}
	build := func(by string) topics.LEDCommand {
		now := time.Now().UTC()
		return topics.LEDCommand{Action: topics.LEDBlink, Count: *count, PeriodMS: int(period.Milliseconds()),
			IssuedAt: now, ExpiresAt: now.Add(*wait), By: by}.WithDefaults()
	}
	return sendToTargets(ctx, cf, fs.Args(), build, func(_ *rackclient.Client, s rackclient.Sent) error {
		_, err := fmt.Fprintf(stdout, "%s %s (%s): blinking %d x %v since %s\n", s.Pi.Row, s.Pi.MAC, s.Pi.Name(),
			*count, *period, s.Started.Format("15:04:05.000"))
		return err
	}, *wait, stderr)
}

func runLocate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("locate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, "admin")
	timeout := fs.Duration("for", 10*time.Minute, "how long the LED flashes while nobody presses the Pi's button (at most 1h)")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the Pi to report its LED flashing")
	stop := fs.Bool("stop", false, "stop the Pi's locate (anyone's): its LED goes off")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack locate [flags] PI\n\nFlashes the Pi's LED until someone presses its button at the rack (or --for runs out),\nprinting when the LED started and when the button was pressed. PI is a MAC, a slot (r1/3),\na hostname or a slot's name.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseTool(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("locate: which Pi? (one)")
	}
	if *timeout < time.Second || *timeout > time.Hour {
		return fmt.Errorf("--for %v: want 1s to 1h", *timeout)
	}
	if *stop {
		off := func(by string) topics.LEDCommand {
			now := time.Now().UTC()
			return topics.LEDCommand{Action: topics.LEDOff, IssuedAt: now, ExpiresAt: now.Add(*wait), By: by}.WithDefaults()
		}
		return sendToTargets(ctx, cf, fs.Args(), off, func(_ *rackclient.Client, s rackclient.Sent) error {
			_, err := fmt.Fprintf(stdout, "%s %s (%s): locate stopped, LED off\n", s.Pi.Row, s.Pi.MAC, s.Pi.Name())
			return err
		}, *wait, stderr)
	}
	build := func(by string) topics.LEDCommand {
		now := time.Now().UTC()
		return topics.LEDCommand{Action: topics.LEDIdentify, TimeoutS: int(timeout.Round(time.Second) / time.Second),
			IssuedAt: now, ExpiresAt: now.Add(*wait), By: by}.WithDefaults()
	}
	return sendToTargets(ctx, cf, fs.Args(), build, func(c *rackclient.Client, s rackclient.Sent) error {
		fmt.Fprintf(stdout, "%s %s (%s): LED flashing since %s; press its button to end it\n", s.Pi.Row, s.Pi.MAC, s.Pi.Name(),
			s.Started.Format("15:04:05.000"))
		if err := c.AwaitFound(ctx, s.Pi, cf.username, *timeout); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s %s (%s): found at %s, %v after the LED started\n", s.Pi.Row, s.Pi.MAC, s.Pi.Name(),
			time.Now().Format("15:04:05.000"), time.Since(s.Started).Round(100*time.Millisecond))
		return err
	}, *wait, stderr)
}
