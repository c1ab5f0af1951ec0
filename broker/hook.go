package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/internal/logthrottle"
	"github.com/pirack/pirack/internal/mqttfilter"
	"github.com/pirack/pirack/topics"
)

// errRefused marks a connection the hook refused (and logged).
var errRefused = errors.New("connection refused")

// authHook is pirack's authentication and authorization, default deny:
//
//   - OnConnect checks the credentials (password, or an agent's TLS client certificate), the
//     client id and the Will topic, and answers a refusal with the right CONNACK code itself
//     (OnConnectAuthenticate can only say "bad password");
//   - OnConnectAuthenticate admits exactly the clients OnConnect accepted;
//   - OnACLCheck decides subscriptions and deliveries;
//   - OnPublish decides publishes. Mochi's write ACL check would disconnect a 3.1.1 client
//     refused a QoS 1 publish, and paho re-sends that message at every reconnect, forever;
//     here a refused publish is acknowledged and dropped instead. An allowed publish is handed
//     to the in-process subscribers here, before Mochi acknowledges it; one they refuse is not
//     acknowledged, and its client disconnected to send it again (refuseDelivery);
//   - OnWillSent hands Wills to the in-process subscribers: Mochi publishes them without
//     OnPublish.
type authHook struct {
	mqtt.HookBase
	users         *auth.Users
	policy        policy
	log           *slog.Logger
	srv           *mqtt.Server            // for SendConnack
	authenticated func(*mqtt.Client) bool // tells the broker; false: refuse after all
	deliver       func(bus.Message) error // to the in-process subscribers; an error: they refused it
	limit         *logthrottle.Limiter    // for lines a hostile client could repeat at will
	// commandRefused is Config.CommandRefused; nil when unset.
	commandRefused func(RefusedCommand)
	refused        atomic.Int64       // publishes refused for the sender's rights
	invalid        atomic.Int64       // publishes refused for breaking the topic contract
	ledDropped     atomic.Int64       // LED commands not queued for a Pi (maxQueuedLED)
	maxQueuedLED   int                // Config.MaxQueuedLED
	mu             sync.RWMutex       // guards sessions
	sessions       map[string]session // by client id; restored sessions are added when first seen
	refusals       refusals           // the latest refused CONNECTs, for the Control Center

	// sessionAllowed, if set, refuses a user over its sessions (Broker.sessionAllowed).
	sessionAllowed func(u auth.User, id string) *refusal
}

// session is who a client id is connected (or persisted) as.
type session struct {
	cl   *mqtt.Client
	user auth.User
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "pirack-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPacketRead,
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnWillSent,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired,
	}, []byte{b})
}

func (h *authHook) Init(any) error {
	h.sessions = map[string]session{}
	h.limit = logthrottle.New(logEvery)
	return nil
}

// logEvery is how often a line a client can repeat at will (an invalid publish each
// millisecond) is logged again for the same client.
const logEvery = time.Minute

// MQTT 3.1.1 CONNACK return codes; MQTT 5 clients get the matching reason codes.
const (
	v3IDRejected    = 0x02
	v3Unavailable   = 0x03
	v3BadPassword   = 0x04
	v3NotAuthorized = 0x05
)

// refusal is why OnConnect refuses a client: the CONNACK codes to send and a reason to log.
type refusal struct {
	code   packets.Code // MQTT 5
	v3     byte         // MQTT 3.1.1
	reason string
}

func (r *refusal) Error() string { return r.reason }

func refuseID(reason string) *refusal {
	return &refusal{packets.ErrClientIdentifierNotValid, v3IDRejected, reason}
}

func refuseAuth(reason string) *refusal {
	return &refusal{packets.ErrNotAuthorized, v3NotAuthorized, reason}
}

