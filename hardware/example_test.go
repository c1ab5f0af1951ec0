package hardware_test

import (
	"context"
	"fmt"

	"github.com/pirack/pirack/hardware"
	"github.com/pirack/pirack/hardware/sim"
	"github.com/pirack/pirack/topics"
)

// A program drives an LED through the interface, whatever the backend.
func ExampleLED() {
	var led hardware.LED = new(sim.LED) // a GPIO backend would be chosen here on a real Pi
	for range 3 {
		led.Set(true)
		led.Set(false)
	}
	fmt.Println("flashes:", led.(*sim.LED).Transitions())
	// Output: flashes: 3
}

// A program consumes a button by running it; presses arrive classified.
func ExampleButton() {
	btn := new(sim.Button)
	btn.Press(topics.PressShort)
	btn.Press(topics.PressLong)

	ctx, cancel := context.WithCancel(context.Background())
	var b hardware.Button = btn
	n := 0
	b.Run(ctx, func(kind string) {
		fmt.Println("press:", kind)
		if n++; n == 2 {
			cancel() // Run returns once its context is done
		}
	})
	// Output:
	// press: short
	// press: long
}

// Watching the simulated LED is how the demo and end-to-end tests see what the agent does.
func ExampleLED_watch() {
	led := new(sim.LED)
	changes, stop := led.Watch()
	defer stop()

	led.Set(true)
	led.Set(true) // no change, no event
	led.Set(false)
	fmt.Println(<-changes, <-changes, led.On())
	// Output: true false false
}
