package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestCheckMessages")

// testFlags is a command's flags: one of each kind.
type testFlags struct {
	name    string
	count   int
	wait    time.Duration
	verbose bool
	ratio   float64
	version bool
}

func newTestFlags() (*flag.FlagSet, *testFlags) {
	var v testFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String(FlagName, "", "config file")
	fs.StringVar(&v.name, "name", "default-name", "a name")
	fs.IntVar(&v.count, "count", 1, "how many")
	fs.DurationVar(&v.wait, "wait", time.Second, "how long")
	fs.BoolVar(&v.verbose, "verbose", false, "say more")
	fs.Float64Var(&v.ratio, "ratio", 0.5, "a ratio")
	fs.BoolVar(&v.version, "version", false, "print the version")
	return fs, &v
}

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// Flag > environment > file > default, for each kind of flag.
func TestPrecedence(t *testing.T) {
	file := filepath.Join("testdata", "all.toml") // name "from-file", count 7, wait 2m, verbose true
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want testFlags
	}{
		{"defaults", nil, nil, "", testFlags{name: "default-name", count: 1, wait: time.Second, ratio: 0.5}},
		{"file over defaults", nil, nil, file, testFlags{name: "from-file", count: 7, wait: 2 * time.Minute, verbose: true, ratio: 0.5}},
		{"environment over file", nil, map[string]string{"PIRACK_NAME": "from-env", "PIRACK_COUNT": "9", "PIRACK_VERBOSE": "false"}, file,
			testFlags{name: "from-env", count: 9, wait: 2 * time.Minute, verbose: false, ratio: 0.5}},
		{"flag over environment and file", []string{"--name", "from-flag", "--wait", "3s"}, map[string]string{"PIRACK_NAME": "from-env", "PIRACK_WAIT": "4s"}, file,
			testFlags{name: "from-flag", count: 7, wait: 3 * time.Second, verbose: true, ratio: 0.5}},
		{"a flag set to its default still wins", []string{"--count", "1", "--verbose=false"}, map[string]string{"PIRACK_COUNT": "5"}, file,
			testFlags{name: "from-file", count: 1, wait: 2 * time.Minute, verbose: false, ratio: 0.5}},
		{"environment without a file", nil, map[string]string{"PIRACK_RATIO": "0.25", "PIRACK_WAIT": "1m"}, "",
			testFlags{name: "default-name", count: 1, wait: time.Minute, ratio: 0.25}},
		{"empty variable is unset", nil, map[string]string{"PIRACK_NAME": ""}, file,
			testFlags{name: "from-file", count: 7, wait: 2 * time.Minute, verbose: true, ratio: 0.5}},
		{"skipped flag ignores the environment", nil, map[string]string{"PIRACK_VERSION": "true"}, "",
			testFlags{name: "default-name", count: 1, wait: time.Second, ratio: 0.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, got := newTestFlags()
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if err := Apply(fs, c.file, envOf(c.env), Skip{"version"}); err != nil {
				t.Fatal(err)
			}
			if *got != c.want {
				t.Fatalf("got %+v, want %+v", *got, c.want)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "/etc/default.toml"},
		{nil, map[string]string{"PIRACK_CONFIG": "/env.toml"}, "/env.toml"},
		{[]string{"--config", "/flag.toml"}, map[string]string{"PIRACK_CONFIG": "/env.toml"}, "/flag.toml"},
		{[]string{"--config", ""}, map[string]string{"PIRACK_CONFIG": "/env.toml"}, ""},
	} {
		fs, _ := newTestFlags()
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := Path(fs, envOf(c.env), "/etc/default.toml"); got != c.want {
			t.Errorf("Path(%q, %v) = %q, want %q", c.args, c.env, got, c.want)
		}
	}
}

// Every problem of a file is reported at once, each with its line and key, as golden files
// hold them (go test ./config -run CheckMessages -update rewrites them).
func TestCheckMessages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fs, _ := newTestFlags()
			env := map[string]string{}
			if filepath.Base(f) == "all.toml" {
				env = map[string]string{"PIRACK_COUNT": "many", "PIRACK_WAIT": "-"} // and the environment's problems
			}
			var got string
			if err := Apply(fs, f, envOf(env), Skip{"version"}); err != nil {
				got = err.Error() + "\n"
			} else {
				got = "ok\n"
			}
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("messages for %s:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func TestErrorsAreTyped(t *testing.T) {
	fs, _ := newTestFlags()
	err := Apply(fs, filepath.Join("testdata", "wrong-keys-and-values.toml"), envOf(nil), Skip{"version"})
	var es Errors
	if !errors.As(err, &es) || len(es) < 5 {
		t.Fatalf("err = %v, want Errors", err)
	}
	for _, e := range es {
		if e.Line == 0 {
			t.Errorf("%v: no line", e)
		}
	}
	if err := Apply(fs, filepath.Join("testdata", "missing.toml"), envOf(nil), nil); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// The template lists every setting but the skipped ones, each commented out with its default
// unless given a value, and reads back as it says.
func TestExampleReadsBack(t *testing.T) {
	fs, _ := newTestFlags()
	var b strings.Builder
	if err := Example(&b, fs, "test command\nsecond line", map[string]string{"name": "packaged", "count": "3"}, Skip{"version"}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{"# test command\n# second line\n", "\n# how long\n# wait = \"1s\"\n", "\n# say more\n# verbose = false\n",
		"\nname = \"packaged\"\n", "\ncount = 3\n", "\n# ratio = 0.5\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("template lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "version") || strings.Contains(text, "config =") {
		t.Errorf("template lists a skipped setting:\n%s", text)
	}
	path := filepath.Join(t.TempDir(), "example.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	fs2, got := newTestFlags()
	if err := Apply(fs2, path, envOf(nil), Skip{"version"}); err != nil {
		t.Fatal(err)
	}
	if got.name != "packaged" || got.count != 3 || got.wait != time.Second {
		t.Fatalf("read back %+v", *got)
	}
	// Uncommented, every default reads back too.
	uncommented := strings.NewReplacer("# name", "name", "# count", "count", "# wait", "wait", "# verbose", "verbose", "# ratio", "ratio").Replace(text)
	if err := os.WriteFile(path, []byte(uncommented), 0o644); err != nil {
		t.Fatal(err)
	}
	fs3, _ := newTestFlags()
	if err := Apply(fs3, path, envOf(nil), Skip{"version"}); err != nil {
		t.Fatalf("uncommented template: %v", err)
	}
}

// Set replaces a set key where it is, uncomments a template's key, adds a new one, and keeps
// the rest and the mode.
func TestSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.toml")
	text := "# header\n\n# a name\n# name = \"default-name\"\n\n# how many\ncount = 2\n# count = 1\n"
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	fs, _ := newTestFlags()
	if err := Set(path, fs, map[string]string{"name": "pi", "count": "5", "wait": "3s"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "# header\n\n# a name\nname = \"pi\"\n\n# how many\ncount = 5\n# count = 1\nwait = \"3s\"\n"
	if string(b) != want {
		t.Fatalf("after Set:\n%s\nwant:\n%s", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	fs2, got := newTestFlags()
	if err := Apply(fs2, path, envOf(nil), Skip{"version"}); err != nil || got.name != "pi" || got.count != 5 || got.wait != 3*time.Second {
		t.Fatalf("read back %+v: %v", *got, err)
	}
	if err := Set(path, fs, map[string]string{"nope": "x"}); err == nil {
		t.Fatal("Set of an unknown key: no error")
	}
}
