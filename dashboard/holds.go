package dashboard

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pirack/pirack/topics"
)

// Holds are what operators decided about alerts: an alert acknowledged (someone is on it, with a
// note), silenced for a time, or a whole Pi or row in maintenance. A held alert stays raised
// and shown, marked as held, but no longer counts in the banner and the tab title, and no
// notification is sent for it. Holds are kept in <data-dir>/holds.json, so a restart keeps a
// row in maintenance.

// HoldsFile is where holds live, in the data directory.
const HoldsFile = "holds.json"

// Ack is an alert acknowledged by someone: until it clears, or until Until (a silence).
type Ack struct {
	By    string    `json:"by"`
	Note  string    `json:"note,omitempty"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until,omitzero"` // a silence ends then; zero: until the alert clears
}

// Maintenance is a Pi or a row taken out of alerting while someone works on it.
type Maintenance struct {
	By   string    `json:"by"`
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at"`
}

type holdsFile struct {
	Acks        map[string]Ack         `json:"acks"`        // by alertKey
	Maintenance map[string]Maintenance `json:"maintenance"` // by MAC, or rowKey(row)
}

// holds is the operators' holds, kept in a file (path "" keeps them in memory).
type holds struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	f  holdsFile
}

func openHolds(path string, log *slog.Logger) *holds {
	h := &holds{path: path, log: log, f: holdsFile{Acks: map[string]Ack{}, Maintenance: map[string]Maintenance{}}}
	if path == "" {
		return h
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot read the alert holds; none are in force", "file", path, "err", err)
		}
		return h
	}
	var f holdsFile
	if err := json.Unmarshal(b, &f); err != nil {
		log.Warn("alert holds unreadable; none are in force", "file", path, "err", err)
		return h
	}
	if f.Acks != nil {
		h.f.Acks = f.Acks
	}
	if f.Maintenance != nil {
		h.f.Maintenance = f.Maintenance
	}
	return h
}

// alertKey names one alert: its row, its Pi ("" for a row's own) and its rule.
func alertKey(row, mac, rule string) string { return row + "/" + mac + "/" + rule }

func holdsPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, HoldsFile)
}

// saveLocked writes the file; a failure is logged (holds then last until a restart).
func (h *holds) saveLocked() {
	if h.path == "" {
		return
	}
	b, err := json.MarshalIndent(h.f, "", "  ")
	if err == nil {
		err = writeFileAtomic(h.path, b, 0o600)
	}
	if err != nil {
		h.log.Warn("cannot save the alert holds; they last until a restart", "file", h.path, "err", err)
	}
}

func (h *holds) ack(key string, a Ack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.f.Acks[key] = a
	h.saveLocked()
}

func (h *holds) unack(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.f.Acks[key]; !ok {
		return false
	}
	delete(h.f.Acks, key)
	h.saveLocked()
	return true
}

func (h *holds) setMaintenance(key string, m *Maintenance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m == nil {
		delete(h.f.Maintenance, key)
	} else {
		h.f.Maintenance[key] = *m
	}
	h.saveLocked()
}

// maintenance is the maintenance of a Pi (by MAC) or row (rowKey), if any.
func (h *holds) maintenance(key string) *Maintenance {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m, ok := h.f.Maintenance[key]; ok {
		return &m
	}
	return nil
}

// acksOf returns the live acks of the alerts given, by rule.
func (h *holds) acksOf(alerts []topics.Alert, now time.Time) map[string]Ack {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out map[string]Ack
	for _, a := range alerts {
		if ack, ok := h.f.Acks[alertKey(a.Row, a.MAC, a.Rule)]; ok && (ack.Until.IsZero() || now.Before(ack.Until)) {
			if out == nil {
				out = map[string]Ack{}
			}
			out[a.Rule] = ack
		}
	}
	return out
}

// held is whether an alert is held: acknowledged or silenced now, or its Pi or row in
// maintenance.
func (h *holds) held(a topics.Alert, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ack, ok := h.f.Acks[alertKey(a.Row, a.MAC, a.Rule)]; ok && (ack.Until.IsZero() || now.Before(ack.Until)) {
		return true
	}
	if _, ok := h.f.Maintenance[rowKey(a.Row)]; ok {
		return true
	}
	_, ok := h.f.Maintenance[a.MAC]
	return ok && a.MAC != ""
}

// cleared forgets the ack of an alert that cleared: the next time it is raised, it is news.
// It also drops silences that ran out. It reports whether anything changed.
func (h *holds) cleared(a topics.Alert, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := false
	if _, ok := h.f.Acks[alertKey(a.Row, a.MAC, a.Rule)]; ok {
		delete(h.f.Acks, alertKey(a.Row, a.MAC, a.Rule))
		changed = true
	}
	for k, ack := range h.f.Acks {
		if !ack.Until.IsZero() && !now.Before(ack.Until) {
			delete(h.f.Acks, k)
			changed = true
		}
	}
	if changed {
		h.saveLocked()
	}
	return changed
}
