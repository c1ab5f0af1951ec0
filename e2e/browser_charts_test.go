package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/pirack/pirack/bus"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/topics"
)

// The Pi page's charts in Chromium, over an hour of history with known values: a chart for
// each number the Pi sends (its cores, sensors, interface, disk, filesystems); hovering shows
// the value under the cursor in the legend, in every chart at once; the caption agrees with
// the points the API gives for what is shown; dragging zooms every chart to the span, with
// finer points; a range button and Reset zoom bring the range back.
func TestBrowserCharts(t *testing.T) {
	r := newRig(t)
	p := r.startPi(t, "b827eb00e0a1", "r1", r.mqttAddr)
	r.awaitNode(t, p.mac, "host figures", func(n dashboard.Node) bool {
		return n.Metrics != nil && len(n.Metrics.Temps) > 0 && len(n.Metrics.Net) > 0 && len(n.Metrics.CPUPercentCores) > 0
	})
	p.stop()                           // its last figures stay on the rack; its history stops moving under the test
	time.Sleep(200 * time.Millisecond) // its last samples, still in the broker, reach the history
	// An hour of load, one sample every 10 s: a saw from 0 to 3.5.
	h := r.cc.History()
	now := time.Now()
	for i := 360; i > 0; i-- {
		load := float64(i%8) / 2
		h.Add(p.mac, topics.Metrics{V: 1, TS: now.Add(-time.Duration(i) * 10 * time.Second), Load1: &load})
	}
	if err := h.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	ctx := browser(t)
	logIn(t, ctx, r.url)
	step(t, ctx, "the charts load", waitLimit,
		chromedp.Navigate(r.url+"/nodes/"+p.mac),
		pollTrue(`document.body.dataset.charts === "ready"`),
	)
	var metrics []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`[...document.querySelectorAll("figure.chart")].map((f) => f.dataset.metric)`, &metrics)); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(metrics, " ")
	for _, want := range []string{"load_1", "cpu_core_percent@3", "temp_c@cpu-thermal", "net_rx_bytes_per_s@eth0", "disk_write_bytes_per_s@mmcblk0", "fs_used_percent@/", "mem_cached_bytes", "row_watts"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no chart of %s among %q", want, metrics)
		}
	}

	// The caption of the load chart against the points the API gives for the chart's request.
	// What is shown is what lies in the chart's x range: the first bucket, aligned to the
	// bucket width, may start before it.
	var shown struct {
		Caption  string
		URL      string
		Min, Max float64
	}
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => { const c = window.pirackCharts[0];
		return {caption: c.fig.dataset.caption, url: c.urls[0], min: c.u.scales.x.min, max: c.u.scales.x.max}; })()`, &shown)); err != nil {
		t.Fatal(err)
	}
	var resp dashboard.SeriesResponse
	if code := r.getJSON(t, shown.URL, &resp); code != 200 || resp.Metric != "load_1" || len(resp.Points) < 30 {
		t.Fatalf("%s: %d, %d points of %q", shown.URL, code, len(resp.Points), resp.Metric)
	}
	lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, 0
	for _, pt := range resp.Points {
		if at := float64(pt.T.UnixMilli()) / 1000; at < shown.Min || at > shown.Max {
			continue
		}
		lo, hi, sum, n = min(lo, pt.Min), max(hi, pt.Max), sum+pt.Avg, n+1
	}
	want := fmt.Sprintf("min %s, average %s, max %s", jsFmt(t, ctx, lo, ""), jsFmt(t, ctx, sum/float64(n), ""), jsFmt(t, ctx, hi, ""))
	if !strings.HasPrefix(shown.Caption, "Over the last hour: ") || !strings.HasSuffix(shown.Caption, want) {
		t.Errorf("caption %q, want it to end with %q (from the API's %d points)", shown.Caption, want, len(resp.Points))
	}

	// Hover the middle of the load chart: its legend shows the value at the cursor, and the
	// other charts' cursors follow.
	var box []float64
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => { const r = window.pirackCharts[0].u.over.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`, &box)); err != nil {
		t.Fatal(err)
	}
	x, y := box[0]+box[2]*0.5, box[1]+box[3]*0.5
	var hover struct {
		Legend, Want string
		Idx          *int
		Synced       bool
	}
	step(t, ctx, "hover", waitLimit,
		chromedp.MouseEvent(input.MouseMoved, x, y),
		pollTrue(`window.pirackCharts[0].u.cursor.idx != null`),
		chromedp.Evaluate(`(() => { const c = window.pirackCharts[0], i = c.u.cursor.idx;
			return {legend: c.fig.querySelector(".u-legend .u-series:nth-child(2) .u-value").textContent,
				want: pirackFmt.value(c.u.data[1][i], ""), idx: i, synced: window.pirackCharts[1].u.cursor.left > 0}; })()`, &hover),
	)
	if hover.Idx == nil || hover.Legend == "" || hover.Legend != hover.Want || !hover.Synced {
		t.Errorf("hover: legend %q, want %q (index %v, other chart's cursor following %v)", hover.Legend, hover.Want, hover.Idx, hover.Synced)
	}
	t.Logf("caption %q; hover legend %q; %d charts", shown.Caption, hover.Legend, len(metrics))
	if *updateScreenshot {
		var png []byte
		step(t, ctx, "screenshot", 10*time.Second, chromedp.EmulateViewport(1400, 900), chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile("../docs/img/pi-charts.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Drag from a quarter to three quarters across: every chart zooms to that half hour. The
	// zoom's finer points are held back until the 7-day range below has loaded: answers that
	// come after a newer load began must not be drawn over it (a slow link, a quick click).
	slow := holdRequests(t, ctx, "*/series?*", func(u string) bool {
		q, err := url.Parse(u)
		if err != nil {
			return false
		}
		from, _ := time.Parse(time.RFC3339, q.Query().Get("from"))
		to, _ := time.Parse(time.RFC3339, q.Query().Get("to"))
		return to.Sub(from) < 50*time.Minute
	})
	var zoomed struct{ Min, Max float64 }
	step(t, ctx, "zoom", waitLimit,
		chromedp.Evaluate(`performance.setResourceTimingBufferSize(100000)`, nil), // the answers are counted below
		chromedp.MouseEvent(input.MousePressed, box[0]+box[2]*0.25, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.MouseMoved, box[0]+box[2]*0.5, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.MouseMoved, box[0]+box[2]*0.75, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.MouseReleased, box[0]+box[2]*0.75, y, chromedp.ButtonLeft),
		pollTrue(`document.body.dataset.zoom === "on" && !document.getElementById("zoom-reset").hidden`),
		pollTrue(`window.pirackCharts.every((c) => c.u.scales.x.max - c.u.scales.x.min < 2400) && window.pirackCharts[0].fig.dataset.caption.startsWith("Over from ")`),
		chromedp.Evaluate(`({min: window.pirackCharts[5].u.scales.x.min, max: window.pirackCharts[5].u.scales.x.max})`, &zoomed),
	)
	span := zoomed.Max - zoomed.Min
	t.Logf("zoomed to %.0f s", span)
	if span < 1500 || span > 2100 {
		t.Errorf("zoomed to %.0f s, want about half of the hour", span)
	}

	var wide float64
	step(t, ctx, "7 d, then back", waitLimit,
		chromedp.Click(`button[data-range="7d"]`, chromedp.ByQuery),
		pollTrue(`document.body.dataset.zoom === undefined && window.pirackCharts[0].u.scales.x.max - window.pirackCharts[0].u.scales.x.min > 6.9 * 86400`),
		pollTrue(`window.pirackCharts[0].fig.dataset.caption.startsWith("Over the last 7 days: ")`),
		chromedp.Evaluate(`window.pirackCharts[0].u.scales.x.max - window.pirackCharts[0].u.scales.x.min`, &wide),
	)
	if wide > 7*86400+60 {
		t.Errorf("7 d shows %.0f s", wide)
	}

	// Now the zoom's answers arrive: the charts keep showing the 7 days.
	const seriesDone = `performance.getEntriesByType("resource").filter((e) => e.name.includes("/series?")).length`
	var before int
	step(t, ctx, "count the answers", waitLimit, chromedp.Evaluate(seriesDone, &before))
	var lines int
	step(t, ctx, "count the lines", waitLimit, chromedp.Evaluate(`window.pirackCharts.reduce((n, c) => n + c.spec.lines.length, 0)`, &lines))
	held := slow.release(t)
	if held != lines {
		t.Fatalf("the zoom asked for %d series, want one load: %d (a series per line of each chart)", held, lines)
	}
	step(t, ctx, "the zoom's late answers", waitLimit,
		pollTrue(fmt.Sprintf("%s >= %d", seriesDone, before+held)),
		chromedp.Sleep(200*time.Millisecond), // the page's handlers after the last answer
	)
	var after float64
	var caption string
	step(t, ctx, "7 d still", waitLimit, chromedp.Evaluate(`window.pirackCharts.map((c) => c.u.scales.x.max - c.u.scales.x.min).reduce((a, b) => Math.min(a, b))`, &after),
		chromedp.Evaluate(`window.pirackCharts[0].fig.dataset.caption`, &caption))
	if after < 6.9*86400 || !strings.HasPrefix(caption, "Over the last 7 days: ") {
		t.Errorf("after the zoom's %d late answers, a chart shows %.0f s, caption %q: want the 7 days", held, after, caption)
	}
}

// jsFmt is the page's own formatter for v in unit.
func jsFmt(t *testing.T, ctx context.Context, v float64, unit string) string {
	t.Helper()
	b, _ := json.Marshal(v)
	var s string
	if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`pirackFmt.value(%s, %q)`, b, unit), &s)); err != nil {
		t.Fatal(err)
	}
	return s
}