// OnPacketRead ends the connection of a client that breaks MQTT in ways Mochi lets through or
// answers with a CONNACK code MQTT 3.1.1 does not have (a 3.1.1 client reads 0x80 or 0x82 as
// garbage). Rejecting the packet closes the connection; the broker logs why.
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if pk.ProtocolVersion == 5 {
			return pk, nil // Mochi's MQTT 5 reason codes are right
		}
		name := string(pk.Connect.ProtocolName)
		switch {
		case name != "MQTT" && name != "MQIsdp":
			return pk, fmt.Errorf("%w: protocol name %q", packets.ErrRejectPacket, clip(name)) // [MQTT-3.1.2-1]
		case pk.ProtocolVersion != 3 && pk.ProtocolVersion != 4:
			_ = h.srv.SendConnack(cl, packets.Code{Code: 0x01}, false, nil) // [MQTT-3.1.2-2]
			return pk, fmt.Errorf("%w: protocol level %d", packets.ErrRejectPacket, pk.ProtocolVersion)
		case pk.ReservedBit != 0:
			return pk, fmt.Errorf("%w: reserved CONNECT flag set", packets.ErrRejectPacket) // [MQTT-3.1.2-3]
		case pk.Connect.ClientIdentifier == "" && !pk.Connect.Clean:
			_ = h.srv.SendConnack(cl, packets.Code{Code: v3IDRejected}, false, nil) // [MQTT-3.1.3-8]
			return pk, fmt.Errorf("%w: empty client id for a persistent session", packets.ErrRejectPacket)
		}
	case packets.Subscribe, packets.Unsubscribe:
		for _, f := range pk.Filters {
			if f.Filter == "" { // [MQTT-4.7.3-1]; Mochi answers with a failure code and carries on
				s, _ := h.session(cl)
				h.log.Warn("MQTT connection closed: empty topic filter", "username", s.user.Name, "client", cl.ID, "remote", cl.Net.Remote)
				return pk, fmt.Errorf("%w: empty topic filter", packets.ErrRejectPacket)
			}
		}
	}
	return pk, nil
}

// OnConnect authenticates the client and checks its client id and Will.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	name := string(pk.Connect.Username)
	id := pk.Connect.ClientIdentifier
	log := h.log.With("username", clip(name), "client", clip(id), "listener", cl.Net.Listener, "remote", cl.Net.Remote)
	refuse := func(r *refusal) error {
		// Once a minute per user name and reason: a client retrying a wrong password, or a
		// user over its sessions, at the rate of password checks would otherwise fill the log.
		h.logLimited("refused/"+clip(name)+"/"+r.reason, slog.LevelWarn, "MQTT connection refused",
			"username", clip(name), "client", clip(id), "listener", cl.Net.Listener, "remote", cl.Net.Remote, "reason", r.reason)
		h.refusals.record(name, id, cl.Net.Remote, r.reason, time.Now())
		code := r.code
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.Code{Code: r.v3, Reason: code.Reason} // 3.1.1 has its own CONNACK codes
		}
		_ = h.srv.SendConnack(cl, code, false, nil)
		return errRefused
	}

	if r := clientIDValid(id); r != nil {
		return refuse(r)
	}
	u, via, r := h.authenticate(cl, pk)
	if r != nil {
		return refuse(r)
	}
	if r := clientIDAllowed(u, id); r != nil {
		return refuse(r)
	}
	if r := boundToRow(u); r != nil {
		return refuse(r)
	}
	if pk.Connect.WillFlag && !h.policy.willAllowed(u, pk.Connect.WillTopic) {
		log.Warn("MQTT Will topic not allowed", "will_topic", clip(pk.Connect.WillTopic))
		return refuse(refuseAuth("Will topic not allowed for this user"))
	}
	if h.sessionAllowed != nil {
		if r := h.sessionAllowed(u, cl.ID); r != nil {
			return refuse(r)
		}
	}
	// A delayed Will (MQTT 5) would be published by Mochi's housekeeping without OnWillSent once
	// the session is gone, out of the in-process subscribers' sight; and presence wants the
	// offline status at once. Wills are published without delay.
	cl.Properties.Will.WillDelayInterval = 0

	h.mu.Lock()
	prev, held := h.holderLocked(cl.ID)
	if held && prev.user.Name != u.Name {
		h.mu.Unlock()
		return refuse(refuseID("client id in use by user " + prev.user.Name))
	}
	h.sessions[cl.ID] = session{cl: cl, user: u}
	h.mu.Unlock()
	if h.authenticated != nil && cl.Net.Conn != nil && !h.authenticated(cl) {
		h.mu.Lock()
		if h.sessions[cl.ID].cl == cl {
			if held {
				h.sessions[cl.ID] = prev
			} else {
				delete(h.sessions, cl.ID)
			}
		}
		h.mu.Unlock()
		return refuse(&refusal{packets.ErrServerUnavailable, v3Unavailable, "previous connection with this client id did not end"})
	}
	log.Info("MQTT client connected", "user", u.Name, "role", u.Role, "auth", via)
	h.refusals.forget(u.Name)
	return nil
}

