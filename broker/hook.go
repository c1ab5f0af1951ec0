package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/topics"
)

// errRefused marks a connection the hook refused (and logged).
var errRefused = errors.New("connection refused")

// authHook is pirack's authentication and authorization, default deny:
//
//   - OnConnect checks the credentials, the client id and the Will topic, and answers a refusal
//     with the right CONNACK code itself (OnConnectAuthenticate can only say "bad password");
//   - OnConnectAuthenticate admits exactly the clients OnConnect accepted;
//   - OnACLCheck decides subscriptions and deliveries;
//   - OnPublish decides publishes. Mochi's write ACL check would disconnect a 3.1.1 client
//     refused a QoS 1 publish, and paho re-sends that message at every reconnect, forever;
//     here a refused publish is acknowledged and dropped instead.
type authHook struct {
	mqtt.HookBase
	users     *auth.Users
	log       *slog.Logger
	srv       *mqtt.Server       // for SendConnack
	connected func(net.Conn)     // tells the broker the CONNECT arrived
	mu        sync.RWMutex       // guards sessions
	sessions  map[string]session // by client id
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
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired,
	}, []byte{b})
}

func (h *authHook) Init(any) error {
	h.sessions = map[string]session{}
	return nil
}

// OnConnect authenticates the client and checks its client id and Will.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if h.connected != nil && cl.Net.Conn != nil {
		h.connected(cl.Net.Conn)
	}
	name := string(pk.Connect.Username)
	id := pk.Connect.ClientIdentifier
	log := h.log.With("username", clip(name), "client", clip(id), "remote", cl.Net.Remote)
	refuse := func(code packets.Code, v3 byte, reason string) error {
		log.Warn("MQTT connection refused", "reason", reason)
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.Code{Code: v3, Reason: code.Reason} // 3.1.1 has its own CONNACK codes
		}
		_ = h.srv.SendConnack(cl, code, false, nil)
		return errRefused
	}
	const (
		v3IDRejected    = 0x02
		v3Unavailable   = 0x03
		v3BadPassword   = 0x04
		v3NotAuthorized = 0x05
	)

	if strings.ContainsAny(id, "+#/") || id == mqtt.InlineClientId {
		return refuse(packets.ErrClientIdentifierNotValid, v3IDRejected, "client id contains +, # or /, or is reserved")
	}
	if !pk.Connect.UsernameFlag || name == "" {
		return refuse(packets.ErrNotAuthorized, v3NotAuthorized, "no username")
	}
	u, err := h.users.Authenticate(name, string(pk.Connect.Password))
	if errors.Is(err, auth.ErrBadCredentials) {
		return refuse(packets.ErrBadUsernameOrPassword, v3BadPassword, "unknown user or wrong password")
	}
	if err != nil {
		log.Error("cannot check MQTT credentials", "error", err)
		return refuse(packets.ErrServerUnavailable, v3Unavailable, "users file unreadable")
	}
	if u.Role == auth.RoleAgent && id != u.MAC {
		return refuse(packets.ErrClientIdentifierNotValid, v3IDRejected, "an agent's client id must be its MAC "+u.MAC)
	}
	// A MAC as client id is an agent's: anyone else using it would take over that Pi's session.
	if u.Role != auth.RoleAgent && topics.IsMAC(id) {
		return refuse(packets.ErrClientIdentifierNotValid, v3IDRejected, "a MAC as client id is reserved for that Pi's agent")
	}
	if pk.Connect.WillFlag && !willAllowed(u, pk.Connect.WillTopic) {
		log.Warn("MQTT Will topic not allowed", "will_topic", clip(pk.Connect.WillTopic))
		return refuse(packets.ErrNotAuthorized, v3NotAuthorized, "Will topic not allowed for this user")
	}

	h.mu.Lock()
	prev, held := h.sessions[cl.ID]
	if held && prev.user.Name != u.Name {
		h.mu.Unlock()
		return refuse(packets.ErrClientIdentifierNotValid, v3IDRejected, "client id in use by user "+prev.user.Name)
	}
	h.sessions[cl.ID] = session{cl: cl, user: u}
	h.mu.Unlock()
	log.Info("MQTT client connected", "role", u.Role)
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
		// A session restored from broker.db whose client has not reconnected since the restart:
		// nothing is delivered to it until it authenticates again.
		return false
	}
	if write {
		return true
	}
	if readAllowed(s.user, topic) {
		return true
	}
	h.log.Warn("MQTT subscription refused", "username", s.user.Name, "role", s.user.Role, "filter", clip(topic), "remote", cl.Net.Remote)
	return false
}

// OnPublish drops a publish its sender may not make. Mochi still acknowledges it (PUBACK for
// QoS 1) but neither retains nor delivers it.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	s, ok := h.session(cl)
	if ok && writeAllowed(s.user, pk.TopicName) {
		return pk, nil
	}
	h.log.Warn("MQTT publish refused: acknowledged and dropped",
		"username", s.user.Name, "role", s.user.Role, "client", cl.ID, "topic", clip(pk.TopicName), "qos", pk.FixedHeader.Qos, "remote", cl.Net.Remote)
	return pk, packets.CodeSuccessIgnore
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

func (h *authHook) session(cl *mqtt.Client) (session, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.sessions[cl.ID]
	return s, ok
}

// readAllowed says whether u may subscribe to filter (or receive a message on that topic name).
func readAllowed(u auth.User, filter string) bool {
	filter = unshare(filter)
	switch u.Role {
	case auth.RoleAdmin:
		return true
	case auth.RoleAgent:
		return filterWithin(filter, topics.LEDTopic(u.MAC))
	case auth.RoleViewer, auth.RoleAutomation:
		return filterWithin(filter, topics.AllFilter)
	}
	return false
}

// writeAllowed says whether u may publish to topic.
func writeAllowed(u auth.User, topic string) bool {
	switch u.Role {
	case auth.RoleAdmin:
		return true
	case auth.RoleAgent:
		return filterWithin(topic, topics.AgentFilter(u.Row, u.MAC))
	case auth.RoleAutomation:
		t, err := topics.Parse(topic)
		return err == nil && t.Kind == topics.KindLED
	}
	return false
}

// willAllowed says whether u may leave a Will on topic. Mochi publishes Wills without any ACL
// check, so this is checked at CONNECT. An agent's Will is its status, nothing else.
func willAllowed(u auth.User, topic string) bool {
	if u.Role == auth.RoleAgent {
		return topic == topics.StatusTopic(u.Row, u.MAC)
	}
	return writeAllowed(u, topic)
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

// filterWithin reports whether every topic that filter matches is also matched by allowed,
// using MQTT matching rules ("+" one level, "#" any remaining levels including none). A topic
// name is a filter without wildcards. Topics beginning with "$" are only matched by filters
// that spell the "$" level.
func filterWithin(filter, allowed string) bool {
	fl := strings.Split(filter, "/")
	al := strings.Split(allowed, "/")
	for i, a := range al {
		if a == "#" {
			// "a/#" also matches "a"; a wildcard may not stand for a "$" level.
			return i > 0 || (len(fl) > 0 && !strings.HasPrefix(fl[0], "$"))
		}
		if i >= len(fl) {
			return false
		}
		f := fl[i]
		switch {
		case f == "#":
			return false
		case a == "+":
			if i == 0 && strings.HasPrefix(f, "$") {
				return false
			}
		case f != a:
			return false
		}
	}
	return len(fl) == len(al)
}

// clip keeps hostile input out of logs at a bounded length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
