// Package layout is the physical rack as the operator describes it: the rows (shelves) in the
// order they stand, each row's slots left to right, which Pi sits in which slot and what the
// slot is called. It is kept in one JSON file in the data directory, written atomically, so a
// full disk or a crash never loses the layout that was there.
//
// A name belongs to its slot, not to a board: a replacement board put into the slot takes the
// slot's name, and the board it displaced is remembered as the slot's Previous so the operator
// can choose to hand its history to the new one.
package layout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pirack/pirack/topics"
)

// Limits.
const (
	// MaxSlots is the most slots a row may have: far more than any shelf holds, small enough
	// that a typo cannot make a row of a million empty slots.
	MaxSlots = 128
	// MaxRows is the most rows a layout may have.
	MaxRows = 256
	// MaxNameLen is the longest slot name, in bytes.
	MaxNameLen = 64
)

// Errors returned by the Layout methods; each is wrapped with the values concerned.
var (
	// ErrInvalid is returned for a bad row name, slot number, MAC or slot name.
	ErrInvalid = errors.New("invalid layout change")
	// ErrNotPlaced is returned by Unplace for a Pi that is in no slot.
	ErrNotPlaced = errors.New("not placed")
)

// Layout is the whole rack. Its zero value is an empty rack. Values are copied on every
// change, so a Layout obtained from a Store may be kept and read freely.
type Layout struct {
	// Rows are in physical order, top shelf first.
	Rows []Row `json:"rows"`
}

// Row is one shelf.
type Row struct {
	Name string `json:"name"`
	// Slots are left to right: Slots[0] is slot 1. An empty slot has no MAC.
	Slots []Slot `json:"slots"`
}

// Slot is one position on a shelf.
type Slot struct {
	Name string `json:"name,omitempty"`
	MAC  string `json:"mac,omitempty"`
	// Previous is the board this slot held before MAC displaced it, until the operator decides
	// whether MAC inherits its history; "" when there is nothing to decide.
	Previous string `json:"previous,omitempty"`
}

// Place says where a Pi is.
type Place struct {
	Row  string `json:"row"`
	Slot int    `json:"slot"` // 1-based
	Name string `json:"name,omitempty"`
	// Previous is the slot's Previous (see Slot).
	Previous string `json:"previous,omitempty"`
}

// Change reports what a Put did besides placing the Pi.
type Change struct {
	// Displaced is the Pi that held the slot before, now in no slot; "" if the slot was empty.
	Displaced string
	// Vacated is the slot the Pi left, 0 if it was in none.
	Vacated int
}

// clone returns a deep copy.
func (l Layout) clone() Layout {
	out := Layout{Rows: make([]Row, len(l.Rows))}
	for i, r := range l.Rows {
		out.Rows[i] = Row{Name: r.Name, Slots: slices.Clone(r.Slots)}
	}
	return out
}

// Find returns where mac is placed.
func (l Layout) Find(mac string) (Place, bool) {
	for _, r := range l.Rows {
		for i, s := range r.Slots {
			if s.MAC == mac {
				return Place{Row: r.Name, Slot: i + 1, Name: s.Name, Previous: s.Previous}, true
			}
		}
	}
	return Place{}, false
}

// Places indexes the layout by MAC: where every placed Pi is.
func (l Layout) Places() map[string]Place {
	out := make(map[string]Place)
	for _, r := range l.Rows {
		for i, s := range r.Slots {
			if s.MAC != "" {
				out[s.MAC] = Place{Row: r.Name, Slot: i + 1, Name: s.Name, Previous: s.Previous}
			}
		}
	}
	return out
}

// Row returns one row; ok is false when the layout does not describe it.
func (l Layout) Row(name string) (Row, bool) {
	if i := l.rowIndex(name); i >= 0 {
		return l.Rows[i], true
	}
	return Row{}, false
}

