// Package rackclient is the rack as an MQTT client sees it, for the terminal tools (pirack
// nodes, blink, locate): it connects with a user's account, reads every Pi's retained status,
// metrics and LED state, finds the Pis a user names, and sends LED commands, waiting for the
// Pi's own report that it executed them. Every failure says which of the causes an operator can
// act on it was: the broker unreachable, the account refused, the Pi unknown or offline, the
// command refused or not executed.
package rackclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pirack/pirack/topics"
)

// Kind tells failures apart; the CLI turns each into its own exit status.
type Kind int

const (
	Other         Kind = iota
	CannotConnect      // the broker is unreachable: host, port, network, or the control center down
	WrongLogin         // the broker refused the user name or password
	UnknownPi          // no Pi matches what the user named
	Offline            // the Pi is known but not connected
	NotExecuted        // the command was refused by the broker, or the Pi did not report executing it
	NotFound           // a locate ended without anyone pressing the Pi's button
)

// Error is a failure with its Kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// KindOf is err's Kind (Other when it has none).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Other
}

// Options are what Dial needs.
type Options struct {
	Broker   string // tcp://host:1883, ssl://host:8883
	Username string
	Password string
	Timeout  time.Duration // connecting, and each wait for the broker; 0 means 10 s
}

// Client is one connection to the broker.
type Client struct {
	c       mqtt.Client
	opts    Options
	timeout time.Duration
}

// Dial connects as opts.Username. It tells an unreachable broker from a refused login.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	o := mqtt.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID("pirack-cli-" + hex.EncodeToString(suffix)).
		SetUsername(opts.Username).SetPassword(opts.Password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetConnectTimeout(timeout).
		SetAutoReconnect(false).
		SetConnectRetry(false)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(timeout + time.Second):
		return nil, fail(CannotConnect, "cannot connect to %s: no answer within %v; is pirack serve running there, and the port open?", opts.Broker, timeout)
	}
	if err := tok.Error(); err != nil {
		if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			return nil, fail(WrongLogin, "%s refused user %q: wrong user name or password", opts.Broker, opts.Username)
		}
		return nil, fail(CannotConnect, "cannot connect to %s: %v; is pirack serve running there, and the port open?", opts.Broker, err)
	}
	return &Client{c: c, opts: opts, timeout: timeout}, nil
}

// Close disconnects.
func (c *Client) Close() { c.c.Disconnect(250) }

// Pi is one Pi as its retained messages describe it.
type Pi struct {
	MAC      string           `json:"mac"`
	Row      string           `json:"row"`
	Online   bool             `json:"online"`
	Status   topics.Status    `json:"status"`
	Metrics  *topics.Metrics  `json:"metrics,omitempty"`
	LastSeen time.Time        `json:"last_seen,omitzero"` // the newest sample's or status's time
	LED      *topics.LEDState `json:"led,omitempty"`
	Slot     int              `json:"slot,omitempty"`      // its slot in its row (rack/<row>/layout), 0 when in none
	SlotName string           `json:"slot_name,omitempty"` // the slot's name
}

// Row is one row as its retained layout describes it.
type Row struct {
	Name     string
	Position int                 // 0 for the top shelf; rows without a layout come last
	Slots    []topics.LayoutSlot // slot 1 first
}

// Rack is everything a snapshot read: the Pis, sorted by row (in rack order), slot and MAC,
// and the rows with their slots.
type Rack struct {
	Pis  []*Pi
	Rows []Row
}

// Name is the Pi's hostname, or its MAC when it has none.
func (p *Pi) Name() string {
	if p.Status.Hostname != "" {
		return p.Status.Hostname
	}
	return p.MAC
}

// rackFilters are the retained topics a snapshot reads.
var rackFilters = map[string]byte{topics.StatusFilter: 1, topics.MetricsFilter: 0, topics.LEDStateFilter: 1, topics.LayoutFilter: 1}

// Snapshot reads every Pi's retained messages and the rows' layouts: it subscribes, then waits
// until no retained message has come for quiet (the broker sends them right after the
// subscription), at most the client's timeout.
func (c *Client) Snapshot(ctx context.Context, quiet time.Duration) (Rack, error) {
	st := newState()
	var mu sync.Mutex
	last := time.Now()
	tok := c.c.SubscribeMultiple(rackFilters, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Retained() {
			// Live messages keep coming on a busy rack; only the retained ones end.
			last = time.Now()
		}
		st.apply(m.Topic(), m.Payload())
	})
	if err := c.wait(ctx, tok, "subscribe to the rack's topics"); err != nil {
		return Rack{}, err
	}
	defer c.c.Unsubscribe(filterList()...)
	deadline := time.Now().Add(c.timeout)
	for {
		mu.Lock()
		idle := time.Since(last)
		mu.Unlock()
		if idle >= quiet || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Rack{}, ctx.Err()
		case <-time.After(quiet - idle):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return st.rack(), nil
}

