package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/rackclient"
)

// runRemove is `pirack remove`: the safe removal of Remove… on a tile, from a terminal. It
// talks to the Control Center's HTTP API, where the removal runs (the press at the rack, the
// shutdown, the proof that the Pi is off), and prints each step as it comes.
func runRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the Control Center")
	username := fs.String("username", "admin", "an admin of the Control Center")
	passwordFile := fs.String("password-file", "", "file holding the password, readable by you only (else $PIRACK_PASSWORD)")
	off := fs.Bool("off", false, "confirm that the Pi is off, when the removal asks you to check its green activity LED")
	cancel := fs.Bool("cancel", false, "cancel the Pi's removal")
	until := fs.String("until", "replaced", "follow the removal until the Pi is safe to pull (safe), or until a new board has taken its slot (replaced)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: pirack remove [flags] PI

Starts the safe removal of PI, as Remove… on its tile does, and follows it: its LED flashes
until someone presses its button at the rack, which shuts it down; once it is proven off, it
is SAFE TO PULL (its LED stays lit); the new board's press then takes its slot. Run again on a
Pi whose removal is running, it follows that one. Ctrl-C stops following; the removal goes on
(on the page too). PI is a MAC, a slot (r1/3), a hostname or a slot's name.

flags:`)
		fs.PrintDefaults()
	}
	if err := parseTool(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("remove: which Pi? (one)")
	}
	if *until != "safe" && *until != "replaced" {
		return fmt.Errorf("--until %q: want safe or replaced", *until)
	}
	password, err := toolPassword(*passwordFile)
	if err != nil {
		return err
	}
	u, err := url.Parse(strings.TrimSuffix(*base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want the Control Center's address, such as http://rack-control.local:8080", *base)
	}
	c := &apiClient{base: u.String(), user: *username, password: password, http: &http.Client{Timeout: 15 * time.Second}}

	n, err := c.resolve(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s %s (%s)", n.Row, n.MAC, nodeName(n))
	switch {
	case *cancel:
		x, err := c.removal(ctx, n.MAC, "/removal/cancel")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s: %s\n", name, x.Note)
		return err
	case *off:
		if _, err := c.removal(ctx, n.MAC, "/removal/off"); err != nil {
			return err
		}
	case n.Removal != nil && !removalDone(n.Removal):
		fmt.Fprintf(stdout, "%s: following the removal %s started at %s\n", name, n.Removal.By, n.Removal.At.Local().Format("15:04:05"))
	default:
		if _, err := c.removal(ctx, n.MAC, "/removal"); err != nil {
			return err
		}
	}
	return c.follow(ctx, n.MAC, name, *until, stdout)
}

// follow prints each step and note of mac's removal until it is done, or safe with until
// "safe". A removal that ended (cancelled, or the Pi came back) is an error.
func (c *apiClient) follow(ctx context.Context, mac, name, until string, stdout io.Writer) error {
	last, asked := "", false
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := c.node(ctx, mac)
		if err != nil {
			return err
		}
		x := n.Removal
		if x == nil {
			return fmt.Errorf("%s has no removal any more (a finished one leaves the tile after 10 minutes)", name)
		}
		if line := removalLine(x); line != last {
			last = line
			fmt.Fprintf(stdout, "%s  %s: %s\n", time.Now().Format("15:04:05"), name, line)
		}
		switch {
		case x.Step == dashboard.RemovalReplaced, x.Step == dashboard.RemovalSafe && until == "safe":
			return nil
		case x.Step == dashboard.RemovalEnded:
			return fmt.Errorf("%s: the removal ended: %s", name, x.Note)
		case x.NeedsCheck && x.Step == dashboard.RemovalVerify && !asked:
			asked = true
			fmt.Fprintf(stdout, "%s  %s: once you have checked it, confirm with: pirack remove --off %s\n", time.Now().Format("15:04:05"), name, mac)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "%s: no longer following; the removal goes on (see its tile)\n", name)
			return nil
		case <-tick.C:
		}
	}
}

// removalLine is a removal's step and note as one line, the steps as the tile shows them:
// "[4/4 SAFE TO PULL] safe to pull (...)".
func removalLine(x *dashboard.Removal) string {
	head := map[string]string{
		dashboard.RemovalLocate: "1/4 press at the rack", dashboard.RemovalShutdown: "2/4 shut down", dashboard.RemovalVerify: "3/4 check it is off",
		dashboard.RemovalSafe: "4/4 SAFE TO PULL", dashboard.RemovalReplaced: "done", dashboard.RemovalEnded: "ended",
	}[x.Step]
	return "[" + head + "] " + x.Note
}

func removalDone(x *dashboard.Removal) bool {
	return x.Step == dashboard.RemovalReplaced || x.Step == dashboard.RemovalEnded
}

func nodeName(n dashboard.Node) string {
	switch {
	case n.SlotName != "":
		return n.SlotName
	case n.Hostname != "":
		return n.Hostname
	}
	return "no name"
}

// apiClient calls the Control Center's JSON API with HTTP Basic auth.
type apiClient struct {
	base, user, password string
	http                 *http.Client
}

// do sends a request and decodes the JSON answer into v; an error answer is returned as the
// Control Center's own message.
func (c *apiClient) do(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.password)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the Control Center at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%s: %s (check --username and the password)", c.base, e.Error)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, e.Error)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

func (c *apiClient) node(ctx context.Context, mac string) (dashboard.Node, error) {
	var n dashboard.Node
	err := c.do(ctx, http.MethodGet, "/api/nodes/"+mac, &n)
	return n, err
}

func (c *apiClient) removal(ctx context.Context, mac, path string) (*dashboard.Removal, error) {
	var x dashboard.Removal
	err := c.do(ctx, http.MethodPost, "/api/nodes/"+mac+path, &x)
	return &x, err
}

// resolve finds the one Pi arg names, as the other terminal tools do (rackclient.Resolve).
func (c *apiClient) resolve(ctx context.Context, arg string) (dashboard.Node, error) {
	var nodes []dashboard.Node
	if err := c.do(ctx, http.MethodGet, "/api/nodes", &nodes); err != nil {
		return dashboard.Node{}, err
	}
	pis := make([]*rackclient.Pi, len(nodes))
	for i, n := range nodes {
		pis[i] = &rackclient.Pi{MAC: n.MAC, Row: n.Row, Slot: n.Slot, SlotName: n.SlotName}
		pis[i].Status.Hostname = n.Hostname
	}
	found, err := rackclient.Resolve(pis, arg)
	if err != nil {
		return dashboard.Node{}, err
	}
	if len(found) != 1 {
		return dashboard.Node{}, fmt.Errorf("%q is a whole row: remove takes one Pi (a MAC, a slot such as %s/3, or a name)", arg, arg)
	}
	for _, n := range nodes {
		if n.MAC == found[0].MAC {
			return n, nil
		}
	}
	return dashboard.Node{}, fmt.Errorf("%s: not found", arg)
}
