package powerbridge_test

import (
	"fmt"
	"log"

	"github.com/pirack/pirack/powerbridge"
)

// A file maps plugs to rows; the broker lets a plug user publish under the folder of its own
// row's plug.
func ExampleParseFile() {
	f, err := powerbridge.ParseFile([]byte(`{"plugs":[
		{"row":"r1","type":"tasmota","topic":"tele/rack-r1/SENSOR"},
		{"row":"r2","type":"shelly-gen2","topic":"shellyplusplugs-a8032ab1/status/switch:0"}]}`))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range f.Plugs {
		fmt.Println(p)
	}
	for _, row := range []string{"r1", "r2"} {
		fmt.Println(row, "may publish", f.PlugTopics()[row].Write)
	}
	// Output:
	// row r1 <- tasmota tele/rack-r1/SENSOR
	// row r2 <- shelly-gen2 shellyplusplugs-a8032ab1/status/switch:0
	// r1 may publish [tele/rack-r1/# stat/rack-r1/#]
	// r2 may publish [shellyplusplugs-a8032ab1/#]
}

// A Tasmota plug's SENSOR message, summed over its channels.
func ExampleParseTasmotaSensor() {
	r, err := powerbridge.ParseTasmotaSensor([]byte(`{"Time":"2024-03-10T14:22:05",
		"ENERGY":{"Total":3.441,"Power":[9.6,5.1],"Voltage":229,"Current":[0.074,0.039]}}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*r.Watts, "W", *r.Volts, "V mains", *r.Amps, "A mains")
	// Output: 14.7 W 229 V mains 0.113 A mains
}
