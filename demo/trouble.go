package demo

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/topics"
)

// trouble is something that goes wrong with a simulated Pi, so a newcomer sees every state and
// alert of the Control Center within minutes: a Pi running hot, short of voltage, filling its
// disk, hung (no telemetry: stale), dropping off the network and coming back, its row's
// supply sagging (the row's watts and volts drop, as when a PSU fails), or its NVMe drive over
// the limit the drive reports (sensor_hot).
type trouble string

const (
	troubleHot          trouble = "running hot"
	troubleUnderVoltage trouble = "under-voltage"
	troubleDiskFull     trouble = "disk filling up"
	troubleStale        trouble = "hung (no telemetry)"
	troubleOffline      trouble = "off the network"
	troubleRowPower     trouble = "its row's supply sagging"
	troubleDriveHot     trouble = "its NVMe drive over its limit" // only a Pi with an NVMe drive
	// troubleHalted is not a trouble taken in turn but a Pi shut down from the control center
	// (its agent allows it): off until haltedFor has passed, as if it were pulled and plugged
	// back in; a reboot is off for rebootFor.
	troubleHalted trouble = "shut down"
)

// How long a simulated Pi stays off after a shutdown, and after a reboot (variables for the
// tests).
var (
	haltedFor = 3 * time.Minute
	rebootFor = 15 * time.Second
)

// troubles are taken in turn.
var troubles = []trouble{troubleHot, troubleStale, troubleUnderVoltage, troubleOffline, troubleRowPower, troubleDiskFull, troubleDriveHot}

// Default pace of the troubles: one starts every TroubleEvery, each lasts TroubleFor (longer
// than the alerts' one-minute "for", so they are raised), so one or two Pis are in trouble at
// a time.
const (
	DefaultTroubleEvery = 50 * time.Second
	DefaultTroubleFor   = 90 * time.Second
)

// troubleState is the trouble of one simulated Pi, read by its collector and its runner.
type troubleState struct {
	mu      sync.Mutex
	t       trouble // "" for none
	changed chan struct{}
}

func newTroubleState() *troubleState { return &troubleState{changed: make(chan struct{})} }

func (s *troubleState) get() (trouble, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t, s.changed
}

func (s *troubleState) set(t trouble) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = t
	close(s.changed)
	s.changed = make(chan struct{})
}

// troubledCollector is a simulated Pi's collector with its trouble laid over the readings. The
// embedded SimCollector gives the agent its model and serial as before.
type troubledCollector struct {
	*agent.SimCollector
	state *troubleState
}

func (c troubledCollector) Collect(ctx context.Context) (topics.Metrics, error) {
	for {
		t, changed := c.state.get()
		if t != troubleStale {
			break
		}
		// Hung: no sample until the trouble ends, as a wedged Pi sends none.
		select {
		case <-ctx.Done():
			return topics.Metrics{}, ctx.Err()
		case <-changed:
		}
	}
	m, err := c.SimCollector.Collect(ctx)
	t, _ := c.state.get()
	switch t {
	case troubleHot:
		v := 84 + 4*rand.Float64()
		v = float64(int(v*10)) / 10
		m.CPUTempC = &v
	case troubleUnderVoltage:
		m.ThrottledNow = []string{topics.ThrottleUnderVoltage}
		if !slices.Contains(m.ThrottledSinceBoot, topics.ThrottleUnderVoltage) {
			m.ThrottledSinceBoot = append(slices.Clone(m.ThrottledSinceBoot), topics.ThrottleUnderVoltage)
		}
	case troubleDriveHot:
		m.Temps = slices.Clone(m.Temps)
		for i, s := range m.Temps {
			if s.MaxC != nil {
				m.Temps[i].C = math.Round((*s.MaxC+1+3*rand.Float64())*10) / 10
			}
		}
	case troubleDiskFull:
		if m.DiskTotalBytes != nil {
			total := *m.DiskTotalBytes
			used, free := total/100*93, total/100*2
			m.DiskUsedBytes, m.DiskFreeBytes = &used, &free
			m.Filesystems = slices.Clone(m.Filesystems)
			for i, f := range m.Filesystems {
				if f.Mount == "/" {
					m.Filesystems[i].UsedBytes, m.Filesystems[i].FreeBytes = used, free
				}
			}
		}
	}
	return m, err
}

// makeTrouble puts one simulated Pi in trouble every `every`, for `last`, taking the troubles in
// turn and never the Pi already in trouble, until ctx is done.
func makeTrouble(ctx context.Context, pis []*pi, every, last time.Duration, log *slog.Logger) {
	next := 0
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[*pi]bool{}
	var mu sync.Mutex
	timer := time.NewTimer(every / 5) // the first one soon: a newcomer is watching
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(every)
		t := troubles[next%len(troubles)]
		next++
		mu.Lock()
		var free []*pi
		for _, p := range pis {
			if t == troubleDriveHot && !agent.SimHasNVMe(p.seed) {
				continue
			}
			if cur, _ := p.trouble.get(); !busy[p] && cur == "" {
				free = append(free, p)
			}
		}
		if len(free) == 0 {
			mu.Unlock()
			continue
		}
		p := free[rand.IntN(len(free))]
		busy[p] = true
		mu.Unlock()
		log.Info("demo: a Pi is in trouble", "pi", p.hostname, "trouble", string(t), "for", last)
		p.trouble.set(t)
		wg.Go(func() {
			select {
			case <-ctx.Done():
			case <-time.After(last):
			}
			p.trouble.set("")
			mu.Lock()
			delete(busy, p)
			mu.Unlock()
		})
	}
}
