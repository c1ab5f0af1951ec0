package rackclient

import (
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

func TestResolve(t *testing.T) {
	pi := func(row, mac, host string) *Pi {
		return &Pi{Row: row, MAC: mac, Status: topics.Status{Hostname: host}}
	}
	pis := []*Pi{pi("r1", "b827eb000001", "pi-01"), pi("r1", "b827eb000002", "twin"), pi("r2", "b827eb000003", "twin"),
		pi("r2", "b827eb000004", "")}
	for _, c := range []struct {
		arg  string
		want []string // MACs
		kind Kind
		says string
	}{
		{"b8:27:eb:00:00:01", []string{"b827eb000001"}, Other, ""},
		{"B827EB000004", []string{"b827eb000004"}, Other, ""},
		{"PI-01", []string{"b827eb000001"}, Other, ""},
		{"r2", []string{"b827eb000003", "b827eb000004"}, Other, ""},
		{"twin", nil, UnknownPi, `2 Pis are called "twin" (b827eb000002, b827eb000003): name one by its MAC`},
		{"b8:27:eb:00:00:09", nil, UnknownPi, "no Pi with MAC b827eb000009"},
		{"r9", nil, UnknownPi, `no Pi or row called "r9"`},
	} {
		got, err := Resolve(pis, c.arg)
		if c.kind != Other {
			if KindOf(err) != c.kind || !strings.Contains(err.Error(), c.says) {
				t.Errorf("Resolve(%q) = %v, want a %v error saying %q", c.arg, err, c.kind, c.says)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.arg, err)
			continue
		}
		var macs []string
		for _, p := range got {
			macs = append(macs, p.MAC)
		}
		if strings.Join(macs, ",") != strings.Join(c.want, ",") {
			t.Errorf("Resolve(%q) = %v, want %v", c.arg, macs, c.want)
		}
	}
}

// An offline status without identity (a Will of an older agent) keeps the birth's.
func TestApplyKeepsIdentityOfOfflinePi(t *testing.T) {
	pis := map[string]*Pi{}
	birth, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: t0, Session: "s", Hostname: "pi-01", Model: "Pi 4"})
	will, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOffline, Session: "s"})
	apply(pis, topics.StatusTopic("r1", "b827eb000001"), birth)
	apply(pis, topics.StatusTopic("r1", "b827eb000001"), will)
	p := pis["b827eb000001"]
	if p == nil || p.Online || p.Name() != "pi-01" || p.Status.Model != "Pi 4" {
		t.Fatalf("after birth and Will: %+v", p)
	}
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