// authenticate finds who the client is: by its TLS client certificate if it presented one
// (an agent), else by username and password. via says which ("certificate", "password" or
// "certificate+password").
func (h *authHook) authenticate(cl *mqtt.Client, pk packets.Packet) (u auth.User, via string, r *refusal) {
	name, password := string(pk.Connect.Username), string(pk.Connect.Password)
	// The client learns only "bad user name or password"; the log and the Control Center's list
	// of refusals say which, so that an operator can tell a Pi never registered from a wrong secret.
	badPassword := func(name string) *refusal {
		reason := "wrong password"
		if _, err := h.users.Lookup(name); errors.Is(err, auth.ErrBadCredentials) {
			reason = "unknown user"
		}
		return &refusal{packets.ErrBadUsernameOrPassword, v3BadPassword, reason}
	}
	unavailable := func(err error) *refusal {
		h.log.Error("cannot check MQTT credentials", "error", err)
		return &refusal{packets.ErrServerUnavailable, v3Unavailable, "users file unreadable"}
	}

	if cert := clientCert(cl); cert != nil {
		cn := cert.Subject.CommonName
		if !topics.IsMAC(cn) {
			return u, "", refuseAuth("client certificate CN " + strconv.Quote(clip(cn)) + " is not a MAC in topic form (12 lowercase hex digits)")
		}
		if pk.Connect.UsernameFlag && name != cn {
			return u, "", refuseAuth("username does not match the client certificate CN " + cn)
		}
		u, err := h.users.Lookup(cn)
		if errors.Is(err, auth.ErrBadCredentials) {
			return u, "", refuseAuth("no agent user " + cn + " for this client certificate (removed?)")
		}
		if err != nil {
			return u, "", unavailable(err)
		}
		if u.Role != auth.RoleAgent {
			return u, "", refuseAuth("client certificates are for agents; user " + cn + " is " + string(u.Role))
		}
		if !pk.Connect.PasswordFlag {
			return u, "certificate", nil
		}
		if _, err := h.users.Authenticate(cn, password); errors.Is(err, auth.ErrBadCredentials) {
			return u, "", badPassword(cn) // a password that is given must be right
		} else if err != nil {
			return u, "", unavailable(err)
		}
		return u, "certificate+password", nil
	}

	if !pk.Connect.UsernameFlag || name == "" {
		return u, "", refuseAuth("no username")
	}
	u, err := h.users.Authenticate(name, password)
	if errors.Is(err, auth.ErrBadCredentials) {
		return u, "", badPassword(name)
	}
	if err != nil {
		return u, "", unavailable(err)
	}
	return u, "password", nil
}

// clientIDValid refuses client ids no one may use: with MQTT wildcards or a level separator
// (they would break per-client topics and logs), or Mochi's own inline client id.
func clientIDValid(id string) *refusal {
	if strings.ContainsAny(id, "+#/") || id == mqtt.InlineClientId {
		return refuseID("client id contains +, # or /, or is reserved")
	}
	return nil
}

// clientIDAllowed checks that u may connect with client id id (as sent; "" means Mochi assigns
// one to a clean session). An agent's client id is its MAC; a MAC as client id is that agent's
// alone, since anyone else using it would take over that Pi's session.
func clientIDAllowed(u auth.User, id string) *refusal {
	if u.Role == auth.RoleAgent && id != u.MAC {
		return refuseID("an agent's client id must be its MAC " + u.MAC)
	}
	if u.Role != auth.RoleAgent && topics.IsMAC(id) {
		return refuseID("a MAC as client id is reserved for that Pi's agent")
	}
	return nil
}

// boundToRow refuses a plug user without a row: one made before plugs were bound to rows,
// which used to publish to every plug's folder. It gets no rights rather than guessed ones.
func boundToRow(u auth.User) *refusal {
	if u.Role == auth.RolePlug && u.Row == "" {
		name := clip(u.Name)
		return refuseAuth("plug user " + name + " has no row (made by an earlier pirack): re-create it with " +
			"pirack user remove " + name + " and pirack user add " + name + " --role plug --row ROW")
	}
	return nil
}

