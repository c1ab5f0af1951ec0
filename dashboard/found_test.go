package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// A press while the Pi blinks for a Locate marks it found: the node says who asked, when it
// was found and how long that took, and the tile says so.
func TestLocateThenFound(t *testing.T) {
	f := newFixture(t)
	f.publish(t, topics.StatusTopic(rowA, macA), online("pi-a", "s"))
	c := f.login(t, "admin", "admin-pw")
	if w := f.do(t, "POST", "/api/nodes/"+macA+"/blink", "", withCookie(c)); w.Code != http.StatusAccepted {
		t.Fatalf("blink: %d %s", w.Code, w.Body)
	}
	n, _ := f.rack.node(macA)
	if n.Locate == nil || n.Locate.By != "admin" || !n.Locate.At.Equal(t0) || !n.Locate.FoundAt.IsZero() {
		t.Fatalf("after Locate: %+v, want by admin at t0, not found", n.Locate)
	}

	// A press without found (the operator pressed before the blink, say) changes nothing.
	f.clock.Advance(10 * time.Second)
	f.publish(t, topics.ButtonTopic(rowA, macA), press(1))
	if n, _ := f.rack.node(macA); !n.Locate.FoundAt.IsZero() {
		t.Fatalf("a press without found marked the Pi found: %+v", n.Locate)
	}

	f.clock.Advance(32 * time.Second)
	found := press(2)
	found.Found = true
	f.publish(t, topics.ButtonTopic(rowA, macA), found)
	n, _ = f.rack.node(macA)
	if n.Locate == nil || !n.Locate.FoundAt.Equal(t0.Add(42*time.Second)) || n.Locate.FoundAfterS != 42 {
		t.Fatalf("after the found press: %+v, want found 42 s after the Locate", n.Locate)
	}
	page := f.do(t, "GET", "/", "", withCookie(c)).Body.String()
	if !strings.Contains(page, "found 42s after admin&#39;s Locate") {
		t.Errorf("the tile does not say the Pi was found and how long it took")
	}
}
