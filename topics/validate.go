package topics

import "fmt"

// Validate checks a payload published on a topic of kind k against the contract: the check
// the broker makes before it retains, queues or delivers a client's message, with the decoders
// every reader uses. An error wraps ErrInvalidPayload and says what is wrong.
func Validate(k Kind, payload []byte) error {
	_, err := DecodeKind(k, payload)
	return err
}

// DecodeKind is Validate that also returns what it decoded: a Status, Metrics, ButtonEvent,
// LEDCommand, Power, LEDState or Alert, as the decoder of kind k returns it. A reader that
// gets the value from whoever validated the payload (the embedded broker hands it over with the
// message, bus.Message.Decoded) need not decode the payload again.
func DecodeKind(k Kind, payload []byte) (any, error) {
	var v any
	var err error
	switch k {
	case KindStatus:
		v, err = DecodeStatus(payload)
	case KindMetrics:
		v, err = DecodeMetrics(payload)
	case KindButton:
		v, err = DecodeButton(payload)
	case KindLED:
		v, err = ParseLEDCommand(payload)
	case KindPower:
		v, err = DecodePower(payload)
	case KindLEDState:
		v, err = DecodeLEDState(payload)
	case KindAlert:
		v, err = DecodeAlert(payload)
	case KindLayout:
		v, err = DecodeLayout(payload)
	case KindSystem:
		v, err = DecodeSystemCommand(payload)
	case KindSystemResult:
		v, err = DecodeSystemResult(payload)
	default:
		err = fmt.Errorf("%w: no payload is defined for a topic of kind %s", ErrInvalidPayload, k)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
