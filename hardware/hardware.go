// Package hardware defines the small interfaces pirack's agent uses to drive a Pi's status LED
// and read its push button. Backends implement them, each in its own package so that only it
// imports its GPIO library:
//
//   - rpio: memory-mapped registers through /dev/gpiomem (go-rpio), Pi 1-4 and Zero;
//   - cdev: the Linux GPIO character device (go-gpiocdev), the Pi 5 and any modern board;
//   - sim: the simulated board used by `pirack demo` and end-to-end tests.
//
// Around them: package button debounces a GPIO line and classifies presses the same way for
// every backend; package header maps the Pi's header pins to BCM numbers; package board picks the
// backend for the machine it runs on and opens the pins; package powersensor reads a row's
// supply through an INA219 or INA226 on I2C. Test fakes (including a fake GPIO pin) live in
// package hardwaretest.
//
// The interfaces are deliberately tiny so that a backend is a few dozen lines: an LED only has to
// switch, and a button only has to report classified presses. Blink patterns and MQTT live above
// this layer.
package hardware

import "context"

// LED is a single on/off indicator, such as an LED on a GPIO output pin.
type LED interface {
	// Set switches the LED on or off. Setting the state it already has is allowed and cheap.
	Set(on bool) error
}

// Button is a push button that reports classified presses.
//
// A Button is consumed by calling Run rather than by reading a channel it owns, so that any
// goroutine a backend needs (polling a pin, waiting for edge events, timing long and double
// presses) belongs to the caller's Run and ends with its context.
type Button interface {
	// Run watches the button until ctx is done, calling press once for each press with its kind:
	// topics.PressShort, topics.PressLong or topics.PressDouble. press is called from Run's
	// goroutine, one call at a time, and should return quickly. Run returns nil when ctx is
	// done, or an error if the button can no longer be read.
	Run(ctx context.Context, press func(kind string)) error
}
