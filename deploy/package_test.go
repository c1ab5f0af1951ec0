// Package deploy holds what installs pirack on a machine: the systemd units, the nfpm recipes of
// the .deb packages and their maintainer scripts. Its tests build the packages with
// scripts/package, inspect them with dpkg-deb, install them into a throwaway root with dpkg,
// and run the ARM agents from them under qemu against a real control center.
package deploy

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// requireEnv makes a missing tool fail the tests instead of skipping them (make test sets it;
// scripts/test-deps installs dpkg-dev's tools, qemu-user-static and systemd).
const requireEnv = "PIRACK_PACKAGE_TESTS"

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(requireEnv) == "require" {
				t.Fatalf("%s not found (%s=require): run scripts/test-deps", tool, requireEnv)
			}
			t.Skipf("%s not found; scripts/test-deps installs it", tool)
		}
	}
}

var built struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// debsDir builds every package once for all the tests of this run.
func debsDir(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "pirack-debs-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		cmd := exec.Command("../scripts/package", dir)
		cmd.Env = append(os.Environ(), "PKG_VERSION=1.2.3~test")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("scripts/package: %v\n%s", built.err, built.out)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func deb(t *testing.T, pkg, arch string) string {
	t.Helper()
	path := filepath.Join(debsDir(t), pkg+"_1.2.3~test_"+arch+".deb")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("package %s for %s not built: %v", pkg, arch, err)
	}
	return path
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// wantFile is a path a package must hold, with its mode and owner as dpkg-deb lists them.
type wantFile struct{ mode, path string }

var packageFiles = map[string][]wantFile{
	"pirack": {
		{"-rwxr-xr-x", "./usr/bin/pirack"},
		{"-rw-r--r--", "./lib/systemd/system/pirack.service"},
		{"-rw-r--r--", "./etc/pirack/pirack.toml"},
	},
	"pirack-agent": {
		{"-rwxr-xr-x", "./usr/bin/pirack-agent"},
		{"-rw-r--r--", "./lib/systemd/system/pirack-agent.service"},
		{"-rw-r--r--", "./etc/pirack/agent.toml"},
		{"-rw-r--r--", "./usr/share/polkit-1/rules.d/50-pirack-agent.rules"},
	},
}

// The machine each architecture's binaries are for.
var elfMachine = map[string]elf.Machine{"armhf": elf.EM_ARM, "arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}

// Each .deb: its fields, its files with their modes and owners, its conffiles, maintainer
// scripts that parse, and binaries for its architecture.
func TestPackageContents(t *testing.T) {
	needTools(t, "dpkg-deb")
	for _, arch := range []string{"armhf", "arm64", "amd64"} {
		for _, pkg := range []string{"pirack", "pirack-agent"} {
			t.Run(pkg+"_"+arch, func(t *testing.T) {
				path := deb(t, pkg, arch)
				fields := run(t, "dpkg-deb", "--field", path, "Package", "Architecture", "Version", "Maintainer", "Description")
				for _, want := range []string{"Package: " + pkg + "\n", "Architecture: " + arch + "\n", "Version: 1.2.3~test\n", "Maintainer: ", "Description: pirack "} {
					if !strings.Contains(fields, want) {
						t.Errorf("control fields lack %q:\n%s", want, fields)
					}
				}
				contents := run(t, "dpkg-deb", "--contents", path)
				for _, f := range packageFiles[pkg] {
					found := false
					for _, line := range strings.Split(contents, "\n") {
						cols := strings.Fields(line)
						if len(cols) >= 6 && cols[len(cols)-1] == f.path {
							found = true
							if cols[0] != f.mode || cols[1] != "root/root" {
								t.Errorf("%s: %s %s, want %s root/root", f.path, cols[0], cols[1], f.mode)
							}
						}
					}
					if !found {
						t.Errorf("%s missing from the package:\n%s", f.path, contents)
					}
				}

				ctrl := t.TempDir()
				run(t, "dpkg-deb", "--control", path, ctrl)
				conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
				if err != nil {
					t.Fatal(err)
				}
				conf := "/etc/pirack/pirack.toml"
				if pkg == "pirack-agent" {
					conf = "/etc/pirack/agent.toml"
				}
				if strings.TrimSpace(string(conffiles)) != conf {
					t.Errorf("conffiles = %q, want %s (kept across upgrades)", conffiles, conf)
				}
				for _, script := range []string{"postinst", "prerm", "postrm"} {
					p := filepath.Join(ctrl, script)
					fi, err := os.Stat(p)
					if err != nil {
						t.Fatalf("no %s: %v", script, err)
					}
					if fi.Mode().Perm()&0o111 == 0 {
						t.Errorf("%s is not executable: %v", script, fi.Mode())
					}
					body, _ := os.ReadFile(p)
					if !bytes.HasPrefix(body, []byte("#!/bin/sh\nset -e\n")) {
						t.Errorf("%s does not start with #!/bin/sh and set -e", script)
					}
					run(t, "sh", "-n", p)
				}

				files := t.TempDir()
				run(t, "dpkg-deb", "--extract", path, files)
				f, err := elf.Open(filepath.Join(files, "usr", "bin", pkg))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.Machine != elfMachine[arch] {
					t.Errorf("binary is for %v, want %v", f.Machine, elfMachine[arch])
				}
			})
		}
	}
}