// The same value reads the same on a tile's first render and after a live update: one
// formatter writes both (static/fmt.js), whatever the value went through in between.
func TestBrowserSameTextFirstAndLive(t *testing.T) {
	r := newRig(t)
	const mac, row = "b827eb00e0b1", "r1"
	send := func(load, temp float64, avail uint64) {
		t.Helper()
		st, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: time.Now(), Session: "s", Hostname: "same"})
		total, dtotal, dfree, dused := uint64(4<<30), uint64(32<<30), uint64(20<<30), uint64(11<<30)
		cpus := 4
		m, err := topics.Encode(topics.Metrics{V: 1, TS: time.Now(), Load1: &load, CPUCount: &cpus, CPUTempC: &temp, MemTotalBytes: &total, MemAvailableBytes: &avail,
			DiskTotalBytes: &dtotal, DiskFreeBytes: &dfree, DiskUsedBytes: &dused})
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, bus.Message{Topic: topics.StatusTopic(row, mac), Payload: st, QoS: 1, Retained: true})
		r.publish(t, bus.Message{Topic: topics.MetricsTopic(row, mac), Payload: m, QoS: 1, Retained: true})
	}
	send(0.4567, 48.25, 3<<30+123456789)
	r.awaitNode(t, mac, "metrics", func(n dashboard.Node) bool { return n.Metrics != nil })
	ctx := browser(t)
	logIn(t, ctx, r.url)
	texts := `[...document.querySelectorAll('` + tileSel(mac) + ` dd[data-field]')].map((d) => d.dataset.field + "=" + d.textContent).join("|")`
	var first, changed, again string
	step(t, ctx, "first render", waitLimit,
		pollTrue(`document.querySelector('`+tileSel(mac)+` [data-field="load"]').textContent !== ""`),
		chromedp.Evaluate(texts, &first),
	)
	send(2.5, 71.0, 1<<30)
	step(t, ctx, "a live update", waitLimit,
		pollTrue(`document.querySelector('`+tileSel(mac)+` [data-field="load"]').textContent.startsWith("2.50")`),
		chromedp.Evaluate(texts, &changed),
	)
	send(0.4567, 48.25, 3<<30+123456789)
	step(t, ctx, "the first values again", waitLimit,
		pollTrue(`document.querySelector('`+tileSel(mac)+` [data-field="load"]').textContent.startsWith("0.46")`),
		chromedp.Evaluate(texts, &again),
	)
	if first != again || first == changed || !strings.Contains(first, "load=0.46 / 4 cores") || !strings.Contains(first, "temp=48.3 °C") ||
		!strings.Contains(first, "mem=3.1 GiB free of 4.0 GiB") || !strings.Contains(first, "disk=35% used of 32.0 GiB") {
		t.Errorf("first render %q\nlive update with the same values %q\n(in between %q)", first, again, changed)
	}
}

