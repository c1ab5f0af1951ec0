// pirack Control Center, compare page: one metric of several Pis (?macs=a,b,c, or ?row=r1) on
// one uPlot chart, a line each, from /api/nodes/{mac}/series. Values are written by fmt.js.
"use strict";

(function () {
  const F = window.pirackFmt;
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("compare-form");
  const fig = document.querySelector(".compare-chart");
  const plot = fig.querySelector('[data-field="plot"]');
  const note = fig.querySelector('[data-field="note"]');
  const cap = fig.querySelector('[data-field="caption"]');
  const spans = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3 };
  const palette = ["#58a6ff", "#f2cc60", "#3fb950", "#ff7b72", "#d2a8ff", "#79c0ff", "#ffa657", "#a5d6ff", "#7ee787", "#ffdf5d", "#ff9bce", "#b392f0"];
  let range = "1h";
  let pis = []; // {mac, name}
  let u = null;
  window.pirackCompare = { get u() { return u; }, get pis() { return pis; } }; // for the browser tests

  if (params.get("metric")) form.elements.metric.value = params.get("metric");

  async function choosePis() {
    const r = await fetch("/api/nodes", { credentials: "same-origin" });
    if (r.status === 401) { location.assign("/login"); return; }
    const nodes = await r.json();
    const wanted = (params.get("macs") || "").split(",").filter(Boolean);
    const row = params.get("row");
    const pick = row ? nodes.filter((n) => n.row === row) : nodes.filter((n) => wanted.includes(n.mac));
    pis = pick.slice(0, 24).map((n) => ({ mac: n.mac, name: n.slot_name || n.hostname || F.displayMAC(n.mac) }));
    document.getElementById("compare-what").textContent = row ? "row " + row : pis.length + " Pis";
  }

  // loads counts the loads: an older load's answers that arrive after a newer one began (the
  // metric or range changed meanwhile) are dropped.
  let loads = 0;

  async function load() {
    const n = ++loads;
    const metric = form.elements.metric.value;
    const unit = metric.includes("percent") ? "%" : metric.endsWith("_c") ? "\u00b0C" : metric.includes("bytes_per_s") ? "B/s" : metric.includes("mhz") ? "MHz" : "";
    const to = Date.now(), from = to - spans[range];
    const points = Math.min(2000, Math.max(60, Math.round(plot.clientWidth / 2)));
    const q = "metric=" + encodeURIComponent(metric) + "&points=" + points + "&from=" + new Date(from).toISOString() + "&to=" + new Date(to).toISOString();
    const bodies = await Promise.all(pis.map((p) => fetch("/api/nodes/" + encodeURIComponent(p.mac) + "/series?" + q, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : { points: [] })).catch(() => ({ points: [] }))));
    if (n !== loads) return;
    const times = [...new Set(bodies.flatMap((b) => b.points.map((p) => Date.parse(p.t) / 1000)))].sort((a, b) => a - b);
    const data = [times];
    for (const b of bodies) {
      const at = new Map(b.points.map((p) => [Date.parse(p.t) / 1000, p.avg]));
      data.push(times.map((t) => (at.has(t) ? at.get(t) : null)));
    }
    const fmt = (v) => F.value(v, unit);
    if (u) u.destroy();
    u = new uPlot({
      width: Math.max(320, plot.clientWidth), height: 360,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, min: from / 1000, max: to / 1000 } },
      axes: [{ stroke: "#8b949e", grid: { stroke: "#2f3640" }, font: "12px system-ui" },
        { stroke: "#8b949e", grid: { stroke: "#2f3640" }, font: "12px system-ui", size: 88, values: (_, ticks) => ticks.map(fmt) }],
      series: [{ value: (_, v) => (v == null ? "" : new Date(v * 1000).toLocaleString()) }].concat(pis.map((p, i) => ({
        label: p.name, stroke: palette[i % palette.length], width: 1.5, value: (_, v) => fmt(v) }))),
    }, data, plot);
    note.textContent = times.length ? "" : "No data in this range.";
    const parts = pis.map((p, i) => {
      const vs = data[i + 1].filter((v) => v != null);
      return vs.length ? p.name + " average " + fmt(vs.reduce((a, b) => a + b, 0) / vs.length) + ", max " + fmt(Math.max(...vs)) : null;
    }).filter(Boolean);
    cap.textContent = parts.join("; ");
    document.body.dataset.compare = metric + " " + range;
  }

  form.addEventListener("change", load);
  form.addEventListener("submit", (e) => e.preventDefault());
  document.querySelector(".ranges").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-range]");
    if (!b) return;
    range = b.dataset.range;
    for (const o of document.querySelectorAll("button[data-range]")) o.setAttribute("aria-pressed", String(o === b));
    load();
  });
  choosePis().then(load);
})();
