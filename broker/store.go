package broker

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"go.etcd.io/bbolt"
)

// boltStore is pirack's version of Mochi's bolt storage hook. broker.db keeps Mochi's format
// (one bucket, the same keys, the same JSON records), so a file written by Mochi's hook, or by
// an earlier pirack, loads unchanged; what differs is when records are written.
//
// Mochi's hook commits each write on its own, with an fsync: a QoS 1 message from a client to a
// persistent subscriber cost four (the publisher's PUBACK record and its deletion, the
// subscriber's queued copy and its deletion), which capped QoS 1 near a thousand messages a
// second. boltStore writes broker.db by group commit (storeWriter): writes arriving together
// share one transaction. What Mochi's hook had on disk before Mochi went on still is (the
// caller waits for the shared commit): sessions, subscriptions, Wills, and a QoS 1 or 2
// message queued for a subscriber. What a crash may lose is only what MQTT allows to lose, and
// is saved within the flush interval:
//
//   - the deletion of a delivered (or dropped) queued message: a crash that loses it sends the
//     message again, which QoS 1 allows;
//   - the publisher's PUBACK, which Mochi records for a QoS 1 publish just before sending it and
//     deletes just after: it is not written at all (a PUBACK resent after a restart would tell
//     the client nothing), only the deletion is, as Mochi's hook did;
//   - $SYS values.
//
// Retained messages go to their own file, retained.db, by group commit (retainedStore): the
// hook's file holds no retained message once the ones an older pirack left there have been
// moved.
//
// And a repair: Mochi's OnQosPublish saves a message queued for a client without the message's
// packet id, so after a restart the message comes back with id 0; Mochi then refuses to resend
// it ("missing packet id") and drops the client's connection at every reconnect until the
// session expires. The id is still in the record's key ("if_<client>:<id>"), so it is restored
// from there at load.
type boltStore struct {
	mqtt.HookBase
	cfg      retainedConfig
	db       *bbolt.DB      // broker.db, opened by Init
	bucket   []byte         // Mochi's bucket in it
	writer   *storeWriter   // writes db, started by Init
	retained *retainedStore // opened by Init
}

var _ mqtt.Hook = (*boltStore)(nil)

// newBoltStore returns the store. cfg configures retained.db; its Interval is also the longest
// a lazy write to broker.db waits, and its Logger receives both files' failures.
func newBoltStore(cfg retainedConfig) *boltStore {
	return &boltStore{cfg: cfg}
}

// ID is the ID of Mochi's bolt hook: it is the same store.
func (h *boltStore) ID() string { return "bolt-db" }

// Provides lists the methods of Mochi's bolt hook, each provided here.
func (h *boltStore) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage,
		mqtt.OnWillSent,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnSysInfoTick,
		mqtt.OnClientExpired,
		mqtt.OnRetainedExpired,
		mqtt.StoredClients,
		mqtt.StoredInflightMessages,
		mqtt.StoredRetainedMessages,
		mqtt.StoredSubscriptions,
		mqtt.StoredSysInfo,
	}, []byte{b})
}

// Init opens retained.db, moving into it the retained messages of broker.db, then opens
// broker.db. config is Mochi's *bolt.Options, with Path and Bucket set.
func (h *boltStore) Init(config any) error {
	opts, ok := config.(*bolt.Options)
	if !ok || opts == nil || opts.Path == "" || opts.Bucket == "" {
		return mqtt.ErrInvalidConfigType
	}
	rs, err := openRetainedStore(h.cfg, opts.Options, opts.Path, opts.Bucket)
	if err != nil {
		return err
	}
	db, err := bbolt.Open(opts.Path, 0o600, opts.Options)
	if err != nil {
		return errors.Join(err, rs.close())
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(opts.Bucket))
		return err
	})
	if err != nil {
		return errors.Join(fmt.Errorf("prepare %s: %w", opts.Path, err), db.Close(), rs.close())
	}
	h.db, h.bucket, h.retained = db, []byte(opts.Bucket), rs
	h.writer = newStoreWriter(db, opts.Bucket, opts.Path, h.cfg.Interval, h.cfg.Logger)
	return nil
}

// Stop saves what is pending in both files and closes them. Mochi calls it once every client
// has gone, their Wills published.
func (h *boltStore) Stop() error {
	if h.writer == nil {
		return nil // never initialised
	}
	h.writer.close()
	return errors.Join(h.retained.close(), h.db.Close())
}

// save encodes v and writes it under key.
func (h *boltStore) save(key string, v storage.Serializable, wait bool) {
	data, err := v.MarshalBinary()
	if err != nil {
		h.cfg.Logger.Warn("broker.db record not saved: cannot encode it", "key", clip(key), "error", err)
		return
	}
	h.writer.put(key, data, wait)
}

// OnSessionEstablished saves the client's session.
func (h *boltStore) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.saveClient(cl) }

// OnWillSent saves the client's session without its Will, now published.
func (h *boltStore) OnWillSent(cl *mqtt.Client, _ packets.Packet) { h.saveClient(cl) }

// saveClient writes the client's record as Mochi's hook does (updateClient), and waits for it.
func (h *boltStore) saveClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	h.save(clientKey(cl.ID), &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval,
			AuthenticationMethod:  props.AuthenticationMethod,
			AuthenticationData:    props.AuthenticationData,
			RequestProblemInfo:    props.RequestProblemInfo,
			RequestResponseInfo:   props.RequestResponseInfo,
			ReceiveMaximum:        props.ReceiveMaximum,
			TopicAliasMaximum:     props.TopicAliasMaximum,
			User:                  props.User,
			MaximumPacketSize:     props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}, true)
}

