package broker

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pirack/pirack/internal/mqttfilter"
)

// protocolHook mends what Mochi gets wrong in MQTT itself; the authHook decides who may do
// what, this hook only how the broker answers:
//
//   - Packet ids: Mochi keeps the ids of the client's packets and of its own in one map, and
//     answers a SUBSCRIBE or UNSUBSCRIBE whose id a message queued for the client took with
//     0x91 "packet identifier in use" (not even an MQTT 3.1.1 code), without applying it. Each
//     direction has its own ids, so Mochi is handed id 0, which it never uses, and the ack
//     gets the client's id back. A QoS 1 publish whose id clashes is handed a free one.
//   - Malformed filters ("rack/a#", "rack/+x"), which Mochi grants, are refused: 0x8F "topic
//     filter invalid" for MQTT 5, 0x80 for 3.1.1.
//   - $SYS publishes, which Mochi drops unanswered (the client's inflight window fills), are
//     acknowledged and dropped like every refused publish.
//   - An MQTT 3.1.1 SUBACK carries only 3.1.1 codes.
//   - An MQTT 5 CONNACK says the broker's Maximum Packet Size, which Mochi enforces unsaid.
type protocolHook struct {
	mqtt.HookBase
	log  *slog.Logger
	caps *mqtt.Capabilities

	mu     sync.Mutex
	ids    map[*mqtt.Client]uint16            // the id of the client's SUBSCRIBE or UNSUBSCRIBE being answered
	pubIDs map[*mqtt.Client]map[uint16]uint16 // a QoS 1 publish's id as Mochi saw it -> the client's
}

var _ mqtt.Hook = (*protocolHook)(nil)

func (h *protocolHook) ID() string { return "pirack-protocol" }

func (h *protocolHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPacketRead,
		mqtt.OnPacketEncode,
		mqtt.OnSubscribe,
		mqtt.OnDisconnect,
	}, []byte{b})
}

func (h *protocolHook) Init(any) error {
	h.ids = map[*mqtt.Client]uint16{}
	h.pubIDs = map[*mqtt.Client]map[uint16]uint16{}
	return nil
}

// OnPacketRead takes a SUBSCRIBE's or UNSUBSCRIBE's id out of Mochi's sight, gives a QoS 1
// publish whose id clashes with a message waiting for the client's PUBACK another id
// (clientPublishID), and acknowledges a $SYS publish, which Mochi then drops.
func (h *protocolHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
		if len(pk.Filters) == 0 || pk.PacketID == 0 {
			return pk, nil // Mochi closes the connection
		}
		if in, ok := cl.State.Inflight.Get(pk.PacketID); ok && in.FixedHeader.Type == packets.Pubrec {
			return pk, nil // the id of the client's own QoS 2 publish: a real clash, for Mochi to refuse
		}
		// Always, not only on a clash: a message for the client may take the id at any moment.
		h.mu.Lock()
		h.ids[cl] = pk.PacketID
		h.mu.Unlock()
		pk.PacketID = 0
		pk.FixedHeader.Qos = 0 // Mochi wants an id only when these flag bits say QoS 1
	case packets.Publish:
		if isSysTopic(pk.TopicName) && pk.PublishValidate(h.caps.TopicAliasMaximum) == packets.CodeSuccess {
			h.log.Warn("MQTT publish refused: acknowledged and dropped", "username", clip(string(cl.Properties.Username)),
				"client", cl.ID, "topic", clip(pk.TopicName), "qos", pk.FixedHeader.Qos, "reason", "$SYS topics are the broker's", "remote", cl.Net.Remote)
			ackRefused(cl, pk, packets.ErrNotAuthorized)
			return pk, nil
		}
		if pk.FixedHeader.Qos == 1 {
			pk.PacketID = h.clientPublishID(cl, pk.PacketID)
		}
	}
	return pk, nil
}

