package topics

import "time"

// MaxLayoutSlots bounds a row's layout payload (layout.MaxSlots).
const MaxLayoutSlots = 128

// Layout is the retained payload of rack/<row>/layout, published by the control center each
// time the row's slots change: which Pi sits in which slot, and the slots' names, so that any
// MQTT client (pirack watch, a Home Assistant card, a script) can draw the rack as the page does.
type Layout struct {
	V        int          `json:"v"`
	TS       time.Time    `json:"ts"`
	Position int          `json:"position"` // the row's place in the rack, 0 for the top shelf
	Slots    []LayoutSlot `json:"slots"`    // slot 1 first; every slot of the row, empty ones included
}

// LayoutSlot is one slot of a row.
type LayoutSlot struct {
	Slot int    `json:"slot"`           // 1-based
	Name string `json:"name,omitempty"` // the operator's name for the slot
	MAC  string `json:"mac,omitempty"`  // the Pi in it; empty for an empty slot
}

// Validate checks the slots: numbered 1, 2, 3... in order, MACs in topic form, names short.
func (l Layout) Validate() error {
	if err := checkVersion(l.V); err != nil {
		return err
	}
	if l.TS.IsZero() {
		return invalid("ts is missing")
	}
	if l.Position < 0 || l.Position > 1024 {
		return invalid("position %d: want 0 to 1024", l.Position)
	}
	if len(l.Slots) > MaxLayoutSlots {
		return invalid("%d slots: at most %d", len(l.Slots), MaxLayoutSlots)
	}
	for i, s := range l.Slots {
		if s.Slot != i+1 {
			return invalid("slot %d is listed %d: slots must be 1, 2, 3... in order", s.Slot, i+1)
		}
		if s.MAC != "" && !IsMAC(s.MAC) {
			return invalid("slot %d: mac %q: want 12 lowercase hex digits", s.Slot, clip(s.MAC))
		}
		if err := checkStrings(field{"name", s.Name, 64}); err != nil {
			return err
		}
	}
	return nil
}

// DecodeLayout parses and validates a row's layout.
func DecodeLayout(b []byte) (Layout, error) {
	var l Layout
	err := decode("layout", b, &l, func() error { return l.Validate() })
	return l, err
}
