package history

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func eventIDs(evs []Event) []int64 {
	ids := []int64{}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestRackEvents(t *testing.T) {
	clock := &fakeClock{now: t0.Add(time.Minute)}
	s := openStore(t, "", clock, true, nil)
	other := "dca632000001"
	ms := time.Millisecond
	// Recorded in this order, so the IDs are 1 to 6. The last one is recorded late with an
	// older time, as a press a Pi queued while offline.
	for _, e := range []Event{
		{Time: t0, MAC: mac, Row: "a", Kind: EventButton, Detail: "short press", By: "agent"},
		{Time: t0, MAC: mac, Row: "a", Kind: EventSelect, By: "agent"}, // the same millisecond
		{Time: t0.Add(1000 * ms), MAC: other, Row: "b", Kind: EventOffline, By: "system"},
		{Time: t0.Add(2000 * ms), Row: "b", Kind: "alert", Detail: "row_power raised", By: "system"},
		{Time: t0.Add(3000 * ms), MAC: mac, Row: "a", Kind: EventLocate, By: "alice"},
		{Time: t0.Add(500 * ms), MAC: other, Row: "b", Kind: EventButton, Detail: "long press", By: "agent"},
	} {
		s.AddEvent(e)
	}
	flush(t, s)

	for _, c := range []struct {
		name string
		q    EventQuery
		want []int64
	}{
		{"everything, newest first by time then recording", EventQuery{}, []int64{5, 4, 3, 6, 2, 1}},
		{"one row, with its row-wide entry", EventQuery{Row: "b"}, []int64{4, 3, 6}},
		{"one Pi", EventQuery{MAC: mac}, []int64{5, 2, 1}},
		{"one kind", EventQuery{Kinds: []string{EventButton}}, []int64{6, 1}},
		{"two kinds", EventQuery{Kinds: []string{EventButton, EventOffline}}, []int64{3, 6, 1}},
		{"row and kind", EventQuery{Row: "a", Kinds: []string{EventButton}}, []int64{1}},
		{"since", EventQuery{Since: t0.Add(1000 * ms)}, []int64{5, 4, 3}},
		{"limit", EventQuery{Limit: 2}, []int64{5, 4}},
		{"before an entry", EventQuery{Before: 3}, []int64{6, 2, 1}},
		{"before an entry of a shared millisecond", EventQuery{Before: 2}, []int64{1}},
		{"before, filtered", EventQuery{Before: 5, Row: "b"}, []int64{4, 3, 6}},
		{"before an entry retention deleted", EventQuery{Before: 99}, []int64{}},
		{"after: what was recorded since", EventQuery{After: 4}, []int64{5, 6}},
		{"after, filtered", EventQuery{After: 4, Row: "b"}, []int64{6}},
		{"unknown kind", EventQuery{Kinds: []string{"nope"}}, []int64{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, err := s.RackEvents(t.Context(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := eventIDs(evs); !slices.Equal(got, c.want) {
				t.Errorf("IDs %v, want %v", got, c.want)
			}
		})
	}

	// Entries come back whole.
	evs, _ := s.RackEvents(t.Context(), EventQuery{Kinds: []string{"alert"}})
	want := Event{ID: 4, Time: t0.Add(2000 * ms), Row: "b", Kind: "alert", Detail: "row_power raised", By: "system"}
	if len(evs) != 1 || evs[0] != want {
		t.Errorf("alert entry = %+v, want %+v", evs, want)
	}

	// Paging back two at a time visits every entry once, in order.
	var pages [][]int64
	var all []int64
	q := EventQuery{Limit: 2}
	for range 10 {
		evs, err := s.RackEvents(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		pages = append(pages, eventIDs(evs))
		all = append(all, eventIDs(evs)...)
		q.Before = evs[len(evs)-1].ID
	}
	if !slices.Equal(all, []int64{5, 4, 3, 6, 2, 1}) || len(pages) != 3 {
		t.Errorf("paging by 2: %v, want [5 4] [3 6] [2 1]", pages)
	}

	if _, err := s.RackEvents(t.Context(), EventQuery{Kinds: make([]string, MaxLogKinds+1)}); err == nil {
		t.Error("too many kinds: want an error")
	}
}

func TestRackEventsLimits(t *testing.T) {
	clock := &fakeClock{now: t0.Add(time.Hour)}
	s := openStore(t, "", clock, true, nil)
	for i := range MaxLogLimit + 10 {
		s.AddEvent(Event{Time: t0.Add(time.Duration(i) * time.Millisecond), MAC: fmtMAC(i % 7), Row: "a", Kind: EventButton})
	}
	flush(t, s)
	for _, c := range []struct {
		limit, want int
	}{{0, DefaultLogLimit}, {-1, DefaultLogLimit}, {3, 3}, {MaxLogLimit + 5, MaxLogLimit}} {
		evs, err := s.RackEvents(t.Context(), EventQuery{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != c.want {
			t.Errorf("limit %d: %d entries, want %d", c.limit, len(evs), c.want)
		}
	}
}

// TestRackEventsPlan: a page of every Pi, of one row or of one kind, from the newest or further
// back, reads events_t backwards and stops at the limit: no full scan, no sort of the whole log.
// A poll for new entries reads only those.
func TestRackEventsPlan(t *testing.T) {
	s := openStore(t, "", &fakeClock{now: t0}, false, nil)
	const byTime, byMAC, byID = "SCAN events USING INDEX events_t", "INDEX events_mac_t (mac=?)", "INTEGER PRIMARY KEY (rowid>?)"
	for _, c := range []struct {
		name string
		q    EventQuery
		want string
	}{
		{"newest", EventQuery{}, byTime},
		{"one row", EventQuery{Row: "a"}, byTime},
		{"two kinds", EventQuery{Kinds: []string{EventButton, EventLocate}}, byTime},
		{"a page back", EventQuery{Before: 1, Row: "a"}, "INDEX events_t (t<?)"},
		{"since", EventQuery{Since: t0}, "INDEX events_t (t>?)"},
		{"one Pi", EventQuery{MAC: mac}, byMAC},
		// A poll for what is new seeks by ID and sorts the few it finds.
		{"after", EventQuery{After: 4, Row: "a"}, byID},
	} {
		t.Run(c.name, func(t *testing.T) {
			sq, args := eventLogSQL(c.q)
			rows, err := s.db.Query("EXPLAIN QUERY PLAN "+sq, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			text := strings.Join(plan, "; ")
			if !strings.Contains(text, c.want) || (c.want != byID && strings.Contains(text, "TEMP B-TREE")) {
				t.Errorf("plan %q: want %q and no sort", text, c.want)
			}
		})
	}
}
