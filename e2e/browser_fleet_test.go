package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// The fleet table in Chromium with 1,000 Pis, published through the real broker: every Pi is
// a row; sorting by the hottest, the fullest disk, the busiest and the oldest agent puts the
// right Pi first, and again reverses; typing filters; a Pi's name links to its page.
func TestBrowserFleet1000(t *testing.T) {
	r := newRig(t)
	const n = 1000
	mac := func(i int) string { return fmt.Sprintf("b827eb%06x", 0xf00000+i) }
	for i := range n {
		row := fmt.Sprintf("r%d", i/25+1)
		st := topics.Status{V: 1, State: topics.StateOnline, TS: time.Now(), Session: "s", Hostname: fmt.Sprintf("node-%04d", i),
			IP: fmt.Sprintf("10.1.%d.%d", i/250, i%250), AgentVersion: fmt.Sprintf("1.%d.0", 2+i%5)}
		temp := 40 + float64(i%37)
		load := float64(i%11) / 4
		total, used, free := uint64(32<<30), uint64(8<<30)+uint64(i%50)<<28, uint64(20<<30)
		m := topics.Metrics{V: 1, TS: time.Now(), CPUTempC: &temp, Load1: &load, DiskTotalBytes: &total, DiskUsedBytes: &used, DiskFreeBytes: &free}
		switch i {
		case 777: // the hottest, by an NVMe sensor hotter than its CPU
			m.Temps = []topics.Temp{{Sensor: "cpu-thermal", C: 60}, {Sensor: "nvme Composite", C: 91.5}}
		case 321: // the fullest, by a USB SSD, not its root
			m.Filesystems = []topics.Filesystem{{Mount: "/", TotalBytes: total, UsedBytes: 1 << 30, FreeBytes: 30 << 30},
				{Mount: "/mnt/ssd", TotalBytes: 500 << 30, UsedBytes: 490 << 30, FreeBytes: 5 << 30}}
		case 42: // the busiest
			busy := 9.0
			m.Load1 = &busy
		case 555: // the oldest agent
			st.AgentVersion = "0.9.1"
		}
		for _, x := range []struct {
			topic string
			v     topics.Validator
		}{{topics.StatusTopic(row, mac(i)), st}, {topics.MetricsTopic(row, mac(i)), m}} {
			b, err := topics.Encode(x.v)
			if err != nil {
				t.Fatal(err)
			}
			r.publish(t, bus.Message{Topic: x.topic, Payload: b, QoS: 1, Retained: true})
		}
	}
	r.awaitNode(t, mac(n-1), "the last Pi", func(x dashboard.Node) bool { return x.Metrics != nil })

	ctx := browser(t)
	logIn(t, ctx, r.url)
	first := `document.querySelector("#fleet tbody tr:not([hidden]) a").textContent`
	step(t, ctx, "a row per Pi", waitLimit,
		chromedp.Navigate(r.url+"/fleet"),
		pollTrue(`document.querySelectorAll("#fleet tbody tr").length === 1000 && document.getElementById("fleet-count").textContent === "1000"`),
	)
	for _, c := range []struct {
		column, want string
	}{
		{"temp", "node-0777"},
		{"disk", "node-0321"},
		{"load", "node-0042"},
		{"version", "node-0555"},
	} {
		var got, sorted string
		step(t, ctx, "sort by "+c.column, waitLimit,
			chromedp.Click(`#fleet th button[data-sort="`+c.column+`"]`, chromedp.ByQuery),
			pollTrue(`document.body.dataset.sorted.startsWith("`+c.column+`")`),
			chromedp.Evaluate(first, &got),
			chromedp.Evaluate(`document.body.dataset.sorted`, &sorted),
		)
		if got != c.want {
			t.Errorf("sorted by %s (%s): first %q, want %q", c.column, sorted, got, c.want)
		}
		step(t, ctx, "reverse "+c.column, waitLimit,
			chromedp.Click(`#fleet th button[data-sort="`+c.column+`"]`, chromedp.ByQuery),
			pollTrue(`document.body.dataset.sorted !== "`+sorted+`"`),
			chromedp.Evaluate(first, &got),
		)
		if got == c.want {
			t.Errorf("sorted by %s reversed: %q still first", c.column, got)
		}
	}
	var cells []string
	step(t, ctx, "the hottest's cells", waitLimit,
		chromedp.Evaluate(`[...document.querySelector('#fleet tr[data-mac="`+mac(777)+`"]').children].map((td) => td.textContent)`, &cells),
	)
	if len(cells) != 13 || cells[5] != "91.5 °C" || !strings.HasPrefix(cells[1], "r32") {
		t.Errorf("node-0777's row: %q", cells)
	}
	var shown int
	var href string
	step(t, ctx, "filter", waitLimit,
		chromedp.SendKeys(`#fleet-filters input[name="q"]`, "node-00", chromedp.ByQuery),
		pollTrue(`document.querySelectorAll("#fleet tbody tr:not([hidden])").length === 100`),
		chromedp.Evaluate(`document.querySelectorAll("#fleet tbody tr:not([hidden])").length`, &shown),
		chromedp.AttributeValue(`#fleet tr[data-mac="`+mac(42)+`"] a`, "href", &href, nil, chromedp.ByQuery),
	)
	if href != "/nodes/"+mac(42) {
		t.Errorf("node-0042 links to %q", href)
	}
	step(t, ctx, "compare the shown Pis", waitLimit,
		chromedp.Click(`#fleet-compare`, chromedp.ByQuery),
		chromedp.WaitVisible(`body.compare-page .compare-chart`, chromedp.ByQuery),
		pollTrue(`location.pathname === "/compare" && !!window.pirackCompare && window.pirackCompare.pis.length === 24 &&
			window.pirackCompare.pis.every((p) => p.name.startsWith("node-00"))`),
	)
}

