package topics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the payload version written in every payload's "v" field.
const Version = 1

// MaxPayload is the largest payload the decoders accept. Real payloads are under 1 KiB.
const MaxPayload = 16 << 10

// Presence states carried by Status.State.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Status is the payload of rack/<row>/<mac>/status: the agent's retained birth message, or the
// Will the broker publishes when the agent's connection dies. Identity fields are set on the
// birth only.
type Status struct {
	V     int       `json:"v"`
	State string    `json:"state"`       // StateOnline or StateOffline
	TS    time.Time `json:"ts,omitzero"` // when the agent made it; a Will carries none
	// Session identifies one connection of the agent; the birth and its Will carry the same
	// value, so a late Will can be told from the current session's.
	Session      string    `json:"session,omitempty"`
	Hostname     string    `json:"hostname,omitempty"`
	IP           string    `json:"ip,omitempty"`
	Model        string    `json:"model,omitempty"`
	Serial       string    `json:"serial,omitempty"` // the board's, from the device tree: it follows the board, not the SD card
	AgentVersion string    `json:"agent_version,omitempty"`
	BootTime     time.Time `json:"boot_time,omitzero"`
}

// Validate checks the fields a subscriber relies on.
func (s Status) Validate() error {
	if err := checkVersion(s.V); err != nil {
		return err
	}
	if s.State != StateOnline && s.State != StateOffline {
		return invalid("state %q: want %q or %q", clip(s.State), StateOnline, StateOffline)
	}
	return checkStrings(
		field{"session", s.Session, 64},
		field{"hostname", s.Hostname, 253},
		field{"ip", s.IP, 64},
		field{"model", s.Model, 128},
		field{"serial", s.Serial, 64},
		field{"agent_version", s.AgentVersion, 64},
	)
}

// Metrics is the payload of rack/<row>/<mac>/metrics. A value the agent could not read is
// absent (nil), never a placeholder zero.
type Metrics struct {
	V   int       `json:"v"`
	Seq uint64    `json:"seq"`
	TS  time.Time `json:"ts"`

	Load1  *float64 `json:"load_1,omitempty"`
	Load5  *float64 `json:"load_5,omitempty"`
	Load15 *float64 `json:"load_15,omitempty"`
	// CPUCount lets a reader compare load against cores.
	CPUCount   *int     `json:"cpu_count,omitempty"`
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	CPUTempC   *float64 `json:"cpu_temp_c,omitempty"`

	MemTotalBytes     *uint64 `json:"mem_total_bytes,omitempty"`
	MemAvailableBytes *uint64 `json:"mem_available_bytes,omitempty"`
	DiskTotalBytes    *uint64 `json:"disk_total_bytes,omitempty"` // root filesystem
	DiskFreeBytes     *uint64 `json:"disk_free_bytes,omitempty"`  // root filesystem, available to users (df's Avail)
	// DiskUsedBytes is the root filesystem's used space as df counts it (size minus all free
	// blocks): reserved blocks are neither used nor available, so df's Use% is used/(used+free).
	DiskUsedBytes *uint64 `json:"disk_used_bytes,omitempty"`

	// ThrottledNow and ThrottledSinceBoot are the Pi firmware's throttling flags (Throttle*
	// constants): absent when not read, an empty list when read and clear.
	ThrottledNow       []string `json:"throttled_now,omitzero"`
	ThrottledSinceBoot []string `json:"throttled_since_boot,omitzero"`

	UptimeS    *uint64 `json:"uptime_s,omitempty"`
	NetRxBytes *uint64 `json:"net_rx_bytes,omitempty"` // all interfaces but loopback, since boot
	NetTxBytes *uint64 `json:"net_tx_bytes,omitempty"`

	// Every number a Pi has (hoststats.go), each present only when read.
	CPUPercentCores []float64 `json:"cpu_percent_cores,omitzero"` // per core, as cpu_percent
	CPUFreqMHz      *float64  `json:"cpu_freq_mhz,omitempty"`     // the first core's current clock
	Procs           *int      `json:"procs,omitempty"`            // processes
	// Memory as free splits it: used (total - available), the page cache (Cached +
	// SReclaimable) and buffers, and swap.
	MemUsedBytes    *uint64      `json:"mem_used_bytes,omitempty"`
	MemCachedBytes  *uint64      `json:"mem_cached_bytes,omitempty"`
	MemBuffersBytes *uint64      `json:"mem_buffers_bytes,omitempty"`
	SwapTotalBytes  *uint64      `json:"swap_total_bytes,omitempty"`
	SwapUsedBytes   *uint64      `json:"swap_used_bytes,omitempty"`
	Temps           []Temp       `json:"temps,omitzero"`
	Net             []NetIface   `json:"net,omitzero"`
	Disks           []DiskIO     `json:"disks,omitzero"`
	Filesystems     []Filesystem `json:"filesystems,omitzero"`
	Containers      []Container  `json:"containers,omitzero"`
}

