package layout

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	mac1 = "b827eb000001"
	mac2 = "b827eb000002"
	mac3 = "b827eb000003"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// slots renders a row as "name=mac(previous)" per slot, "_" for an empty one.
func slots(l Layout, row string) string {
	r, ok := l.Row(row)
	if !ok {
		return "no row"
	}
	var out []string
	for _, s := range r.Slots {
		x := s.Name + "=" + s.MAC
		if s.Previous != "" {
			x += "(" + s.Previous + ")"
		}
		if x == "=" {
			x = "_"
		}
		out = append(out, x)
	}
	return strings.Join(out, " ")
}

// The replacement story: slots get names, boards are placed; a new board put into an occupied
// slot takes the slot's name and displaces the old one, remembered as Previous until the
// operator decides; a board moved to another slot leaves its old slot's name behind.
func TestPlacingAndReplacing(t *testing.T) {
	s, _ := open(t)
	must(t, s.Name("r1", 1, " web-1 "))
	must(t, s.Name("r1", 3, "db"))
	if got := slots(s.Layout(), "r1"); got != "web-1= _ db=" {
		t.Fatalf("named: %q", got)
	}
	for i, mac := range []string{mac1, mac2} {
		if ch, err := s.Put("r1", i+1, mac); err != nil || ch != (Change{}) {
			t.Fatalf("Put %s: %+v, %v", mac, ch, err)
		}
	}
	if p, ok := s.Find(mac1); !ok || p != (Place{Row: "r1", Slot: 1, Name: "web-1"}) {
		t.Fatalf("Find(mac1) = %+v, %v", p, ok)
	}

	// mac3 replaces mac1 in slot 1.
	ch, err := s.Put("r1", 1, mac3)
	if err != nil || ch != (Change{Displaced: mac1}) {
		t.Fatalf("replace: %+v, %v", ch, err)
	}
	if got := slots(s.Layout(), "r1"); got != "web-1="+mac3+"("+mac1+") ="+mac2+" db=" {
		t.Fatalf("after the replacement: %q", got)
	}
	if _, ok := s.Find(mac1); ok {
		t.Error("the displaced board is still placed")
	}
	must(t, s.Acknowledge("r1", 1))
	if p, _ := s.Find(mac3); p.Previous != "" {
		t.Errorf("after Acknowledge, Previous = %q", p.Previous)
	}

	// mac2 moves to slot 3: slot 2 is left empty, the names stay with the slots.
	ch, err = s.Put("r1", 3, mac2)
	if err != nil || ch != (Change{Vacated: 2}) {
		t.Fatalf("move: %+v, %v", ch, err)
	}
	if got := slots(s.Layout(), "r1"); got != "web-1="+mac3+" _ db="+mac2 {
		t.Fatalf("after the move: %q", got)
	}
	// Putting a Pi where it is changes nothing.
	if ch, err := s.Put("r1", 3, "B8:27:EB:00:00:02"); err != nil || ch != (Change{}) {
		t.Fatalf("same place: %+v, %v", ch, err)
	}

	// Unplacing remembers the board, so the next one in the slot may inherit its history, and
	// the board coming back clears that.
	if p, err := s.Unplace(mac2); err != nil || p.Slot != 3 {
		t.Fatalf("Unplace: %+v, %v", p, err)
	}
	if _, err := s.Unplace(mac2); !errors.Is(err, ErrNotPlaced) {
		t.Errorf("Unplace twice: %v, want ErrNotPlaced", err)
	}
	must(t, s.Name("r1", 2, ""))
	if got := slots(s.Layout(), "r1"); got != "web-1="+mac3+" _ db=("+mac2+")" {
		t.Fatalf("after Unplace: %q", got)
	}
	if _, err := s.Put("r1", 3, mac2); err != nil {
		t.Fatal(err)
	}
	if got := slots(s.Layout(), "r1"); got != "web-1="+mac3+" _ db="+mac2 {
		t.Fatalf("after the board came back: %q", got)
	}

	// Forget removes the Pi wherever it is mentioned.
	if _, err := s.Put("r1", 3, mac1); err != nil {
		t.Fatal(err)
	}
	must(t, s.Forget(mac2))
	if got := slots(s.Layout(), "r1"); got != "web-1="+mac3+" _ db="+mac1 {
		t.Fatalf("after Forget: %q", got)
	}
}

