// Package button turns a GPIO input line into classified presses, whatever the backend that reads
// the line: it debounces the line's edges and tells short, long and double presses apart.
// Backends only provide a Line (a level that can be read) and, if they get edge events from the
// kernel, a Watcher; package button does the rest, so every backend presses the same way.
//
// # Timing
//
// A change of level counts once the line has held it for Config.Debounce (30 ms by default), so
// contact bounce and glitches shorter than that are ignored. A press held for Config.LongPress
// (2 s) is reported as long as soon as that time is reached, while the button is still down, so
// the operator knows when to let go. Two short presses with less than Config.DoublePress
// (400 ms) between the first release and the second push are one double press.
//
// The price of double presses is latency: a short press is only known not to be the first half
// of a double once the double window has passed, so a single short press is reported
// DoublePress (400 ms) after the button's contact comes to rest on release, where it would
// otherwise take Debounce (30 ms). A negative DoublePress turns double presses off for
// operators who prefer the quicker select. A double press is reported Debounce after its second
// release, a long press the moment it reaches LongPress.
//
// Three shorts in a row are a double and then a short. A short followed by a long press is a
// short and a long. A button held down when Run starts is ignored until it is released.
//
// # Wiring
//
// The default is the original circuit: the button pulls the line to ground through a series
// resistor against a pull-up, so the line reads low while pressed (Config.ActiveHigh false).
package button

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pirack/pirack/hardware"
)

// Defaults applied to zero Config fields.
const (
	DefaultDebounce    = 30 * time.Millisecond
	DefaultLongPress   = 2 * time.Second
	DefaultDoublePress = 400 * time.Millisecond
)

// PollInterval is how often a Line without a Watcher is read. Much shorter than Debounce, so
// polling adds at most a few milliseconds of latency; long enough to cost nothing measurable on
// a Pi Zero.
const PollInterval = 5 * time.Millisecond

// MaxDebounce bounds Config.Debounce: beyond it the button would feel broken.
const MaxDebounce = time.Second

// Config sets a button's timing and polarity. The zero value is the original rack's button.
type Config struct {
	// Debounce is how long the line must keep a new level before it counts. 0 means
	// DefaultDebounce; at most MaxDebounce.
	Debounce time.Duration
	// LongPress is how long a press must be held to be long. 0 means DefaultLongPress.
	LongPress time.Duration
	// DoublePress is the longest gap between releasing a short press and pushing again for the
	// two to be a double press. 0 means DefaultDoublePress; negative turns double presses off,
	// so short presses are reported without waiting.
	DoublePress time.Duration
	// ActiveHigh says a pressed button drives the line high. false (the zero value) means a
	// pressed button pulls the line low against a pull-up, as in the original circuit.
	ActiveHigh bool
}

// WithDefaults returns c with its zero fields set to the defaults, or an error if the timings do
// not make sense together. New applies it; callers use it to check a configuration early.
func (c Config) WithDefaults() (Config, error) {
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.LongPress == 0 {
		c.LongPress = DefaultLongPress
	}
	if c.DoublePress == 0 {
		c.DoublePress = DefaultDoublePress
	}
	switch {
	case c.Debounce < 0 || c.Debounce > MaxDebounce:
		return c, fmt.Errorf("button: debounce %v: want between 1ms and %v (default %v)", c.Debounce, MaxDebounce, DefaultDebounce)
	case c.LongPress <= c.Debounce:
		return c, fmt.Errorf("button: long press %v must be longer than the debounce time %v", c.LongPress, c.Debounce)
	case c.DoublePress > 0 && c.DoublePress <= c.Debounce:
		return c, fmt.Errorf("button: double-press window %v must be longer than the debounce time %v", c.DoublePress, c.Debounce)
	case c.DoublePress >= c.LongPress:
		return c, fmt.Errorf("button: double-press window %v must be shorter than the long press %v", c.DoublePress, c.LongPress)
	}
	return c, nil
}

// Line is a GPIO input as a backend provides it, already configured as an input with the
// pull-up (or pull-down) the wiring needs.
type Line interface {
	// Read returns the line's level now: true for high.
	Read() (high bool, err error)
}

