package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// throwawayRoot is an empty Debian root dpkg can install into: its database, and the account
// files the maintainer scripts change.
func throwawayRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc", "lib/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":              "root:x:0:\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\n",
	}
	for name, body := range files {
		mode := os.FileMode(0o644)
		if strings.Contains(name, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkg runs dpkg on root. The maintainer scripts run on this machine with DPKG_ROOT set
// (--force-script-chrootless), so they change root's files and leave systemd alone.
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// hasLine reports whether the account file holds an entry for name ("pirack:"), and returns it.
func entry(t *testing.T, root, file, name string) (string, bool) {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "etc", file)), "\n") {
		if strings.HasPrefix(l, name+":") {
			return l, true
		}
	}
	return "", false
}

// Both packages installed into a throwaway root with dpkg: files in place, the pirack user in the
// gpio and i2c groups, units that systemd accepts, configs that check; an upgrade keeps an
// edited config and the data; removal keeps the config, purge removes it, and the user goes with
// the last package.
func TestInstallIntoThrowawayRoot(t *testing.T) {
	needTools(t, "dpkg", "dpkg-deb", "useradd", "systemd-analyze")
	if os.Geteuid() != 0 {
		if os.Getenv(requireEnv) == "require" {
			t.Fatal("dpkg --root needs root (CI runs make test as root)")
		}
		t.Skip("dpkg --root needs root")
	}
	root := throwawayRoot(t)
	server, agent := deb(t, "pirack", "amd64"), deb(t, "pirack-agent", "amd64")
	dpkg(t, root, "--install", server, agent)

	for _, f := range []string{"usr/bin/pirack", "usr/bin/pirack-agent", "lib/systemd/system/pirack.service",
		"lib/systemd/system/pirack-agent.service", "etc/pirack/pirack.toml", "etc/pirack/agent.toml"} {
		if !exists(filepath.Join(root, f)) {
			t.Errorf("/%s not installed", f)
		}
	}
	user, ok := entry(t, root, "passwd", "pirack")
	if !ok {
		t.Fatal("no pirack user after install")
	}
	if !strings.HasSuffix(user, ":/nonexistent:/usr/sbin/nologin") {
		t.Errorf("pirack user %q: want no home and no shell", user)
	}
	for _, g := range []string{"gpio", "i2c"} {
		line, ok := entry(t, root, "group", g)
		if !ok || !strings.Contains(strings.SplitN(line, ":", 4)[3], "pirack") {
			t.Errorf("group %s = %q, want pirack in it (the agent's GPIO and I2C devices)", g, line)
		}
	}

	// The units as systemd reads them: their binaries in this root, every directive known. The
	// root gets this machine's systemd units (the targets they order against) and a shell (the
	// agent's ExecStartPre), as a real system has them.
	systemBase(t, root)
	for _, unit := range []string{"pirack.service", "pirack-agent.service"} {
		// Unknown keys and bad values are warnings, not a failure: any output fails the test.
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "/lib/systemd/system/"+unit)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}

	// The shipped configs: the control host's is ready; the agent's asks for its row.
	pirackBin, agentBin := filepath.Join(root, "usr/bin/pirack"), filepath.Join(root, "usr/bin/pirack-agent")
	serverConf, agentConf := filepath.Join(root, "etc/pirack/pirack.toml"), filepath.Join(root, "etc/pirack/agent.toml")
	run(t, pirackBin, "config", "check", serverConf)
	out, err := exec.Command(agentBin, "config", "check", agentConf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "row is required") {
		t.Errorf("agent config check of the shipped file: %v\n%s\nwant: row is required", err, out)
	}

	// An operator's edit and the control center's data survive an upgrade (a reinstall over it).
	edited := strings.Replace(readFile(t, agentConf), `# row = ""`, `row = "row-1"`, 1)
	if err := os.WriteFile(agentConf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "var/lib/pirack")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "users.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg(t, root, "--install", server, agent)
	if got := readFile(t, agentConf); got != edited {
		t.Error("an upgrade replaced the edited /etc/pirack/agent.toml")
	}
	if !exists(filepath.Join(data, "users.json")) {
		t.Error("an upgrade lost /var/lib/pirack")
	}

	// Removal keeps the config and the user the other package still needs; purge removes them.
	dpkg(t, root, "--remove", "pirack-agent")
	if exists(agentBin) || !exists(agentConf) {
		t.Errorf("after remove: binary there %t (want false), config there %t (want true)", exists(agentBin), exists(agentConf))
	}
	dpkg(t, root, "--purge", "pirack-agent")
	if exists(agentConf) {
		t.Error("purge left /etc/pirack/agent.toml")
	}
	if _, ok := entry(t, root, "passwd", "pirack"); !ok {
		t.Error("purging pirack-agent removed the pirack user that pirack still runs as")
	}
	dpkg(t, root, "--purge", "pirack")
	if _, ok := entry(t, root, "passwd", "pirack"); ok {
		t.Error("purging both packages left the pirack user")
	}
	if _, ok := entry(t, root, "group", "pirack"); ok {
		t.Error("purging both packages left the pirack group")
	}
	if exists(data) || exists(filepath.Join(root, "etc/pirack")) {
		t.Errorf("purge left /var/lib/pirack (%t) or /etc/pirack (%t)", exists(data), exists(filepath.Join(root, "etc/pirack")))
	}
}

// systemBase copies this machine's systemd unit files (targets, sockets...) and /bin/sh into
// root, where the packages' units are verified.
func systemBase(t *testing.T, root string) {
	t.Helper()
	units := "/lib/systemd/system"
	entries, err := os.ReadDir(units)
	if err != nil {
		t.Fatalf("this machine's systemd units: %v", err)
	}
	for _, e := range entries {
		dst := filepath.Join(root, units, e.Name())
		if exists(dst) {
			continue // the package's own
		}
		src := filepath.Join(units, e.Name())
		if target, err := os.Readlink(src); err == nil {
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !e.Type().IsRegular() {
			continue // *.wants directories: not needed to verify
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/sh"), sh, 0o755); err != nil {
		t.Fatal(err)
	}
}
