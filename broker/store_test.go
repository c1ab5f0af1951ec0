package broker

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

func TestPacketIDFromKey(t *testing.T) {
	for key, want := range map[string]uint16{
		"if_b827eb000001:7":     7,
		"if_pirack-cli-ab:12:9": 9, // a client id may itself hold a colon
		"if_x:65535":            65535,
		"if_x:65536":            0,
		"if_x:":                 0,
		"if_x":                  0,
	} {
		if got := packetIDFromKey(key); got != want {
			t.Errorf("packetIDFromKey(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestBoltStoreProvidesRetained: Mochi calls a hook's method only if its Provides says so; the
// retained-message methods boltStore overrides must stay among those the bolt hook provides.
func TestBoltStoreProvidesRetained(t *testing.T) {
	h := newBoltStore(retainedConfig{})
	for name, b := range map[string]byte{
		"OnRetainMessage":        mqtt.OnRetainMessage,
		"OnRetainedExpired":      mqtt.OnRetainedExpired,
		"StoredRetainedMessages": mqtt.StoredRetainedMessages,
		"StoredInflightMessages": mqtt.StoredInflightMessages,
	} {
		if !h.Provides(b) {
			t.Errorf("boltStore does not provide %s", name)
		}
	}
}

// TestBrokerDBFormat: a broker.db written by Mochi's bolt hook loads in boltStore as Mochi's
// hook loads it, and what boltStore writes loads in Mochi's hook: the file format is Mochi's.
func TestBrokerDBFormat(t *testing.T) {
	dir := t.TempDir()
	opts := func() *bolt.Options {
		return &bolt.Options{Path: filepath.Join(dir, DBFile), Bucket: hookBucket, Options: &bbolt.Options{Timeout: time.Second}}
	}
	srv := mqtt.New(&mqtt.Options{Logger: discardLogger()})
	write := func(h mqtt.Hook, id string) {
		cl := srv.NewClient(nil, "tcp", id, false)
		cl.Properties.Username = []byte("auto")
		h.OnSessionEstablished(cl, packets.Packet{})
		h.OnSubscribed(cl, packets.Packet{Filters: packets.Subscriptions{{Filter: "rack/+/+/button", Qos: 1}}}, []byte{1})
		h.OnQosPublish(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "rack/r1/b827eb000001/button", Payload: []byte("press of " + id), PacketID: 7, Created: 1}, 1, 0)
	}
	type contents struct {
		Clients  []storage.Client
		Subs     []storage.Subscription
		Inflight []storage.Message
	}
	read := func(h interface {
		StoredClients() ([]storage.Client, error)
		StoredSubscriptions() ([]storage.Subscription, error)
		StoredInflightMessages() ([]storage.Message, error)
	}) contents {
		var c contents
		var errs [3]error
		c.Clients, errs[0] = h.StoredClients()
		c.Subs, errs[1] = h.StoredSubscriptions()
		c.Inflight, errs[2] = h.StoredInflightMessages()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return c
	}

	mochi := new(bolt.Hook)
	mochi.SetOpts(discardLogger(), nil)
	if err := mochi.Init(opts()); err != nil {
		t.Fatal(err)
	}
	write(mochi, "old")
	want := read(mochi)
	repairIDs(want.Inflight)
	if err := mochi.Stop(); err != nil {
		t.Fatal(err)
	}

	ours := newBoltStore(retainedConfig{Path: filepath.Join(dir, RetainedDBFile), Interval: time.Second, Logger: discardLogger()})
	if err := ours.Init(opts()); err != nil {
		t.Fatal(err)
	}
	if got := read(ours); !reflect.DeepEqual(got, want) {
		t.Errorf("boltStore read Mochi's file as\n%+v\nMochi's hook as\n%+v", got, want)
	}
	write(ours, "new")
	if err := ours.Stop(); err != nil {
		t.Fatal(err)
	}
	ours = newBoltStore(retainedConfig{Path: filepath.Join(dir, RetainedDBFile), Interval: time.Second, Logger: discardLogger()})
	if err := ours.Init(opts()); err != nil {
		t.Fatal(err)
	}
	want = read(ours)
	if err := ours.Stop(); err != nil {
		t.Fatal(err)
	}

	mochi = new(bolt.Hook)
	mochi.SetOpts(discardLogger(), nil)
	if err := mochi.Init(opts()); err != nil {
		t.Fatal(err)
	}
	defer mochi.Stop()
	got := read(mochi)
	if len(got.Clients) != 2 || len(got.Subs) != 2 || len(got.Inflight) != 2 {
		t.Errorf("Mochi's hook read %d clients, %d subscriptions, %d queued messages, want 2 of each", len(got.Clients), len(got.Subs), len(got.Inflight))
	}
	repairIDs(got.Inflight)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Mochi's hook read boltStore's file as\n%+v\nboltStore as\n%+v", got, want)
	}
}

// repairIDs does to msgs, read by Mochi's hook, what boltStore does at load: see boltStore.
func repairIDs(msgs []storage.Message) {
	for i := range msgs {
		msgs[i].PacketID = packetIDFromKey(msgs[i].ID)
	}
}
