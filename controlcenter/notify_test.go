package controlcenter

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/notify"
	"github.com/pirack/pirack/topics"
)

// <data-dir>/notify.json turns notifications on: alerts on the bus reach the webhook, and the
// status and test-send routes are mounted, the test-send for admins from the page only.
func TestNotificationsFromTheDataDir(t *testing.T) {
	bodies := make(chan []byte, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer hook.Close()
	next := func() []byte {
		select {
		case b := <-bodies:
			return b
		case <-time.After(wait):
			t.Fatal("nothing reached the webhook")
		}
		return nil
	}

	cfg := testConfig(t)
	users, err := auth.Open(filepath.Join(cfg.DataDir, UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	users.Cost = bcrypt.MinCost
	if err := users.Add(auth.User{Name: "viewer", Role: auth.RoleViewer}, "viewer-password"); err != nil {
		t.Fatal(err)
	}
	conf := `{"targets": {"hook": {"type": "webhook", "url": "` + hook.URL + `"}}}`
	if err := os.WriteFile(filepath.Join(cfg.DataDir, notify.FileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cc.Parts(), PartNotify) || cc.Notifier() == nil {
		t.Fatalf("parts %v: want %s", cc.Parts(), PartNotify)
	}
	run(t, cc)
	<-cc.Ready()

	v, th, now := 3.0, 1.0, time.Now()
	a := topics.Alert{V: topics.Version, Rule: "load_high", Severity: topics.SeverityWarning, State: topics.AlertRaised,
		TS: now, Since: now, Row: "r1", MAC: "b827eb3f1a2c", Value: &v, Threshold: &th, Unit: topics.UnitLoad,
		Message: "load 3.00 on 1 CPUs, over 1 for 5 min"}
	payload, _ := json.Marshal(a)
	if err := cc.Bus().Publish(t.Context(), bus.Message{Topic: topics.AlertTopic(a.Row, a.MAC, a.Rule), Payload: payload, QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
	var got notify.Notification
	if err := json.Unmarshal(next(), &got); err != nil || got.Event != notify.EventRaised || got.Rule != "load_high" ||
		got.URL != cc.HTTPURL()+"/nodes/b827eb3f1a2c" {
		t.Errorf("webhook got %+v (%v), want the raise with a link to the Pi", got, err)
	}

	do := func(method, path, user, password string, header map[string]string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+cc.HTTPAddr()+path, strings.NewReader(""))
		req.SetBasicAuth(user, password)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/api/notify", "viewer", "viewer-password", nil); code != 200 || !strings.Contains(body, `"name":"hook"`) {
		t.Errorf("GET /api/notify as a viewer: %d %s", code, body)
	}
	if code, _ := do("POST", "/api/notify/test", "viewer", "viewer-password", nil); code != http.StatusForbidden {
		t.Errorf("test-send by a viewer: %d, want 403", code)
	}
	if code, _ := do("POST", "/api/notify/test", "admin", "admin-password", map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("cross-origin test-send: %d, want 403", code)
	}
	if code, body := do("POST", "/api/notify/test", "admin", "admin-password", nil); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Errorf("test-send by an admin: %d %s", code, body)
	}
	if b := next(); !strings.Contains(string(b), `"event":"test"`) || !strings.Contains(string(b), "sent by admin") {
		t.Errorf("test-send body %s", b)
	}
	// Like every admin POST, the test-send is in the audit log, and so is the viewer's refused one.
	code, body := do("GET", "/api/audit", "admin", "admin-password", nil)
	for _, want := range []string{`"action":"notify_test","outcome":"allowed","user":"admin"`, `"action":"notify_test","outcome":"denied","user":"viewer"`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("audit log after the test-sends lacks %s: %d %s", want, code, body)
		}
	}
}
