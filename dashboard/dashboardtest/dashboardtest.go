// Package dashboardtest provides in-memory fakes for testing code built on package dashboard:
// a Bus that delivers synchronously, like the embedded broker's inline subscriptions, and an
// Authenticator with plaintext test users. Never use them in production builds.
package dashboardtest

import (
	"context"
	"slices"
	"sync"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/mqttfilter"
)

// Bus is an in-memory MQTT-like bus. Publish records the message and calls every matching
// subscriber on the publisher's goroutine, as the embedded broker does. Retained messages are
// not replayed on Subscribe. The zero value is ready to use.
type Bus struct {
	mu        sync.Mutex
	subs      []subscription
	published []bus.Message
	// PublishErr, when set, is returned by Publish, which then records and delivers nothing.
	PublishErr error
}

type subscription struct {
	filter string
	fn     bus.Handler
}

// Subscribe registers fn for the topics matching filter (MQTT wildcards + and #).
func (b *Bus) Subscribe(filter string, fn bus.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, subscription{filter, fn})
	return nil
}

// Publish records the message and delivers it to matching subscribers.
func (b *Bus) Publish(_ context.Context, m bus.Message) error {
	b.mu.Lock()
	if b.PublishErr != nil {
		b.mu.Unlock()
		return b.PublishErr
	}
	m.Payload = slices.Clone(m.Payload)
	b.published = append(b.published, m)
	subs := slices.Clone(b.subs)
	b.mu.Unlock()
	for _, s := range subs {
		if Match(s.filter, m.Topic) {
			s.fn(bus.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS})
		}
	}
	return nil
}

// Published returns the messages published so far, oldest first.
func (b *Bus) Published() []bus.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.published)
}

// Filters returns the filters subscribed so far.
func (b *Bus) Filters() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, s := range b.subs {
		out = append(out, s.filter)
	}
	return out
}

// Match reports whether topic matches the MQTT filter, by the rules the broker uses.
func Match(filter, topic string) bool { return mqttfilter.Match(filter, topic) }

// User is one account of Users.
type User struct {
	Password string
	Role     auth.Role
}

// Users is a fake Authenticator, by user name, that checks plaintext passwords.
type Users map[string]User

// Authenticate returns the user, or auth.ErrBadCredentials.
func (u Users) Authenticate(name, password string) (auth.User, error) {
	e, ok := u[name]
	if !ok || e.Password != password {
		return auth.User{}, auth.ErrBadCredentials
	}
	return auth.User{Name: name, Role: e.Role}, nil
}

// Lookup returns the user without checking a password, or auth.ErrBadCredentials.
func (u Users) Lookup(name string) (auth.User, error) {
	e, ok := u[name]
	if !ok {
		return auth.User{}, auth.ErrBadCredentials
	}
	return auth.User{Name: name, Role: e.Role}, nil
}