// Watcher is implemented by lines whose backend gets edge events (the GPIO character device).
// Lines without it are polled every PollInterval.
type Watcher interface {
	// Watch calls fn with the line's new level and the time of the change for each edge, until
	// stop is called. fn may be called from another goroutine and does not block.
	Watch(fn func(high bool, at time.Time)) (stop func(), err error)
}

// Button is a debounced, classifying button on a Line. It implements hardware.Button.
type Button struct {
	line Line
	cfg  Config
}

var _ hardware.Button = (*Button)(nil)

// New returns a Button reading line with the timing of cfg, or an error if cfg is inconsistent.
func New(line Line, cfg Config) (*Button, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Button{line: line, cfg: cfg}, nil
}

// Config returns the button's configuration with its defaults applied.
func (b *Button) Config() Config { return b.cfg }

// Run watches the line until ctx is done, calling press for each press. A short press still
// waiting for its double window when ctx is done is reported before Run returns; a press still
// held is not. Run returns nil when ctx is done, or an error if the line cannot be read.
func (b *Button) Run(ctx context.Context, press func(kind string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newQueue(b.cfg.Debounce)
	pollErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()

	// Watch before the first read, so that no edge falls between the two.
	w, evented := b.line.(Watcher)
	if evented {
		stop, err := w.Watch(q.push)
		if err != nil {
			return fmt.Errorf("watch button line: %w", err)
		}
		defer stop()
	}
	initial, err := b.line.Read()
	if err != nil {
		return fmt.Errorf("read button line: %w", err)
	}
	if !evented {
		wg.Go(func() { pollErr <- poll(ctx, b.line, initial, q) })
	}

	m := newMachine(b.cfg, initial == b.cfg.ActiveHigh)
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	for {
		if at, ok := m.wake(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			for _, k := range m.flush() {
				press(k)
			}
			return nil
		case err := <-pollErr:
			return fmt.Errorf("read button line: %w", err)
		case <-q.ready:
			// Edges may have waited while press ran: let the machine catch up to each edge's
			// time before applying it, so that a whole press queued meanwhile still counts.
			for _, e := range q.take() {
				for _, k := range m.tick(e.at) {
					press(k)
				}
				m.edge(e.high, e.at)
			}
		case <-timer.C:
			for _, k := range m.tick(time.Now()) {
				press(k)
			}
		}
	}
}

// poll reads line every PollInterval and queues each change of level, until ctx is done.
func poll(ctx context.Context, line Line, last bool, q *queue) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			high, err := line.Read()
			if err != nil {
				return err
			}
			if high != last {
				last = high
				q.push(high, time.Now())
			}
		}
	}
}

type edge struct {
	high bool
	at   time.Time
}

// queueCap bounds the edges waiting for Run, so that a bounce storm while Run is busy in press
// neither blocks the kernel's event reader nor grows without limit.
const queueCap = 256

// queue hands edges from a watcher or poller to Run without ever blocking the sender.
//
// An edge followed by another within the debounce time can never settle, so the newer edge
// replaces it: contact bounce takes one slot however long it lasts, and Run sees exactly what
// the debouncer needs. A full queue (256 settled changes waiting, several seconds of a stuck
// consumer) overwrites its newest edge, which keeps the line's latest level right.
type queue struct {
	debounce time.Duration
	mu       sync.Mutex
	edges    []edge
	ready    chan struct{} // holds a token while edges is not empty
}

func newQueue(debounce time.Duration) *queue {
	return &queue{debounce: debounce, ready: make(chan struct{}, 1)}
}

func (q *queue) push(high bool, at time.Time) {
	q.mu.Lock()
	n := len(q.edges)
	if n > 0 && (n == queueCap || at.Sub(q.edges[n-1].at) < q.debounce) {
		q.edges[n-1] = edge{high, at}
	} else {
		q.edges = append(q.edges, edge{high, at})
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) take() []edge {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.edges
	q.edges = nil
	return e
}