// Watch calls show with the whole rack now, then again after each change, at most every
// every, until ctx ends or the connection is lost.
func (c *Client) Watch(ctx context.Context, every time.Duration, show func(Rack)) error {
	st := newState()
	var mu sync.Mutex
	dirty := make(chan struct{}, 1)
	tok := c.c.SubscribeMultiple(rackFilters, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		st.apply(m.Topic(), m.Payload())
		mu.Unlock()
		select {
		case dirty <- struct{}{}:
		default:
		}
	})
	if err := c.wait(ctx, tok, "subscribe to the rack's topics"); err != nil {
		return err
	}
	defer c.c.Unsubscribe(filterList()...)
	tick := time.NewTicker(every)
	defer tick.Stop()
	changed := true
	for {
		if changed {
			mu.Lock()
			r := st.rack()
			mu.Unlock()
			show(r)
			changed = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
			// Gather the changes of one tick into one redraw.
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			changed = true
		case <-tick.C:
			if !c.c.IsConnectionOpen() {
				return fail(CannotConnect, "the connection to %s was lost", c.opts.Broker)
			}
			changed = true // ages ("3s ago") move on
		}
	}
}

// state is the rack being read: Pis by MAC, layouts by row.
type state struct {
	pis  map[string]*Pi
	rows map[string]topics.Layout
}

func newState() *state { return &state{pis: map[string]*Pi{}, rows: map[string]topics.Layout{}} }

// rack is the state as a Rack: every Pi with its slot, sorted as the page shows them.
func (st *state) rack() Rack {
	var r Rack
	for name, l := range st.rows {
		r.Rows = append(r.Rows, Row{Name: name, Position: l.Position, Slots: l.Slots})
	}
	seen := map[string]bool{}
	for _, p := range st.pis {
		if !seen[p.Row] {
			seen[p.Row] = true
			if _, ok := st.rows[p.Row]; !ok {
				r.Rows = append(r.Rows, Row{Name: p.Row, Position: 1 << 20})
			}
		}
	}
	slices.SortFunc(r.Rows, func(a, b Row) int {
		if a.Position != b.Position {
			return a.Position - b.Position
		}
		return strings.Compare(a.Name, b.Name)
	})
	order := map[string]int{}
	for i, row := range r.Rows {
		order[row.Name] = i
		for _, sl := range row.Slots {
			if p := st.pis[sl.MAC]; p != nil && sl.MAC != "" {
				p.Slot, p.SlotName = sl.Slot, sl.Name
			}
		}
	}
	for _, p := range st.pis {
		if l, ok := st.rows[p.Row]; !ok || !inLayout(l, p.MAC) {
			p.Slot, p.SlotName = 0, ""
		}
		cp := *p
		r.Pis = append(r.Pis, &cp)
	}
	slot := func(p *Pi) int {
		if p.Slot == 0 {
			return 1 << 20
		}
		return p.Slot
	}
	slices.SortFunc(r.Pis, func(a, b *Pi) int {
		if order[a.Row] != order[b.Row] {
			return order[a.Row] - order[b.Row]
		}
		if slot(a) != slot(b) {
			return slot(a) - slot(b)
		}
		return strings.Compare(a.MAC, b.MAC)
	})
	return r
}

func inLayout(l topics.Layout, mac string) bool {
	for _, s := range l.Slots {
		if s.MAC == mac {
			return true
		}
	}
	return false
}

func filterList() []string {
	var f []string
	for k := range rackFilters {
		f = append(f, k)
	}
	return f
}

