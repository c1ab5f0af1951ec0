package dashboardtest

import (
	"context"
	"errors"
	"testing"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		filter, topic string
		want          bool
	}{
		{"site/#", "site/r1/b827eb3f1a2c/status", true},
		{"site/#", "site", true},
		{"site/+/led", "site/b827eb3f1a2c/led", true},
		{"site/+/led", "site/r1/b827eb3f1a2c/led", false},
		{"site/r1/+/status", "site/r1/b827eb3f1a2c/status", true},
		{"site/r1", "site/r1/power", false},
		{"other/#", "site/r1/power", false},
	} {
		if got := Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestBusDeliversAndRecords(t *testing.T) {
	var b Bus
	var got []string
	b.Subscribe("site/#", func(m bus.Message) { got = append(got, m.Topic+"="+string(m.Payload)) })
	b.Publish(context.Background(), bus.Message{Topic: "site/a/led", Payload: []byte("blink"), QoS: 1})
	b.Publish(context.Background(), bus.Message{Topic: "elsewhere", Payload: []byte("x"), Retained: true})
	if len(got) != 1 || got[0] != "site/a/led=blink" {
		t.Errorf("delivered %q", got)
	}
	if p := b.Published(); len(p) != 2 || p[1].Topic != "elsewhere" || !p[1].Retained {
		t.Errorf("recorded %+v", p)
	}
	b.PublishErr = errors.New("down")
	if err := b.Publish(context.Background(), bus.Message{Topic: "site/a/led", QoS: 1}); err == nil || len(b.Published()) != 2 {
		t.Error("PublishErr ignored")
	}
}

func TestUsers(t *testing.T) {
	u := Users{"ops": {Password: "pw", Role: auth.RoleViewer}}
	if got, err := u.Authenticate("ops", "pw"); err != nil || got.Role != auth.RoleViewer || got.Name != "ops" {
		t.Errorf("Authenticate = %+v, %v", got, err)
	}
	for _, c := range [][2]string{{"ops", "bad"}, {"nobody", "pw"}} {
		if _, err := u.Authenticate(c[0], c[1]); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %q) err = %v", c[0], c[1], err)
		}
	}
}