// A sensor that reports its limit (an NVMe drive's max_c) has it drawn on the Temperatures
// chart as a dashed line inside the y range, and named in the caption.
func TestBrowserSensorLimit(t *testing.T) {
	r := newRig(t)
	const mac, row = "b827eb00e0c9", "r1"
	st, _ := topics.Encode(topics.Status{V: 1, State: topics.StateOnline, TS: time.Now(), Session: "s", Hostname: "nvme-pi"})
	r.publish(t, bus.Message{Topic: topics.StatusTopic(row, mac), Payload: st, QoS: 1, Retained: true})
	limit := 70.0
	for i := range 3 {
		m, err := topics.Encode(topics.Metrics{V: 1, Seq: uint64(i + 1), TS: time.Now(), Temps: []topics.Temp{
			{Sensor: "cpu-thermal", C: 48 + float64(i)}, {Sensor: "nvme Composite", C: 41 + float64(i), MaxC: &limit}}})
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, bus.Message{Topic: topics.MetricsTopic(row, mac), Payload: m, QoS: 1})
		time.Sleep(20 * time.Millisecond)
	}
	r.awaitNode(t, mac, "temps", func(n dashboard.Node) bool { return n.Metrics != nil && len(n.Metrics.Temps) == 2 })
	if err := r.cc.History().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	logIn(t, ctx, r.url)
	var got struct {
		Caption string
		YMax    float64
		Red     bool
	}
	step(t, ctx, "the temperatures chart", waitLimit,
		chromedp.Navigate(r.url+"/nodes/"+mac),
		pollTrue(`document.body.dataset.charts === "ready" && window.pirackCharts.some((c) => c.spec.title === "Temperatures" && c.fig.dataset.caption)`),
		chromedp.Evaluate(`(() => {
			const c = window.pirackCharts.find((c) => c.spec.title === "Temperatures"), u = c.u;
			const y = Math.round(u.valToPos(70, "y", true)), ctx = u.ctx;
			let red = false; // a dash of the limit line somewhere along it
			for (let x = u.bbox.left + 2; x < u.bbox.left + u.bbox.width && !red; x += 3) {
				for (let dy = -1; dy <= 1; dy++) {
					const [r, g, b] = ctx.getImageData(x, y + dy, 1, 1).data;
					if (r > 180 && r > g + 60 && r > b + 60) { red = true; break; }
				}
			}
			return {caption: c.fig.dataset.caption, ymax: u.scales.y.max, red};
		})()`, &got),
	)
	want := "(limits: nvme Composite " + jsFmt(t, ctx, 70, "\u00b0C") + ")"
	if !strings.HasSuffix(got.Caption, want) || got.YMax < 70 || !got.Red {
		t.Errorf("Temperatures chart: caption %q (want it to end with %q), y up to %v, limit line drawn %v", got.Caption, want, got.YMax, got.Red)
	}
}
