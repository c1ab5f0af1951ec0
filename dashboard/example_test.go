package dashboard_test

import (
	"context"
	"fmt"
	"log"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/dashboard/dashboardtest"
	"github.com/pirack/pirack/topics"
)

// The Control Center subscribes as soon as it is created, so telemetry published afterwards,
// by agents through the broker, shows up in its Rack's Nodes, the API and the live stream.
func ExampleNew() {
	fake := &dashboardtest.Bus{} // pirack serve passes the embedded broker here
	srv, err := dashboard.New(dashboard.Config{
		Bus:  fake,
		Auth: dashboardtest.Users{"ops": {Password: "s3cret-pw", Role: auth.RoleAdmin}},
	})
	if err != nil {
		log.Fatal(err)
	}

	birth, _ := topics.Encode(topics.Status{V: topics.Version, State: topics.StateOnline, Session: "1", Hostname: "pi-a"})
	fake.Publish(context.Background(), bus.Message{Topic: topics.StatusTopic("r1", "b827eb3f1a2c"), Payload: birth, QoS: 1, Retained: true})

	for _, n := range srv.Rack().Nodes() {
		fmt.Println(n.Row, n.MAC, n.Hostname, n.State)
	}
	// Keep it live with srv.Rack().Run(ctx), and serve it with srv.Serve(ctx, listener).
	// Output: r1 b827eb3f1a2c pi-a online
}