// OnConnectAuthenticate admits the clients OnConnect accepted. Mochi only calls it after a
// successful OnConnect; checking again keeps the hook default deny on its own.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	s, ok := h.session(cl)
	return ok && s.cl == cl
}

// OnACLCheck decides reads: subscriptions (topic is a filter) and deliveries (topic is a topic
// name). Writes are allowed here and decided in OnPublish, which can drop a message without
// disconnecting its sender.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	s, ok := h.session(cl)
	if !ok {
		return false
	}
	if write {
		return true
	}
	if h.policy.readAllowed(s.user, topic) {
		return h.queueRoom(cl, s.user, topic)
	}
	h.log.Warn("MQTT subscription refused", "username", s.user.Name, "role", s.user.Role, "filter", clip(topic), "remote", cl.Net.Remote)
	return false
}

// queueRoom says whether a message on topic may be queued for cl: an offline Pi's agent gets at
// most maxQueuedLED commands waiting, so a user allowed to send commands cannot fill the disk
// through broker.db while a Pi is off (each waiting command is saved there).
func (h *authHook) queueRoom(cl *mqtt.Client, u auth.User, topic string) bool {
	if u.Role != auth.RoleAgent || !cl.Closed() || cl.State.Inflight.Len() < h.maxQueuedLED {
		return true
	}
	h.ledDropped.Add(1)
	h.logLimited("queue/"+cl.ID, slog.LevelWarn, "LED command dropped: the Pi is offline and has the most commands queued it may have",
		"mac", cl.ID, "topic", clip(topic), "queued", cl.State.Inflight.Len(), "max", h.maxQueuedLED)
	return false
}

// OnPublish drops a publish its sender may not make, or that breaks the topic contract. It is
// still acknowledged (see drop) but neither retained nor delivered. An allowed one (and every
// in-process one) goes to the in-process subscribers; a QoS 1 or 2 one they refuse (a press
// the event log could not save) is not acknowledged (see refuseDelivery).
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		_ = h.deliver(liveMessage(pk)) // nothing to acknowledge
		return pk, nil
	}
	s, ok := h.session(cl)
	if !ok || !h.policy.writeAllowed(s.user, pk.TopicName) {
		h.refused.Add(1)
		h.log.Warn("MQTT publish refused: acknowledged and dropped",
			"username", s.user.Name, "role", s.user.Role, "client", cl.ID, "topic", clip(pk.TopicName), "qos", pk.FixedHeader.Qos, "remote", cl.Net.Remote)
		h.reportRefusedCommand(cl, s.user, pk.TopicName)
		return drop(cl, pk, packets.ErrNotAuthorized)
	}
	decoded, err := contractViolation(pk)
	if err != nil {
		h.invalid.Add(1)
		h.logLimited("invalid/"+cl.ID, slog.LevelWarn, "MQTT publish breaks the topic contract: acknowledged and dropped, not retained nor delivered",
			"username", s.user.Name, "client", cl.ID, "topic", clip(pk.TopicName), "reason", err, "remote", cl.Net.Remote)
		return drop(cl, pk, packets.ErrPayloadFormatInvalid)
	}
	// Mochi acknowledges only after OnPublish returns: what the in-process subscribers take
	// here is theirs before the client is told it was delivered. They get the payload as the
	// check decoded it, so that the dashboard does not decode it again.
	m := liveMessage(pk)
	m.Decoded = decoded
	if err := h.deliver(m); err != nil && pk.FixedHeader.Qos > 0 {
		return pk, h.refuseDelivery(cl, s, pk, err)
	}
	return pk, nil
}

// reportRefusedCommand tells Config.CommandRefused of a refused LED or system command, at most
// once per user and topic every limitLogEvery.
func (h *authHook) reportRefusedCommand(cl *mqtt.Client, u auth.User, topic string) {
	if h.commandRefused == nil {
		return
	}
	t, err := topics.Parse(topic)
	if err != nil || (t.Kind != topics.KindLED && t.Kind != topics.KindSystem) {
		return
	}
	ok, suppressed := h.limit.Allow("command-refused/"+u.Name+"/"+topic, time.Now())
	if !ok {
		return
	}
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		host = cl.Net.Remote
	}
	h.commandRefused(RefusedCommand{Username: clip(u.Name), Role: string(u.Role), ClientID: clip(cl.ID), Topic: clip(topic), Address: host, Suppressed: suppressed})
}

