package rackclient

import (
	"strconv"
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
	pis[0].Slot, pis[0].SlotName = 3, "db"
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
		{"r1/3", []string{"b827eb000001"}, Other, ""},
		{"DB", []string{"b827eb000001"}, Other, ""},
		{"r1/4", nil, UnknownPi, "no Pi in slot 4 of row r1"},
		{"r1/x", nil, UnknownPi, `"r1/x": a slot is row/number`},
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
	st := newState()
	birth, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: t0, Session: "s", Hostname: "pi-01", Model: "Pi 4"})
	will, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOffline, Session: "s"})
	st.apply(topics.StatusTopic("r1", "b827eb000001"), birth)
	st.apply(topics.StatusTopic("r1", "b827eb000001"), will)
	p := st.pis["b827eb000001"]
	if p == nil || p.Online || p.Name() != "pi-01" || p.Status.Model != "Pi 4" {
		t.Fatalf("after birth and Will: %+v", p)
	}
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// Pis take their slots from their row's layout, and sort as the page shows them: rows in rack
// order, then slots, then Pis in no slot.
func TestRackOrder(t *testing.T) {
	st := newState()
	status := func(row, mac string) {
		b, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: t0, Session: "s"})
		st.apply(topics.StatusTopic(row, mac), b)
	}
	for _, x := range [][2]string{{"top", "b827eb000002"}, {"top", "b827eb000001"}, {"bottom", "b827eb000003"}, {"top", "b827eb000009"}} {
		status(x[0], x[1])
	}
	lay := func(row string, pos int, macs ...string) {
		l := topics.Layout{V: 1, TS: t0, Position: pos}
		for i, m := range macs {
			l.Slots = append(l.Slots, topics.LayoutSlot{Slot: i + 1, MAC: m})
		}
		b, err := topics.Encode(l)
		if err != nil {
			t.Fatal(err)
		}
		st.apply(topics.LayoutTopic(row), b)
	}
	lay("bottom", 1, "b827eb000003")
	lay("top", 0, "", "b827eb000002", "b827eb000001")
	r := st.rack()
	var got []string
	for _, p := range r.Pis {
		got = append(got, p.Row+"/"+strconv.Itoa(p.Slot)+"/"+p.MAC[10:])
	}
	if want := "top/2/02 top/3/01 top/0/09 bottom/1/03"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if len(r.Rows) != 2 || r.Rows[0].Name != "top" || len(r.Rows[0].Slots) != 3 {
		t.Fatalf("rows %+v", r.Rows)
	}
}
