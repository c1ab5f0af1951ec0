package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// FileName is the layout file's name in the data directory.
const FileName = "layout.json"

// fileVersion is the "v" of the layout file; Open refuses a file written by a newer pirack.
const fileVersion = 1

type layoutFile struct {
	V int `json:"v"`
	Layout
}

// Store is a Layout kept in a file. Every change is written (atomically) before it is applied,
// so a change that cannot be saved is refused and the layout in memory and on disk stay as
// they were. It is safe for concurrent use.
type Store struct {
	path string // "" keeps the layout in memory only

	mu     sync.RWMutex
	l      Layout
	places map[string]Place // l.Places(), kept with l: Find runs for every live node update

	changed chan struct{} // capacity 1: "the layout changed since Changed was last read"
}

// Open loads the layout file at path; a missing file is an empty rack, created at the first
// change. path "" gives a Store that is not saved anywhere.
func Open(path string) (*Store, error) {
	s := &Store{path: path, places: map[string]Place{}, changed: make(chan struct{}, 1)}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layout: read %s: %w", path, err)
	}
	var f layoutFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("layout: %s is not a layout file (%v); fix it or move it away to start with an empty rack", path, err)
	}
	if f.V != fileVersion {
		return nil, fmt.Errorf("layout: %s has version %d; this pirack reads version %d", path, f.V, fileVersion)
	}
	if err := f.Layout.validate(); err != nil {
		return nil, fmt.Errorf("layout: %s: %v; fix it or move it away to start with an empty rack", path, err)
	}
	s.l, s.places = f.Layout, f.Layout.Places()
	return s, nil
}

// Layout returns a copy of the layout.
func (s *Store) Layout() Layout {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.l.clone()
}

// Find returns where mac is placed.
func (s *Store) Find(mac string) (Place, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.places[mac]
	return p, ok
}

// update applies change to a copy, saves the copy, and only then makes it the layout.
func (s *Store) update(change func(l *Layout) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.l.clone()
	if err := change(&next); err != nil {
		return err
	}
	if err := s.save(next); err != nil {
		return err
	}
	s.l, s.places = next, next.Places()
	select {
	case s.changed <- struct{}{}:
	default: // already signalled
	}
	return nil
}

// Changed is signalled after each change (several changes in a row may give one signal); for
// one reader, which then reads Layout.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// Put places mac in a slot (1-based) of row; see Change for what else it does.
func (s *Store) Put(row string, slot int, mac string) (ch Change, err error) {
	err = s.update(func(l *Layout) error {
		ch, err = l.put(row, slot, mac)
		return err
	})
	return ch, err
}

// Unplace takes mac out of its slot and returns where it was; ErrNotPlaced if it was in none.
func (s *Store) Unplace(mac string) (p Place, err error) {
	err = s.update(func(l *Layout) error {
		p, err = l.unplace(mac)
		return err
	})
	return p, err
}

// Forget removes every mention of mac. Forgetting a Pi the layout does not mention is not an
// error, and writes nothing.
func (s *Store) Forget(mac string) error {
	s.mu.RLock()
	mentioned := false
	for _, r := range s.l.Rows {
		for _, sl := range r.Slots {
			mentioned = mentioned || sl.MAC == mac || sl.Previous == mac
		}
	}
	s.mu.RUnlock()
	if !mentioned {
		return nil
	}
	return s.update(func(l *Layout) error { l.forget(mac); return nil })
}

// Name names a slot (1-based) of row; "" removes its name.
func (s *Store) Name(row string, slot int, name string) error {
	return s.update(func(l *Layout) error { return l.name(row, slot, name) })
}

// Resize gives row n slots; slots cut off must be empty and unnamed.
func (s *Store) Resize(row string, n int) error {
	return s.update(func(l *Layout) error { return l.resize(row, n) })
}

// Acknowledge forgets a slot's Previous: the operator decided about the board it replaced.
func (s *Store) Acknowledge(row string, slot int) error {
	return s.update(func(l *Layout) error { l.acknowledge(row, slot); return nil })
}

// Reorder sets the rows' physical order, top shelf first; rows not named follow in their
// current order.
func (s *Store) Reorder(rows []string) error {
	return s.update(func(l *Layout) error { return l.reorder(rows) })
}

// save writes l atomically: a temporary file in the same directory, fsync, rename, fsync of the
// directory. A full disk or a crash leaves the old file whole. s.mu is held.
func (s *Store) save(l Layout) error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(layoutFile{V: fileVersion, Layout: l}, "", "  ")
	if err != nil {
		return fmt.Errorf("layout: encode: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*") // created 0600
	if err != nil {
		return fmt.Errorf("layout: save: create a temporary file in %s: %w; the layout is unchanged", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("layout: save: write %s (disk full?): %w; the layout is unchanged", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("layout: save: sync %s (disk full?): %w; the layout is unchanged", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("layout: save: close %s: %w; the layout is unchanged", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("layout: save: replace %s: %w; the layout is unchanged", s.path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}
