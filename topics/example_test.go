package topics_test

import (
	"fmt"
	"time"

	"github.com/pirack/pirack/topics"
)

func ExampleNormalizeMAC() {
	for _, in := range []string{"B8:27:EB:3F:1A:2C", "b8-27-eb-3f-1a-2c", "b827eb3f1a2c"} {
		mac, _ := topics.NormalizeMAC(in)
		fmt.Println(mac)
	}
	_, err := topics.NormalizeMAC("b8:27:eb")
	fmt.Println(err)
	// Output:
	// b827eb3f1a2c
	// b827eb3f1a2c
	// b827eb3f1a2c
	// invalid MAC address "b8:27:eb": want 12 hex digits such as b8:27:eb:3f:1a:2c
}

func ExampleParse() {
	t, err := topics.Parse("rack/r1/b827eb3f1a2c/metrics")
	fmt.Println(t.Kind, t.Row, t.MAC, err)

	t, _ = topics.Parse("rack/b827eb3f1a2c/led")
	fmt.Println(t.Kind, t.MAC)

	_, err = topics.Parse("rack/r1/b827eb3f1a2c/reboot")
	fmt.Println(err)
	// Output:
	// metrics r1 b827eb3f1a2c <nil>
	// led b827eb3f1a2c
	// not a pirack topic: "rack/r1/b827eb3f1a2c/reboot"
}

func ExampleParseLEDCommand() {
	for _, payload := range []string{"blink 3", `{"action":"identify","timeout_s":30}`, "reboot"} {
		c, err := topics.ParseLEDCommand([]byte(payload))
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(c.Action, c.Count, c.PeriodMS, c.TimeoutS)
	}
	// Output:
	// blink 3 500 0
	// identify 0 500 30
	// error: invalid payload: led command "reboot": want blink [count], on, off or identify [seconds]
}

func ExampleEncode() {
	load := 0.42
	m := topics.Metrics{V: topics.Version, Seq: 1, TS: time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC), Load1: &load}
	b, err := topics.Encode(m)
	fmt.Println(topics.MetricsTopic("r1", "b827eb3f1a2c"), string(b), err)
	// Output:
	// rack/r1/b827eb3f1a2c/metrics {"v":1,"seq":1,"ts":"2026-11-24T07:30:00Z","load_1":0.42} <nil>
}

func ExampleAlertTopic() {
	fmt.Println(topics.AlertTopic("r1", "b827eb3f1a2c", "temp_high"))
	fmt.Println(topics.AlertTopic("r1", "", "power_band")) // a row's own alert

	t, _ := topics.Parse("rack/r1/alert/power_band")
	fmt.Printf("%s row=%s mac=%q rule=%s\n", t.Kind, t.Row, t.MAC, t.Rule)
	// Output:
	// rack/r1/b827eb3f1a2c/alert/temp_high
	// rack/r1/alert/power_band
	// alert row=r1 mac="" rule=power_band
}
