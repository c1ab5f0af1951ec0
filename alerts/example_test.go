package alerts_test

import (
	"fmt"
	"time"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/topics"
)

func Example() {
	engine, err := alerts.New(alerts.DefaultConfig())
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC)
	publish := func(out []topics.Alert) {
		for _, a := range out {
			b, _ := topics.Encode(a) // the dashboard publishes b retained, QoS 1
			fmt.Println(topics.AlertTopic(a.Row, a.MAC, a.Rule), a.State, a.Message, len(b) > 0)
		}
	}
	temp := func(c float64, at time.Duration) topics.Metrics {
		return topics.Metrics{V: 1, Seq: uint64(at / time.Second), TS: start.Add(at), CPUTempC: &c}
	}
	// The Pi's birth: no metrics are judged before the engine knows the Pi is online.
	publish(engine.ObserveStatus("b827eb3f1a2c", "r1", topics.Status{V: 1, State: topics.StateOnline, Session: "s1"}, start))
	for _, at := range []time.Duration{0, 30 * time.Second, time.Minute} {
		publish(engine.ObserveMetrics("b827eb3f1a2c", "r1", temp(83.4, at), start.Add(at)))
	}
	publish(engine.ObserveMetrics("b827eb3f1a2c", "r1", temp(74.1, 10*time.Minute), start.Add(10*time.Minute)))
	// Output:
	// rack/r1/b827eb3f1a2c/alert/temp_high raised CPU at 83.4 °C, over 80 °C for 1 min true
	// rack/r1/b827eb3f1a2c/alert/temp_high cleared CPU at 74.1 °C, back under 75 °C true
}

func ExampleParseConfig() {
	_, err := alerts.ParseConfig([]byte(`{"temp_high": {"threshold": 80, "clear": 85}, "mem_low": {"severity": "loud"}}`))
	fmt.Println(err)
	// Output:
	// invalid alert config: mem_low.severity "loud": want "warning" or "critical"
	// temp_high.clear 85: must not be above threshold 80 (it raises over the threshold and clears under clear)
}