// Compare in Chromium: three Pis' load over the last hour on one chart, a line each, named,
// with each one's average in the caption; a row's Pis by ?row=.
func TestBrowserCompare(t *testing.T) {
	r := newRig(t)
	macs := []string{"b827eb00c1a1", "b827eb00c1a2", "b827eb00c1a3"}
	h := r.cc.History()
	now := time.Now()
	for k, m := range macs {
		row := "r1"
		if k == 2 {
			row = "r2"
		}
		st, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: now, Session: "s", Hostname: fmt.Sprintf("cmp-%d", k)})
		r.publish(t, bus.Message{Topic: topics.StatusTopic(row, m), Payload: st, QoS: 1, Retained: true})
		for i := 120; i > 0; i-- {
			load := float64(k + 1)
			h.Add(m, topics.Metrics{V: 1, TS: now.Add(-time.Duration(i) * 20 * time.Second), Load1: &load})
		}
	}
	if err := h.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.awaitNode(t, macs[2], "known", func(dashboard.Node) bool { return true })
	ctx := browser(t)
	logIn(t, ctx, r.url)
	var caption string
	var labels []string
	step(t, ctx, "three Pis on one chart", waitLimit,
		chromedp.Navigate(r.url+"/compare?metric=load_1&macs="+strings.Join(macs, ",")),
		pollTrue(`document.body.dataset.compare === "load_1 1h" && window.pirackCompare.u.series.length === 4`),
		chromedp.Evaluate(`window.pirackCompare.u.series.slice(1).map((s) => s.label)`, &labels),
		chromedp.Text(`.compare-chart [data-field="caption"]`, &caption, chromedp.ByQuery),
	)
	if strings.Join(labels, ",") != "cmp-0,cmp-1,cmp-2" ||
		caption != "cmp-0 average 1.00, max 1.00; cmp-1 average 2.00, max 2.00; cmp-2 average 3.00, max 3.00" {
		t.Errorf("lines %q, caption %q", labels, caption)
	}
	var row string
	step(t, ctx, "a row", waitLimit,
		chromedp.Navigate(r.url+"/compare?row=r1"),
		pollTrue(`window.pirackCompare.u && window.pirackCompare.u.series.length === 3`),
		chromedp.Text(`#compare-what`, &row, chromedp.ByQuery),
	)
	if row != "row r1" {
		t.Errorf("compare row r1 says %q", row)
	}
}
