package broker

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/mqttfilter"
)

// inprocSubs are the in-process subscribers. They are kept out of Mochi's topic index: Mochi
// calls its inline subscribers during fan-out, after it has acknowledged the publish, and the
// auth hook delivers to these before (see Broker.Subscribe).
type inprocSubs struct {
	mu   sync.Mutex                  // serialises add
	list atomic.Pointer[[]inprocSub] // read without a lock on every publish
}

type inprocSub struct {
	filter string
	fn     bus.CheckedHandler
}

func (s *inprocSubs) add(filter string, fn bus.CheckedHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next []inprocSub
	if cur := s.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, inprocSub{filter: filter, fn: fn})
	s.list.Store(&next)
}

// deliver passes a live message to every subscriber whose filter matches its topic, and
// returns the errors of those that refused it. Each subscriber gets it either way: a refused
// message comes again, and subscribers see redeliveries anyway.
func (s *inprocSubs) deliver(m bus.Message) error {
	list := s.list.Load()
	if list == nil {
		return nil
	}
	var errs []error
	for _, sub := range *list {
		// A topic name is a filter without wildcards: it matches sub.filter when it lies
		// within it, with MQTT's rules ("$" topics are not matched by a leading wildcard).
		if mqttfilter.Within(m.Topic, sub.filter) {
			if err := sub.fn(m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

var _ bus.CheckedSubscriber = (*Broker)(nil)

var _ bus.Bus = (*Broker)(nil)
