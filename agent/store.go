package agent

import (
	"bytes"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

var _ mqtt.Store = (*memoryStore)(nil)

// memoryStore is paho's in-memory Store, but keeping packets encoded, as FileStore keeps them on
// disk: Put stores bytes and Get decodes a fresh packet, so no packet is ever shared between
// paho goroutines. Keys come back from All in the order they were put, so queued button
// presses are re-sent in order.
//
// Why: after each (re)connect paho v1.5.1's resume() walks the store and sets the DUP flag on
// the packets it re-sends. With paho's MemoryStore those are the very packet values a
// concurrent Publish (our birth, published on connect) has handed to the writer goroutine: a
// data race inside paho (eclipse-paho/paho.mqtt.golang#657, #703) that -race reports. With
// copies, the worst case is a QoS1 duplicate, which QoS1 allows.
type memoryStore struct {
	mu   sync.Mutex
	msgs map[string][]byte
	keys []string // in put order
}

func newMemoryStore() *memoryStore { return &memoryStore{msgs: make(map[string][]byte)} }

func (s *memoryStore) Open()  {}
func (s *memoryStore) Close() {}

func (s *memoryStore) Put(key string, p packets.ControlPacket) {
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return // a packet paho built always encodes; not storing it only loses the resend
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[key]; ok {
		s.removeKey(key)
	}
	s.msgs[key] = buf.Bytes()
	s.keys = append(s.keys, key)
}

func (s *memoryStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	b, ok := s.msgs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	p, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return p
}

func (s *memoryStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

func (s *memoryStore) Del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[key]; ok {
		delete(s.msgs, key)
		s.removeKey(key)
	}
}

func (s *memoryStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgs)
	s.keys = nil
}

func (s *memoryStore) removeKey(key string) {
	for i, k := range s.keys {
		if k == key {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			return
		}
	}
}