// drop acknowledges a refused publish and drops it. An MQTT 3.1.1 client gets Mochi's plain
// acknowledgement (3.1.1 has no negative one, and a client disconnected for a QoS 1 message
// would resend it at every reconnect); an MQTT 5 client is told why, with code, which ends the
// flow: Mochi's own would say success.
func drop(cl *mqtt.Client, pk packets.Packet, code packets.Code) (packets.Packet, error) {
	if cl.Properties.ProtocolVersion == 5 {
		ackRefused(cl, pk, code)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// contractViolation says why a client's publish on a topic of the contract breaks it, or nil
// with the payload as topics decoded it (nil when it was not checked). The broker checks what
// every reader would: an invalid message is never retained, queued or delivered, so Home
// Assistant or Grafana never see a value pirack itself rejects. A topic outside the contract is
// not checked (only plugs' own topics and admins get there, see writeAllowed), nor an empty
// retained publish, which deletes a retained message.
func contractViolation(pk packets.Packet) (decoded any, err error) {
	t, err := topics.Parse(pk.TopicName)
	if err != nil {
		return nil, nil
	}
	if pk.FixedHeader.Retain && len(pk.Payload) == 0 {
		return nil, nil
	}
	if t.Kind == topics.KindLED && pk.FixedHeader.Retain {
		// A retained command would fire again at every reconnect; agents ignore them.
		return nil, fmt.Errorf("%w: LED commands must be published without the retain flag", topics.ErrInvalidPayload)
	}
	return topics.DecodeKind(t.Kind, pk.Payload)
}

// logLimited logs at most once per logEvery for the same key, with the count held back.
func (h *authHook) logLimited(key string, level slog.Level, msg string, args ...any) {
	ok, suppressed := h.limit.Allow(key, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	h.log.Log(context.Background(), level, msg, args...)
}

// refuseDelivery answers a QoS 1 or 2 publish that an in-process subscriber refused (an event it
// could not commit to disk): no acknowledgement, and the connection is closed, so that the client
// sends the message again when it reconnects. MQTT 3.1.1 has no negative PUBACK, and [MQTT-3.3.5-2]
// leaves a server that will not acknowledge a publish only this; a pirack agent would otherwise
// wait a minute before sending it again on the same connection. The Will is not published: the
// client is not gone, only asked to come back, and a Pi shown offline at each refused press
// would raise alerts for a full disk. A client that does not come back is shown stale instead.
func (h *authHook) refuseDelivery(cl *mqtt.Client, s session, pk packets.Packet, err error) error {
	h.log.Debug("MQTT publish not acknowledged: refused in-process; disconnecting the client so that it sends it again",
		"username", s.user.Name, "client", cl.ID, "topic", clip(pk.TopicName), "remote", cl.Net.Remote, "err", err)
	// Mochi v2.7.9 already skips the Will of a client stopped while its packet is handled
	// (its read loop finds the client closed and returns no error); cleared here so that the
	// promise does not rest on that.
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.srv.DisconnectClient(cl, packets.ErrServerBusy) // DISCONNECT 0x89: try again later
	} else {
		cl.Stop(packets.ErrServerBusy) // a 3.1.1 server sends no DISCONNECT: it closes the socket
	}
	return packets.ErrRejectPacket // Mochi drops it: no PUBACK, not retained, not fanned out
}

// OnWillSent hands a published Will to the in-process subscribers. Wills do not go through
// OnPublish; their topics were checked at CONNECT.
func (h *authHook) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	h.deliver(liveMessage(pk))
}

// OnDisconnect forgets a clean session's client. A persistent session keeps its identity, so
// QoS 1 commands queued for it while it is away are still allowed.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forget(cl)
	}
}

// OnClientExpired forgets a persistent session Mochi expired.
func (h *authHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *authHook) forget(cl *mqtt.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sessions[cl.ID]; ok && s.cl == cl { // not a newer client that took the id over
		delete(h.sessions, cl.ID)
	}
}

// ownerName is the user a session was made by, as Mochi recorded it: its username, or for an
// agent, which may authenticate by certificate and send none, the MAC it uses as client id
// (only that Pi's agent may, see clientIDAllowed).
func (h *authHook) ownerName(cl *mqtt.Client) string {
	if topics.IsMAC(cl.ID) {
		return cl.ID
	}
	return string(cl.Properties.Username)
}

