// pirack Control Center, fleet table: every Pi in one table, live from /api/events, sortable by
// any column and filtered as you type, for racks of a thousand Pis: rows are built once per Pi,
// their cells rewritten only when their text changes, and sorting moves the row elements.
// Values are written by fmt.js. Data from Pis is only ever written with textContent.
"use strict";

(function () {
  const F = window.pirackFmt;
  const tbody = document.querySelector("#fleet tbody");
  const form = document.getElementById("fleet-filters");
  const live = document.getElementById("live");
  const nodes = new Map(); // mac -> node
  const rows = new Map(); // mac -> tr
  let sortKey = "place", sortDir = 1;
  let dirty = false;
  const changed = new Set(); // MACs to fill again; all of them after a snapshot
  let order = []; // the MACs in the order the rows stand

  const name = (n) => n.slot_name || n.hostname || F.displayMAC(n.mac);
  const hottest = (m) => {
    if (!m) return null;
    let t = m.cpu_temp_c != null ? m.cpu_temp_c : null;
    for (const s of m.temps || []) if (t == null || s.c > t) t = s.c;
    return t;
  };
  const fullest = (m) => {
    if (!m) return null;
    let worst = F.diskPercent(m), where = "/";
    for (const f of m.filesystems || []) {
      const p = f.used_bytes + f.free_bytes > 0 ? f.used_bytes / (f.used_bytes + f.free_bytes) * 100 : null;
      if (p != null && (worst == null || p > worst)) { worst = p; where = f.mount; }
    }
    return worst == null ? null : { pct: worst, where };
  };
  const netRate = (m) => {
    if (!m || !m.net) return null;
    let sum = null;
    for (const i of m.net) {
      for (const v of [i.rx_bytes_per_s, i.tx_bytes_per_s]) if (v != null) sum = (sum || 0) + v;
    }
    return sum;
  };
  const stateRank = { offline: 0, stale: 1, unknown: 2, online: 3 };

  // keys gives the value a column sorts by; null sorts last whichever the direction.
  const keys = {
    name: (n) => name(n).toLowerCase(),
    place: (n) => n.row + "\u0000" + String(n.slot || 999).padStart(4, "0") + n.mac,
    state: (n) => stateRank[n.state] ?? 2,
    load: (n) => (n.metrics && n.metrics.load_1 != null ? n.metrics.load_1 : null),
    cpu: (n) => (n.metrics && n.metrics.cpu_percent != null ? n.metrics.cpu_percent : null),
    temp: (n) => hottest(n.metrics),
    mem: (n) => F.memPercent(n.metrics),
    disk: (n) => { const f = fullest(n.metrics); return f && f.pct; },
    net: (n) => netRate(n.metrics),
    containers: (n) => (n.metrics && n.metrics.containers ? n.metrics.containers.filter((c) => c.state === "running").length : null),
    version: (n) => n.agent_version || null,
    uptime: (n) => (n.metrics && n.metrics.uptime_s != null ? n.metrics.uptime_s : null),
    seen: (n) => (n.last_seen ? Date.parse(n.last_seen) : null),
  };

  function cell(tr, i) { return tr.children[i]; }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

  function makeRow(mac) {
    const tr = document.createElement("tr");
    tr.dataset.mac = mac;
    for (let i = 0; i < 13; i++) tr.append(document.createElement("td"));
    const a = document.createElement("a");
    a.href = "/nodes/" + encodeURIComponent(mac);
    cell(tr, 0).append(a);
    const r = document.createElement("a");
    cell(tr, 1).append(r);
    for (const i of [3, 4, 5, 6, 7, 8, 9, 11, 12]) cell(tr, i).className = "num";
    return tr;
  }

  function fill(tr, n) {
    const m = n.metrics;
    const link = cell(tr, 0).firstChild;
    setText(link, name(n));
    link.title = F.displayMAC(n.mac) + (n.ip ? " \u00b7 " + n.ip : "");
    const place = cell(tr, 1).firstChild;
    setText(place, n.row + (n.slot ? " / " + n.slot : ""));
    const href = "/#row-" + encodeURIComponent(n.row);
    if (place.getAttribute("href") !== href) place.setAttribute("href", href);
    const alerts = (n.alerts || []).length;
    setText(cell(tr, 2), n.state + (alerts ? " \u00b7 " + alerts + " alert" + (alerts > 1 ? "s" : "") : ""));
    tr.dataset.state = n.state;
    tr.dataset.alerts = String(alerts);
    setText(cell(tr, 3), m && m.load_1 != null ? F.value(m.load_1, "") : F.dash);
    setText(cell(tr, 4), F.value(keys.cpu(n), "%"));
    setText(cell(tr, 5), F.value(hottest(m), "\u00b0C"));
    setText(cell(tr, 6), F.value(F.memPercent(m), "%"));
    const f = fullest(m);
    setText(cell(tr, 7), f ? F.value(f.pct, "%") + (f.where !== "/" ? " " + f.where : "") : F.dash);
    setText(cell(tr, 8), F.value(netRate(m), "B/s"));
    const c = keys.containers(n);
    setText(cell(tr, 9), c == null ? F.dash : String(c));
    setText(cell(tr, 10), n.agent_version || F.dash);
    setText(cell(tr, 11), m && m.uptime_s != null ? F.duration(m.uptime_s * 1000) : F.dash);
    setText(cell(tr, 12), F.ago(n.last_seen));
  }

  function matches(n, q, state) {
    if (state === "alert" ? !(n.alerts && n.alerts.length) : state && n.state !== state) return false;
    if (!q) return true;
    const hay = [n.hostname, n.slot_name, n.mac, F.displayMAC(n.mac), n.ip, n.row, n.model, n.agent_version].join(" ").toLowerCase();
    return q.split(/\s+/).every((w) => hay.includes(w));
  }

  function compare(a, b) {
    const ka = keys[sortKey](a), kb = keys[sortKey](b);
    if (ka == null && kb == null) return a.mac < b.mac ? -1 : 1;
    if (ka == null) return 1;
    if (kb == null) return -1;
    if (ka < kb) return -sortDir;
    if (ka > kb) return sortDir;
    return a.mac < b.mac ? -1 : 1;
  }

  // render applies what changed: the changed rows' cells, the filter, and the order, moving
  // rows only when the order changed.
  function render() {
    dirty = false;
    const q = form.elements.q.value.trim().toLowerCase();
    const state = form.elements.state.value;
    for (const mac of changed) {
      const n = nodes.get(mac);
      if (!n) continue;
      let tr = rows.get(mac);
      if (!tr) { tr = makeRow(mac); rows.set(mac, tr); }
      fill(tr, n);
    }
    changed.clear();
    const list = [...nodes.values()].sort(compare);
    let shown = 0;
    for (const n of list) {
      const tr = rows.get(n.mac);
      const ok = matches(n, q, state);
      if (tr.hidden === ok) tr.hidden = !ok;
      if (ok) shown++;
    }
    const next = list.map((n) => n.mac);
    if (next.length !== order.length || next.some((mac, i) => mac !== order[i])) {
      const frag = document.createDocumentFragment();
      for (const mac of next) frag.append(rows.get(mac));
      tbody.append(frag);
      order = next;
    }
    document.getElementById("fleet-count").textContent = String(nodes.size);
    document.getElementById("fleet-shown").textContent = shown === nodes.size ? "" : shown + " shown";
    for (const b of document.querySelectorAll("#fleet th button")) {
      const th = b.parentElement;
      const s = b.dataset.sort === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none";
      if (th.getAttribute("aria-sort") !== s) th.setAttribute("aria-sort", s);
    }
    document.body.dataset.sorted = sortKey + (sortDir > 0 ? "+" : "-");
  }
  // At most four renders a second: a thousand Pis report every few seconds.
  function queue() { if (!dirty) { dirty = true; setTimeout(() => requestAnimationFrame(render), 250); } }

  // The biggest first for the numbers an operator hunts (hottest, fullest, busiest); A to Z
  // for names and places; the oldest first for versions and last seen.
  const firstDir = { load: -1, cpu: -1, temp: -1, mem: -1, disk: -1, net: -1, containers: -1, uptime: -1, state: 1, seen: 1, version: 1, name: 1, place: 1 };
  document.querySelector("#fleet thead").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-sort]");
    if (!b) return;
    if (b.dataset.sort === sortKey) sortDir = -sortDir;
    else { sortKey = b.dataset.sort; sortDir = firstDir[sortKey] || 1; }
    render();
  });
  form.addEventListener("input", () => render());
  document.getElementById("fleet-compare").addEventListener("click", () => {
    const shown = order.filter((mac) => !rows.get(mac).hidden).slice(0, 24);
    location.assign("/compare?macs=" + shown.join(","));
  });
  form.addEventListener("submit", (e) => e.preventDefault());

  function connect() {
    const es = new EventSource("/api/events");
    es.onopen = () => { live.dataset.live = "on"; live.textContent = "live"; };
    es.addEventListener("snapshot", (e) => {
      nodes.clear();
      for (const n of JSON.parse(e.data)) { nodes.set(n.mac, n); changed.add(n.mac); }
      for (const [mac, tr] of rows) if (!nodes.has(mac)) { tr.remove(); rows.delete(mac); }
      queue();
    });
    es.addEventListener("node", (e) => { const n = JSON.parse(e.data); nodes.set(n.mac, n); changed.add(n.mac); queue(); });
    es.addEventListener("gone", (e) => {
      const mac = JSON.parse(e.data).mac;
      nodes.delete(mac);
      const tr = rows.get(mac);
      if (tr) { tr.remove(); rows.delete(mac); }
      queue();
    });
    es.onerror = () => {
      live.dataset.live = "off";
      live.textContent = es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting\u2026";
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
  }
  connect();
  setInterval(() => { for (const mac of nodes.keys()) changed.add(mac); queue(); }, 10000); // "last seen" ages
})();
