package broker

import (
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/internal/logthrottle"
)

// Limits are the broker's bounds per source address, per client and per user, so that one
// host or one account, authenticated or not, cannot exhaust the broker's memory or lock others
// out. Zero fields take the defaults of New (DefaultMaxPendingPerSource and the others).
type Limits struct {
	// MaxPendingPerSource bounds the sockets one source (an IPv4 address, or an IPv6 /64) may
	// hold among the MaxPending that wait for their CONNECT; beyond it that source's new
	// sockets are closed at once. 0 means 16. Agents behind one NAT address share it: each
	// holds a slot only for its CONNECT round trip, so 16 serves hundreds of reconnects a
	// second.
	MaxPendingPerSource int
	// MaxWritesPending bounds the packets queued for one client that its socket has not taken
	// yet (Mochi's MaximumClientWritesPending); a message that finds the queue full is dropped
	// for that client and counted. 0 means 1024 (Mochi: 8192, which at 64 KiB a packet let one
	// client that does not read pin 512 MiB).
	MaxWritesPending int
	// WriteTimeout is the longest one write to a client's socket may block; a client whose
	// socket takes nothing for that long (it stopped reading) is disconnected, which frees its
	// queue. Its persistent session keeps its QoS 1 messages. 0 means 10 s.
	WriteTimeout time.Duration
	// MaxSessionsPerUser bounds the sessions (connected, or persistent and kept while
	// disconnected) one viewer, automation or plug user holds; 0 means 16. An agent has exactly
	// one: its client id must be its MAC.
	MaxSessionsPerUser int
	// MaxSessionsPerAdmin is MaxSessionsPerUser for admin users; 0 means 64.
	MaxSessionsPerAdmin int
	// MaxSubscriptions bounds the topic filters one session is subscribed to; a SUBSCRIBE
	// beyond it is refused filter by filter. 0 means 100.
	MaxSubscriptions int
	// MaxQueuedLED bounds the LED commands queued for one offline Pi; later ones are dropped
	// and logged until it comes back. 0 means 16. The dashboard's commands expire after 2
	// minutes, so a longer queue holds commands the Pi would ignore, each up to 16 KiB of
	// broker.db.
	MaxQueuedLED int
	// ViewerSessionExpiry is how long the disconnected persistent session of a viewer or a plug
	// is kept (agents', automations' and admins' are kept Config.SessionExpiry); 0 means 24
	// hours.
	ViewerSessionExpiry time.Duration
}

// Defaults applied by New to zero Limits fields.
const (
	DefaultMaxPendingPerSource = 16
	DefaultMaxWritesPending    = 1024
	DefaultWriteTimeout        = 10 * time.Second
	DefaultMaxSessionsPerUser  = 16
	DefaultMaxSessionsPerAdmin = 64
	DefaultMaxSubscriptions    = 100
	DefaultMaxQueuedLED        = 16
	DefaultViewerSessionExpiry = 24 * time.Hour
)

// limitLogEvery is how often one source (or client) may cause a log line of a kind; the line
// carries the count of the interval. Hostile sockets cost no more than a line each.
const limitLogEvery = 10 * time.Second

// sourceKey is who a remote address counts as for per-source limits: the IP address, or for
// IPv6 its /64, which a single host can fill with addresses of its own.
func sourceKey(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip = net.ParseIP(host)
		if ip == nil {
			return host
		}
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// writeLimitConn is a client's socket whose writes may each block at most timeout: Mochi writes
// without a deadline of its own (its keepalive deadline, refreshed at each packet read, is
// all), so a client that pings but never reads held its writer, and everything queued for it,
// for ever. A failed write closes the socket, which ends the client: Mochi's writer ignores
// write errors and would otherwise buffer what follows.
type writeLimitConn struct {
	net.Conn
	timeout time.Duration
	stalled atomic.Bool // a write timed out
}

func (c *writeLimitConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		if os.IsTimeout(err) {
			c.stalled.Store(true)
		}
		_ = c.Conn.Close()
	}
	return n, err
}

