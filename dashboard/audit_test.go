package dashboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pirack/pirack/internal/testlog"
	"github.com/pirack/pirack/topics"
)

// readAudit decodes every line of the audit file, failing on a line that is not an entry.
func readAudit(t *testing.T, dir string) []AuditEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e AuditEntry
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func auditFixture(t *testing.T) (*fixture, string, *testlog.Buffer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	logs := &testlog.Buffer{}
	f := newFixture(t, func(c *Config) {
		c.AuditDir = dir
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	t.Cleanup(func() { f.srv.Close() })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	return f, dir, logs
}

func TestAuditRecordsWhoWhatWhenWhere(t *testing.T) {
	f, dir, logs := auditFixture(t)

	f.postLogin(t, "admin", "guess", fromIP("192.0.2.1"))
	c := f.login(t, "admin", "admin-pw")
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", `{"count":3}`, withCookie(c), fromIP("192.0.2.2")); w.Code != http.StatusAccepted {
		t.Fatalf("blink: %d %s", w.Code, w.Body)
	}
	f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw"), fromIP("192.0.2.3"))
	f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", basic("viewer", "viewer-pw"), fromIP("192.0.2.4"))
	f.do(t, "GET", "/api/nodes", "", basic("viewer", "nope"), fromIP("192.0.2.5"))
	f.postLogin(t, "robot", "robot-pw", fromIP("192.0.2.6"))
	f.do(t, "POST", "/logout", "", withCookie(c), fromIP("192.0.2.7"))

	type want struct{ action, outcome, user, role, via, remote, mac string }
	wants := []want{
		{AuditLogin, AuditDenied, "admin", "", "form", "192.0.2.1", ""},
		{AuditLogin, AuditAllowed, "admin", "admin", "form", "192.0.2.1", ""}, // httptest's own address
		{AuditBlink, AuditAllowed, "admin", "admin", "session", "192.0.2.2", macA},
		{AuditClear, AuditAllowed, "admin", "admin", "basic", "192.0.2.3", macA},
		{AuditBlink, AuditDenied, "viewer", "viewer", "basic", "192.0.2.4", macA},
		{AuditLogin, AuditDenied, "viewer", "", "basic", "192.0.2.5", ""},
		{AuditLogin, AuditDenied, "robot", "automation", "form", "192.0.2.6", ""},
		{AuditLogout, AuditAllowed, "admin", "admin", "session", "192.0.2.7", ""},
	}
	got := readAudit(t, dir)
	if len(got) != len(wants) {
		t.Fatalf("%d audit entries, want %d: %+v", len(got), len(wants), got)
	}
	ids := map[string]bool{}
	for i, w := range wants {
		e := got[i]
		g := want{e.Action, e.Outcome, e.User, e.Role, e.Via, e.Remote, e.MAC}
		if g != w {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if !e.Time.Equal(t0) || ids[e.ID] || len(e.ID) != 16 {
			t.Errorf("entry %d: time %v, id %q (unique, 16 hex digits)", i, e.Time, e.ID)
		}
		ids[e.ID] = true
	}
	blink := got[2].Params
	if blink["count"] != 3.0 || blink["period_ms"] != float64(topics.DefaultBlinkPeriodMS) || blink["action"] != "blink" ||
		blink["expires_at"] != t0.Add(DefaultCommandTTL).Format(time.RFC3339) {
		t.Errorf("blink params = %v", blink)
	}
	if got[4].Reason == "" || got[5].Reason == "" {
		t.Errorf("denials without a reason: %+v, %+v", got[4], got[5])
	}

	// The same entries as structured log lines.
	for _, want := range []string{
		`msg=audit component=audit id=` + got[2].ID + ` action=blink outcome=allowed user=admin role=admin via=session remote=192.0.2.2 mac=` + macA + ` params.action=blink params.count=3`,
		`action=login outcome=denied user=admin role="" via=form remote=192.0.2.1`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	fi, err := os.Stat(filepath.Join(dir, AuditFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v (%v), want 0600", fi.Mode(), err)
	}
}

func TestAuditAPI(t *testing.T) {
	f, _, _ := auditFixture(t)
	for range 3 {
		f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw"))
	}
	f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", basic("admin", "admin-pw"))

	w := f.do(t, "GET", "/api/audit?limit=2", "", basic("admin", "admin-pw"))
	var entries []AuditEntry
	if err := json.Unmarshal(w.Body.Bytes(), &entries); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /api/audit: %d %s (%v)", w.Code, w.Body, err)
	}
	if len(entries) != 2 || entries[0].Action != AuditClear || entries[1].Action != AuditBlink {
		t.Errorf("limit=2: %+v, want the last clear then the blink", entries)
	}
	w = f.do(t, "GET", "/api/audit", "", basic("admin", "admin-pw"))
	if err := json.Unmarshal(w.Body.Bytes(), &entries); err != nil || len(entries) != 4 {
		t.Errorf("default limit: %d entries (%v), want all 4", len(entries), err)
	}

	if w := f.do(t, "GET", "/api/audit", "", basic("viewer", "viewer-pw")); w.Code != http.StatusForbidden {
		t.Errorf("viewer reads the audit log: %d, want 403", w.Code)
	}
	for _, bad := range []string{"0", "-1", "x", fmt.Sprint(maxAuditLimit + 1)} {
		if w := f.do(t, "GET", "/api/audit?limit="+bad, "", basic("admin", "admin-pw")); w.Code != http.StatusBadRequest {
			t.Errorf("limit=%s: %d, want 400", bad, w.Code)
		}
	}
}

func TestAuditLogOnly(t *testing.T) {
	logs := &testlog.Buffer{}
	f := newFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", basic("admin", "admin-pw")); w.Code != http.StatusAccepted {
		t.Fatalf("blink without an audit directory: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "msg=audit") || !strings.Contains(logs.String(), "action=blink outcome=allowed user=admin") {
		t.Errorf("no audit log line:\n%s", logs)
	}
	w := f.do(t, "GET", "/api/audit", "", basic("admin", "admin-pw"))
	if w.Code != http.StatusNotFound || !strings.Contains(jsonError(t, w), "audit directory") {
		t.Errorf("GET /api/audit without a file: %d %s", w.Code, w.Body)
	}
}

// failingAuditor is an audit log whose every Append fails, like one on a full disk; it reads
// from the real log it replaces.
type failingAuditor struct{ auditor }

func (failingAuditor) Append(AuditEntry) error { return syscall.ENOSPC }

// TestAuditFailureRefusesCommands: a command that cannot be audited is not carried out, and
// says why; logging out still works. (How the log itself fails, and cleans up after a partial
// write, is package audit's test.)
func TestAuditFailureRefusesCommands(t *testing.T) {
	f, dir, _ := auditFixture(t)
	c := f.login(t, "admin", "admin-pw")
	before := readAudit(t, dir)
	f.srv.audit = failingAuditor{f.srv.audit}
	published := len(f.bus.Published())

	w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(c))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(jsonError(t, w), "audit log") {
		t.Errorf("blink: %d %s, want 503 naming the audit log", w.Code, w.Body)
	}
	if len(f.bus.Published()) != published {
		t.Error("an unaudited LED command was published")
	}
	w = f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", withCookie(c))
	if w.Code != http.StatusServiceUnavailable || !only(t, f.rack.Nodes()).Selected {
		t.Errorf("clear: %d, selected %v; want 503 and the selection kept", w.Code, only(t, f.rack.Nodes()).Selected)
	}
	w = f.postLogin(t, "viewer", "viewer-pw")
	if w.Code != http.StatusServiceUnavailable || len(w.Result().Cookies()) != 0 {
		t.Errorf("login: %d with cookies %v; want 503 and no session", w.Code, w.Result().Cookies())
	}
	if w := f.do(t, "POST", "/logout", "", withCookie(c)); w.Code != http.StatusSeeOther {
		t.Errorf("logout: %d, want 303", w.Code)
	}
	if got := f.rack.Stats().AuditErrors; got != 4 {
		t.Errorf("AuditErrors = %d, want 4", got)
	}
	if after := readAudit(t, dir); len(after) != len(before) {
		t.Errorf("audit file changed: %d entries, had %d", len(after), len(before))
	}
}

func TestAuditFileIsAppendOnlyAndPrivate(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		f := newFixture(t, func(c *Config) { c.AuditDir = dir })
		f.login(t, "admin", "admin-pw")
		f.srv.Close()
		if n := len(readAudit(t, dir)); n != i+1 {
			t.Errorf("after start %d: %d entries, want %d (appended, not truncated)", i+1, n, i+1)
		}
	}
	if err := os.Chmod(filepath.Join(dir, AuditFile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Bus: newFixture(t).bus, Auth: testUsers, AuditDir: dir})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("New with a world-readable audit log: %v, want a refusal naming chmod 600", err)
	}
}