// Validate checks versions and physical ranges, so a broken sensor or a hostile publisher
// cannot put nonsense on the dashboard.
func (m Metrics) Validate() error {
	if err := checkVersion(m.V); err != nil {
		return err
	}
	if m.TS.IsZero() {
		return invalid("ts is missing")
	}
	for _, f := range []struct {
		name     string
		v        *float64
		min, max float64
	}{
		{"load_1", m.Load1, 0, 1e6},
		{"load_5", m.Load5, 0, 1e6},
		{"load_15", m.Load15, 0, 1e6},
		{"cpu_percent", m.CPUPercent, 0, 100.5},
		{"cpu_temp_c", m.CPUTempC, -60, 200},
	} {
		if f.v == nil {
			continue
		}
		if math.IsNaN(*f.v) || *f.v < f.min || *f.v > f.max {
			return invalid("%s %v: want %g to %g", f.name, *f.v, f.min, f.max)
		}
	}
	if m.CPUCount != nil && (*m.CPUCount < 1 || *m.CPUCount > 4096) {
		return invalid("cpu_count %d: want 1 to 4096", *m.CPUCount)
	}
	for _, flags := range [][]string{m.ThrottledNow, m.ThrottledSinceBoot} {
		if len(flags) > len(throttleFlags) {
			return invalid("%d throttling flags: there are only %d", len(flags), len(throttleFlags))
		}
		for _, f := range flags {
			if !throttleFlags[f] {
				return invalid("throttling flag %q: want one of %s, %s, %s, %s", clip(f), ThrottleUnderVoltage, ThrottleFreqCapped, ThrottleThrottled, ThrottleSoftTempLimit)
			}
		}
	}
	if m.MemTotalBytes != nil && m.MemAvailableBytes != nil && *m.MemAvailableBytes > *m.MemTotalBytes {
		return invalid("mem_available_bytes %d exceeds mem_total_bytes %d", *m.MemAvailableBytes, *m.MemTotalBytes)
	}
	if m.DiskTotalBytes != nil && m.DiskFreeBytes != nil && *m.DiskFreeBytes > *m.DiskTotalBytes {
		return invalid("disk_free_bytes %d exceeds disk_total_bytes %d", *m.DiskFreeBytes, *m.DiskTotalBytes)
	}
	if m.DiskTotalBytes != nil && m.DiskUsedBytes != nil && *m.DiskUsedBytes > *m.DiskTotalBytes {
		return invalid("disk_used_bytes %d exceeds disk_total_bytes %d", *m.DiskUsedBytes, *m.DiskTotalBytes)
	}
	return m.validateHost()
}

// DiskUsedPercent is the root filesystem's use as df prints it (Use%): used / (used + free),
// which leaves the blocks reserved for root out. Without disk_used_bytes (an agent before it),
// it is the share of the size not free: higher, by the reserved blocks. ok is false when the
// sample has no disk figures.
func (m Metrics) DiskUsedPercent() (pct float64, ok bool) {
	switch {
	case m.DiskFreeBytes == nil:
		return 0, false
	case m.DiskUsedBytes != nil:
		if sum := *m.DiskUsedBytes + *m.DiskFreeBytes; sum > 0 {
			return 100 * float64(*m.DiskUsedBytes) / float64(sum), true
		}
	case m.DiskTotalBytes != nil && *m.DiskTotalBytes > 0:
		return 100 * float64(*m.DiskTotalBytes-*m.DiskFreeBytes) / float64(*m.DiskTotalBytes), true
	}
	return 0, false
}

// Throttling flags carried by Metrics.ThrottledNow and ThrottledSinceBoot, as the Raspberry Pi
// firmware reports them (vcgencmd get_throttled).
const (
	ThrottleUnderVoltage  = "under_voltage"   // supply below about 4.63 V
	ThrottleFreqCapped    = "freq_capped"     // ARM frequency capped
	ThrottleThrottled     = "throttled"       // CPU throttled
	ThrottleSoftTempLimit = "soft_temp_limit" // soft temperature limit active
)

var throttleFlags = map[string]bool{
	ThrottleUnderVoltage: true, ThrottleFreqCapped: true, ThrottleThrottled: true, ThrottleSoftTempLimit: true,
}

// Press kinds carried by ButtonEvent.Press.
const (
	PressShort  = "short"
	PressLong   = "long"
	PressDouble = "double"
)