// SetDeadline is Mochi's keepalive deadline: it bounds reads only, writes have their own.
func (c *writeLimitConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// unwrapConn returns the connection under a writeLimitConn.
func unwrapConn(c net.Conn) net.Conn {
	if wc, ok := c.(*writeLimitConn); ok {
		return wc.Conn
	}
	return c
}

// limitsHook enforces MaxSubscriptions and counts messages dropped at a full client queue.
// It is added after the auth hook and before the store, whose OnSubscribed must see the
// refusals.
type limitsHook struct {
	mqtt.HookBase
	maxSubs int
	log     *logthrottle.Limiter
	logf    func(msg string, args ...any)

	dropped        atomic.Int64 // messages dropped at a full client queue
	subsRefused    atomic.Int64 // filters refused over MaxSubscriptions
	sessionRefused atomic.Int64 // connections refused over the sessions per user
}

var _ mqtt.Hook = (*limitsHook)(nil)

func (h *limitsHook) ID() string { return "pirack-limits" }

func (h *limitsHook) Provides(b byte) bool {
	return b == mqtt.OnSubscribe || b == mqtt.OnSubscribed || b == mqtt.OnPublishDropped
}

// overQuotaFilter replaces, in OnSubscribe, a filter over MaxSubscriptions: Mochi refuses it as
// invalid ('#' not last), so nothing is subscribed, and OnSubscribed turns its code into
// "quota exceeded". Clients never see it: a SUBACK carries codes, not filters.
const overQuotaFilter = "#/pirack-subscription-quota-exceeded"

// OnSubscribe refuses the filters of pk that would take the session past MaxSubscriptions.
// Filters it already has (a re-subscription changes options) always pass.
func (h *limitsHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	n := cl.State.Subscriptions.Len()
	var fresh map[string]bool // new filters of this packet, counted once
	refused := 0
	for i, f := range pk.Filters {
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok || fresh[f.Filter] {
			continue
		}
		if n < h.maxSubs {
			n++
			if fresh == nil {
				fresh = map[string]bool{}
			}
			fresh[f.Filter] = true
			continue
		}
		if refused == 0 { // the caller's packet shares Filters: change a copy
			pk.Filters = append(packets.Subscriptions(nil), pk.Filters...)
		}
		pk.Filters[i].Filter = overQuotaFilter
		refused++
	}
	if refused > 0 {
		h.subsRefused.Add(int64(refused))
		if ok, held := h.log.Allow("subs|"+cl.ID, time.Now()); ok {
			count := held + 1
			h.logf("MQTT subscription refused: too many subscriptions for one session",
				"client", cl.ID, "username", string(cl.Properties.Username), "remote", cl.Net.Remote,
				"max_subscriptions", h.maxSubs, "subscribes_refused", count)
		}
	}
	return pk
}

// OnSubscribed answers the filters OnSubscribe refused with "quota exceeded" (MQTT 5; MQTT
// 3.1.1 has only 0x80, "failure", which Mochi already set).
func (h *limitsHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Properties.ProtocolVersion < 5 {
		return
	}
	for i, f := range pk.Filters {
		if f.Filter == overQuotaFilter && i < len(codes) {
			codes[i] = packets.ErrQuotaExceeded.Code // the SUBACK's own slice
		}
	}
}

// OnPublishDropped counts a message dropped because the client's queue (MaxWritesPending) was
// full, and logs it at most once per client and interval.
func (h *limitsHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped.Add(1)
	if ok, held := h.log.Allow("drop|"+cl.ID, time.Now()); ok {
		count := held + 1
		h.logf("MQTT message dropped: the client's queue is full (it reads too slowly)",
			"client", cl.ID, "username", string(cl.Properties.Username), "remote", cl.Net.Remote,
			"topic", clip(pk.TopicName), "qos", pk.FixedHeader.Qos, "dropped", count)
	}
}

// sessionAllowed refuses a connection that would give u more sessions than its role may hold:
// the clients Mochi keeps (connected ones, and persistent sessions kept while disconnected,
// restored ones included) with u's username, other than id's own, which this connection
// takes over. Agents are not counted: their client id is their MAC, so they have one.
// Concurrent CONNECTs of one user may each pass before the others are registered: at most
// MaxPendingPerSource more from one address.
func (b *Broker) sessionAllowed(u auth.User, id string) *refusal {
	max := b.cfg.MaxSessionsPerUser
	switch u.Role {
	case auth.RoleAgent:
		return nil
	case auth.RoleAdmin:
		max = b.cfg.MaxSessionsPerAdmin
	}
	n := 0
	for cid, cl := range b.srv.Clients.GetAll() {
		if cid != id && !cl.Net.Inline && string(cl.Properties.Username) == u.Name {
			n++
		}
	}
	if n < max {
		return nil
	}
	b.limits.sessionRefused.Add(1)
	return &refusal{packets.ErrQuotaExceeded, v3Unavailable,
		"user " + clip(u.Name) + " already holds " + strconv.Itoa(n) + " sessions, the most a " + string(u.Role) +
			" may (connected or persistent; end some, or let them expire)"}
}
