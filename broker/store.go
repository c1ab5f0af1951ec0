package broker

import (
	"errors"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// boltStore is Mochi's bolt storage hook (broker.db: sessions, subscriptions, queued QoS 1
// messages, each committed before Mochi goes on, as Mochi writes them) with two changes.
//
// Retained messages go to their own file, retained.db, by group commit (retainedStore): Mochi's
// hook commits each one with its own fsync, which 1,000 agents' retained metrics turned into
// the broker's bottleneck. The hook's own retained methods are never called, so broker.db
// holds no retained message once the ones an older pirack left there have been moved.
//
// And a repair: Mochi's OnQosPublish saves a message queued for a client without the message's
// packet id, so after a restart the message comes back with id 0; Mochi then refuses to resend
// it ("missing packet id") and drops the client's connection at every reconnect until the
// session expires. The id is still in the record's key ("if_<client>:<id>"), so it is restored
// from there at load.
type boltStore struct {
	*bolt.Hook
	cfg      retainedConfig
	retained *retainedStore // opened by Init
}

var _ mqtt.Hook = (*boltStore)(nil)

func newBoltStore(cfg retainedConfig) *boltStore {
	return &boltStore{Hook: new(bolt.Hook), cfg: cfg}
}

// Init opens retained.db, moving into it the retained messages of the hook's file, then lets
// the hook open its file. config is the hook's *bolt.Options, with Path and Bucket set.
func (h *boltStore) Init(config any) error {
	opts, ok := config.(*bolt.Options)
	if !ok || opts == nil || opts.Path == "" || opts.Bucket == "" {
		return mqtt.ErrInvalidConfigType
	}
	rs, err := openRetainedStore(h.cfg, opts.Options, opts.Path, opts.Bucket)
	if err != nil {
		return err
	}
	if err := h.Hook.Init(config); err != nil {
		return errors.Join(err, rs.close())
	}
	h.retained = rs
	return nil
}

// Stop saves the retained messages still pending and closes both files. Mochi calls it once
// every client has gone, their Wills published.
func (h *boltStore) Stop() error {
	return errors.Join(h.retained.close(), h.Hook.Stop())
}

// OnRetainMessage records that a topic's retained message changed; r is 1 for a new message,
// -1 for a deletion (an empty retained publish), 0 for an empty publish with nothing to delete.
// A QoS 1 or 2 message and a deletion wait for their commit, so they are on disk before the
// publisher is acknowledged; a QoS 0 message is saved within Config.RetainedFlushInterval.
func (h *boltStore) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	h.retained.mark(pk.TopicName, r == -1 || (r == 1 && pk.FixedHeader.Qos > 0))
}

// OnRetainedExpired records that Mochi dropped an expired retained message.
func (h *boltStore) OnRetainedExpired(topic string) {
	h.retained.mark(topic, false)
}

// StoredRetainedMessages returns the retained messages in retained.db, for Mochi to load at
// Serve.
func (h *boltStore) StoredRetainedMessages() ([]storage.Message, error) {
	return h.retained.load()
}

func (h *boltStore) StoredInflightMessages() ([]storage.Message, error) {
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

// OnSubscribed saves the filters that were granted. Mochi's hook saves refused ones too, with
// the failure code as their QoS, and restores them at the next start as live subscriptions:
// filters refused by the ACL or over Limits.MaxSubscriptions would come back after a restart.
func (h *boltStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	granted := pk
	granted.Filters = nil
	var grantedCodes []byte
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			granted.Filters = append(granted.Filters, f)
			grantedCodes = append(grantedCodes, codes[i])
		}
	}
	if len(granted.Filters) > 0 {
		h.Hook.OnSubscribed(cl, granted, grantedCodes)
	}
}