// session is who cl's client id belongs to, restored sessions included (see holderLocked).
func (h *authHook) session(cl *mqtt.Client) (session, bool) {
	h.mu.RLock()
	s, ok := h.sessions[cl.ID]
	h.mu.RUnlock()
	if ok || cl.Net.Conn != nil {
		return s, ok
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holderLocked(cl.ID)
}

// holderLocked is who holds client id id: a session of this process, or one Mochi restored
// from broker.db at start. A restored session's owner is read from the record Mochi saved
// with it, its username (an agent's owner is the MAC it uses as client id, certificate agents
// send no username), and adopted with the owner's current rights: the real owner resumes it,
// queued messages wait for it, and nobody else may take it. A restored session whose owner has
// been removed keeps its owner's name but gets no rights: it can only expire. h.mu is held.
func (h *authHook) holderLocked(id string) (session, bool) {
	if s, ok := h.sessions[id]; ok {
		return s, true
	}
	cl, ok := h.srv.Clients.Get(id)
	if !ok || cl.Net.Inline || cl.Net.Conn != nil {
		return session{}, false
	}
	name := h.ownerName(cl)
	u, err := h.users.Lookup(name)
	if err != nil {
		if !errors.Is(err, auth.ErrBadCredentials) {
			h.log.Error("cannot look up the owner of a restored MQTT session", "client", clip(id), "user", clip(name), "error", err)
		}
		u = auth.User{Name: name} // no role: no rights, but the client id stays its owner's
	}
	s := session{cl: cl, user: u}
	h.sessions[id] = s
	return s, true
}

// policy is who may do what: each role's fixed rights, and the topics plug users may publish to,
// by row (Config.PlugTopics).
type policy struct {
	plugTopics auth.PlugTopics
}

// readAllowed says whether u may subscribe to filter (or receive a message on that topic name):
// it lies within one of u's read filters (auth.User.Rights). A plug reads only its relay's
// command topic, and only when pirack may switch it: another refused subscription (a Tasmota
// subscribing to its group topic, a Shelly to its rpc topic) only costs a failure code in the
// SUBACK, and the plug stays connected.
func (p policy) readAllowed(u auth.User, filter string) bool {
	filter = unshare(filter)
	for _, r := range u.Rights(p.plugTopics).Read {
		if mqttfilter.Within(filter, r) {
			return true
		}
	}
	return false
}

// writeAllowed says whether u may publish to topic: it matches one of u's write filters
// (auth.User.Rights). Nobody publishes to a wildcard (not a topic name) or to a "$" topic (the
// broker's own; Mochi drops them anyway), and nobody but an admin to a topic under the pirack
// root that the contract does not know (an automation's LED command names a real MAC).
func (p policy) writeAllowed(u auth.User, topic string) bool {
	if topic == "" || strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$") {
		return false
	}
	if first, _, _ := strings.Cut(topic, "/"); first == topics.Root {
		if u.Role == auth.RolePlug {
			return false // whatever its row's filters say: a plug never speaks under the contract
		}
		if _, err := topics.Parse(topic); err != nil && u.Role != auth.RoleAdmin {
			return false
		}
	}
	for _, w := range u.Rights(p.plugTopics).Write {
		if mqttfilter.Match(w, topic) {
			return true
		}
	}
	return false
}

// willAllowed says whether u may leave a Will on topic. Mochi publishes Wills without any ACL
// check, so this is checked at CONNECT. An agent's Will is its status, nothing else. A plug's
// Will (Tasmota's tele/<topic>/LWT, a Shelly's <prefix>/online) must lie within its row's plug
// topics: a refused Will refuses the connection.
func (p policy) willAllowed(u auth.User, topic string) bool {
	if u.Role == auth.RoleAgent {
		return topic == topics.StatusTopic(u.Row, u.MAC)
	}
	return p.writeAllowed(u, topic)
}

// unshare strips the $share/<group>/ prefix of a shared subscription, leaving the filter it
// matches on.
func unshare(filter string) string {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return filter
	}
	if _, f, ok := strings.Cut(rest, "/"); ok {
		return f
	}
	return filter // malformed; Mochi refuses it anyway
}

// clip keeps hostile input out of logs at a bounded length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// liveMessage is a publish as the in-process subscribers receive it.
func liveMessage(pk packets.Packet) bus.Message {
	return bus.Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos}
}
