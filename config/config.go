// Package config lets every flag of a pirack command be set in a TOML file and in PIRACK_...
// environment variables as well as on the command line, with one order of precedence, decided
// here only: a flag on the command line, then its environment variable, then the file, then
// the flag's default.
//
// The file's keys are the flags' names (`mqtt-max-clients = 8192` for --mqtt-max-clients), at
// the top level; the environment variable is the name in capitals with dashes as underscores
// after PIRACK_ (PIRACK_MQTT_MAX_CLIENTS). Values are checked by the flag itself, so a file says
// exactly what the command line would. Secrets have no flag of their own, only a file
// reference (--password-file, --broker-password-file...), so none can be written inline.
//
// TOML rather than YAML: it has one way to write a string, a number and a boolean (YAML reads
// `no` and `0x40` as something else than the text), comments, and no indentation to get wrong
// over SSH at the rack.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// EnvPrefix starts every environment variable that sets a flag.
const EnvPrefix = "PIRACK_"

// FlagName is the flag that names the file itself; it is read from the command line and the
// environment only.
const FlagName = "config"

// EnvName is the environment variable of flag name: PIRACK_ then the name in capitals, dashes
// as underscores.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Error is one problem in a config file or the environment: where (file and line, or the
// variable) and which key.
type Error struct {
	File string // "" for an environment variable
	Line int    // 0 when unknown
	Key  string // the flag's name, or the variable's for the environment
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return fmt.Sprintf("environment variable %s: %s", e.Key, e.Msg)
	case e.Key == "":
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// Errors is every problem found, in file order, then the environment's.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Skip lists flags a file and the environment never set (-version, the file's own flag).
type Skip []string

// Apply sets every flag of fs that the command line did not set (fs is parsed) from its
// environment variable, else from the file (path "" for none). The file's own flag, --config,
// comes from the command line or from PIRACK_CONFIG before Apply is called: see Path. All
// problems are returned at once, as Errors.
func Apply(fs *flag.FlagSet, path string, getenv func(string) string, skip Skip) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs Errors
	var file map[string]fileValue
	if path != "" {
		var err error
		if file, err = readFile(fs, path, skip); err != nil {
			var es Errors
			if !errors.As(err, &es) {
				return err
			}
			errs = append(errs, es...)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == FlagName || skip.has(f.Name) {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, &Error{Key: EnvName(f.Name), Msg: valueMsg(f, v, err)})
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v.text); err != nil {
				errs = append(errs, &Error{File: path, Line: v.line, Key: f.Name, Msg: valueMsg(f, v.text, err)})
			}
		}
	})
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			if (errs[i].File == "") != (errs[j].File == "") {
				return errs[i].File != ""
			}
			return errs[i].Line < errs[j].Line
		})
		return errs
	}
	return nil
}

// Path is the config file to read: --config on the command line, else PIRACK_CONFIG, else def.
func Path(fs *flag.FlagSet, getenv func(string) string, def string) string {
	if f := fs.Lookup(FlagName); f != nil {
		set := false
		fs.Visit(func(g *flag.Flag) { set = set || g.Name == FlagName })
		if set {
			return f.Value.String()
		}
	}
	if v := getenv(EnvName(FlagName)); v != "" {
		return v
	}
	return def
}

func (s Skip) has(name string) bool {
	for _, n := range s {
		if n == name {
			return true
		}
	}
	return false
}

// valueMsg is a flag's refusal of value v, without the flag package's wording around it.
func valueMsg(f *flag.Flag, v string, err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); strings.HasPrefix(msg, "invalid value") && i >= 0 {
		msg = msg[i+2:]
	}
	if msg == "parse error" || msg == "value out of range" {
		return fmt.Sprintf("%q is not %s", v, want(f))
	}
	return msg
}

// fileValue is one key of the file, as the flag's text, and its line.
type fileValue struct {
	text string
	line int
}

// readFile reads path and returns its keys as flag values. Unknown keys, tables and arrays are
// errors, each at its line.
func readFile(fs *flag.FlagSet, path string, skip Skip) (map[string]fileValue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: path, Line: pe.Position.Line, Msg: "not valid TOML: " + pe.Message}}
		}
		return nil, Errors{{File: path, Line: 1, Msg: "not valid TOML: " + err.Error()}}
	}
	lines := keyLines(string(data))
	out := map[string]fileValue{}
	var errs Errors
	for key, v := range raw {
		line := lines[key]
		f := fs.Lookup(key)
		if _, table := v.(map[string]any); table {
			errs = append(errs, &Error{File: path, Line: line, Key: key, Msg: "a table: pirack's config has no sections, write every key at the top level"})
			continue
		}
		switch {
		case f == nil || key == FlagName || skip.has(key):
			errs = append(errs, &Error{File: path, Line: line, Key: key, Msg: unknownMsg(fs, key, skip)})
			continue
		}
		text, msg := scalarText(f, v)
		if msg != "" {
			errs = append(errs, &Error{File: path, Line: line, Key: key, Msg: msg})
			continue
		}
		out[key] = fileValue{text, line}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return out, errs
	}
	return out, nil
}

