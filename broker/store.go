package broker

import (
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// boltStore is Mochi's bolt storage hook with one repair. Its OnQosPublish saves a message queued
// for a client without the message's packet id, so after a restart the message comes back with
// id 0; Mochi then refuses to resend it ("missing packet id") and drops the client's connection
// at every reconnect until the session expires. The id is still in the record's key
// ("if_<client>:<id>"), so it is restored from there at load.
type boltStore struct{ *bolt.Hook }

func (h boltStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := h.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID == 0 {
			msgs[i].PacketID = packetIDFromKey(msgs[i].ID)
		}
	}
	return msgs, err
}

// packetIDFromKey reads the packet id at the end of an inflight record's key, or 0.
func packetIDFromKey(key string) uint16 {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return 0
	}
	id, err := strconv.ParseUint(key[i+1:], 10, 16)
	if err != nil {
		return 0
	}
	return uint16(id)
}
