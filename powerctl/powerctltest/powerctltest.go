// Package powerctltest has a fake uhubctl for tests of code that switches USB hub ports.
package powerctltest

import (
	"os"
	"path/filepath"
	"testing"
)

// FakeUhubctl writes a uhubctl that logs its arguments and prints what the real one prints for
// a hub with per-port power switching (hub 1-1, ports 1-4); with fail it fails as the real
// one does without access. log is the file where each run appends its arguments as a line.
func FakeUhubctl(t *testing.T, fail bool) (path, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "$@" >> ` + log + `
` + map[bool]string{true: `echo "No compatible devices detected at location 1-1!" >&2
echo "Run with -h to get usage info." >&2
exit 1
`, false: `port=""; action=""
while [ $# -gt 0 ]; do case "$1" in -p) port=$2; shift;; -a) action=$2; shift;; esac; shift; done
status() { echo "$1 status for hub 1-1 [2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps]"
  for p in 1 2 3 4; do if [ "$p" = "$port" ] && [ "$2" = off ]; then echo "  Port $p: 0000 off"; else echo "  Port $p: 0503 power highspeed enable connect [0424:ec00]"; fi; done; }
status Current on
case "$action" in
off) echo "Sent power off request"; status New off;;
on) echo "Sent power on request"; status New on;;
cycle) echo "Sent power off request"; status New off; echo "Sent power on request"; status New on;;
esac
`}[fail]
	path = filepath.Join(dir, "uhubctl")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, log
}
