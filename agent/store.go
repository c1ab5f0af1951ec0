package agent

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

var _ mqtt.Store = noStore{}

// noStore is the paho Store the agent uses: it keeps nothing, so paho never re-sends a message
// by itself. What must survive an outage or a restart, the button presses, lives in the
// agent's own pressQueue, which re-publishes until the broker acknowledges; everything else is
// published afresh at each connection (birth, metrics) or waited for (the offline status).
//
// Why not paho's FileStore: it is unbounded; it lists keys in file-name order ("o.10" before
// "o.2"), so presses came back out of order after a restart; and on each reconnect paho's
// resume completes the previous token of every stored message with success before the re-sent
// copy is acknowledged, so a token could not tell whether a press had arrived. Why not paho's
// MemoryStore: resume sets the DUP flag on the very packet values a concurrent Publish has
// handed to the writer goroutine, a data race inside paho v1.5.1 (eclipse-paho/paho.mqtt.golang
// #657, #703). With noStore a publish token completes only with the PUBACK of its own message
// (or never, if the connection drops first, and the queue then re-sends).
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Close()                            {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Reset()                            {}
