// pirack Control Center, Pi detail page: a chart for every number the Pi sends (uPlot, vendored
// under /static/vendor/uplot), from /api/nodes/{mac}/series, and the event log from
// /api/nodes/{mac}/events. Hover shows the values under the cursor in every chart at once;
// dragging across a chart zooms them all (the points are fetched again for the span, so a zoom
// shows finer buckets); each caption is computed over what the chart shows. Values are written
// by the one formatter, fmt.js. Data from Pis is only ever written with textContent.
"use strict";

(function () {
  const F = window.pirackFmt;
  const mac = document.body.dataset.mac;
  if (document.body.dataset.history !== "true") return;
  const grid = document.getElementById("charts");
  const zoomOut = document.getElementById("zoom-reset");
  const rangeNames = { "1h": "the last hour", "6h": "the last 6 hours", "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days", "90d": "the last 90 days" };
  let range = "1h";
  let zoom = null; // {from, to} in ms while zoomed
  const charts = []; // {spec, fig, u}
  window.pirackCharts = charts; // for the browser tests

  // specs lists the charts of this Pi, from what it last sent: each is one metric with its
  // min-max band, or several lines (each core, sensor, interface direction...).
  function specs(m) {
    const out = [];
    const one = (title, metric, unit) => out.push({ title, unit, lines: [{ label: title, metric }], band: true });
    const many = (title, unit, lines) => { if (lines.length) out.push({ title, unit, lines, band: false }); };
    m = m || {};
    one("Load (1 min)", "load_1", "");
    one("CPU", "cpu_percent", "%");
    many("CPU per core", "%", (m.cpu_percent_cores || []).map((_, i) => ({ label: "core " + i, metric: "cpu_core_percent@" + i })));
    one("Memory used", "mem_used_percent", "%");
    if (m.mem_used_bytes != null) {
      many("Memory", "B", [
        { label: "used", metric: "mem_used_bytes" }, { label: "cache", metric: "mem_cached_bytes" },
        { label: "buffers", metric: "mem_buffers_bytes" }, { label: "swap used", metric: "swap_used_bytes" }]);
    }
    if (m.temps && m.temps.length) {
      many("Temperatures", "\u00b0C", m.temps.map((t) => ({ label: t.sensor, metric: "temp_c@" + t.sensor })));
      // The limits the hardware reports (an NVMe drive's), drawn dashed: the sensor_hot alert's.
      out[out.length - 1].limits = m.temps.filter((t) => t.max_c != null).map((t) => ({ label: t.sensor, value: t.max_c }));
    } else one("CPU temperature", "cpu_temp_c", "\u00b0C");
    if (m.cpu_freq_mhz != null) one("CPU clock", "cpu_freq_mhz", "MHz");
    for (const n of m.net || []) {
      many("Network " + n.name, "B/s", [{ label: "received", metric: "net_rx_bytes_per_s@" + n.name }, { label: "sent", metric: "net_tx_bytes_per_s@" + n.name }]);
    }
    for (const d of m.disks || []) {
      many("Disk " + d.name, "B/s", [{ label: "read", metric: "disk_read_bytes_per_s@" + d.name }, { label: "written", metric: "disk_write_bytes_per_s@" + d.name }]);
    }
    if (m.filesystems && m.filesystems.length) many("Filesystems used", "%", m.filesystems.map((f) => ({ label: f.mount, metric: "fs_used_percent@" + f.mount })));
    else one("Disk used", "disk_used_percent", "%");
    if (m.procs != null) one("Processes", "procs", "");
    const running = (m.containers || []).filter((c) => c.state === "running");
    many("Containers, CPU (of one core)", "%", running.map((c) => ({ label: c.name || c.id, metric: "container_cpu_percent@" + (c.name || c.id) })));
    many("Containers, memory", "B", running.map((c) => ({ label: c.name || c.id, metric: "container_mem_bytes@" + (c.name || c.id) })));
    one("Row power", "row_watts", "W");
    return out;
  }

  const palette = ["#58a6ff", "#f2cc60", "#3fb950", "#ff7b72", "#d2a8ff", "#79c0ff", "#ffa657", "#a5d6ff"];

  function makeChart(spec, fig) {
    const plot = fig.querySelector('[data-field="plot"]');
    const fmt = (v) => F.value(v, spec.unit);
    const series = [{ value: (u, v) => (v == null ? "" : new Date(v * 1000).toLocaleString()) }];
    spec.lines.forEach((l, i) => series.push({ label: l.label, stroke: palette[i % palette.length], width: 1.5, value: (u, v) => fmt(v), spanGaps: false }));
    const opts = {
      width: Math.max(280, plot.clientWidth), height: 200,
      cursor: { sync: { key: "pi" }, drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#8b949e", grid: { stroke: "#2f3640" }, ticks: { stroke: "#2f3640" }, font: "12px system-ui" },
        { stroke: "#8b949e", grid: { stroke: "#2f3640" }, ticks: { stroke: "#2f3640" }, font: "12px system-ui", size: 88,
          values: (u, ticks) => ticks.map(fmt) },
      ],
      series,
      hooks: { setSelect: [(u) => {
        if (u.select.width < 5) return;
        const from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        zoomTo(from * 1000, to * 1000);
      }], setScale: [(u, key) => { if (key === "x") caption(fig, spec, u); }], draw: [(u) => drawLimits(u, spec)] },
    };
    if (spec.limits && spec.limits.length) {
      // The y range takes in the limits, so that a line far above the readings is still seen.
      const top = Math.max(...spec.limits.map((l) => l.value));
      opts.scales.y = { range: (u, lo, hi) => (lo == null ? [0, top + 5] : [Math.floor(lo - 2), Math.ceil(Math.max(hi, top) + 2)]) };
    }
    if (spec.band) {
      // min and max as hidden lines with the band between them: the bucket's spread.
      series.push({ label: "min", stroke: "transparent", value: (u, v) => fmt(v), show: true, points: { show: false } },
        { label: "max", stroke: "transparent", value: (u, v) => fmt(v), points: { show: false } });
      opts.bands = [{ series: [3, 2], fill: "#58a6ff33" }];
    }
    return new uPlot(opts, [[]].concat(series.slice(1).map(() => [])), plot);
  }

  // drawLimits draws each limit of spec as a dashed line across the plot, labelled.
  function drawLimits(u, spec) {
    if (!spec.limits || !spec.limits.length) return;
    const ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.strokeStyle = "#ff7b72";
    ctx.fillStyle = "#ff7b72";
    ctx.lineWidth = 1;
    ctx.setLineDash([6, 4]);
    ctx.font = "12px system-ui";
    for (const l of spec.limits) {
      const y = Math.round(u.valToPos(l.value, "y", true));
      if (y < top || y > top + height) continue;
      ctx.beginPath();
      ctx.moveTo(left, y + 0.5); // on a pixel row, not between two
      ctx.lineTo(left + width, y + 0.5);
      ctx.stroke();
      ctx.fillText("limit of " + l.label, left + 4, y - 4);
    }
    ctx.restore();
  }

  // table turns a series response into uPlot columns, with a null where buckets are missing
  // (the Pi was off) so that the line does not bridge the gap.
  function columns(points) {
    const t = [], avg = [], lo = [], hi = [];
    let step = Infinity;
    for (let i = 1; i < points.length; i++) step = Math.min(step, Date.parse(points[i].t) - Date.parse(points[i - 1].t));
    points.forEach((p, i) => {
      const at = Date.parse(p.t);
      if (i > 0 && at - Date.parse(points[i - 1].t) > 2.5 * step) { t.push((at - step) / 1000); avg.push(null); lo.push(null); hi.push(null); }
      t.push(at / 1000); avg.push(p.avg); lo.push(p.min); hi.push(p.max);
    });
    return { t, avg, lo, hi };
  }

  // join aligns several series on one time axis (uPlot wants one x column).
  function join(cols) {
    const times = [...new Set(cols.flatMap((c) => c.t))].sort((a, b) => a - b);
    const out = [times];
    for (const c of cols) {
      const at = new Map(c.t.map((t, i) => [t, c.avg[i]]));
      out.push(times.map((t) => (at.has(t) ? at.get(t) : null)));
    }
    return out;
  }

  const spans = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3 };

  // span is the time the charts show: the zoom, or the range ending now. All charts of one
  // load ask for the same from and to.
  function span() {
    if (zoom) return zoom;
    const to = Date.now();
    return { from: to - spans[range], to };
  }

  async function fetchSeries(c, metric, points, s) {
    const q = "metric=" + encodeURIComponent(metric) + "&points=" + points +
      "&from=" + new Date(s.from).toISOString() + "&to=" + new Date(s.to).toISOString();
    const url = "/api/nodes/" + encodeURIComponent(mac) + "/series?" + q;
    c.urls.push(url);
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.assign("/login"); throw new Error("signed out"); }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  // loaded counts the loads: a load's answers that come back after a newer load began (a range
  // clicked while a zoom's points are on their way) are dropped, not drawn over the newer one.
  let loaded = 0;

  async function loadChart(c, s, n) {
    const points = Math.min(2000, Math.max(60, Math.round(c.u.width / 2)));
    const note = c.fig.querySelector('[data-field="note"]');
    c.urls = [];
    try {
      const bodies = await Promise.all(c.spec.lines.map((l) => fetchSeries(c, l.metric, points, s)));
      if (n !== loaded) return;
      const cols = bodies.map((b) => columns(b.points));
      const data = c.spec.band ? [cols[0].t, cols[0].avg, cols[0].lo, cols[0].hi] : join(cols);
      c.u.setData(data);
      const from = Date.parse(bodies[0].from) / 1000, to = Date.parse(bodies[0].to) / 1000;
      c.u.setScale("x", { min: from, max: to });
      note.textContent = data[0].length ? "" : "No data in this range.";
      caption(c.fig, c.spec, c.u);
    } catch (err) {
      if (n === loaded) note.textContent = "Could not load: " + err.message;
    }
  }

  // caption summarises what the chart shows, over the x range on screen: min of the minimums,
  // mean of the means, max of the maximums.
  function caption(fig, spec, u) {
    const cap = fig.querySelector('[data-field="caption"]');
    const [xs] = u.data;
    const lo = u.scales.x.min, hi = u.scales.x.max;
    const visible = [];
    for (let i = 0; i < xs.length; i++) if (xs[i] >= lo && xs[i] <= hi) visible.push(i);
    const fmt = (v) => F.value(v, spec.unit);
    const stats = (col, minCol, maxCol) => {
      let mn = Infinity, mx = -Infinity, sum = 0, n = 0;
      for (const i of visible) {
        const v = col[i];
        if (v == null) continue;
        mn = Math.min(mn, minCol ? minCol[i] : v); mx = Math.max(mx, maxCol ? maxCol[i] : v); sum += v; n++;
      }
      return n ? { min: mn, avg: sum / n, max: mx } : null;
    };
    const span = zoom ? "from " + new Date(lo * 1000).toLocaleString() + " to " + new Date(hi * 1000).toLocaleString() : rangeNames[range];
    let text;
    if (spec.band) {
      const s = stats(u.data[1], u.data[2], u.data[3]);
      text = s ? "Over " + span + ": min " + fmt(s.min) + ", average " + fmt(s.avg) + ", max " + fmt(s.max) : "";
    } else {
      const parts = spec.lines.map((l, k) => { const s = stats(u.data[k + 1]); return s ? l.label + " average " + fmt(s.avg) + ", max " + fmt(s.max) : null; }).filter(Boolean);
      text = parts.length ? "Over " + span + ": " + parts.join("; ") : "";
    }
    if (text && spec.limits && spec.limits.length) {
      text += " (limits: " + spec.limits.map((l) => l.label + " " + fmt(l.value)).join(", ") + ")";
    }
    cap.textContent = text;
    fig.dataset.caption = text;
  }

  function build(m) {
    grid.replaceChildren();
    charts.length = 0;
    for (const spec of specs(m)) {
      const fig = document.createElement("figure");
      fig.className = "chart";
      fig.dataset.metric = spec.lines.map((l) => l.metric).join(" ");
      const title = document.createElement("figcaption");
      title.textContent = spec.title + (spec.unit ? ", " + spec.unit : "");
      const plot = document.createElement("div");
      plot.className = "plot";
      plot.dataset.field = "plot";
      const note = document.createElement("p");
      note.className = "chart-note";
      note.dataset.field = "note";
      const cap = document.createElement("p");
      cap.className = "chart-caption";
      cap.dataset.field = "caption";
      fig.append(title, plot, note, cap);
      grid.append(fig);
      charts.push({ spec, fig, u: makeChart(spec, fig), urls: [] });
    }
  }

  function loadAll() {
    const s = span(), n = ++loaded;
    return Promise.all(charts.map((c) => loadChart(c, s, n)));
  }

  function zoomTo(from, to) {
    if (to - from < 60000) to = from + 60000;
    // A drag on one chart selects on every chart it is synced with: one load, not one each.
    if (zoom && Math.abs(zoom.from - from) < 1000 && Math.abs(zoom.to - to) < 1000) return;
    zoom = { from, to };
    zoomOut.hidden = false;
    document.body.dataset.zoom = "on";
    loadAll();
  }

  async function start() {
    let m = {};
    try {
      const r = await fetch("/api/nodes/" + encodeURIComponent(mac), { credentials: "same-origin" });
      if (r.ok) m = (await r.json()).metrics || {};
    } catch (err) { /* charts of the basic metrics still come */ }
    build(m);
    await loadAll();
    document.body.dataset.charts = "ready";
  }

  async function events() {
    const tbody = document.querySelector("#event-log tbody");
    const empty = document.getElementById("event-empty");
    try {
      const r = await fetch("/api/nodes/" + encodeURIComponent(mac) + "/events?limit=200", { credentials: "same-origin" });
      if (!r.ok) return;
      const list = await r.json();
      tbody.replaceChildren();
      for (const e of list) {
        const tr = document.createElement("tr");
        tr.dataset.kind = e.kind;
        const time = document.createElement("time");
        time.setAttribute("datetime", e.time);
        time.textContent = new Date(e.time).toLocaleString();
        for (const c of [time, e.kind, e.detail || "", e.by || ""]) {
          const td = document.createElement("td");
          td.append(c);
          tr.append(td);
        }
        tbody.append(tr);
      }
      empty.hidden = list.length > 0;
    } catch (err) { /* the table stays as it was; the next refresh tries again */ }
  }

  document.querySelector(".ranges").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-range]");
    if (!b) return;
    range = b.dataset.range;
    zoom = null;
    zoomOut.hidden = true;
    delete document.body.dataset.zoom;
    for (const o of document.querySelectorAll("button[data-range]")) o.setAttribute("aria-pressed", String(o === b));
    loadAll();
  });
  zoomOut.addEventListener("click", () => {
    zoom = null;
    zoomOut.hidden = true;
    delete document.body.dataset.zoom;
    loadAll();
  });
  window.addEventListener("resize", () => {
    for (const c of charts) c.u.setSize({ width: Math.max(280, c.fig.querySelector('[data-field="plot"]').clientWidth), height: 200 });
  });

  start();
  events();
  // Live: the range ending now moves on; a zoom stays where it was put.
  setInterval(() => { if (!zoom) loadAll(); events(); }, 30000);
})();
