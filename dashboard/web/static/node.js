// pirack Control Center, Pi detail page: draws the charts as inline SVG from
// /api/nodes/{mac}/series and lists the event log from /api/nodes/{mac}/events.
// Data from Pis is only ever written with textContent or attributes, never parsed as HTML.
"use strict";

(function () {
  const mac = document.body.dataset.mac;
  if (document.body.dataset.history !== "true") return;
  const svgNS = "http://www.w3.org/2000/svg";
  const W = 600, H = 180, PAD_L = 48, PAD_R = 8, PAD_T = 8, PAD_B = 22;
  let range = "1h";

  function el(name, attrs, text) {
    const e = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }

  function fmtNum(v) {
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function fmtTick(t, rng) {
    const d = new Date(t);
    if (rng === "7d") return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" });
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  // draw renders one series: a band from min to max and a line through the means.
  function draw(plot, data) {
    plot.replaceChildren();
    const pts = data.points || [];
    if (pts.length === 0) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No data in this range.";
      plot.append(p);
      return;
    }
    const t0 = Date.parse(data.from), t1 = Date.parse(data.to);
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p.min); hi = Math.max(hi, p.max); }
    if (data.unit === "%") { lo = 0; hi = Math.max(hi, 100); } else { lo = Math.min(lo, 0); }
    if (hi <= lo) hi = lo + 1;
    const x = (t) => PAD_L + (Date.parse(t) - t0) / (t1 - t0) * (W - PAD_L - PAD_R);
    const y = (v) => PAD_T + (1 - (v - lo) / (hi - lo)) * (H - PAD_T - PAD_B);

    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: "chart-svg",
      "aria-label": data.metric + " over " + data.range + ": " + pts.length + " points, from " +
        fmtNum(lo) + " to " + fmtNum(hi) + (data.unit ? " " + data.unit : "") });
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.append(el("line", { x1: PAD_L, x2: W - PAD_R, y1: y(v), y2: y(v), class: "grid" }));
      svg.append(el("text", { x: PAD_L - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, fmtNum(v)));
    }
    for (const f of [0, 0.5, 1]) {
      const t = t0 + f * (t1 - t0);
      svg.append(el("text", { x: PAD_L + f * (W - PAD_L - PAD_R), y: H - 6,
        "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "axis" }, fmtTick(t, data.range)));
    }
    // Split at gaps (a missing bucket, an offline Pi) so the line does not bridge them.
    const step = pts.length > 1 ? Math.min(...pts.slice(1).map((p, i) => Date.parse(p.t) - Date.parse(pts[i].t))) : 0;
    let runs = [[]];
    pts.forEach((p, i) => {
      if (i > 0 && step > 0 && Date.parse(p.t) - Date.parse(pts[i - 1].t) > 2.5 * step) runs.push([]);
      runs[runs.length - 1].push(p);
    });
    for (const run of runs) {
      const upper = run.map((p) => x(p.t).toFixed(1) + "," + y(p.max).toFixed(1));
      const lower = run.slice().reverse().map((p) => x(p.t).toFixed(1) + "," + y(p.min).toFixed(1));
      svg.append(el("polygon", { points: upper.concat(lower).join(" "), class: "band" }));
      svg.append(el("polyline", { points: run.map((p) => x(p.t).toFixed(1) + "," + y(p.avg).toFixed(1)).join(" "), class: "line" }));
    }
    const last = pts[pts.length - 1];
    const cap = document.createElement("p");
    cap.className = "chart-last";
    cap.textContent = "latest " + fmtNum(last.avg) + (data.unit ? " " + data.unit : "") +
      " (min " + fmtNum(last.min) + ", max " + fmtNum(last.max) + ")";
    plot.append(svg, cap);
  }

  async function load() {
    for (const fig of document.querySelectorAll("figure.chart")) {
      const plot = fig.querySelector('[data-field="plot"]');
      const url = "/api/nodes/" + encodeURIComponent(mac) + "/series?metric=" +
        encodeURIComponent(fig.dataset.metric) + "&range=" + range;
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (r.status === 401) { location.assign("/login"); return; }
        const body = await r.json();
        if (!r.ok) { plot.textContent = body.error || r.statusText; continue; }
        draw(plot, body);
      } catch (err) {
        plot.textContent = "Could not load: " + err.message;
      }
    }
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
        const cells = [time, e.kind, e.detail || "", e.by || ""];
        for (const c of cells) {
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
    for (const o of document.querySelectorAll("button[data-range]")) o.setAttribute("aria-pressed", String(o === b));
    load();
  });

  load();
  events();
  setInterval(() => { load(); events(); }, 30000);
})();
