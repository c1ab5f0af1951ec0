package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pirack/pirack/topics"
)

// FileName is the notification config's name in the data directory.
const FileName = "notify.json"

// ErrInvalidConfig is returned (wrapped) by ParseFile, LoadFile and New for a config that
// cannot be used. The message names every field that is wrong.
var ErrInvalidConfig = errors.New("invalid notification config")

// Target types.
const (
	TypeWebhook = "webhook"
	TypeNtfy    = "ntfy"
	TypeSMTP    = "smtp"
)

// Duration is a time.Duration written in JSON as a Go duration string: "30m", "4h".
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "4h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string; a bare number is refused because its unit would be a
// guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"30m\" or \"4h\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a string such as \"30m\" or \"4h\"", s)
	}
	*d = Duration(v)
	return nil
}

// File is notify.json: where notifications go, which alerts go where, and when. Secrets
// (passwords, tokens, URLs that embed a token) are never written in it, only the paths of files
// that hold them, readable by their owner only.
type File struct {
	// DashboardURL is the Control Center's address as the people notified reach it, for the
	// link in each notification: "https://rack.example.org". "" means the address the control
	// center listens on, which is often only reachable from its own host.
	DashboardURL string `json:"dashboard_url,omitempty"`
	// Targets are where notifications are sent, by a name of 1-32 characters of a-z, 0-9, _
	// or -. Each notification of a target is queued on disk and retried until it is delivered
	// or RetryFor has passed.
	Targets map[string]Target `json:"targets"`
	// Routes say which targets get which alerts. An alert goes to the targets of every route
	// it matches; no route means every target gets every alert.
	Routes []Route `json:"routes,omitempty"`
	// Repeat re-sends an alert that is still raised every Repeat, as a reminder; 0 (the
	// default) sends it once.
	Repeat Duration `json:"repeat,omitempty"`
	// Resolved sends a message when an alert that was notified clears; nil means true.
	Resolved *bool `json:"resolved,omitempty"`
	// QuietHours, when set, hold back notifications in a daily window (see QuietHours).
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// RetryFor is how long an undelivered notification is retried before it is dropped; 0
	// means DefaultRetryFor (24 h).
	RetryFor Duration `json:"retry_for,omitempty"`
}

// DefaultRetryFor is how long a notification is retried when File.RetryFor is 0.
const DefaultRetryFor = 24 * time.Hour

// Target is one destination. Type says which fields apply.
type Target struct {
	// Type is TypeWebhook, TypeNtfy or TypeSMTP.
	Type string `json:"type"`

	// URL is where a webhook POSTs its JSON, or an ntfy topic's URL
	// ("https://ntfy.sh/my-rack-alerts", or a self-hosted server's). URLFile holds it instead,
	// on its first line, for a URL that is itself a secret (most ntfy.sh topics, chat
	// webhooks): set one of the two.
	URL     string `json:"url,omitempty"`
	URLFile string `json:"url_file,omitempty"`
	// TokenFile holds a bearer token sent as "Authorization: Bearer <token>" (webhook, ntfy
	// access token); "" sends none.
	TokenFile string `json:"token_file,omitempty"`

	// Host and Port are the SMTP server; Port 0 means 587 (the submission port).
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// TLS is "starttls" (the default: the server must offer STARTTLS, or nothing is sent),
	// "tls" (TLS from the first byte, usually port 465), or "none" (a relay on this host that
	// needs no login; Username must then be empty).
	TLS string `json:"tls,omitempty"`
	// CAFile verifies the SMTP server's certificate; "" means the system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// Username and PasswordFile log in with AUTH PLAIN, only ever over TLS; an empty Username
	// sends mail without logging in.
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	// From is the sender address; To the recipients, at least one.
	From string   `json:"from,omitempty"`
	To   []string `json:"to,omitempty"`
}

// Route picks alerts by severity and rule, and names the targets that get them.
type Route struct {
	// Targets are names from File.Targets; at least one.
	Targets []string `json:"targets"`
	// Severities the route matches ("warning", "critical"); empty matches both.
	Severities []string `json:"severities,omitempty"`
	// Rules the route matches ("offline", "temp_high", ...); empty matches every rule.
	Rules []string `json:"rules,omitempty"`
}

