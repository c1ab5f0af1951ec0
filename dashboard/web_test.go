package dashboard

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

const hostile = `<img src=x onerror=alert(1)>`

func TestHostileHostnameIsEscaped(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online(hostile, "s"))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))

	c := f.login(t, "admin", "admin-pw")
	page := f.do(t, "GET", "/", "", withCookie(c)).Body.String()
	if strings.Contains(page, "<img") {
		t.Errorf("GET / contains a raw <img> tag from a hostname:\n%s", page)
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("GET / does not show the hostname as text:\n%s", page)
	}

	w := f.do(t, "GET", "/api/nodes", "", withCookie(c))
	if strings.Contains(w.Body.String(), "<img") {
		t.Errorf("/api/nodes carries a raw tag: %s", w.Body)
	}
	var nodes []Node
	if err := json.Unmarshal(w.Body.Bytes(), &nodes); err != nil || len(nodes) != 1 || nodes[0].Hostname != hostile {
		t.Errorf("/api/nodes hostname is not the plain string %q: %s (%v)", hostile, w.Body, err)
	}
}

func TestRackPage(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	f.publish(t, topics.MetricsTopic(rowA, macA), metrics(1, 0.42))
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	f.publish(t, topics.StatusTopic(rowB, macB), offline(""))

	admin := f.do(t, "GET", "/", "", withCookie(f.login(t, "admin", "admin-pw")))
	if admin.Code != http.StatusOK || !strings.HasPrefix(admin.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", admin.Code, admin.Header().Get("Content-Type"))
	}
	page := admin.Body.String()
	for _, want := range []string{
		`data-row="r1"`, `data-row="r2"`, // grouped by row
		"pi-a", "b8:27:eb:3f:1a:2c", // hostname, MAC
		">online<", ">offline<", // presence as text, not only colour
		`<dd data-field="load"></dd>`,                    // numbers are written by static/fmt.js alone, from the live stream
		`data-selected="true"`, "selected (short press)", // the pressed Pi
		`data-action="blink"`, `data-action="clear"`,
		`<span id="online-count">1</span> of <span id="total-count">2</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("rack page lacks %q", want)
		}
	}

	viewer := f.do(t, "GET", "/", "", withCookie(f.login(t, "viewer", "viewer-pw"))).Body.String()
	if strings.Contains(viewer, `data-action="blink"`) {
		t.Error("a viewer is offered the Locate button")
	}
}

func TestEmptyRackPage(t *testing.T) {
	f := newFixture(t)
	page := f.do(t, "GET", "/", "", basic("viewer", "viewer-pw")).Body.String()
	if !strings.Contains(page, "No Pi has reported yet") || !strings.Contains(page, `id="tile-template"`) {
		t.Errorf("empty rack page:\n%s", page)
	}
}

func TestNoInlineScripts(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	pages := map[string]string{
		"/":      f.do(t, "GET", "/", "", basic("admin", "admin-pw")).Body.String(),
		"/login": f.do(t, "GET", "/login", "").Body.String(),
	}
	scriptTag := regexp.MustCompile(`<script[^>]*>`)
	handler := regexp.MustCompile(`\son[a-z]+=`)
	for path, page := range pages {
		for _, tag := range scriptTag.FindAllString(page, -1) {
			if !strings.Contains(tag, `src="/static/`) {
				t.Errorf("%s: inline or foreign script %s", path, tag)
			}
		}
		if handler.MatchString(page) {
			t.Errorf("%s: inline event handler attribute", path)
		}
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
			t.Errorf("%s: refers to another origin", path)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	f := newFixture(t)
	for path, ctype := range map[string]string{
		"/static/app.js":      "text/javascript",
		"/static/style.css":   "text/css",
		"/static/favicon.svg": "image/svg+xml",
	} {
		w := f.do(t, "GET", path, "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	// The script must not write data as HTML.
	js := f.do(t, "GET", "/static/app.js", "").Body.String()
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "outerHTML") || strings.Contains(js, "insertAdjacentHTML") {
		t.Error("app.js writes HTML; use textContent")
	}
}

func TestLoginPageRedirectsWhenSignedIn(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "viewer", "viewer-pw")
	if w := f.do(t, "GET", "/login", "", withCookie(c)); w.Code != http.StatusSeeOther {
		t.Errorf("GET /login with a session: %d, want 303", w.Code)
	}
	if w := f.do(t, "GET", "/login", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="password"`) {
		t.Errorf("GET /login: %d", w.Code)
	}
}

func TestDisplayMAC(t *testing.T) {
	if got := displayMAC(macA); got != "b8:27:eb:3f:1a:2c" {
		t.Errorf("displayMAC = %q", got)
	}
}
