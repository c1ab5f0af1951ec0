// Package bus is how the control center reaches MQTT: a Message type and the small Bus
// interface that the dashboard, the power bridge and the integrations use. Two implementations
// exist: the embedded broker in-process (*broker.Broker) and a network client of any MQTT
// broker (package mqttbus). Code above the bus does not know which one runs.
package bus

import "context"

// Message is one MQTT message, as delivered to a Handler or given to Publish.
type Message struct {
	Topic   string
	Payload []byte
	// QoS is the quality of service: on Publish, the one asked for; on delivery, the one the
	// message arrived with (0, 1 or 2).
	QoS byte
	// Retained, on Publish, asks the broker to keep the message for later subscribers. On
	// delivery it says the message came from the broker's retained store when the
	// subscription was made, not live: a state as it was, perhaps long ago.
	Retained bool
	// Decoded, on delivery, is the payload as the topics decoder of the topic's kind returned
	// it (topics.DecodeKind: a topics.Metrics for a metrics topic, and so on), when the bus
	// already decoded and validated it: the embedded broker does for a client's publish on a
	// topic of the contract. nil means decode Payload yourself (a network bus, an in-process
	// publish, a retained message). Like Payload, it is the subscribers' to read, not modify.
	Decoded any
}

// Handler receives the messages of a subscription. It may be called on a broker's or a
// network client's goroutine, on several at once: it must be safe for concurrent use, must not
// block, and must not modify or keep Message.Payload beyond the call without copying it.
type Handler func(Message)

// CheckedHandler receives the messages of a subscription like a Handler, and may refuse one by
// returning an error: a bus that can (CheckedSubscriber) then does not acknowledge the publish,
// so that its publisher sends it again. It may block, for a bounded time, until the message is
// safe (an event committed to disk): the publisher's connection waits meanwhile.
type CheckedHandler func(Message) error

// CheckedSubscriber is implemented by a Bus that hands a client's publish to in-process
// subscribers before acknowledging it, and can withhold the acknowledgement: the embedded
// broker. A network bus cannot: its broker acknowledged the publish before delivering it.
type CheckedSubscriber interface {
	// SubscribeChecked is Subscribe with a CheckedHandler. Errors for retained messages
	// delivered at subscription time, and for publishes that have no acknowledgement (QoS 0,
	// in-process ones), are ignored.
	SubscribeChecked(filter string, h CheckedHandler) error
}

// Bus is an MQTT connection as the control center uses it.
type Bus interface {
	// Subscribe calls h for every message matching filter (MQTT wildcards + and #), retained
	// ones included, with Message.Retained set. On the embedded broker the retained messages
	// are delivered before Subscribe returns; on a network bus they arrive soon after, in no
	// set order with live ones.
	Subscribe(filter string, h Handler) error
	// Publish sends m. It returns once the message is handed over (embedded broker) or, for
	// QoS 1 on a network bus, acknowledged or queued for the next connection; ctx bounds the
	// wait.
	Publish(ctx context.Context, m Message) error
}