// QuietHours is a daily window, in the control center's local time (or TimeZone), during which
// only critical alerts are sent (LetThrough "critical", the default) or none ("none"). What is
// held back is not lost: an alert still raised when the window ends is sent then, and a
// resolved message held back is sent then too. From after To spans midnight ("22:00" to
// "07:00"); From equal to To is refused.
type QuietHours struct {
	From string `json:"from"` // "HH:MM", 24-hour clock
	To   string `json:"to"`   // "HH:MM"; the window ends at To, exclusive
	// LetThrough is "critical" (the default) or "none".
	LetThrough string `json:"let_through,omitempty"`
	// TimeZone is an IANA name such as "Europe/Berlin"; "" means the control center's local
	// time.
	TimeZone string `json:"time_zone,omitempty"`

	from, to int // minutes after midnight, set by validate
	loc      *time.Location
}

// LetThrough values.
const (
	LetThroughCritical = "critical"
	LetThroughNone     = "none"
)

// TLS modes of an SMTP target.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// ParseFile reads notify.json. Unknown fields are errors, so a misspelt field is caught; every
// problem is reported at once. Secret files are not read here (New reads them).
func ParseFile(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return File{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidConfig)
	}
	if err := f.validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// LoadFile reads and parses the config file at path (see ParseFile).
func LoadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read notification config: %w", err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return File{}, fmt.Errorf("notification config %s: %w", path, err)
	}
	return f, nil
}

// validTargetName reports whether name is 1-32 characters of a-z, 0-9, _ or -: it names a
// bucket of the queue and shows on the page.
func validTargetName(name string) bool {
	return name != "" && len(name) <= 32 && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == ""
}

// validate checks the file and fills in QuietHours' parsed fields.
func (f *File) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if f.DashboardURL != "" {
		if u, err := url.Parse(f.DashboardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("dashboard_url %q: want an http:// or https:// address", f.DashboardURL)
		}
	}
	if len(f.Targets) == 0 {
		bad("targets: name at least one")
	}
	names := make([]string, 0, len(f.Targets))
	for name := range f.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !validTargetName(name) {
			bad("targets.%s: a target's name is 1-32 characters of a-z, 0-9, _ or -", name)
			continue
		}
		for _, err := range f.Targets[name].validate() {
			bad("targets.%s.%v", name, err)
		}
	}
	for i, r := range f.Routes {
		if len(r.Targets) == 0 {
			bad("routes[%d].targets: name at least one target", i)
		}
		for _, t := range r.Targets {
			if _, ok := f.Targets[t]; !ok {
				bad("routes[%d].targets: no target named %q", i, t)
			}
		}
		for _, s := range r.Severities {
			if s != topics.SeverityWarning && s != topics.SeverityCritical {
				bad("routes[%d].severities: %q: want %q or %q", i, s, topics.SeverityWarning, topics.SeverityCritical)
			}
		}
		for _, rule := range r.Rules {
			if !validRule(rule) {
				bad("routes[%d].rules: %q is not a rule name", i, rule)
			}
		}
	}
	if f.Repeat < 0 || (f.Repeat > 0 && f.Repeat < Duration(time.Minute)) {
		bad("repeat %v: want 0 (no reminders) or at least 1m", time.Duration(f.Repeat))
	}
	if f.RetryFor < 0 {
		bad("retry_for %v: must not be negative", time.Duration(f.RetryFor))
	}
	if q := f.QuietHours; q != nil {
		for _, err := range q.validate() {
			bad("quiet_hours.%v", err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// validRule mirrors the contract's rule names (1-32 of a-z, 0-9, _) by asking topics.Parse.
func validRule(rule string) bool {
	t, err := topics.Parse(topics.AlertTopic("r", "", rule))
	return err == nil && t.Rule == rule
}

// validate returns the target's problems, each starting with the field's name.
func (t Target) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch t.Type {
	case TypeWebhook, TypeNtfy:
		switch {
		case t.URL == "" && t.URLFile == "":
			bad("url: set url, or url_file for a URL that is a secret")
		case t.URL != "" && t.URLFile != "":
			bad("url_file: set url or url_file, not both")
		case t.URL != "":
			if err := checkHTTPURL(t.URL); err != nil {
				bad("url: %v", err)
			}
		}
		if t.Host != "" || t.Port != 0 || t.TLS != "" || t.CAFile != "" || t.Username != "" || t.PasswordFile != "" || t.From != "" || len(t.To) > 0 {
			bad("type %s: host, port, tls, ca_file, username, password_file, from and to are for smtp targets", t.Type)
		}
	case TypeSMTP:
		if t.Host == "" {
			bad("host: name the SMTP server")
		}
		if t.Port < 0 || t.Port > 65535 {
			bad("port %d: want 1-65535, or 0 for 587", t.Port)
		}
		switch t.TLS {
		case "", TLSStartTLS, TLSImplicit:
		case TLSNone:
			if t.Username != "" {
				bad("tls none: a login is only ever sent over TLS; remove username or use starttls")
			}
		default:
			bad("tls %q: want %q, %q or %q", t.TLS, TLSStartTLS, TLSImplicit, TLSNone)
		}
		if t.Username != "" && t.PasswordFile == "" {
			bad("password_file: username %q needs the file that holds its password", t.Username)
		}
		if t.Username == "" && t.PasswordFile != "" {
			bad("username: password_file is set without a username")
		}
		if !validAddr(t.From) {
			bad("from %q: want an address such as pirack@example.org", t.From)
		}
		if len(t.To) == 0 {
			bad("to: name at least one recipient")
		}
		for _, a := range t.To {
			if !validAddr(a) {
				bad("to %q: want an address such as ops@example.org", a)
			}
		}
		if t.URL != "" || t.URLFile != "" || t.TokenFile != "" {
			bad("type smtp: url, url_file and token_file are for webhook and ntfy targets")
		}
	case "":
		bad("type: want %q, %q or %q", TypeWebhook, TypeNtfy, TypeSMTP)
	default:
		bad("type %q: want %q, %q or %q", t.Type, TypeWebhook, TypeNtfy, TypeSMTP)
	}
	return errs
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// address")
	}
	return nil
}

// validAddr accepts a bare address (no display name, no CR or LF, which would let a value
// inject mail headers).
func validAddr(a string) bool {
	at := strings.LastIndexByte(a, '@')
	return at > 0 && at < len(a)-1 && !strings.ContainsAny(a, " \t\r\n<>,;\"")
}

// validate parses From, To, LetThrough and TimeZone.
func (q *QuietHours) validate() []error {
	var errs []error
	var err error
	if q.from, err = parseClock(q.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %v", err))
	}
	if q.to, err = parseClock(q.To); err != nil {
		errs = append(errs, fmt.Errorf("to: %v", err))
	}
	if len(errs) == 0 && q.from == q.to {
		errs = append(errs, fmt.Errorf("to %s: equal to from, which leaves no window (or a whole day); make them differ", q.To))
	}
	switch q.LetThrough {
	case "", LetThroughCritical, LetThroughNone:
	default:
		errs = append(errs, fmt.Errorf("let_through %q: want %q or %q", q.LetThrough, LetThroughCritical, LetThroughNone))
	}
	q.loc = nil
	if q.TimeZone != "" {
		if q.loc, err = time.LoadLocation(q.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time_zone %q: %v", q.TimeZone, err))
		}
	}
	return errs
}

// parseClock reads "HH:MM" as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q: want a time of day such as \"22:00\"", s)
	}
	return hh*60 + mm, nil
}