// OnDisconnect deletes the session of a client that ended it (not one taken over by a new
// connection of the same client id).
func (h *boltStore) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && cl.StopCause() != packets.ErrSessionTakenOver {
		h.writer.del(clientKey(cl.ID), true)
	}
}

// OnClientExpired deletes an expired session.
func (h *boltStore) OnClientExpired(cl *mqtt.Client) {
	h.writer.del(clientKey(cl.ID), true)
}

// OnSubscribed saves the filters that were granted. Mochi's hook saves refused ones too, with
// the failure code as their QoS, and restores them at the next start as live subscriptions:
// filters refused by the ACL or over Limits.MaxSubscriptions would come back after a restart.
func (h *boltStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	var last string
	var rec *storage.Subscription
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		if rec != nil {
			h.save(last, rec, false) // the last one waits, and its commit takes these
		}
		last = subscriptionKey(cl.ID, f.Filter)
		rec = &storage.Subscription{
			ID:                last,
			T:                 storage.SubscriptionKey,
			Client:            cl.ID,
			Qos:               codes[i],
			Filter:            f.Filter,
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainHandling:    f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		}
	}
	if rec != nil {
		h.save(last, rec, true)
	}
}

// OnUnsubscribed deletes the client's subscriptions to the filters.
func (h *boltStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for i, f := range pk.Filters {
		h.writer.del(subscriptionKey(cl.ID, f.Filter), i == len(pk.Filters)-1)
	}
}

// OnQosPublish saves a QoS 1 or 2 message queued for a client, and waits for it: Mochi then
// goes on to send it, or to read the publisher's next packet. The PUBACK Mochi records for a
// client's QoS 1 publish (deleted once sent, a moment later) is not saved: see boltStore.
//
// A message Mochi sends again to a client that reconnected (marked DUP: a message queued for
// the first time never is, Mochi's copy clears the flag) is already saved, or pending after a
// failed commit; only the flag changes, so its write does not wait: a session resumed with
// many messages queued is not one commit per message.
func (h *boltStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	resent := pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Dup
	props := pk.Properties.Copy(false)
	key := inflightKey(cl.ID, pk.PacketID)
	h.save(key, &storage.Message{
		ID:          key,
		T:           storage.InflightKey,
		Client:      cl.ID,
		Origin:      pk.Origin,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Sent:        sent,
		Created:     pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			TopicAlias:             props.TopicAlias,
			User:                   props.User,
		},
	}, !resent)
}

// OnQosComplete deletes a message the client acknowledged, with the next commit: a crash that
// loses the deletion only sends the message again.
func (h *boltStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.writer.del(inflightKey(cl.ID, pk.PacketID), false)
}

// OnQosDropped deletes a message Mochi dropped (expired, or refused by the client), as lazily.
func (h *boltStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.writer.del(inflightKey(cl.ID, pk.PacketID), false)
}

// OnSysInfoTick saves the $SYS values, with the next commit.
func (h *boltStore) OnSysInfoTick(sys *system.Info) {
	h.save(storage.SysInfoKey, &storage.SystemInfo{ID: storage.SysInfoKey, T: storage.SysInfoKey, Info: *sys}, false)
}

// clientKey, subscriptionKey and inflightKey are the keys of Mochi's bolt hook.
func clientKey(id string) string {
	return storage.ClientKey + "_" + id
}

func subscriptionKey(id, filter string) string {
	return storage.SubscriptionKey + "_" + id + ":" + filter
}

func inflightKey(id string, packetID uint16) string {
	return storage.InflightKey + "_" + id + ":" + strconv.Itoa(int(packetID))
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

// StoredClients returns the saved sessions.
func (h *boltStore) StoredClients() ([]storage.Client, error) {
	return loadRecords[storage.Client](h, storage.ClientKey)
}

// StoredSubscriptions returns the saved subscriptions.
func (h *boltStore) StoredSubscriptions() ([]storage.Subscription, error) {
	return loadRecords[storage.Subscription](h, storage.SubscriptionKey)
}

// StoredInflightMessages returns the saved queued messages, their packet ids repaired.
func (h *boltStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := loadRecords[storage.Message](h, storage.InflightKey)
	for i := range msgs {
		if msgs[i].PacketID == 0 {
			msgs[i].PacketID = packetIDFromKey(msgs[i].ID)
		}
	}
	return msgs, err
}

// StoredSysInfo returns the saved $SYS values, or none.
func (h *boltStore) StoredSysInfo() (storage.SystemInfo, error) {
	infos, err := loadRecords[storage.SystemInfo](h, storage.SysInfoKey)
	if len(infos) == 0 {
		return storage.SystemInfo{}, err
	}
	return infos[0], err
}

// loadRecords decodes the records whose keys begin with kind and "_" (kind itself for $SYS).
// A record that cannot be decoded is logged and skipped rather than keeping the broker from
// starting.
func loadRecords[T any, PT interface {
	*T
	UnmarshalBinary([]byte) error
}](h *boltStore, kind string) ([]T, error) {
	prefix := []byte(kind + "_")
	if kind == storage.SysInfoKey {
		prefix = []byte(kind)
	}
	var out []T
	err := h.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(h.bucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec T
			if err := PT(&rec).UnmarshalBinary(v); err != nil {
				h.cfg.Logger.Warn("skipping a damaged broker.db record", "key", clip(string(k)), "error", err)
				continue
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read broker.db: %w", err)
	}
	return out, nil
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