func TestAuditClosed(t *testing.T) {
	f, _, _ := auditFixture(t)
	f.srv.Close()
	f.srv.Close() // idempotent
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw")); w.Code != http.StatusServiceUnavailable {
		t.Errorf("command after Close: %d, want 503", w.Code)
	}
}

// TestAuditAPIAfterRotation: GET /api/audit reads through rotated files.
func TestAuditAPIAfterRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	f := newFixture(t, func(c *Config) {
		c.AuditDir = dir
		c.AuditMaxBytes = 1 // every entry in a file of its own
	})
	t.Cleanup(func() { f.srv.Close() })
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	for range 3 {
		f.do(t, "POST", "/api/nodes/"+macA+"/clear", "", basic("admin", "admin-pw"))
	}
	f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", basic("admin", "admin-pw"))
	if _, err := os.Stat(filepath.Join(dir, AuditFile+".3")); err != nil {
		t.Fatalf("not rotated: %v (files %v)", err, dir)
	}

	w := f.do(t, "GET", "/api/audit?limit=2", "", basic("admin", "admin-pw"))
	var entries []AuditEntry
	if err := json.Unmarshal(w.Body.Bytes(), &entries); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /api/audit: %d %s (%v)", w.Code, w.Body, err)
	}
	if len(entries) != 2 || entries[0].Action != AuditClear || entries[1].Action != AuditBlink {
		t.Errorf("limit=2: %+v, want the last clear then the blink", entries)
	}
}
