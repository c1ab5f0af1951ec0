package topics

import "fmt"

// Validate checks a payload published on a topic of kind k against the contract: the check
// the broker makes before it retains, queues or delivers a client's message, with the decoders
// every reader uses. An error wraps ErrInvalidPayload and says what is wrong.
func Validate(k Kind, payload []byte) error {
	var err error
	switch k {
	case KindStatus:
		_, err = DecodeStatus(payload)
	case KindMetrics:
		_, err = DecodeMetrics(payload)
	case KindButton:
		_, err = DecodeButton(payload)
	case KindLED:
		_, err = ParseLEDCommand(payload)
	case KindPower:
		_, err = DecodePower(payload)
	case KindLEDState:
		_, err = DecodeLEDState(payload)
	case KindAlert:
		_, err = DecodeAlert(payload)
	default:
		err = fmt.Errorf("%w: no payload is defined for a topic of kind %s", ErrInvalidPayload, k)
	}
	return err
}
