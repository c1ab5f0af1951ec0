package alerts

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/pirack/pirack/topics"
)

// maxPowerSamples bounds the readings kept per row: an hour of one reading a second fits.
const maxPowerSamples = 4096

// powerRow is what the engine knows of one row's supply.
type powerRow struct {
	firstAt time.Time // first reading, for the warm-up
	samples []powerSample
	state   ruleState
}

type powerSample struct {
	at    time.Time
	watts float64
}

func (e *Engine) row(row string, now time.Time) *powerRow {
	r, ok := e.rows[row]
	if !ok {
		r = &powerRow{firstAt: now}
		e.rows[row] = r
	}
	return r
}

// ObservePower applies a row's power reading. Watts are taken from the reading, or computed as
// volts x amps; a reading with neither changes nothing. The band is the one configured for the
// row, or else learned from the readings before this one (see PowerBandRule). Every reading
// goes into the learned band, even while the alert is raised, so a lasting change (a Pi added
// to the row) becomes the new usual after about half a window, and the alert then clears.
func (e *Engine) ObservePower(row string, p topics.Power, now time.Time) []topics.Alert {
	if topics.ValidateRow(row) != nil || e.cfg.PowerBand.Disabled {
		return nil
	}
	var w float64
	switch {
	case p.Watts != nil:
		w = *p.Watts
	case p.Volts != nil && p.Amps != nil:
		w = *p.Volts * *p.Amps
	default:
		return nil
	}
	if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.cfg.PowerBand
	r := e.row(row, now)

	cut := 0
	for cut < len(r.samples) && now.Sub(r.samples[cut].at) > time.Duration(cfg.Window) {
		cut++
	}
	if len(r.samples)-cut >= maxPowerSamples {
		cut = len(r.samples) - maxPowerSamples + 1
	}
	r.samples = append(r.samples[:0], r.samples[cut:]...)

	lo, hi, kind, ok := e.band(row, r, now)
	r.samples = append(r.samples, powerSample{now, w})
	var out []topics.Alert
	if !ok {
		return out // still learning: a pending alert waits, a raised one stays
	}
	h := cfg.HysteresisW
	rd := reading{value: ptr(round(w, 3)), unit: topics.UnitWatts}
	desc := fmt.Sprintf("row %s draws %.1f W", row, w)
	bandText := describeBand(lo, hi)
	switch {
	case w > hi:
		rd.level, rd.raiseAt = levelFiring, ptr(round(hi, 3))
		rd.raise = func(d time.Duration) string { return desc + ", over its " + kind + " " + bandText + forDuration(d) }
	case w < lo:
		rd.level, rd.raiseAt = levelFiring, ptr(round(lo, 3))
		rd.raise = func(d time.Duration) string { return desc + ", under its " + kind + " " + bandText + forDuration(d) }
	case w >= lo+h && w <= hi-h:
		rd.level = levelClear
		// The threshold of a clear is the bound the alert had crossed, moved in by the
		// hysteresis.
		if a := r.state.active; a != nil && a.Threshold != nil && *a.Threshold < w {
			rd.clearAt = finite(lo + h)
		} else {
			rd.clearAt = finite(hi - h)
		}
		rd.clear = func(time.Duration) string { return desc + ", back within its " + kind + " " + bandText }
	default:
		rd.level = levelBand
	}
	e.advance(&r.state, rulePowerBand, row, "", "", rd, now, &out)
	return out
}

// band returns the row's band in watts: configured ("configured") or learned ("usual"), and
// false while a learned band has too few readings. A missing configured bound is infinite.
func (e *Engine) band(row string, r *powerRow, now time.Time) (lo, hi float64, kind string, ok bool) {
	cfg := e.cfg.PowerBand
	if b, fixed := cfg.Rows[row]; fixed {
		lo, hi = math.Inf(-1), math.Inf(1)
		if b.MinW != nil {
			lo = *b.MinW
		}
		if b.MaxW != nil {
			hi = *b.MaxW
		}
		return lo, hi, "configured", true
	}
	if now.Sub(r.firstAt) < time.Duration(cfg.WarmUp) || len(r.samples) < cfg.MinSamples {
		return 0, 0, "", false
	}
	ws := make([]float64, len(r.samples))
	for i, s := range r.samples {
		ws[i] = s.watts
	}
	slices.Sort(ws)
	med := ws[len(ws)/2]
	if len(ws)%2 == 0 {
		med = (ws[len(ws)/2-1] + med) / 2
	}
	margin := max(med*cfg.MarginPercent/100, cfg.MinMarginW)
	return max(med-margin, 0), med + margin, "usual", true
}

func describeBand(lo, hi float64) string {
	switch {
	case math.IsInf(lo, -1):
		return fmt.Sprintf("maximum of %.1f W", hi)
	case math.IsInf(hi, 1):
		return fmt.Sprintf("minimum of %.1f W", lo)
	}
	return fmt.Sprintf("%.1f-%.1f W", lo, hi)
}

// finite returns v rounded for a payload, or nil for an open bound, which JSON cannot carry.
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return ptr(round(v, 3))
}
