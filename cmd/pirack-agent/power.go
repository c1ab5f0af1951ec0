package main

import (
	"log/slog"
	"sync"

	"github.com/pirack/pirack/agent"
	"github.com/pirack/pirack/hardware/powersensor"
	"github.com/pirack/pirack/topics"
)

var _ agent.PowerSensor = (*powerSensor)(nil)

// powerSensor is the row's power sensor, opened at start if it can be and else at a later
// reading: a sensor whose bus was not enabled yet, or that was wired after the agent started,
// is picked up without a restart, and a broken sensor never keeps the Pi's own telemetry off
// the dashboard. Its errors reach the agent's rate-limited log through Read.
type powerSensor struct {
	spec powersensor.Spec
	log  *slog.Logger
	open func(powersensor.Spec) (*powersensor.Sensor, error) // powersensor.Open; tests replace it

	mu     sync.Mutex
	sensor *powersensor.Sensor // nil until opened
}

func newPowerSensor(spec powersensor.Spec, log *slog.Logger) *powerSensor {
	return &powerSensor{spec: spec, log: log, open: powersensor.Open}
}

// start tries to open the sensor once, saying in the log whether it could.
func (p *powerSensor) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.openLocked(); err != nil {
		p.log.Warn("cannot open the power sensor; trying again at each reading", "spec", p.spec, "err", err)
	}
}

func (p *powerSensor) openLocked() error {
	if p.sensor != nil {
		return nil
	}
	s, err := p.open(p.spec)
	if err != nil {
		return err
	}
	p.sensor = s
	spec := s.Spec()
	p.log.Info("power sensor ready", "sensor", s.String(), "shunt_ohms", spec.ShuntOhms, "max_amps", spec.MaxAmps)
	return nil
}

// Read implements agent.PowerSensor, opening the sensor first if needed.
func (p *powerSensor) Read() (topics.Power, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.openLocked(); err != nil {
		return topics.Power{}, err
	}
	return p.sensor.Read()
}

// Close closes the sensor if it was opened.
func (p *powerSensor) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sensor == nil {
		return nil
	}
	return p.sensor.Close()
}