// apply records one message.
func (st *state) apply(topic string, payload []byte) {
	t, err := topics.Parse(topic)
	if err != nil {
		return
	}
	if t.Kind == topics.KindLayout {
		if len(payload) == 0 {
			delete(st.rows, t.Row)
		} else if l, err := topics.DecodeLayout(payload); err == nil {
			st.rows[t.Row] = l
		}
		return
	}
	if t.MAC == "" || len(payload) == 0 {
		return
	}
	p := st.pis[t.MAC]
	if p == nil {
		p = &Pi{MAC: t.MAC, Row: t.Row}
		st.pis[t.MAC] = p
	}
	switch t.Kind {
	case topics.KindStatus:
		st, err := topics.DecodeStatus(payload)
		if err != nil {
			return
		}
		if st.State == topics.StateOffline && st.Hostname == "" {
			// A Will or a clean stop carries no identity: keep the birth's.
			st.Hostname, st.IP, st.Model, st.AgentVersion = p.Status.Hostname, p.Status.IP, p.Status.Model, p.Status.AgentVersion
		}
		p.Status, p.Online = st, st.State == topics.StateOnline
		if st.TS.After(p.LastSeen) {
			p.LastSeen = st.TS
		}
	case topics.KindMetrics:
		m, err := topics.DecodeMetrics(payload)
		if err != nil {
			return
		}
		p.Metrics = &m
		if m.TS.After(p.LastSeen) {
			p.LastSeen = m.TS
		}
	case topics.KindLEDState:
		if st, err := topics.DecodeLEDState(payload); err == nil {
			p.LED = &st
		}
	}
}

// Resolve finds the Pis arg names: a MAC (any spelling), a slot as row/slot (r1/3), a hostname
// or a slot's name, or a row's name (every Pi of that row). An unknown name is an UnknownPi
// error that says what to try.
func Resolve(pis []*Pi, arg string) ([]*Pi, error) {
	if mac, err := topics.NormalizeMAC(arg); err == nil {
		for _, p := range pis {
			if p.MAC == mac {
				return []*Pi{p}, nil
			}
		}
		return nil, fail(UnknownPi, "no Pi with MAC %s has reported to this broker (pirack nodes lists them)", mac)
	}
	if row, num, ok := strings.Cut(arg, "/"); ok {
		slot, err := strconv.Atoi(num)
		if err != nil || slot < 1 || topics.ValidateRow(row) != nil {
			return nil, fail(UnknownPi, "%q: a slot is row/number, such as r1/3", arg)
		}
		for _, p := range pis {
			if p.Row == row && p.Slot == slot {
				return []*Pi{p}, nil
			}
		}
		return nil, fail(UnknownPi, "no Pi in slot %d of row %s (pirack nodes shows the slots)", slot, row)
	}
	var byName, byRow []*Pi
	for _, p := range pis {
		if strings.EqualFold(p.Status.Hostname, arg) || (p.SlotName != "" && strings.EqualFold(p.SlotName, arg)) {
			byName = append(byName, p)
		}
		if p.Row == arg {
			byRow = append(byRow, p)
		}
	}
	switch {
	case len(byName) == 1:
		return byName, nil
	case len(byName) > 1:
		var macs []string
		for _, p := range byName {
			macs = append(macs, p.MAC)
		}
		return nil, fail(UnknownPi, "%d Pis are called %q (%s): name one by its MAC or slot", len(byName), arg, strings.Join(macs, ", "))
	case len(byRow) > 0:
		return byRow, nil
	}
	return nil, fail(UnknownPi, "no Pi or row called %q (pirack nodes lists them)", arg)
}

// Sent is what became of one LED command.
type Sent struct {
	Pi      *Pi
	Started time.Time       // when the Pi's report arrived
	State   topics.LEDState // the Pi's report
}