// Holds reports whether the quiet hours hold back a notification of severity at now. local is
// the control center's time zone, used when TimeZone is "". A nil QuietHours holds nothing.
func (q *QuietHours) Holds(severity string, now time.Time, local *time.Location) bool {
	if q == nil {
		return false
	}
	if q.LetThrough != LetThroughNone && severity == topics.SeverityCritical {
		return false
	}
	loc := q.loc
	if loc == nil {
		loc = local
	}
	t := now.In(loc)
	m := t.Hour()*60 + t.Minute()
	if q.from < q.to {
		return m >= q.from && m < q.to
	}
	return m >= q.from || m < q.to // spans midnight
}

// targetsFor returns the names of the targets an alert of rule and severity goes to, sorted.
func (f *File) targetsFor(rule, severity string) []string {
	if len(f.Routes) == 0 {
		names := make([]string, 0, len(f.Targets))
		for name := range f.Targets {
			names = append(names, name)
		}
		sort.Strings(names)
		return names
	}
	var out []string
	for _, r := range f.Routes {
		if (len(r.Severities) == 0 || slices.Contains(r.Severities, severity)) &&
			(len(r.Rules) == 0 || slices.Contains(r.Rules, rule)) {
			out = append(out, r.Targets...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// resolved reports whether resolved messages are sent.
func (f *File) resolved() bool { return f.Resolved == nil || *f.Resolved }

// retryFor is RetryFor with its default.
func (f *File) retryFor() time.Duration {
	if f.RetryFor == 0 {
		return DefaultRetryFor
	}
	return time.Duration(f.RetryFor)
}
