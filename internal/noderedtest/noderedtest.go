// Package noderedtest runs a real Node-RED for tests, as mosquittotest runs a Mosquitto: a user
// directory in the test's temporary directory holding the flows, their credentials and a
// settings.js, the editor and admin API on a free loopback port, Node-RED's log in the test log,
// and the process killed when the test ends. It is for _test.go files only.
//
// Node-RED is not a Debian package: scripts/test-deps installs it from npm into
// .cache/node-red at the module's root; Binary also looks in /opt/pirack-test/node-red and on
// PATH, and PIRACK_NODERED names another one. When there is none (or no node to run it), the
// test is skipped, unless PIRACK_NODERED_TESTS is "require" (CI), which fails it instead.
package noderedtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/proctest"
	"github.com/pirack/pirack/internal/testlog"
)

const (
	// RequireEnv is the environment variable that, set to "require", turns a missing Node-RED
	// from a skipped test into a failed one.
	RequireEnv = "PIRACK_NODERED_TESTS"
	// BinaryEnv names the node-red executable to use, or a directory it was installed into
	// with npm install --prefix.
	BinaryEnv = "PIRACK_NODERED"
)

// startTimeout bounds how long Start waits for Node-RED to run its flows: it takes a few
// seconds, more on a busy machine.
const startTimeout = 60 * time.Second

// Options configures a Node-RED. The zero value runs no flows.
type Options struct {
	// Flows is the flow file's content: a JSON array of nodes, as the editor exports it.
	Flows []byte
	// Credentials are written, unencrypted, to the flows' credentials file: node id ->
	// credential fields ({"user": ..., "password": ...} for an mqtt-broker). A value of the
	// form ${NAME} is read from Node-RED's environment, so secrets can stay in Env.
	Credentials map[string]map[string]string
	// Env is added to Node-RED's environment ("NAME=value"), for ${NAME} in node properties.
	Env []string
}

// NodeRED is a running Node-RED.
type NodeRED struct {
	t    testing.TB
	port int
	out  io.Writer

	log  proctest.Log
	mu   sync.Mutex
	proc *proctest.Proc // nil once stopped
}

// Binary returns the node-red executable: the one $PIRACK_NODERED names (the executable, or
// the directory npm installed it into) and no other when it is set; else the one in
// .cache/node-red or /opt/pirack-test/node-red (npm install --prefix), else on PATH. It returns
// "" when there is none.
func Binary() string {
	if p := os.Getenv(BinaryEnv); p != "" {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
		return installedIn(p)
	}
	prefixes := []string{"/opt/pirack-test/node-red"}
	if root := moduleRoot(); root != "" {
		prefixes = append([]string{filepath.Join(root, ".cache", "node-red")}, prefixes...)
	}
	for _, p := range prefixes {
		if bin := installedIn(p); bin != "" {
			return bin
		}
	}
	if p, err := exec.LookPath("node-red"); err == nil {
		return p
	}
	return ""
}

// installedIn returns the node-red that npm install --prefix put in dir, or "".
func installedIn(dir string) string {
	bin := filepath.Join(dir, "node_modules", ".bin", "node-red")
	if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
		return bin
	}
	return ""
}

// moduleRoot is the directory of the go.mod above the working directory (a test runs in its
// package's directory), or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Find returns the node-red executable. When there is none, or no node to run it, it skips the
// test, or fails it if PIRACK_NODERED_TESTS is "require". Call it before starting what the
// test needs Node-RED for; Start calls it too.
func Find(t testing.TB) string {
	t.Helper()
	bin := Binary()
	_, nodeErr := exec.LookPath("node")
	if bin != "" && nodeErr == nil {
		return bin
	}
	what := "node-red not found"
	if p := os.Getenv(BinaryEnv); p != "" && bin == "" {
		what = "no node-red in " + BinaryEnv + "=" + p
	} else if nodeErr != nil {
		what = "node (Node.js) not found"
	}
	fix := "run scripts/test-deps, or npm install --prefix .cache/node-red node-red@4, or set " + BinaryEnv
	if os.Getenv(RequireEnv) == "require" {
		t.Fatalf("%s (%s=require): %s", what, RequireEnv, fix)
	}
	t.Skipf("%s; %s (set %s=require to fail instead)", what, fix, RequireEnv)
	return ""
}