// ButtonEvent is the payload of rack/<row>/<mac>/button, one per press. Seq grows by one per
// press for the life of the agent's store, so (mac, seq) identifies a press.
type ButtonEvent struct {
	V     int       `json:"v"`
	Press string    `json:"press"`
	Seq   uint64    `json:"seq"`
	TS    time.Time `json:"ts"`
	// Found is true when the press acknowledged a running blink or identify: someone found
	// the Pi that was being located, and the agent stopped its LED.
	Found bool `json:"found,omitempty"`
}

// Validate checks the press kind and the timestamp.
func (b ButtonEvent) Validate() error {
	if err := checkVersion(b.V); err != nil {
		return err
	}
	switch b.Press {
	case PressShort, PressLong, PressDouble:
	default:
		return invalid("press %q: want %q, %q or %q", clip(b.Press), PressShort, PressLong, PressDouble)
	}
	if b.TS.IsZero() {
		return invalid("ts is missing")
	}
	return nil
}

// Power is the payload of rack/<row>/power: one row supply's reading.
type Power struct {
	V      int       `json:"v"`
	TS     time.Time `json:"ts"`
	Volts  *float64  `json:"volts,omitempty"`
	Amps   *float64  `json:"amps,omitempty"`
	Watts  *float64  `json:"watts,omitempty"`
	Source string    `json:"source,omitempty"` // e.g. "ina219", "tasmota", "sim"
}

// Validate checks that at least one quantity is present and that all are physically sane.
func (p Power) Validate() error {
	if err := checkVersion(p.V); err != nil {
		return err
	}
	if p.Volts == nil && p.Amps == nil && p.Watts == nil {
		return invalid("no volts, amps or watts")
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"volts", p.Volts}, {"amps", p.Amps}, {"watts", p.Watts}} {
		if f.v != nil && (math.IsNaN(*f.v) || *f.v < 0 || *f.v > 1e5) {
			return invalid("%s %v: want 0 to 100000", f.name, *f.v)
		}
	}
	return checkStrings(field{"source", p.Source, 64})
}

// DecodeStatus parses a status payload. The plain words "online" and "offline" are accepted
// too, so a foreign tool can set presence by hand.
func DecodeStatus(b []byte) (Status, error) {
	if w := plainWord(b); w == StateOnline || w == StateOffline {
		return Status{V: Version, State: w}, nil
	}
	var s Status
	err := decode("status", b, &s, func() error { return s.Validate() })
	return s, err
}

// DecodeMetrics parses and validates a metrics payload.
func DecodeMetrics(b []byte) (Metrics, error) {
	var m Metrics
	err := decode("metrics", b, &m, func() error { return m.Validate() })
	return m, err
}

// DecodeButton parses and validates a button payload.
func DecodeButton(b []byte) (ButtonEvent, error) {
	var e ButtonEvent
	err := decode("button", b, &e, func() error { return e.Validate() })
	return e, err
}

// DecodePower parses and validates a power payload.
func DecodePower(b []byte) (Power, error) {
	var p Power
	err := decode("power", b, &p, func() error { return p.Validate() })
	return p, err
}

// Validator is implemented by every payload type.
type Validator interface{ Validate() error }

// Encode validates a payload and marshals it, so nothing invalid is ever published.
func Encode(p Validator) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// decode unmarshals JSON into dst and runs validate. Unknown fields are tolerated so that an
// older reader keeps working with a newer publisher of the same version.
func decode(what string, b []byte, dst any, validate func() error) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("%w: %s payload is %d bytes, over the %d byte limit", ErrInvalidPayload, what, len(b), MaxPayload)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("%w: %s payload is not valid JSON: %v", ErrInvalidPayload, what, err)
	}
	if err := validate(); err != nil {
		return fmt.Errorf("%s payload: %w", what, err)
	}
	return nil
}

// plainWord returns b trimmed and lowercased when it is short and not JSON, else "".
func plainWord(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 64 || b[0] == '{' {
		return ""
	}
	return strings.ToLower(string(b))
}

func checkVersion(v int) error {
	if v != Version {
		return invalid("v %d: this reader understands v%d", v, Version)
	}
	return nil
}

type field struct {
	name  string
	value string
	max   int
}

// checkStrings rejects strings that are too long, not UTF-8, or carry control characters: they
// end up in logs and on the dashboard.
func checkStrings(fields ...field) error {
	for _, f := range fields {
		if len(f.value) > f.max {
			return invalid("%s is %d bytes, over %d", f.name, len(f.value), f.max)
		}
		if !utf8.ValidString(f.value) {
			return invalid("%s is not valid UTF-8", f.name)
		}
		if i := strings.IndexFunc(f.value, unicode.IsControl); i >= 0 {
			return invalid("%s %q contains a control character", f.name, clip(f.value))
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPayload, fmt.Sprintf(format, args...))
}