// Order returns the position of a row in the rack (0 for the top shelf), or -1 for a row the
// layout does not describe.
func (l Layout) Order(name string) int { return l.rowIndex(name) }

func (l Layout) rowIndex(name string) int {
	return slices.IndexFunc(l.Rows, func(r Row) bool { return r.Name == name })
}

// row returns the row named name, appending it at the bottom of the rack if it is new.
func (l *Layout) row(name string) (*Row, error) {
	if i := l.rowIndex(name); i >= 0 {
		return &l.Rows[i], nil
	}
	if len(l.Rows) >= MaxRows {
		return nil, fmt.Errorf("%w: the rack already has %d rows, the most it may have", ErrInvalid, MaxRows)
	}
	l.Rows = append(l.Rows, Row{Name: name})
	return &l.Rows[len(l.Rows)-1], nil
}

// grow makes r have at least n slots.
func (r *Row) grow(n int) {
	for len(r.Slots) < n {
		r.Slots = append(r.Slots, Slot{})
	}
}

func checkRow(row string) error {
	if err := topics.ValidateRow(row); err != nil {
		return fmt.Errorf("%w: row %q: %v", ErrInvalid, row, err)
	}
	return nil
}

func checkSlot(slot int) error {
	if slot < 1 || slot > MaxSlots {
		return fmt.Errorf("%w: slot %d: slots are numbered 1 to %d", ErrInvalid, slot, MaxSlots)
	}
	return nil
}

func checkMAC(mac string) (string, error) {
	m, err := topics.NormalizeMAC(mac)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return m, nil
}

// CheckName validates a slot name: printable text of at most MaxNameLen bytes, without
// bidirectional controls (which can make one name read as another).
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name is %d bytes; at most %d", ErrInvalid, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalid)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) || unicode.Is(unicode.Bidi_Control, c) {
			return fmt.Errorf("%w: name contains the character U+%04X; use letters, digits, spaces and punctuation", ErrInvalid, c)
		}
	}
	return nil
}

// put places mac in slot of row. A Pi already in another slot leaves it (the slot keeps its
// name); a Pi that held the target slot is displaced and remembered as the slot's Previous.
func (l *Layout) put(row string, slot int, mac string) (Change, error) {
	if err := checkRow(row); err != nil {
		return Change{}, err
	}
	if err := checkSlot(slot); err != nil {
		return Change{}, err
	}
	mac, err := checkMAC(mac)
	if err != nil {
		return Change{}, err
	}
	if p, ok := l.Find(mac); ok && p.Row == row && p.Slot == slot {
		return Change{}, nil
	}
	r, err := l.row(row)
	if err != nil {
		return Change{}, err
	}
	var ch Change
	if p, ok := l.Find(mac); ok {
		ch.Vacated = p.Slot
		from := &l.Rows[l.rowIndex(p.Row)].Slots[p.Slot-1]
		from.MAC, from.Previous = "", ""
	}
	r.grow(slot)
	s := &r.Slots[slot-1]
	switch {
	case s.MAC != "":
		ch.Displaced = s.MAC
		s.Previous = s.MAC
	case s.Previous == mac:
		s.Previous = "" // the old board came back
	}
	s.MAC = mac
	return ch, nil
}

// unplace takes mac out of its slot; the slot keeps its name, and remembers mac as its
// Previous, so that the board put there next can inherit mac's history.
func (l *Layout) unplace(mac string) (Place, error) {
	mac, err := checkMAC(mac)
	if err != nil {
		return Place{}, err
	}
	p, ok := l.Find(mac)
	if !ok {
		return Place{}, fmt.Errorf("%w: %s is in no slot", ErrNotPlaced, mac)
	}
	s := &l.Rows[l.rowIndex(p.Row)].Slots[p.Slot-1]
	s.MAC, s.Previous = "", mac
	return p, nil
}