func TestRowsOrderAndSize(t *testing.T) {
	s, _ := open(t)
	if _, err := s.Put("r2", 2, mac1); err != nil {
		t.Fatal(err)
	}
	must(t, s.Name("r1", 1, "a"))
	must(t, s.Reorder([]string{"r1", "r3"}))
	var names []string
	for _, r := range s.Layout().Rows {
		names = append(names, r.Name)
	}
	if !reflect.DeepEqual(names, []string{"r1", "r3", "r2"}) {
		t.Fatalf("rows %q, want r1 r3 r2", names)
	}
	if l := s.Layout(); l.Order("r2") != 2 || l.Order("r9") != -1 {
		t.Errorf("Order(r2) = %d, Order(r9) = %d", l.Order("r2"), l.Order("r9"))
	}
	must(t, s.Resize("r3", 8))
	if r, _ := s.Layout().Row("r3"); len(r.Slots) != 8 {
		t.Errorf("r3 has %d slots, want 8", len(r.Slots))
	}
	if err := s.Resize("r2", 1); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "slot 2 of row r2 is in use") {
		t.Errorf("cutting off a used slot: %v", err)
	}
	must(t, s.Resize("r2", 4))
}

func TestInvalidChangesAreRefusedAndChangeNothing(t *testing.T) {
	s, path := open(t)
	if _, err := s.Put("r1", 1, mac1); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"slot 0", func() error { _, err := s.Put("r1", 0, mac2); return err }, "slots are numbered 1 to 128"},
		{"slot too far", func() error { _, err := s.Put("r1", MaxSlots+1, mac2); return err }, "slots are numbered"},
		{"bad MAC", func() error { _, err := s.Put("r1", 2, "nope"); return err }, "MAC"},
		{"bad row", func() error { _, err := s.Put("r/1", 2, mac2); return err }, `row "r/1"`},
		{"long name", func() error { return s.Name("r1", 1, strings.Repeat("x", MaxNameLen+1)) }, "at most 64"},
		{"control in name", func() error { return s.Name("r1", 1, "a\x00b") }, "U+0000"},
		{"bidi in name", func() error { return s.Name("r1", 1, "pi\u202e07") }, "U+202E"},
		{"negative size", func() error { return s.Resize("r1", -1) }, "0 to 128"},
		{"row twice", func() error { return s.Reorder([]string{"r1", "r1"}) }, "named twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("refused changes rewrote the file:\n%s", after)
	}
}

// A layout survives a restart, and a change that cannot be saved is refused without changing
// the layout in memory or on disk.
func TestPersistence(t *testing.T) {
	s, path := open(t)
	if _, err := s.Put("r1", 2, mac1); err != nil {
		t.Fatal(err)
	}
	must(t, s.Name("r1", 2, "web"))
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("layout file: %v, %v; want mode 0600", fi, err)
	}
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Layout(), s.Layout()) {
		t.Fatalf("reopened %+v, want %+v", again.Layout(), s.Layout())
	}
	if p, ok := again.Find(mac1); !ok || p != (Place{Row: "r1", Slot: 2, Name: "web"}) {
		t.Errorf("reopened Find(mac1) = %+v, %v; want row r1 slot 2 named web", p, ok)
	}

	// The directory vanishing stands for any failed write (a full disk fails the same step).
	gone := &Store{path: filepath.Join(t.TempDir(), "missing", FileName), l: s.Layout()}
	_, err = gone.Put("r1", 3, mac2)
	if err == nil || !strings.Contains(err.Error(), "the layout is unchanged") {
		t.Fatalf("Put with an unwritable file: %v", err)
	}
	if _, ok := gone.Find(mac2); ok {
		t.Error("a change that could not be saved was applied")
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"not json", "{", "is not a layout file"},
		{"newer", `{"v":2,"rows":[]}`, "version 2"},
		{"bad mac", `{"v":1,"rows":[{"name":"r1","slots":[{"mac":"xyz"}]}]}`, "not a MAC"},
		{"mac twice", `{"v":1,"rows":[{"name":"r1","slots":[{"mac":"` + mac1 + `"},{"mac":"` + mac1 + `"}]}]}`, "is also in row r1 slot 1"},
		{"row twice", `{"v":1,"rows":[{"name":"r1"},{"name":"r1"}]}`, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			must(t, os.WriteFile(path, []byte(tc.body), 0o600))
			if _, err := Open(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if s, err := Open(filepath.Join(t.TempDir(), FileName)); err != nil || len(s.Layout().Rows) != 0 {
		t.Fatalf("a missing file: %v, %v; want an empty rack", s, err)
	}
}
