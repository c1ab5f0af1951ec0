package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/pirack/pirack/auth"
)

// Viewers' and plugs' sessions are kept a day (Limits.ViewerSessionExpiry): those roles receive
// nothing that must wait for them (a viewer's watcher catches up from the retained messages; a
// plug reads at most its relay's commands, sent at QoS 0: now or never), and 16 sessions a user kept for a week would be memory and disk held
// for nothing.

// sessionSweepEvery is how often disconnected sessions are checked against their role's expiry.
const sessionSweepEvery = time.Minute

// sessionExpiry is how long u's disconnected persistent session is kept: Config.SessionExpiry
// (agents, automations, admins: their sessions queue LED commands and presses worth waiting
// for), or Config.ViewerSessionExpiry for viewers and plugs. An owner the users file no longer
// knows gets the shortest.
func (b *Broker) sessionExpiry(u auth.User) time.Duration {
	switch u.Role {
	case auth.RoleAgent, auth.RoleAutomation, auth.RoleAdmin:
		return b.cfg.SessionExpiry
	}
	return min(b.cfg.ViewerSessionExpiry, b.cfg.SessionExpiry)
}

// sweepSessions expires, until stop is closed, the disconnected sessions kept longer than their
// owner's role allows. Mochi expires sessions itself, but with one interval for every MQTT
// 3.1.1 client.
func (b *Broker) sweepSessions(stop <-chan struct{}) {
	tick := time.NewTicker(sessionSweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			b.expireSessions(now)
		}
	}
}

// expireSessions expires the disconnected sessions whose role's expiry has passed at now, as
// Mochi expires one (its hooks told, the client forgotten), and also drops its subscriptions
// and queued messages, in memory and in broker.db. It returns how many it expired.
func (b *Broker) expireSessions(now time.Time) int {
	n := 0
	for id, cl := range b.srv.Clients.GetAll() {
		stopped := cl.StopTime()
		if stopped == 0 || cl.Net.Inline {
			continue // connected
		}
		s, ok := b.hook.session(cl)
		if !ok || time.Unix(stopped, 0).Add(b.sessionExpiry(s.user)).After(now) {
			continue
		}
		b.expire(id, cl)
		n++
	}
	return n
}

func (b *Broker) expire(id string, cl *mqtt.Client) {
	b.log.Info("MQTT session expired", "client", id, "user", b.hook.ownerName(cl), "disconnected", time.Unix(cl.StopTime(), 0).UTC())
	cl.ClearInflights() // each told to the store, which deletes it from broker.db
	b.srv.UnsubscribeClient(cl)
	b.store.OnClientExpired(cl)
	b.hook.OnClientExpired(cl)
	if cur, ok := b.srv.Clients.Get(id); ok && cur == cl { // not a client that just took the id over
		b.srv.Clients.Delete(id)
	}
}
