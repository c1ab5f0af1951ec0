package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ackRefused acknowledges a QoS 1 or 2 publish the broker drops: PUBACK or PUBREC with
// "not authorized" (0x87), which MQTT 5 clients read as a refusal that ends the flow, with
// nothing to resend. MQTT 3.1.1 has no reason codes: its clients get a plain PUBACK, or a
// PUBREC whose PUBREL Mochi answers with a PUBCOMP. Nothing is sent for QoS 0.
func ackRefused(cl *mqtt.Client, pk packets.Packet) {
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
		ReasonCode:  packets.ErrNotAuthorized.Code,
		Properties:  packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason},
	})
}