// scalarText is v as the flag's text, or why it cannot be.
func scalarText(f *flag.Flag, v any) (string, string) {
	isBool := false
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
		isBool = b.IsBoolFlag()
	}
	switch v := v.(type) {
	case string:
		if isBool {
			return "", fmt.Sprintf("want true or false without quotes, got the string %q", v)
		}
		return v, ""
	case bool:
		if !isBool {
			return "", fmt.Sprintf("want %s, got %t", want(f), v)
		}
		return strconv.FormatBool(v), ""
	case int64:
		if isBool || isString(f) || isDuration(f) {
			return "", fmt.Sprintf("want %s, got the number %d", want(f), v)
		}
		return strconv.FormatInt(v, 10), ""
	case float64:
		if isBool || isString(f) || isDuration(f) {
			return "", fmt.Sprintf("want %s, got the number %v", want(f), v)
		}
		return strconv.FormatFloat(v, 'f', -1, 64), ""
	case []any, []map[string]any:
		return "", fmt.Sprintf("an array: want %s", want(f))
	}
	return "", fmt.Sprintf("want %s, got %T", want(f), v)
}

// isString is whether f takes any text (flag.String): a number there is a mistake, such as
// log-level = 3.
func isString(f *flag.Flag) bool { return fmt.Sprintf("%T", f.Value) == "*flag.stringValue" }

func isDuration(f *flag.Flag) bool { name, _ := flag.UnquoteUsage(f); return name == "duration" }

// want names what a flag takes, for a message.
func want(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "":
		return "true or false"
	case "value":
		return "a value such as " + strconv.Quote(f.DefValue)
	case "duration":
		return `a duration such as "30s", "5m" or "1h30m"`
	case "int", "uint":
		return "a whole number"
	case "float":
		return "a number"
	}
	return "a " + name + " in quotes"
}

// unknownMsg says a key is not a setting, and which one was probably meant.
func unknownMsg(fs *flag.FlagSet, key string, skip Skip) string {
	if key == FlagName {
		return "a config file cannot name another one"
	}
	if skip.has(key) {
		return "set only on the command line"
	}
	if f := fs.Lookup(key + "-file"); f != nil {
		return fmt.Sprintf("secrets are not written in a config file: put it in a file only its service can read (chmod 600) and set %s to that file's path", f.Name)
	}
	best, bestD := "", 4
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == FlagName || skip.has(f.Name) {
			return
		}
		d := distance(key, f.Name)
		if strings.HasPrefix(key, f.Name+"-") || strings.HasPrefix(f.Name, key+"-") {
			d = min(d, 2) // http-addr for http, broker for broker-url
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	if best != "" {
		return fmt.Sprintf("unknown setting; did you mean %s?", best)
	}
	return "unknown setting (pirack config example lists them all)"
}

// keyLines finds the line of each top-level key (bare or quoted) in a flat TOML file.
func keyLines(text string) map[string]int {
	out := map[string]int{}
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			k := strings.Trim(strings.TrimSpace(strings.Trim(l, "[] \t")), `"'`)
			if _, seen := out[k]; !seen && k != "" {
				out[k] = i + 1
			}
			continue
		}
		eq := strings.IndexByte(l, '=')
		if eq <= 0 || strings.HasPrefix(l, "#") {
			continue
		}
		k := strings.Trim(strings.TrimSpace(l[:eq]), `"'`)
		if _, seen := out[k]; !seen {
			out[k] = i + 1
		}
	}
	return out
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Example writes a commented template of every setting of fs: its help, and the key with its
// default, commented out unless values gives it a value (the packages' paths, say). header
// starts the file, as comment lines.
func Example(w io.Writer, fs *flag.FlagSet, header string, values map[string]string, skip Skip) error {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	b.WriteString("#\n# Every key is a flag of the command line, without its dashes in front. Precedence: the flag on\n" +
		"# the command line, then its environment variable (" + EnvPrefix + "<KEY in capitals, _ for ->), then this\n" +
		"# file, then the default shown. Secrets are never written here, only the files that hold them.\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == FlagName || skip.has(f.Name) {
			return
		}
		_, usage := flag.UnquoteUsage(f)
		b.WriteString("\n")
		for _, l := range wrap(usage, 96) {
			b.WriteString("# " + l + "\n")
		}
		if v, ok := values[f.Name]; ok {
			b.WriteString(f.Name + " = " + tomlValue(f, v) + "\n")
			return
		}
		b.WriteString("# " + f.Name + " = " + tomlValue(f, f.DefValue) + "\n")
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// tomlValue writes a flag's text as TOML: numbers and booleans bare, the rest quoted.
func tomlValue(f *flag.Flag, text string) string {
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "", "int", "uint", "float":
		if text != "" {
			return text
		}
	}
	return strconv.Quote(text)
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// Set writes values into the config file at path, as a person would: a key already set, or
// commented out as in the template (`# key = ...`), is replaced where it is; another is added
// at the end. The rest of the file (comments, other keys) is kept, and so is its mode. Values
// are the flags' texts; fs says how to write each in TOML.
func Set(path string, fs *flag.FlagSet, values map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("config file: %w", err)
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(data) == 0 {
		lines = nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f := fs.Lookup(key)
		if f == nil {
			return fmt.Errorf("config: no setting %q", key)
		}
		line := key + " = " + tomlValue(f, values[key])
		set, commented := -1, -1
		for i, l := range lines {
			t := strings.TrimSpace(l)
			k, _, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(t, "#")), "=")
			if !ok || strings.Trim(strings.TrimSpace(k), `"'`) != key {
				continue
			}
			if strings.HasPrefix(t, "#") {
				if commented < 0 {
					commented = i
				}
			} else if set < 0 {
				set = i
			}
		}
		switch {
		case set >= 0:
			lines[set] = line
		case commented >= 0:
			lines[commented] = line
		default:
			lines = append(lines, line)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