// Command sends cmd to p and waits for p's LED-state report of it (same action, same sender,
// received live, not the retained report of an earlier command). A Pi that is offline is an Offline error, and the command
// is not sent: it would wait in the broker's queue and fire when the Pi comes back, which is
// not what someone at the rack is waiting for.
func (c *Client) Command(ctx context.Context, p *Pi, cmd topics.LEDCommand, wait time.Duration) (Sent, error) {
	if !p.Online {
		return Sent{Pi: p}, fail(Offline, "%s (%s) is offline since %s: the command was not sent", p.Name(), p.MAC, since(p.LastSeen))
	}
	states := make(chan topics.LEDState, 16)
	echoed := make(chan struct{}, 1)
	stateTopic := topics.LEDStateTopic(p.Row, p.MAC)
	cmdTopic := topics.LEDTopic(p.MAC)
	payload, err := topics.Encode(cmd)
	if err != nil {
		return Sent{Pi: p}, err
	}
	tok := c.c.SubscribeMultiple(map[string]byte{stateTopic: 1, cmdTopic: 1}, func(_ mqtt.Client, m mqtt.Message) {
		switch m.Topic() {
		case stateTopic:
			// The retained state is an earlier command's; only a live report answers this one.
			if m.Retained() {
				return
			}
			if st, err := topics.DecodeLEDState(m.Payload()); err == nil {
				select {
				case states <- st:
				default:
				}
			}
		case cmdTopic:
			if string(m.Payload()) == string(payload) {
				select {
				case echoed <- struct{}{}:
				default:
				}
			}
		}
	})
	if err := c.wait(ctx, tok, "subscribe to "+stateTopic); err != nil {
		return Sent{Pi: p}, err
	}
	defer c.c.Unsubscribe(stateTopic, cmdTopic)
	if err := c.wait(ctx, c.c.Publish(cmdTopic, 1, false, payload), "publish to "+cmdTopic); err != nil {
		return Sent{Pi: p}, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	brokerTook := false
	for {
		select {
		case <-ctx.Done():
			return Sent{Pi: p}, ctx.Err()
		case <-echoed:
			brokerTook = true
		case st := <-states:
			if st.Action == cmd.Action && st.By == cmd.By {
				return Sent{Pi: p, Started: time.Now(), State: st}, nil
			}
		case <-timer.C:
			if !brokerTook {
				return Sent{Pi: p}, fail(NotExecuted, "%s (%s): the broker did not pass the command on within %v: user %q may not send LED commands (that takes an admin or automation account)", p.Name(), p.MAC, wait, c.opts.Username)
			}
			return Sent{Pi: p}, fail(NotExecuted, "%s (%s) did not report executing the command within %v: is its agent running and connected?", p.Name(), p.MAC, wait)
		}
	}
}

// AwaitFound waits until p's button is pressed during its locate (a press with found set), or
// its LED stopped without one (a NotFound error), or until d.
func (c *Client) AwaitFound(ctx context.Context, p *Pi, by string, d time.Duration) error {
	found := make(chan time.Time, 1)
	ended := make(chan topics.LEDState, 4)
	button, state := topics.ButtonTopic(p.Row, p.MAC), topics.LEDStateTopic(p.Row, p.MAC)
	tok := c.c.SubscribeMultiple(map[string]byte{button: 1, state: 1}, func(_ mqtt.Client, m mqtt.Message) {
		switch m.Topic() {
		case button:
			if ev, err := topics.DecodeButton(m.Payload()); err == nil && ev.Found {
				select {
				case found <- ev.TS:
				default:
				}
			}
		case state:
			if m.Retained() {
				return
			}
			if st, err := topics.DecodeLEDState(m.Payload()); err == nil && st.State != topics.LEDStateBlinking {
				select {
				case ended <- st:
				default:
				}
			}
		}
	})
	if err := c.wait(ctx, tok, "subscribe to "+button); err != nil {
		return err
	}
	defer c.c.Unsubscribe(button, state)
	timer := time.NewTimer(d)
	defer timer.Stop()
	// The press that finds the Pi also stops its LED, and the two reports may arrive in either
	// order: an LED that stopped waits for the press a little before it counts as not found.
	var grace <-chan time.Time
	var endedBy topics.LEDState
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-found:
			return nil
		case st := <-ended:
			if grace == nil {
				endedBy, grace = st, time.After(foundGrace)
			}
		case <-grace:
			return fail(NotFound, "%s (%s): the locate ended (%s) before anyone pressed the button", p.Name(), p.MAC, describe(endedBy, by))
		case <-timer.C:
			return fail(NotFound, "%s (%s): nobody pressed its button within %v", p.Name(), p.MAC, d)
		}
	}
}

// foundGrace is how long a stopped LED waits for the press that stopped it.
const foundGrace = 3 * time.Second

func describe(st topics.LEDState, by string) string {
	switch {
	case st.By != "" && st.By != by:
		return fmt.Sprintf("replaced by a %q command of %s", st.Action, st.By)
	case st.Action != "" && st.Action != topics.LEDIdentify:
		return fmt.Sprintf("replaced by a %q command", st.Action)
	}
	return "its time ran out on the Pi"
}

// wait waits for a token within the client's timeout.
func (c *Client) wait(ctx context.Context, tok mqtt.Token, what string) error {
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.timeout):
		return fail(CannotConnect, "%s: no answer from %s within %v", what, c.opts.Broker, c.timeout)
	}
	if err := tok.Error(); err != nil {
		if !c.c.IsConnectionOpen() {
			return fail(CannotConnect, "%s: the connection to %s was lost: %v", what, c.opts.Broker, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func since(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.Local().Format("2006-01-02 15:04:05") + " (" + time.Since(t).Round(time.Second).String() + " ago)"
}
