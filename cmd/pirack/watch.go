package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pirack/pirack/rackclient"
	"github.com/pirack/pirack/topics"
)

// clearScreen moves the cursor home and clears the terminal: each frame replaces the last.
const clearScreen = "\x1b[H\x1b[2J"

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, "viewer")
	every := fs.Duration("every", time.Second, "redraw at most this often")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack watch [flags]\n\nThe rack live in the terminal, redrawn in place as Pis report: rows in rack order, each\nslot with its Pi's state, load, temperature and last report, as on the Control Center's page.\nCtrl-C ends it.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseTool(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *every < 100*time.Millisecond {
		fs.Usage()
		return fmt.Errorf("watch takes no arguments, and --every of at least 100ms")
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Watch(ctx, *every, func(r rackclient.Rack) {
		var b strings.Builder
		b.WriteString(clearScreen)
		renderRack(&b, r, cf.broker, time.Now())
		io.WriteString(stdout, b.String())
	})
}

// renderRack draws the rack as text: a header with counts, then each row's slots in order
// (empty ones too), then the row's Pis in no slot.
func renderRack(b *strings.Builder, r rackclient.Rack, broker string, now time.Time) {
	counts := map[string]int{}
	for _, p := range r.Pis {
		counts[state(p, now)]++
	}
	fmt.Fprintf(b, "pirack watch  %s  %s  %d online, %d stale, %d offline  (Ctrl-C to quit)\n",
		broker, now.Format("15:04:05"), counts["online"], counts["stale"], counts["offline"])
	byMAC := map[string]*rackclient.Pi{}
	for _, p := range r.Pis {
		byMAC[p.MAC] = p
	}
	for _, row := range r.Rows {
		fmt.Fprintf(b, "\nRow %s\n", row.Name)
		for _, sl := range row.Slots {
			label := fmt.Sprintf("#%-3d %-12s", sl.Slot, clipTo(sl.Name, 12))
			if p := byMAC[sl.MAC]; p != nil {
				b.WriteString("  " + label + " " + piLine(p, now) + "\n")
			} else if sl.MAC != "" {
				fmt.Fprintf(b, "  %s %s  (never reported)\n", label, sl.MAC)
			} else {
				fmt.Fprintf(b, "  %s -- empty --\n", label)
			}
		}
		for _, p := range r.Pis {
			if p.Row == row.Name && p.Slot == 0 {
				b.WriteString("  " + fmt.Sprintf("%-17s", "(no slot)") + " " + piLine(p, now) + "\n")
			}
		}
	}
	if len(r.Pis) == 0 {
		b.WriteString("\nno Pi has reported to this broker yet\n")
	}
}

// piLine is one Pi: name, state, and its last numbers (greyed in words when it is not online).
func piLine(p *rackclient.Pi, now time.Time) string {
	st := state(p, now)
	if st != "online" {
		st = strings.ToUpper(st)
	}
	line := fmt.Sprintf("%-16s %-7s", clipTo(p.Name(), 16), st)
	if p.Metrics != nil {
		line += fmt.Sprintf("  load %-5s %-8s mem %-5s", num(p.Metrics.Load1, 2, ""), num(p.Metrics.CPUTempC, 1, " °C"),
			used(p.Metrics.MemTotalBytes, p.Metrics.MemAvailableBytes))
	}
	if p.LED != nil && p.LED.State == topics.LEDStateBlinking {
		line += "  LED " + p.LED.Action
	}
	return line + "  " + ago(p.LastSeen, now)
}

func clipTo(s string, n int) string {
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}
