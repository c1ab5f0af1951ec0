package broker

import (
	"net"
	"slices"
	"sync"
	"time"
)

// Refusal is a client the broker refused at CONNECT: who it said it was, from where, why, and
// how often. The Control Center lists them, so that a Pi with a wrong MAC or secret is a line
// on the page instead of a silent loop of reconnections.
type Refusal struct {
	Username string    `json:"username"`
	ClientID string    `json:"client_id"`
	Address  string    `json:"address"` // the client's IP, without the port
	Reason   string    `json:"reason"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Count    int       `json:"count"`
}

// maxRefusals bounds the list: a flood of made-up names keeps only the latest.
const maxRefusals = 64

// refusals keeps the latest refused CONNECTs, one entry per user name, client id and reason.
type refusals struct {
	mu   sync.Mutex
	list []Refusal // oldest first
}

func (r *refusals) record(user, id, remote, reason string, now time.Time) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	user, id = clip(user), clip(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.list {
		if x.Username == user && x.ClientID == id && x.Reason == reason {
			x.Last, x.Count, x.Address = now, x.Count+1, host
			r.list = append(slices.Delete(r.list, i, i+1), x) // the latest last
			return
		}
	}
	if len(r.list) >= maxRefusals {
		r.list = slices.Delete(r.list, 0, 1)
	}
	r.list = append(r.list, Refusal{Username: user, ClientID: id, Address: host, Reason: reason, First: now, Last: now, Count: 1})
}

// forget drops the entries of a user that got in since.
func (r *refusals) forget(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = slices.DeleteFunc(r.list, func(x Refusal) bool { return x.Username == user })
}

func (r *refusals) snapshot() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.list)
	slices.Reverse(out) // the latest first
	return out
}
