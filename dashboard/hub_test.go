package dashboard

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Metrics-only changes wait for metricsCoalesce; an urgent change (a press, a status) takes
// everything pending at once.
func TestHubCoalescesMetricsOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(defaultMaxPending)
		c, err := h.subscribe()
		if err != nil {
			t.Fatal(err)
		}
		h.notifyMetrics("a")
		select {
		case <-c.wake:
		default:
			t.Fatal("the first metrics change of a batch does not wake the writer")
		}
		if got := c.due(time.Now()); got != metricsCoalesce {
			t.Fatalf("due after the first metrics change = %v, want %v", got, metricsCoalesce)
		}
		time.Sleep(40 * time.Millisecond)
		h.notifyMetrics("b")
		select {
		case <-c.wake:
			t.Fatal("a second metrics change woke the writer again")
		default:
		}
		if got := c.due(time.Now()); got != metricsCoalesce-40*time.Millisecond {
			t.Fatalf("due 40 ms into the batch = %v, want %v", got, metricsCoalesce-40*time.Millisecond)
		}
		time.Sleep(metricsCoalesce)
		if got := c.due(time.Now()); got != 0 {
			t.Fatalf("due once the batch is old enough = %v, want 0", got)
		}
		if got := c.take(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("take = %q", got)
		}

		h.notifyMetrics("a")
		<-c.wake
		h.notify("b")
		select {
		case <-c.wake:
		default:
			t.Fatal("an urgent change does not wake the writer")
		}
		if got := c.due(time.Now()); got != 0 {
			t.Fatalf("due with an urgent change pending = %v, want 0", got)
		}
		if got := c.take(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("take = %q", got)
		}
		h.notifyMetrics("c")
		if got := c.due(time.Now()); got != metricsCoalesce {
			t.Fatalf("due after take: the urgent mark was not cleared (%v)", got)
		}
	})
}