// clientPublishID is the id Mochi is to see for a client's QoS 1 publish with id id. Mochi
// keeps its own messages waiting for the client's PUBACK under their ids in the same map as the
// client's publishes, and a client's publish whose id equals one of them replaced and deleted
// it: an LED command sent to a Pi that had not acknowledged it yet when the Pi's press took the
// same id was never sent again, and its record in broker.db was overwritten. On such a clash
// the publish gets a free id from the top of the range (Mochi counts up from 1), and the
// PUBACK gets the client's back (OnPacketEncode). QoS 2 keeps its id: its flow spans packets.
func (h *protocolHook) clientPublishID(cl *mqtt.Client, id uint16) uint16 {
	if in, ok := cl.State.Inflight.Get(id); !ok || in.FixedHeader.Type != packets.Publish {
		return id
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.pubIDs[cl]
	if subs == nil {
		subs = map[uint16]uint16{}
		h.pubIDs[cl] = subs
	}
	for sub := uint16(65535); sub > 0; sub-- {
		if _, taken := subs[sub]; taken {
			continue
		}
		if _, taken := cl.State.Inflight.Get(sub); taken {
			continue
		}
		subs[sub] = id
		return sub
	}
	return id // every id in use: Mochi's own handling, as before
}

// isSysTopic says whether Mochi drops a publish to topic unanswered: $SYS, in any case.
func isSysTopic(topic string) bool {
	return len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix)
}

// OnSubscribe refuses malformed filters: Mochi refuses an empty one as invalid.
func (h *protocolHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	filters, cloned := pk.Filters, false
	for i, sub := range filters {
		if mqttfilter.Valid(unshare(sub.Filter)) {
			continue
		}
		h.log.Warn("MQTT subscription refused", "username", clip(string(cl.Properties.Username)), "client", cl.ID,
			"filter", clip(sub.Filter), "reason", "malformed topic filter: + and # must be whole levels, # the last", "remote", cl.Net.Remote)
		if !cloned {
			filters, cloned = slices.Clone(filters), true // the read packet's own slice stays as it was
		}
		filters[i].Filter = ""
	}
	pk.Filters = filters
	return pk
}

// OnPacketEncode gives a SUBACK or UNSUBACK its client's id back, keeps an MQTT 3.1.1
// SUBACK to 3.1.1's codes (granted QoS, or 0x80), and adds Maximum Packet Size to an MQTT 5
// CONNACK.
func (h *protocolHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack {
		// Mochi enforces MaximumPacketSize but never says so: an MQTT 5 client told nothing
		// may send any size [MQTT-3.2.2-15 leaves it no limit], and was disconnected for it.
		if cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code && h.caps.MaximumPacketSize > 0 {
			pk.Properties.MaximumPacketSize = h.caps.MaximumPacketSize
		}
		return pk
	}
	if pk.FixedHeader.Type == packets.Puback {
		h.mu.Lock()
		if orig, ok := h.pubIDs[cl][pk.PacketID]; ok {
			delete(h.pubIDs[cl], pk.PacketID)
			pk.PacketID = orig
		}
		h.mu.Unlock()
		return pk
	}
	if pk.FixedHeader.Type != packets.Suback && pk.FixedHeader.Type != packets.Unsuback {
		return pk
	}
	if pk.PacketID == 0 {
		h.mu.Lock()
		pk.PacketID = h.ids[cl]
		delete(h.ids, cl)
		h.mu.Unlock()
	}
	if pk.FixedHeader.Type == packets.Suback && cl.Properties.ProtocolVersion < 5 {
		codes := slices.Clone(pk.ReasonCodes)
		for i, c := range codes {
			if c > packets.CodeGrantedQos2.Code {
				codes[i] = packets.ErrUnspecifiedError.Code
			}
		}
		pk.ReasonCodes = codes
	}
	return pk
}

// OnDisconnect forgets ids whose acks were never sent.
func (h *protocolHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.ids, cl)
	delete(h.pubIDs, cl)
	h.mu.Unlock()
}

// ackRefused acknowledges a QoS 1 or 2 publish the broker drops: PUBACK or PUBREC with
// "not authorized" (0x87), which MQTT 5 clients read as a refusal that ends the flow, with
// nothing to resend. MQTT 3.1.1 has no reason codes: its clients get a plain PUBACK, or a
// PUBREC whose PUBREL Mochi answers with a PUBCOMP. Nothing is sent for QoS 0.
func ackRefused(cl *mqtt.Client, pk packets.Packet, code packets.Code) {
	kind := packets.Puback
	switch pk.FixedHeader.Qos {
	case 0:
		return
	case 2:
		kind = packets.Pubrec
	}
	// A failed write means the connection is going: nothing else to do.
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: kind},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	})
}