// forget removes every mention of mac: its slot, and any slot's Previous.
func (l *Layout) forget(mac string) {
	for i := range l.Rows {
		for j := range l.Rows[i].Slots {
			s := &l.Rows[i].Slots[j]
			if s.MAC == mac {
				s.MAC = ""
			}
			if s.Previous == mac {
				s.Previous = ""
			}
		}
	}
}

// name names a slot; "" removes the name.
func (l *Layout) name(row string, slot int, name string) error {
	if err := checkRow(row); err != nil {
		return err
	}
	if err := checkSlot(slot); err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if err := CheckName(name); err != nil {
		return err
	}
	r, err := l.row(row)
	if err != nil {
		return err
	}
	r.grow(slot)
	r.Slots[slot-1].Name = name
	return nil
}

// resize sets a row's slot count. Slots beyond n must be empty and unnamed.
func (l *Layout) resize(row string, n int) error {
	if err := checkRow(row); err != nil {
		return err
	}
	if n < 0 || n > MaxSlots {
		return fmt.Errorf("%w: %d slots: a row has 0 to %d", ErrInvalid, n, MaxSlots)
	}
	r, err := l.row(row)
	if err != nil {
		return err
	}
	for i := n; i < len(r.Slots); i++ {
		if s := r.Slots[i]; s.MAC != "" || s.Name != "" {
			return fmt.Errorf("%w: slot %d of row %s is in use (%s); empty it first", ErrInvalid, i+1, row, cmpOr(s.Name, s.MAC))
		}
	}
	r.grow(n)
	r.Slots = r.Slots[:n]
	return nil
}

// acknowledge clears a slot's Previous: the operator decided about the replaced board.
func (l *Layout) acknowledge(row string, slot int) {
	if i := l.rowIndex(row); i >= 0 && slot >= 1 && slot <= len(l.Rows[i].Slots) {
		l.Rows[i].Slots[slot-1].Previous = ""
	}
}

// reorder puts the rows in the given order; rows not named keep their relative order after
// those named.
func (l *Layout) reorder(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := checkRow(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("%w: row %s named twice", ErrInvalid, n)
		}
		seen[n] = true
	}
	out := make([]Row, 0, max(len(l.Rows), len(names)))
	for _, n := range names {
		if i := l.rowIndex(n); i >= 0 {
			out = append(out, l.Rows[i])
		} else {
			out = append(out, Row{Name: n})
		}
	}
	for _, r := range l.Rows {
		if !seen[r.Name] {
			out = append(out, r)
		}
	}
	if len(out) > MaxRows {
		return fmt.Errorf("%w: %d rows; at most %d", ErrInvalid, len(out), MaxRows)
	}
	l.Rows = out
	return nil
}

// validate checks a layout read from a file.
func (l Layout) validate() error {
	if len(l.Rows) > MaxRows {
		return fmt.Errorf("%d rows; at most %d", len(l.Rows), MaxRows)
	}
	rows := make(map[string]bool)
	macs := make(map[string]string)
	for _, r := range l.Rows {
		if err := checkRow(r.Name); err != nil {
			return err
		}
		if rows[r.Name] {
			return fmt.Errorf("row %s appears twice", r.Name)
		}
		rows[r.Name] = true
		if len(r.Slots) > MaxSlots {
			return fmt.Errorf("row %s has %d slots; at most %d", r.Name, len(r.Slots), MaxSlots)
		}
		for i, s := range r.Slots {
			where := fmt.Sprintf("row %s slot %d", r.Name, i+1)
			if err := CheckName(s.Name); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			for _, m := range []string{s.MAC, s.Previous} {
				if m != "" && !topics.IsMAC(m) {
					return fmt.Errorf("%s: %q is not a MAC in topic form (12 lowercase hex digits)", where, m)
				}
			}
			if s.MAC == "" {
				continue
			}
			if other, dup := macs[s.MAC]; dup {
				return fmt.Errorf("%s: %s is also in %s", where, s.MAC, other)
			}
			macs[s.MAC] = where
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
