// Package switchbus is a dashboard Bus over an embedded broker that can be replaced, for the
// tools that restart the broker under a running Control Center: `pirack bench` and the
// end-to-end reliability tests.
package switchbus

import (
	"context"
	"sync"

	"github.com/pirack/pirack/bus"

	"github.com/pirack/pirack/broker"
)

// Bus publishes to the current broker and keeps every subscription, so that Swap can register
// them all with the next one. The zero value has no broker: call Swap before using it.
type Bus struct {
	// Tee, when set, sees every message after the subscriber it was delivered to (for example
	// to count what the dashboard ingested). Set it before the first Subscribe.
	Tee bus.Handler

	mu   sync.Mutex
	b    *broker.Broker
	subs []sub
}

type sub struct {
	filter string
	fn     bus.Handler
}

// Swap makes b the current broker and registers every subscription made so far with it. b must
// not have started yet, so that it delivers nothing before the subscriptions are in place.
func (s *Bus) Swap(b *broker.Broker) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = b
	for _, x := range s.subs {
		if err := b.Subscribe(x.filter, x.fn); err != nil {
			return err
		}
	}
	return nil
}

// Current returns the current broker, nil before the first Swap.
func (s *Bus) Current() *broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

// Subscribe subscribes fn on the current broker and on every broker swapped in later.
func (s *Bus) Subscribe(filter string, fn bus.Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tee := s.Tee; tee != nil {
		inner := fn
		fn = func(m bus.Message) {
			inner(m)
			tee(m)
		}
	}
	s.subs = append(s.subs, sub{filter, fn})
	return s.b.Subscribe(filter, fn)
}

// Publish publishes on the current broker.
func (s *Bus) Publish(ctx context.Context, m bus.Message) error {
	return s.Current().Publish(ctx, m)
}