// Start starts Node-RED with opts on a free loopback port and returns once it has started its
// flows. It is stopped when the test ends.
func Start(t testing.TB, opts Options) *NodeRED {
	t.Helper()
	bin := Find(t)
	n := &NodeRED{t: t, out: testlog.NewWriter(t)}
	t.Cleanup(n.Stop) // after the log writer's cleanup is registered, so it runs before it
	dir := t.TempDir()
	if err := writeUserDir(dir, opts); err != nil {
		t.Fatalf("noderedtest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := proctest.FreePort()
		if err != nil {
			t.Fatalf("noderedtest: find a free port: %v", err)
		}
		n.port = port
		if err := os.WriteFile(filepath.Join(dir, "settings.js"), []byte(settings(port)), 0o600); err != nil {
			t.Fatalf("noderedtest: %v", err)
		}
		lastErr = n.start(bin, dir, opts.Env)
		if !errors.Is(lastErr, proctest.ErrPortInUse) {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("noderedtest: start %s: %v", bin, lastErr)
	}
	return n
}

// writeUserDir writes the flows and their credentials into Node-RED's user directory.
func writeUserDir(dir string, opts Options) error {
	flows := opts.Flows
	if flows == nil {
		flows = []byte("[]")
	}
	if !json.Valid(flows) {
		return errors.New("the flows are not JSON")
	}
	if err := os.WriteFile(filepath.Join(dir, "flows.json"), flows, 0o600); err != nil {
		return err
	}
	if opts.Credentials == nil {
		return nil
	}
	creds, err := json.Marshal(opts.Credentials)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "flows_cred.json"), creds, 0o600)
}

// settings is Node-RED's settings.js: loopback only, nothing fetched or installed from the
// network, credentials left unencrypted (they are ${NAME} references or test secrets).
func settings(port int) string {
	return `// written by noderedtest
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: ` + strconv.Itoa(port) + `,
    flowFile: "flows.json",
    credentialSecret: false,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    editorTheme: { projects: { enabled: false }, tours: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
};
`
}

// URL is the base URL of the editor and the admin API: http://127.0.0.1:<port>.
func (n *NodeRED) URL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
}

// Log returns what Node-RED has logged so far.
func (n *NodeRED) Log() string { return n.log.String() }

// WaitLog waits until Node-RED has logged a line containing s, for at most timeout, and
// reports whether it did. Lines logged before the call count.
func (n *NodeRED) WaitLog(s string, timeout time.Duration) bool { return n.log.Wait(s, timeout) }

// Inject triggers the inject node with that id, as its button in the editor does (POST
// /inject/<id> of the admin API), and fails the test if Node-RED refuses.
func (n *NodeRED) Inject(t testing.TB, id string) {
	t.Helper()
	n.inject(t, id, nil)
}

// InjectString triggers the inject node with that id as Inject does, with payload as the
// string msg.payload instead of the node's own.
func (n *NodeRED) InjectString(t testing.TB, id, payload string) {
	t.Helper()
	// The editor sends this body for the "inject now" of a node whose properties it changed.
	body, err := json.Marshal(map[string]any{
		"__user_inject_props__": []map[string]string{{"p": "payload", "v": payload, "vt": "str"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.inject(t, id, body)
}

func (n *NodeRED) inject(t testing.TB, id string, body []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL()+"/inject/"+id, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("noderedtest: inject %s: %v", id, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("noderedtest: inject %s: HTTP %d: %s", id, resp.StatusCode, msg)
	}
}

// Stop stops Node-RED, its whole process group (node-red may be a wrapper script around node):
// SIGTERM, then SIGKILL after 5 s. Stopping a stopped Node-RED does nothing.
func (n *NodeRED) Stop() {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// start runs Node-RED and waits until its admin API listens and its flows have started, it
// exits, or startTimeout passes.
func (n *NodeRED) start(bin, dir string, env []string) error {
	cmd := exec.Command(bin, "--userDir", dir, "--settings", filepath.Join(dir, "settings.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var serving, flowing bool
	p, err := proctest.Start(cmd, proctest.Spec{
		Name: "node-red", Prefix: fmt.Sprintf("node-red:%d: ", n.port), Out: n.out, Log: &n.log,
		Ready: func(l string) bool {
			serving = serving || strings.Contains(l, "Server now running at")
			flowing = flowing || strings.Contains(l, "Started flows")
			return serving && flowing
		},
		InUse: "port in use", Timeout: startTimeout,
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return nil
}
